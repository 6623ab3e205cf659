"""Import templates: an xlsx per model with headers in the user's language, required
columns marked, a notes sheet, and dropdowns filled from the live dictionaries.

Dropdowns refer to a range on the hidden ``lists`` sheet (Excel caps an inline list at 255
characters; the GB/T industry list alone is ~117 labels). Their error style is a warning:
what people write (an alias such as 信息技术, a code) is accepted by the import too."""

from __future__ import annotations

import io

from flask_babel import gettext as _
from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import select

from app.extensions import db
from app.services import custom_fields
from app.services.importing.columns import CUSTOM, DICT, ImportField, ImportModel

REQUIRED_MARK = " *"
_MAX_ROWS = 10000


def _choices(model: type, lang: str) -> list[str]:
    """Labels of the active entries, as a user would pick them."""
    entries = db.session.scalars(select(model).where(model.active.is_(True)).order_by(model.sort_order)).all()
    labels = []
    for entry in entries:
        own = entry.label_zh if lang.startswith("zh") else entry.label_en
        parent = getattr(entry, "parent", None)
        if parent is not None:
            own = f"{parent.label_zh if lang.startswith('zh') else parent.label_en} > {own}"
        labels.append(own)
    return labels


def _custom_choices(field: ImportField, lang: str) -> list[str]:
    """A custom choice / multiple choice / tags field's offered labels in ``lang`` (none for
    other fields)."""
    if field.kind != CUSTOM or field.custom.kind not in custom_fields.CHOOSING:
        return []
    return [choice.label(lang) for choice in field.custom.offered]


def _custom_hint(field: ImportField, lang: str) -> str:
    """How to fill a custom field's column: its help text, then the kind's rule."""
    definition = field.custom
    rules = {
        custom_fields.INTEGER: _("A whole number."),
        custom_fields.DECIMAL: _("A number with at most %(n)d decimal places.", n=definition.places),
        custom_fields.DATE: _("A date: 2024-05-01, 2024/5/1 or an Excel date."),
        custom_fields.DATETIME: _("A date and time: 2024-05-01 14:30."),
        custom_fields.BOOLEAN: _("是 or 否 (yes or no)."),
        custom_fields.CHOICE: _("Pick one from the dropdown (a code or a label in English or Chinese "
                                "is also accepted)."),
        custom_fields.MULTI: _("Several values are separated by ， (or , ; 、 |)."),
        custom_fields.TAGS: _("Several values are separated by ， (or , ; 、 |)."),
        custom_fields.USER: _("A user name."),
    }
    parts = [definition.help(lang), str(rules.get(definition.kind, ""))]
    return " ".join(part for part in parts if part)


def build_template(spec: ImportModel, lang: str) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = str(spec.label)[:31]
    lists = workbook.create_sheet("lists")
    notes = workbook.create_sheet(_("Notes"))
    header_font, required_fill = Font(bold=True), PatternFill("solid", fgColor="FCE4D6")
    notes.append([_("Column"), _("Required"), _("How to fill it")])
    for column, field in enumerate(spec.fields, start=1):
        cell = sheet.cell(row=1, column=column, value=field.header(lang) + (REQUIRED_MARK if field.is_required else ""))
        cell.font = header_font
        if field.is_required:
            cell.fill = required_fill
        sheet.column_dimensions[get_column_letter(column)].width = max(14, len(cell.value) * 2)
        hint = str(field.note)
        if field.kind == CUSTOM:
            hint = _custom_hint(field, lang)
            if hint:
                cell.comment = Comment(hint, "CRM")
        values = _choices(field.dictionary, lang) if field.kind == DICT else _custom_choices(field, lang)
        if field.kind == DICT or values:
            for row, value in enumerate(values, start=1):
                lists.cell(row=row, column=column, value=value)
            letter = get_column_letter(column)
            ref = f"{quote_sheetname('lists')}!${letter}$1:${letter}${max(len(values), 1)}"
            several = field.kind == CUSTOM and field.custom.is_list  # tags: a pick, or several typed with ，
            validation = DataValidation(type="list", formula1=ref, allow_blank=not field.is_required,
                                        showErrorMessage=not several, errorStyle="warning",
                                        errorTitle=_("Pick from the list"),
                                        error=_("Pick one of the values in the dropdown."))
            validation.add(f"{letter}2:{letter}{_MAX_ROWS}")
            sheet.add_data_validation(validation)
            if field.kind == DICT:
                hint = hint or _("Pick from the dropdown (a code, a label in English or Chinese, or an alias "
                                 "is also accepted).")
        notes.append([field.header(lang), _("yes") if field.is_required else "", hint])
    notes.append([])
    notes.append([_("Columns marked * are required. Dates: 2024-05-01, 2024/5/1 or Excel dates.")])
    notes.append([_("When updating, an empty cell empties the field; columns you leave out are not changed.")])
    lists.sheet_state = "hidden"
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
