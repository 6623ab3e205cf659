"""Bounds on every workbook read: nothing inside a file decides how much memory a read takes.

An .xlsx/.ods file is a zip of XML parts that python-calamine turns into a *dense* grid sized
by the positions of the cells it finds. A 1.6 KB file with cells at A1 and XFD1048576 asks
for 17 billion cells (the process aborts: Rust's allocation failure cannot be caught), and a
3.8 MB zip can hold a gigabyte of XML. So before calamine sees a workbook:

* the zip: the members' declared sizes and compression ratios are checked, then each member
  is inflated here with the bytes really produced counted against the limit (a member can lie
  about its size);
* the XML: a DOCTYPE (entities: "billion laughs", external entities) is refused;
* the grid: every cell's position is read from the XML itself — never from the sheet's
  ``<dimension>``, which can lie — and rows, columns, rows x columns and the number of cell
  tags are held to the limits (``Limits``). xlsx parts are checked with a fast pass for the
  shape every spreadsheet program writes (``<c r="B7" s=".." t="..">``) and an exact replay of
  calamine's position rules for anything else; ODS content is replayed with expat (repeated
  rows and columns included), and read again for the merged ranges calamine does not report
  for ODS (``ods_merged_ranges``).

calamine then reads a copy rebuilt from exactly the parts that were checked (stored, not
compressed), never the original file: what it parses is what was measured, whatever the zip
says about itself. Limits come from the configuration (``CRM_IMPORT_MAX_ROWS``,
``CRM_IMPORT_MAX_COLUMNS``, ``CRM_IMPORT_MAX_CELLS``, ``CRM_WORKBOOK_MAX_UNZIPPED_BYTES``,
``CRM_WORKBOOK_MAX_RATIO``, ``CRM_IMPORT_MAX_BYTES``).
"""

from __future__ import annotations

import functools
import io
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.parsers import expat

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l

MIB = 1024 * 1024
#: More parts than any real workbook has (each sheet is two or three).
MAX_PARTS = 4000
#: Sheets listed by a workbook (the mapping page offers them in a drop-down).
MAX_SHEETS = 500
#: Parts calamine reads; pictures, printer settings and macros are left out of the copy.
_KEPT = (".xml", ".rels")
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"


class UnreadableFile(ValueError):
    """The file cannot be read as a table; the message says why and what to do."""


@dataclass(frozen=True)
class Limits:
    """What one read may hold. ``rows`` counts sheet rows (header included); ``cells`` bounds
    rows x columns of the grid and the number of cell tags; bytes are bytes."""

    file_bytes: int = 20 * MIB
    unzipped_bytes: int = 256 * MIB
    ratio: int = 200
    rows: int = 200_000
    columns: int = 256
    cells: int = 3_000_000

    @classmethod
    def current(cls) -> Limits:
        """The configured limits (defaults outside an application context)."""
        if not has_app_context():
            return cls()
        config = current_app.config
        names = {"file_bytes": "CRM_IMPORT_MAX_BYTES", "unzipped_bytes": "CRM_WORKBOOK_MAX_UNZIPPED_BYTES",
                 "ratio": "CRM_WORKBOOK_MAX_RATIO", "rows": "CRM_IMPORT_MAX_ROWS",
                 "columns": "CRM_IMPORT_MAX_COLUMNS", "cells": "CRM_IMPORT_MAX_CELLS"}
        return cls(**{field: int(config.get(key) or getattr(cls, field)) for field, key in names.items()})


def _n(value: int) -> str:
    return f"{value:,}"


def check_grid(rows: int, columns: int, limits: Limits) -> None:
    """Refuse a grid of ``rows`` x ``columns`` (sheet rows, header included) above the limits."""
    if rows > limits.rows:
        raise UnreadableFile(_l("The sheet has more than %(limit)s rows (it reaches row %(rows)s). Split the file "
                                "or delete the unused rows.", limit=_n(limits.rows), rows=_n(rows)))
    if columns > limits.columns:
        raise UnreadableFile(_l("The sheet has more than %(limit)s columns (it reaches column %(columns)s). Delete "
                                "the unused columns.", limit=_n(limits.columns), columns=_n(columns)))
    if rows * columns > limits.cells:
        raise UnreadableFile(_l("The sheet spans %(rows)s rows x %(columns)s columns, more than %(limit)s cells. "
                                "Split the file or delete unused rows and columns.", rows=_n(rows),
                                columns=_n(columns), limit=_n(limits.cells)))


