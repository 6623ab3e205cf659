"""The xlsx sync's fast writer: rewrite only the XML part of the worksheet it owns.

An .xlsx is a zip of XML parts. Loading the whole workbook into openpyxl and saving it again
(the writer before issue 12) costs ~7 s for a 50,000-row sheet and loses what openpyxl does
not model (images, charts, comments' layout, extensions) in every sheet. This writer copies
every other part of the zip unchanged, cuts our sheet's ``sheetData`` into its ``<row>``
elements and parses only the rows a ``SheetWrite`` touches; rows below a deleted row keep
their bytes with their ``r`` numbers lowered. New text goes in as inline strings
(``t="inlineStr"``: never a formula, and ``sharedStrings.xml`` stays as it is), dates as
serial numbers with a ``yyyy-mm-dd`` (``yyyy-mm-dd hh:mm``) number format added to
``styles.xml`` on top of the cell's own style, as openpyxl does. Written cells keep their
style; merges are undone, filled and moved exactly as ``sync.backends`` did with openpyxl
(``_undo_merges``), the ``dimension`` is updated, and rows and cells stay in ascending order
(ECMA-376 Part 1, 18.3.1.73 ``row`` and 18.3.1.4 ``c``).

What it does not handle it refuses with ``Unpatchable`` before writing anything, and the
backend then uses openpyxl: XML with namespace prefixes, rows or cells without an ``r``,
a formula in a cell it writes, fills or deletes, a shared-string formula, and row deletions in
a sheet whose other parts name rows (conditional formats, validations, hyperlinks, filters,
tables, drawings, comments, page breaks, formulas) that would have to move with them.
"""

from __future__ import annotations

import html
import re
import zipfile
from bisect import bisect_left
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from openpyxl.utils.cell import column_index_from_string, get_column_letter
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, to_excel

from app.clock import local_naive
from app.services.exporting import workbook_text

if TYPE_CHECKING:
    from sync.backends import SheetWrite

MergedRange = tuple[tuple[int, int], tuple[int, int]]  # 0-based (top, left), (bottom, right), inclusive
DAY_FORMAT, MINUTE_FORMAT = "yyyy-mm-dd", "yyyy-mm-dd hh:mm"

_ROW_START = re.compile(rb"<row\b([^>]*)>")
_CELL = re.compile(rb"<c\b[^>]*?(?:/>|>.*?</c>)", re.S)
_START = re.compile(rb"<(?:row|c)\b[^>]*>")
_ROW_NUMBER = re.compile(rb'\sr="(\d+)"')
_CELL_REF = re.compile(rb'\sr="([A-Z]{1,3})(\d+)"')
_ATTR = re.compile(rb'([\w:]+)="([^"]*)"')
_VALUED = re.compile(rb"<v>[^<]|<t\b[^>]*>[^<]|<f[\s>]")
_FORMULA = re.compile(rb"<f[\s>/]")  # a formula element (not <family>, <firstHeader>, ...)
_SHEET_DATA = re.compile(rb"<sheetData\s*/>|<sheetData\b[^>]*>(.*)</sheetData>", re.S)
_MERGES = re.compile(rb"<mergeCells\b[^>]*>(.*?)</mergeCells>", re.S)
_MERGE_REF = re.compile(rb'<mergeCell\b[^>]*\sref="([A-Z]+)(\d+):([A-Z]+)(\d+)"')
_DIMENSION = re.compile(rb'<dimension\s+ref="([^"]*)"\s*/>')
_RANGE = re.compile(r"^([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?$")
#: Parts of a worksheet that name rows: deleting rows would have to move them too.
_NAMES_ROWS = re.compile(rb"<(?:conditionalFormatting|dataValidations|hyperlinks|autoFilter|sortState|tableParts"
                         rb"|drawing|legacyDrawing|rowBreaks|x14:|extLst)\b")
