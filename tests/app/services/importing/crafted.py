"""Hand-made attack workbooks: small on disk, built from the XML they carry, and a way to read
one in a child process whose memory is capped (an unbounded read there dies alone)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
MAIN = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships'
    b'+xml"/><Default Extension="xml" ContentType="application/xml"/></Types>')
_RELS = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
         b'2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
         b'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
_WORKBOOK = (b'<?xml version="1.0" encoding="UTF-8"?><workbook ' + MAIN + b' xmlns:r="http://schemas.openxmlformats'
             b'.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets>'
             b'</workbook>')
_WORKBOOK_RELS = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
                  b'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
                  b'officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
                  b'<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
                  b'sharedStrings" Target="sharedStrings.xml"/></Relationships>')


def sheet_xml(rows: bytes, *, head: bytes = b"", dimension: bytes = b"") -> bytes:
    """A worksheet part whose sheetData holds ``rows`` (raw XML)."""
    return (b'<?xml version="1.0" encoding="UTF-8"?>' + head + b"<worksheet " + MAIN + b">" + dimension
            + b"<sheetData>" + rows + b"</sheetData></worksheet>")


def xlsx(path: Path, sheet: bytes, *, shared: bytes | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """A minimal workbook with one sheet ``S`` whose part is ``sheet``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", _CONTENT_TYPES)
        book.writestr("_rels/.rels", _RELS)
        book.writestr("xl/workbook.xml", _WORKBOOK)
        book.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        book.writestr("xl/worksheets/sheet1.xml", sheet)
        if shared is not None:
            book.writestr("xl/sharedStrings.xml", shared)
        for name, data in (extra or {}).items():
            book.writestr(name, data)
    return path


ODS_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')


def ods(path: Path, rows: str) -> Path:
    """A minimal OpenDocument spreadsheet whose one table holds ``rows`` (raw XML)."""
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODS_NS} office:version="1.2">'
               f'<office:body><office:spreadsheet><table:table table:name="S">{rows}</table:table>'
               f'</office:spreadsheet></office:body></office:document-content>')
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:'
                'opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path='
                '"/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/></manifest:manifest>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet",
                      compress_type=zipfile.ZIP_STORED)
        book.writestr("META-INF/manifest.xml", manifest)
        book.writestr("content.xml", content)
    return path


def ods_cell(text: str) -> str:
    return f'<table:table-cell office:value-type="string"><text:p>{text}</text:p></table:table-cell>'


_CHILD = textwrap.dedent("""
    import resource, sys
    cap = int(sys.argv[1]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from app.services.importing.reading import UnreadableFile, read_table
    for path in sys.argv[2:]:
        try:
            table = read_table(path)
            print("READ", len(table.rows), len(table.headers), flush=True)
        except UnreadableFile as exc:
            print("REFUSED", str(exc).replace("\\n", " "), flush=True)
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across exec, so a
    # test run grown past 400 MiB would read as this child's
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print("PEAK", peak // 1024, flush=True)
""")


def read_in_child(*paths: Path, memory_mb: int = 2048) -> tuple[int, list[str]]:
    """Read each file with ``read_table`` in a child process limited to ``memory_mb`` of
    address space; (exit code, one output line per file, then ``PEAK <MiB>``). A read that
    tries to allocate the impossible aborts the child, not the test run."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(memory_mb), *map(str, paths)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    return done.returncode, done.stdout.splitlines()