def _too_many_cells(limits: Limits) -> UnreadableFile:
    return UnreadableFile(_l("The workbook holds more than %(limit)s cells. Split the file.", limit=_n(limits.cells)))


def _unreadable(why: object) -> UnreadableFile:
    return UnreadableFile(_l("This file is not a readable workbook (%(why)s).", why=str(why)[:120]))


# --- the zip ---------------------------------------------------------------------------------

@contextmanager
def checked_copy(path: Path, limits: Limits) -> Iterator[Path]:
    """A temporary copy of the workbook at ``path`` rebuilt from its checked parts, named
    ``.xlsx`` or ``.ods`` by its content; ``UnreadableFile`` above any limit. Deleted on exit."""
    data = read_file(path, limits)
    handle, temp = tempfile.mkstemp(prefix="crm-workbook-", suffix=".part")
    os.close(handle)
    target = Path(temp)
    try:
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
            kind = _rebuild(data, limits, out)
        del data
        final = target.with_suffix(kind)
        os.replace(target, final)
        target = final
        yield target
    finally:
        target.unlink(missing_ok=True)


def read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of ``stream`` (one more than the limit tells the caller the
    file is too big), read in chunks: one big read() would allocate the whole limit at once."""
    chunks, size = [], 0
    while size <= limit and (chunk := stream.read(min(MIB, limit + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_file(path: Path, limits: Limits) -> bytes:
    """The file's bytes; ``UnreadableFile`` above the size limit (read no further than it)."""
    try:
        with open(path, "rb") as handle:
            data = read_at_most(handle, limits.file_bytes)
    except OSError as exc:
        raise UnreadableFile(_l("The file cannot be read (%(why)s).", why=exc.strerror or type(exc).__name__)) from None
    if len(data) > limits.file_bytes:
        raise UnreadableFile(_l("The file is larger than %(limit)s MB.", limit=f"{limits.file_bytes / 1e6:.0f}"))
    return data


def _members(data: bytes, limits: Limits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The zip's parts calamine reads, after the declared sizes and ratios are checked."""
    if not data.startswith(b"PK\x03\x04"):
        raise _unreadable(_l("not an .xlsx/.ods zip"))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise _unreadable(exc) from None
    infos = archive.infolist()
    if len(infos) > MAX_PARTS:
        raise _unreadable(_l("more than %(n)s parts", n=_n(MAX_PARTS)))
    if len({info.filename.lower() for info in infos}) != len(infos):
        raise _unreadable(_l("the same part is stored twice"))
    kept = [info for info in infos if not info.is_dir()
            and (info.filename.lower().endswith(_KEPT) or info.filename == "mimetype")]
    if sum(info.file_size for info in kept) > limits.unzipped_bytes:
        raise _too_big(limits)
    for info in kept:
        _check_declared(info, limits)
    return archive, kept


def _check_declared(info: zipfile.ZipInfo, limits: Limits) -> None:
    if info.flag_bits & 0x1:
        raise UnreadableFile(_l("The workbook is password-protected: save it without a password."))
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _unreadable(_l("unsupported compression"))
    if info.file_size > MIB and info.file_size > limits.ratio * max(info.compress_size, 1):
        raise UnreadableFile(_l("The workbook is compressed more than %(ratio)s times (%(part)s): refused as a "
                                "possible zip bomb.", ratio=limits.ratio, part=info.filename[:80]))


def _too_big(limits: Limits) -> UnreadableFile:
    return UnreadableFile(_l("The workbook unpacks to more than %(limit)s MB of data: split it into smaller files.",
                             limit=f"{limits.unzipped_bytes / 1e6:.0f}"))


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, limits: Limits,
             size: int | None = None) -> bytes:
    """A part's bytes, at most ``budget`` of them. zipfile never inflates past the declared
    size and checks the CRC at the end, so a part that lies about its size is refused."""
    try:
        with archive.open(info) as source:
            part = source.read(budget + 1 if size is None else size)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as exc:
        raise _unreadable(exc) from None
    if size is None and len(part) > budget:
        raise _too_big(limits)
    return part