_SHEET_TAG = re.compile(rb"<sheet\b[^>]*>")
_RELATION = re.compile(rb"<Relationship\b[^>]*>")
_XF = re.compile(rb"<xf\b[^>]*?(?:/>|>.*?</xf>)", re.S)
_CELL_XFS = re.compile(rb"(<cellXfs\b[^>]*>)(.*?)(</cellXfs>)", re.S)
_NUM_FMTS = re.compile(rb"(<numFmts\b[^>]*(?<!/)>)(.*?)(</numFmts>)", re.S)
_NO_NUM_FMTS = re.compile(rb"<numFmts\b[^>]*/>")
_NUM_FMT = re.compile(rb"<numFmt\b[^>]*>")
_COUNT = re.compile(rb'\scount="\d+"')


class Unpatchable(Exception):
    """The sheet holds something this writer does not rewrite safely; use openpyxl."""


def patch(source: Path, target: Path, worksheet: str, change: SheetWrite,
          opened_merges: Callable[[list[MergedRange], int], list[MergedRange]]) -> None:
    """Write to ``target`` the workbook ``source`` with ``change`` applied to ``worksheet``.

    ``change`` as ``sync.backends.SheetWrite`` (0-based data rows, sheet row = row + 2; columns
    0-based; values: text, numbers, booleans, dates, date-times (aware ones as the CRM's wall
    time), None or "" for empty). ``opened_merges(merges, data_rows)`` names the merges the
    change undoes (``sync.backends._opened_merges``). Raises ``Unpatchable`` (nothing written
    to ``target`` that matters: the caller replaces it) when the sheet needs openpyxl."""
    with zipfile.ZipFile(source) as book:
        names = set(book.namelist())
        part = _sheet_part(book, names, worksheet)
        xml = book.read(part)
        workbook = book.read("xl/workbook.xml")
        styles = _Styles(book.read("xl/styles.xml") if "xl/styles.xml" in names else None)
        epoch = CALENDAR_MAC_1904 if re.search(rb'date1904="(?:1|true)"', workbook) else CALENDAR_WINDOWS_1900
        new_xml = _SheetPatch(xml, change, opened_merges, styles, epoch).result()
        replaced = {part: new_xml}
        if styles.changed:
            replaced["xl/styles.xml"] = styles.xml
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
            for info in book.infolist():
                data = replaced.get(info.filename)
                out.writestr(info, data if data is not None else book.read(info), compresslevel=1 if data else None)


def _sheet_part(book: zipfile.ZipFile, names: set[str], worksheet: str) -> str:
    """The zip member holding ``worksheet`` (workbook.xml names it, its relationships place it)."""
    if "xl/workbook.xml" not in names or "xl/_rels/workbook.xml.rels" not in names:
        raise Unpatchable("no workbook part")
    ids = [_attrs(tag).get(b"r:id") for tag in _SHEET_TAG.findall(book.read("xl/workbook.xml"))
           if html.unescape(_attrs(tag).get(b"name", b"").decode("utf-8", "replace")) == worksheet]
    for tag in _RELATION.findall(book.read("xl/_rels/workbook.xml.rels")):
        found = _attrs(tag)
        if ids and ids[0] and found.get(b"Id") == ids[0]:
            where = found.get(b"Target", b"").decode()
            part = where.lstrip("/") if where.startswith("/") else "xl/" + where
            if part in names:
                return part
    raise Unpatchable("worksheet part not found")


def _attrs(tag: bytes) -> dict[bytes, bytes]:
    return dict(_ATTR.findall(tag))


class _SheetPatch:
    """One worksheet part with one ``SheetWrite`` applied (see the module docstring)."""

    def __init__(self, xml: bytes, change: SheetWrite, opened_merges: Callable, styles: _Styles,
                 epoch: Any) -> None:
        self.xml, self.change, self.styles, self.epoch = xml, change, styles, epoch
        found = _SHEET_DATA.search(xml)
        if found is None:
            raise Unpatchable("no sheetData")
        self.head, self.tail = xml[:found.start()], xml[found.end():]
        self.rows: list[tuple[int, bytes]] = []
        content = found.group(1) or b""
        # A row runs from its start tag to the next one's (a regex over whole rows is 5x slower).
        starts = [(match.start(), match.group(1)) for match in _ROW_START.finditer(content)]
        if content[:starts[0][0] if starts else len(content)].strip():
            raise Unpatchable("something other than rows in sheetData")
        ends = [start for start, _ in starts[1:]] + [len(content)]
        for (begin, attrs), stop in zip(starts, ends, strict=True):
            number = _ROW_NUMBER.search(attrs)
            if number is None or (self.rows and int(number.group(1)) <= self.rows[-1][0]):
                raise Unpatchable("a row without r, or rows out of order")
            self.rows.append((int(number.group(1)), content[begin:stop]))
        self.deleted = sorted({row + 2 for row in change.delete})
        if self.deleted and (_NAMES_ROWS.search(self.tail) or _FORMULA.search(xml)):
            raise Unpatchable("rows to delete in a sheet whose other parts name rows")
        self.merges = self._read_merges()
        self.last = next((r for r, chunk in reversed(self.rows) if _VALUED.search(chunk)), 1)
        self.opened = set(opened_merges(self.merges, self.last - 1))

    def _read_merges(self) -> list[MergedRange]:
        found = _MERGES.search(self.tail)
        if found is None:
            return []
        return [((int(top) - 1, column_index_from_string(left.decode()) - 1),
                 (int(bottom) - 1, column_index_from_string(right.decode()) - 1))
                for left, top, right, bottom in _MERGE_REF.findall(found.group(1))]

    def moved(self, row: int) -> int:
        """Sheet row ``row`` (1-based) after the deletions above it."""
        return row - bisect_left(self.deleted, row)

    def result(self) -> bytes:
        """The new worksheet XML."""
        edits = self._edits()
        rows = self._rows(edits)
        tail = self._merges_after(self.tail)
        head = self._dimension(self.head, rows)
        return head + b"<sheetData>" + b"".join(chunk for _, chunk in rows) + b"</sheetData>" + tail

    def _edits(self) -> dict[int, dict[int, Any]]:
        """{new sheet row (1-based): {column (0-based): value or ``_Copy``}}: merge fills, the
        header cells, the cells, then the appended rows, later ones winning as in openpyxl."""
        originals: dict[int, dict[int, Any]] = {}
        for (top, left), (bottom, right) in self.opened:
            if top < 1:  # reaching into the header: only unmerged (the read spread nothing there)
                continue
            source = _Copy(self._cell(top + 1, left + 1))
            if source.xml is not None and _FORMULA.search(source.xml):
                raise Unpatchable("a formula merged over other cells")
            for row in range(top + 1, min(bottom + 1, self.last) + 1):
                for column in range(left, right + 1):
                    if (row - 1, column) != (top, left):
                        originals.setdefault(row, {})[column] = source
        for column, text in self.change.headers.items():
            originals.setdefault(1, {})[column] = text
        for (row, column), value in self.change.cells.items():
            originals.setdefault(row + 2, {})[column] = value
        dropped = set(self.deleted)
        edits = {self.moved(row): cells for row, cells in originals.items() if row not in dropped}
        origin = {self.moved(row): row for row in originals if row not in dropped}
        for row, chunk in self.rows:  # a formula we would overwrite or copy: openpyxl decides
            if (row in originals or row in dropped) and _FORMULA.search(chunk):
                raise Unpatchable("a formula in a row the change touches")
        next_row = self._last_valued(edits, origin) + 1
        for offset, values in enumerate(self.change.append):
            for column, value in enumerate(values):
                edits.setdefault(next_row + offset, {})[column] = value
        return edits

    def _cell(self, row: int, column: int) -> bytes | None:
        """The stored ``<c>`` of a cell (1-based), None when absent."""
        found = self._find_row(row)
        return _cells(found).get(column - 1) if found else None

    def _find_row(self, row: int) -> bytes | None:
        index = bisect_left(self.rows, (row, b""))
        return self.rows[index][1] if index < len(self.rows) and self.rows[index][0] == row else None

    def _last_valued(self, edits: dict[int, dict[int, Any]], origin: dict[int, int]) -> int:
        """The last row holding a value after the deletions and edits (1 when none): where
        appended rows start, as ``_last_row`` did with openpyxl. ``origin``: edited row -> its
        original row."""
        dropped, last = set(self.deleted), 1
        for row, chunk in reversed(self.rows):
            if row not in dropped and self.moved(row) not in edits and _VALUED.search(chunk):
                last = self.moved(row)
                break
        for row, cells in edits.items():
            if row <= last:
                continue
            kept = _cells(self._find_row(origin[row])) if row in origin else {}
            if (any(_has_value(value) for value in cells.values())
                    or any(_VALUED.search(xml) for column, xml in kept.items() if column not in cells)):
                last = row
        return last

    def _rows(self, edits: dict[int, dict[int, Any]]) -> list[tuple[int, bytes]]:
        """Every row in the new order: untouched ones as bytes (renumbered below a deletion),
        edited ones rebuilt, new ones added in place."""
        dropped = set(self.deleted)
        out: list[tuple[int, bytes]] = []
        for row, chunk in self.rows:
            if row in dropped:
                continue
            new = self.moved(row)
            if new in edits:
                out.append((new, self._edited(chunk, new, edits.pop(new))))
            else:
                out.append((new, chunk if new == row else _renumbered(chunk, new)))
        out += [(row, self._edited(None, row, cells)) for row, cells in edits.items()]
        out.sort(key=lambda item: item[0])
        return out

    def _edited(self, chunk: bytes | None, row: int, edits: dict[int, Any]) -> bytes:
        """A row with ``edits`` applied; its other cells kept (renumbered), styles kept."""
        number = str(row).encode()
        chunk = chunk.rstrip() if chunk is not None else None
        start = b"<row>" if chunk is None else chunk[:chunk.find(b">") + 1]
        if b"<extLst" in (chunk or b""):
            raise Unpatchable("row extensions")
        start = re.sub(rb'\sspans="[^"]*"', b"", start)  # optional hint; our cells may lie outside it
        start = _ROW_NUMBER.sub(b' r="' + number + b'"', start, count=1)
        if b" r=" not in start:
            start = start.replace(b"<row", b'<row r="' + number + b'"', 1)
        if start.endswith(b"/>"):
            start = start[:-2] + b">"
        cells = {column: _renumbered_cell(xml, row) for column, xml in _cells(chunk).items()} if chunk else {}
        for column, value in edits.items():
            old = cells.get(column)
            style = _style_of(old)
            ref = (get_column_letter(column + 1) + str(row)).encode()
            if isinstance(value, _Copy):
                new = _renumbered_cell(value.xml, row, ref) if value.xml else None
            else:
                new = self._value_cell(ref, style, value)
            if new is None:
                cells.pop(column, None)
            else:
                cells[column] = new
        return start + b"".join(cells[column] for column in sorted(cells)) + b"</row>"

    def _value_cell(self, ref: bytes, style: int | None, value: Any) -> bytes | None:
        """One ``<c>`` for a value (the rules of ``sync.backends._set``): dates as serial numbers
        with a date format, text as an inline string (never a formula), empty keeps the style."""
        if isinstance(value, (date, datetime)):
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = local_naive(value)
            fmt = MINUTE_FORMAT if isinstance(value, datetime) else DAY_FORMAT
            number = to_excel(value, self.epoch)
            return b'<c r="%s" s="%d"><v>%s</v></c>' % (ref, self.styles.with_format(style or 0, fmt),
                                                        repr(number).encode())
        styled = b' s="%d"' % style if style else b""
        if isinstance(value, bool):
            return b'<c r="%s"%s t="b"><v>%d</v></c>' % (ref, styled, value)
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, str):
            return b'<c r="%s"%s><v>%s</v></c>' % (ref, styled, str(value).encode())
        text = workbook_text(value if value is None or isinstance(value, str) else str(value))
        if text is None or text == "":
            return b'<c r="%s"%s/>' % (ref, styled) if style else None
        body = escape(str(text)).replace("\r", "&#13;").encode()
        return b'<c r="%s"%s t="inlineStr"><is><t xml:space="preserve">%s</t></is></c>' % (ref, styled, body)

    def _merges_after(self, tail: bytes) -> bytes:
        """The merges left: opened ones gone, those below a deleted row moved up with it."""
        found = _MERGES.search(tail)
        if found is None:
            return tail
        kept = []
        for (top, left), (bottom, right) in self.merges:
            if ((top, left), (bottom, right)) in self.opened:
                continue
            kept.append(f"{get_column_letter(left + 1)}{self.moved(top + 1)}:"
                        f"{get_column_letter(right + 1)}{self.moved(bottom + 1)}")
        if not kept:  # mergeCells needs at least one mergeCell (CT_MergeCells)
            return tail[:found.start()] + tail[found.end():]
        body = "".join(f'<mergeCell ref="{ref}"/>' for ref in kept)
        return tail[:found.start()] + f'<mergeCells count="{len(kept)}">{body}</mergeCells>'.encode() + tail[found.end():]

    def _dimension(self, head: bytes, rows: list[tuple[int, bytes]]) -> bytes:
        """``<dimension>`` grown to the columns written and set to the last row holding cells."""
        found = _DIMENSION.search(head)
        if found is None:
            return head
        match = _RANGE.match(found.group(1).decode())
        first_col, first_row, last_col = ("A", 1, "A") if match is None else (
            match.group(1), int(match.group(2)), match.group(3) or match.group(1))
        columns = [column_index_from_string(last_col)]
        columns += [column + 1 for column in self.change.headers]
        columns += [column + 1 for _, column in self.change.cells]
        columns += [len(values) for values in self.change.append]
        last_row = next((row for row, chunk in reversed(rows) if b"<c" in chunk), 0)
        if last_row == 0:
            ref = f"{first_col}{first_row}"
        else:
            ref = f"{first_col}{min(first_row, rows[0][0])}:{get_column_letter(max(columns))}{last_row}"
        return head[:found.start()] + f'<dimension ref="{ref}"/>'.encode() + head[found.end():]