def _rebuild(data: bytes, limits: Limits, out: zipfile.ZipFile) -> str:
    """Check every kept part and store it in ``out``; returns ``.ods`` or ``.xlsx``. Only the
    sheet calamine is asked for is materialised from an xlsx, so each of its parts is held to
    the limits on its own; an ODS is materialised whole (every table of content.xml)."""
    archive, kept = _members(data, limits)
    mimetype = [info for info in kept if info.filename == "mimetype"]
    ods = bool(mimetype) and _inflate(archive, mimetype[0], 0, limits, len(_ODS_MIMETYPE)) == _ODS_MIMETYPE
    budget = limits.unzipped_bytes
    for info in kept:
        part = _inflate(archive, info, budget, limits)
        budget -= len(part)
        _check_xml(part, info.filename)
        if ods and info.filename.lower() == "content.xml":
            ods_cells(part, limits)
        elif not ods:
            xlsx_cells(part, limits)
            if _shared_strings(part) > limits.cells:
                raise _too_many_cells(limits)
        out.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)), part)
    return ".ods" if ods else ".xlsx"


# --- the XML ---------------------------------------------------------------------------------

def _check_xml(part: bytes, name: str) -> None:
    """A DOCTYPE (or entity declaration) in the prolog is refused: entities are how an XML
    file expands into gigabytes or reads other files, and no spreadsheet program writes one.
    So is UTF-16/32 XML, which the byte-level checks here could not read (Excel writes UTF-8)."""
    if part.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in part[:4]:
        raise _unreadable(_l("%(part)s is not UTF-8 XML", part=name[:80]))
    position = 0
    while True:
        start = part.find(b"<", position)
        if start < 0:
            return
        head = part[start + 1:start + 9].upper()
        if head.startswith(b"?"):
            position = part.find(b"?>", start) + 1 or len(part)
        elif head.startswith(b"!--"):
            position = part.find(b"-->", start) + 1 or len(part)
        elif head.startswith(b"!"):
            raise _doctype(name)
        else:
            return  # the root element: a DOCTYPE can only come before it


def _doctype(name: str) -> UnreadableFile:
    return UnreadableFile(_l("The workbook contains an XML document type declaration (%(part)s), which spreadsheet "
                             "programs never write: refused. Save it again from Excel.", part=name[:80]))


def _shared_strings(part: bytes) -> int:
    """Strings in a shared-strings part (calamine keeps them all in memory)."""
    head = part[:512]
    if b"sst" not in head:
        return 0
    return part.count(b"<si") + part.count(b":si")


# --- xlsx cells ------------------------------------------------------------------------------

_ATTRS = rb'(?:[ \t\r\n]++(?:s|t|cm|vm|ph)="[^"<>=]*+")*+[ \t\r\n]*+'
_VALUED = re.compile(rb'<c r="([A-Z]{1,3})([1-9][0-9]{0,6})"' + _ATTRS + rb'>')
_PREFIXED = re.compile(rb'<[^\s<>!?][^\s<>]*:c[\s/>]|<:c[\s/>]')
_SAMPLE = MIB


def xlsx_cells(part: bytes, limits: Limits) -> int:
    """Cell tags in one XML part, after checking the grid their positions span; 0 if none."""
    if b"<c" not in part and b":c" not in part:
        return 0  # not a sheet
    grid = _fast_grid(part)
    if grid is None:
        grid = _exact_grid(part, limits)
    rows, columns, cells = grid
    check_grid(rows, columns, limits)
    if cells > limits.cells:
        raise _too_many_cells(limits)
    return cells