class _Copy:
    """A merge's top-left cell, copied into the cells it covered (value and style)."""

    def __init__(self, xml: bytes | None) -> None:
        self.xml = xml


def _has_value(value: Any) -> bool:
    if isinstance(value, _Copy):
        return value.xml is not None and _VALUED.search(value.xml) is not None
    return value is not None and value != ""


def _cells(chunk: bytes | None) -> dict[int, bytes]:
    """The ``<c>`` elements of a row by 0-based column."""
    cells: dict[int, bytes] = {}
    chunk = (chunk or b"").rstrip()
    if not chunk or chunk.endswith(b"/>") and chunk.count(b">") == 1:
        return cells
    if not chunk.endswith(b"</row>"):
        raise Unpatchable("a row not closed where the next one starts")
    body, end = chunk[chunk.find(b">") + 1:-len(b"</row>")], 0
    for match in _CELL.finditer(body):
        if body[end:match.start()].strip():
            raise Unpatchable("something other than cells in a row")
        end = match.end()
        ref = _CELL_REF.search(match.group(0), 0, match.group(0).find(b">") + 1)
        if ref is None:
            raise Unpatchable("a cell without r")
        cells[column_index_from_string(ref.group(1).decode()) - 1] = match.group(0)
    if body[end:].strip():
        raise Unpatchable("something other than cells in a row")
    return cells


def _style_of(cell: bytes | None) -> int | None:
    if cell is None:
        return None
    found = re.search(rb'\ss="(\d+)"', cell[:cell.find(b">") + 1])
    return int(found.group(1)) if found else None


def _renumbered(chunk: bytes, row: int) -> bytes:
    """A row's bytes with its ``r`` and its cells' ``r`` set to ``row``."""
    number = str(row).encode()

    def tag(match: re.Match) -> bytes:
        text = match.group(0)
        if text.startswith(b"<row"):
            return _ROW_NUMBER.sub(b' r="' + number + b'"', text, count=1)
        return _CELL_REF.sub(lambda ref: b' r="' + ref.group(1) + number + b'"', text, count=1)

    return _START.sub(tag, chunk)


def _renumbered_cell(cell: bytes, row: int, ref: bytes | None = None) -> bytes:
    """A ``<c>`` moved to ``row`` (or to ``ref``)."""
    end = cell.find(b">") + 1
    start = _CELL_REF.sub(lambda found: b' r="' + (ref or found.group(1) + str(row).encode()) + b'"',
                          cell[:end], count=1)
    return start + cell[end:]


class _Styles:
    """``styles.xml``, grown only when a date needs a number format on top of a cell's style."""

    def __init__(self, xml: bytes | None) -> None:
        self.xml, self.changed = xml, False
        self.made: dict[tuple[int, str], int] = {}

    def with_format(self, style: int, fmt: str) -> int:
        """The index of a cell format like ``style`` with number format ``fmt`` (added once)."""
        if (style, fmt) in self.made:
            return self.made[(style, fmt)]
        if self.xml is None:
            raise Unpatchable("no styles part")
        number = self._number_format(fmt)  # first: it may grow the part before cellXfs
        xfs = _CELL_XFS.search(self.xml)
        if xfs is None:
            raise Unpatchable("no cellXfs")
        formats = _XF.findall(xfs.group(2))
        if style >= len(formats):
            raise Unpatchable("a style index outside cellXfs")
        start_end = formats[style].find(b">")
        start = formats[style][:start_end + 1]
        for name, value in ((b"numFmtId", str(number).encode()), (b"applyNumberFormat", b"1")):
            if re.search(rb"\s" + name + rb'="', start):
                start = re.sub(rb"(\s" + name + rb'=")[^"]*"', rb"\g<1>" + value + b'"', start, count=1)
            else:
                start = start.replace(b"<xf", b"<xf " + name + b'="' + value + b'"', 1)
        new = start + formats[style][start_end + 1:]
        if new in formats:
            index = formats.index(new)
        else:
            index = len(formats)
            opening = _COUNT.sub(b' count="%d"' % (index + 1), xfs.group(1))
            self.xml = (self.xml[:xfs.start()] + opening + xfs.group(2) + new + xfs.group(3)
                        + self.xml[xfs.end():])
            self.changed = True
        self.made[(style, fmt)] = index
        return index

    def _number_format(self, fmt: str) -> int:
        """The id of the custom number format ``fmt``, added (id 164 or above) when missing."""
        code = escape(fmt, {'"': "&quot;"}).encode()
        found = _NUM_FMTS.search(self.xml)
        ids = [163]
        for tag in _NUM_FMT.findall(found.group(2) if found else b""):
            attrs = _attrs(tag)
            if attrs.get(b"formatCode") == code:
                return int(attrs[b"numFmtId"])
            ids.append(int(attrs.get(b"numFmtId", b"0")))
        number = max(ids) + 1
        entry = b'<numFmt numFmtId="%d" formatCode="%s"/>' % (number, code)
        if found is not None:
            count = len(_NUM_FMT.findall(found.group(2))) + 1
            opening = _COUNT.sub(b' count="%d"' % count, found.group(1))
            self.xml = self.xml[:found.start()] + opening + found.group(2) + entry + found.group(3) + self.xml[found.end():]
        elif _NO_NUM_FMTS.search(self.xml):  # openpyxl writes an empty <numFmts count="0" />
            empty = _NO_NUM_FMTS.search(self.xml)
            self.xml = self.xml[:empty.start()] + b'<numFmts count="1">' + entry + b"</numFmts>" + self.xml[empty.end():]
        elif b"<numFmts" in self.xml:
            raise Unpatchable("numFmts in a form not rewritten")
        else:
            sheet = re.search(rb"<styleSheet\b[^>]*>", self.xml)
            if sheet is None:
                raise Unpatchable("no styleSheet")
            self.xml = self.xml[:sheet.end()] + b'<numFmts count="1">' + entry + b"</numFmts>" + self.xml[sheet.end():]
        self.changed = True
        return number