def _fast_grid(part: bytes) -> tuple[int, int, int] | None:
    """The grid when every cell tag has the plain shape spreadsheet programs write: its first
    attribute a reference ``r="B7"``, then only s/t/cm/vm/ph with plain values (so no second
    ``r`` can hide in it). The extent is guessed from the first and last valued cells and
    proved by one search for any cell tag outside it (or of another shape); None when that
    search finds one (then the exact pass decides)."""
    if b":c" in part and _PREFIXED.search(part):
        return None
    rows = columns = 0
    for sample in (part[:_SAMPLE], part[-_SAMPLE:]):
        for letters, digits in _VALUED.findall(sample):
            rows, columns = max(rows, int(digits)), max(columns, column_number(letters))
    if _outside(rows, columns).search(part):
        return None
    return rows, columns, part.count(b'<c r="')


@functools.lru_cache(maxsize=64)
def _outside(rows: int, columns: int) -> re.Pattern[bytes]:
    """Finds a cell tag that is not a plain one inside rows x columns (self-closing tags —
    cells without a value, which calamine leaves out of the grid — may be anywhere)."""
    within = rb"(?!)"
    if rows and columns:
        within = _letters_up_to(column_letters(columns)) + rb"(?:" + _number_up_to(rows) + rb")"
    plain = rb' r="(?:' + within + rb'"' + _ATTRS + rb'>|[A-Z]{1,3}[1-9][0-9]{0,6}"' + _ATTRS + rb'/>)'
    return re.compile(rb"<c(?!" + plain + rb")[\s/>]")


def column_number(letters: bytes | str) -> int:
    """'A' -> 1, 'Z' -> 26, 'AA' -> 27 (either case)."""
    number = 0
    for char in letters.upper() if isinstance(letters, str) else letters.upper().decode("ascii"):
        number = number * 26 + ord(char) - 64
    return number


def column_letters(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _up_to(text: str, first: str, alphabet: str) -> bytes:
    """Regex for strings of ``text``'s length that sort at or below it (digit by digit)."""
    options = [text]
    for i, char in enumerate(text):
        low = first if i == 0 else alphabet[0]
        if char > low:
            below = f"[{low}-{chr(ord(char) - 1)}]"
            options.append(text[:i] + below + f"[{alphabet}]" * (len(text) - i - 1))
    return "|".join(options).encode()


def _letters_up_to(letters: str) -> bytes:
    shorter = f"[A-Z]{{1,{len(letters) - 1}}}|" if len(letters) > 1 else ""
    return b"(?:" + shorter.encode() + _up_to(letters, "A", "A-Z") + b")"


def _number_up_to(number: int) -> bytes:
    text = str(number)
    shorter = f"[1-9][0-9]{{0,{len(text) - 2}}}|" if len(text) > 1 else ""
    return shorter.encode() + _up_to(text, "1", "0-9")


_TAG = re.compile(rb"""<((?:[^>"']|"[^"]*"|'[^']*')*)>""")  # a start tag: quotes respected
_END = re.compile(rb"</([^>]*)>")  # quick-xml ends a closing tag at its first '>', quotes or not
_SPACE = re.compile(rb"[ \t\r\n]")  # quick-xml's whitespace (not \f or \v)
_OPAQUE = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
_R_ATTR = re.compile(rb"""(?:^|[\s"'])r\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_REF = re.compile(rb"([A-Za-z]*)([0-9]+)")
#: A reference longer than this is beyond any limit (and would overflow calamine's u32).
_HUGE = 10**10


def _tags(part: bytes) -> Iterator[tuple[bool, bool, bytes, bytes]]:
    """(closing?, self-closing?, name, attributes) of every tag, cut the way quick-xml cuts
    them: quotes respected in start tags, the name running to the first whitespace,
    comments / CDATA / processing instructions skipped whole, a DOCTYPE refused wherever it
    is. Linear: a tag or section that never ends makes the file unreadable instead of being
    searched again."""
    position = 0
    while (start := part.find(b"<", position)) >= 0:
        for opener, closer in _OPAQUE:
            if part.startswith(opener, start):
                end = part.find(closer, start + len(opener))
                if end < 0:
                    raise _unreadable(_l("an unclosed XML section"))
                position = end + len(closer)
                break
        else:
            if part.startswith(b"<!", start):
                raise _doctype("sheet")
            closing = part.startswith(b"</", start)
            match = (_END if closing else _TAG).match(part, start)
            if match is None:
                raise _unreadable(_l("a broken XML tag"))
            position = match.end()
            content = match.group(1)
            empty = not closing and content.endswith(b"/")
            pieces = _SPACE.split(content[:-1] if empty else content, maxsplit=1)
            yield closing, empty, pieces[0], pieces[1] if len(pieces) > 1 else b""


def _exact_grid(part: bytes, limits: Limits) -> tuple[int, int, int]:
    """calamine's own position rules, replayed tag by tag (over-approximated where a file is
    ambiguous): a row's ``r`` sets the row, its end moves to the next one; a cell's ``r`` sets
    its position, a cell without one sits right of the previous cell; only cells with content
    enter the grid. Every ``r=`` inside a tag counts (the largest wins), so a reference
    hidden in another attribute's value cannot shrink the estimate."""
    row = column = 0  # calamine's row_index / col_index, 0-based
    rows = columns = cells = tags = 0
    budget = 8 * limits.cells + 10_000
    for closing, empty, name, attrs in _tags(part):
        tags += 1
        if tags > budget:
            raise _too_many_cells(limits)
        local = name.split(b":", 1)[-1]
        if local == b"row":
            if not closing:
                row = max([row] + [r for r, _ in _refs(attrs)])
            if closing or empty:
                row, column = row + 1, 0
        elif local == b"c" and not closing:
            cells += 1
            refs = _refs(attrs)
            here_row = max([row] + [r for r, _ in refs])
            here_column = max([column] + [c for _, c in refs])
            column = here_column + 1
            if not empty:
                rows, columns = max(rows, here_row + 1), max(columns, here_column + 1)
            if cells > limits.cells or rows > limits.rows or columns > limits.columns:
                break
    return rows, columns, cells


def _refs(attrs: bytes) -> list[tuple[int, int]]:
    """(row, column), 0-based, of every ``r="..."`` in a tag, read as calamine reads them
    (letters then digits; anything else is an error there, so it is skipped here)."""
    found = []
    for double, single in _R_ATTR.findall(attrs):
        match = _REF.fullmatch(double or single)
        if match is None:
            continue
        letters, digits = match.groups()
        digits = digits.lstrip(b"0")
        if not digits:
            continue  # row 0: calamine refuses the file
        row = int(digits) - 1 if len(digits) <= 10 else _HUGE
        column = column_number(letters) - 1 if len(letters) <= 6 else _HUGE
        found.append((row, max(column, 0)))
    return found


# --- ODS -------------------------------------------------------------------------------------

#: Attributes a cell may carry and still be empty to calamine (no value, no formula).
_EMPTY_CELL_ATTRS = {"table:style-name", "table:number-columns-repeated", "table:number-columns-spanned",
                     "table:number-rows-spanned", "table:content-validation-name", "table:protect",
                     "table:protected", "xml:id"}
_ODS_CELLS = ("table:table-cell", "table:covered-table-cell")


class _OdsGrid:
    """Replays calamine's ODS reading of content.xml: every table is materialised on open,
    rows and cells repeated (``number-rows-repeated`` / ``number-columns-repeated``) up to the
    last row and column holding something."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = self.elements = 0
        self.rows_before = self.last_rows = self.width = 0  # current table
        self.row_repeats = self.position = self.row_width = 0  # current row
        self.cell_depth = 0  # > 0 inside a cell: everything there is its content
        self.cell_filled = False
        self.cell_repeats = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.elements += 1
        if self.elements > 8 * self.limits.cells + 10_000:
            raise _too_many_cells(self.limits)
        if self.cell_depth:
            self.cell_depth += 1
            self.cell_filled = True
        elif name == "table:table":
            self.rows_before = self.last_rows = self.width = 0
        elif name == "table:table-row":
            self.row_repeats = _count(attrs.get("table:number-rows-repeated"))
            self.position = self.row_width = 0
        elif name in _ODS_CELLS:
            self.cell_depth = 1
            self.cell_repeats = _count(attrs.get("table:number-columns-repeated"))
            self.cell_filled = any(key not in _EMPTY_CELL_ATTRS for key in attrs)

    def text(self, data: str) -> None:
        if self.cell_depth and data.strip():
            self.cell_filled = True

    def end(self, name: str) -> None:
        if self.cell_depth > 1:
            self.cell_depth -= 1
        elif self.cell_depth == 1:
            self.cell_depth = 0
            self.position += self.cell_repeats
            if self.cell_filled:
                self.row_width = self.position
        elif name == "table:table-row":
            self.rows_before += self.row_repeats
            if self.row_width:
                self.last_rows, self.width = self.rows_before, max(self.width, self.row_width)
                check_grid(self.last_rows, self.width, self.limits)
        elif name == "table:table":
            self.total += self.last_rows * self.width
            if self.total > self.limits.cells:
                raise _too_many_cells(self.limits)


def _count(value: str | None) -> int:
    try:
        return max(int(value), 1) if value else 1
    except ValueError:
        return 1  # calamine refuses the file


def ods_cells(part: bytes, limits: Limits) -> int:
    """Cells calamine would allocate for all tables of an ODS content.xml (checked against the
    limits as they are met)."""
    grid = _OdsGrid(limits)
    parser = expat.ParserCreate()
    parser.StartElementHandler, parser.EndElementHandler = grid.start, grid.end
    parser.CharacterDataHandler = grid.text
    parser.StartDoctypeDeclHandler = _no_doctype
    parser.EntityDeclHandler = _no_doctype
    try:
        parser.Parse(part, True)
    except expat.ExpatError as exc:
        raise _unreadable(exc) from None
    return grid.total


def _no_doctype(*args: object) -> None:
    raise _doctype("content.xml")


#: A merged range as calamine reports one for xlsx: ((top, left), (bottom, right)), 0-based, inclusive.
MergedRange = tuple[tuple[int, int], tuple[int, int]]


class _OdsMerges(_OdsGrid):
    """The grid replay (so positions count repeated rows and cells exactly as calamine does),
    also noting each cell of one table that spans rows or columns (``number-rows-spanned`` /
    ``number-columns-spanned``: an ODS merge is its first cell, the rest are covered cells)."""

    def __init__(self, limits: Limits, table: str) -> None:
        super().__init__(limits)
        self.table, self.current = table, None
        self.ranges: list[MergedRange] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if not self.cell_depth:  # inside a cell everything is its content (no nested tables)
            if name == "table:table":
                self.current = attrs.get("table:name")
            elif name == "table:table-cell" and self.current == self.table:
                rows = _count(attrs.get("table:number-rows-spanned"))
                columns = _count(attrs.get("table:number-columns-spanned"))
                if rows > 1 or columns > 1:
                    top, left = self.rows_before, self.position
                    self.ranges.append(((top, left), (top + rows - 1, left + columns - 1)))
        super().start(name, attrs)


def ods_merged_ranges(part: bytes, table: str, limits: Limits) -> list[MergedRange]:
    """Merged ranges of the table named ``table`` in an ODS content.xml, in calamine's shape
    (python-calamine reports merges for xlsx/xls only). ``part`` is a part already checked by
    ``checked_copy``; the replay holds to the same limits, and a file without spans is not parsed."""
    if b"number-rows-spanned" not in part and b"number-columns-spanned" not in part:
        return []
    merges = _OdsMerges(limits, table)
    parser = expat.ParserCreate()
    parser.StartElementHandler, parser.EndElementHandler = merges.start, merges.end
    parser.CharacterDataHandler = merges.text
    parser.StartDoctypeDeclHandler = _no_doctype
    parser.EntityDeclHandler = _no_doctype
    try:
        parser.Parse(part, True)
    except expat.ExpatError as exc:
        raise _unreadable(exc) from None
    return merges.ranges


def check_merged_cells(covered: int, limits: Limits) -> None:
    """Refuse a sheet whose merged ranges together cover more than ``limits.cells`` cells.
    Ranges of a real workbook never overlap, so within the grid read they cover it at most
    once; overlapping ones (a crafted file) would multiply the work of filling them in, and
    whole rows or columns merged make openpyxl (the xlsx sync's writer) build millions of cells."""
    if covered > limits.cells:
        raise UnreadableFile(_l("The sheet's merged cells cover more than %(limit)s cells (overlapping ranges, or "
                                "whole rows or columns merged): unmerge them and save the file again.",
                                limit=_n(limits.cells)))
