"""Form fields that every generated FAB form uses (installed once by ``install``)."""

from __future__ import annotations

from typing import Any

from flask_appbuilder.fieldwidgets import DateTimePickerWidget
from flask_appbuilder.forms import FieldConverter
from markupsafe import Markup
from wtforms import DateTimeField
from wtforms.widgets import html_params

#: Formats a date-time field reads: what it writes first, then with fractions and without seconds.
DATETIME_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S",
                    "%Y-%m-%dT%H:%M"]


class DateTimeInput(DateTimePickerWidget):
    """FAB's picker, but the value is written in the field's own format (FAB writes
    ``str(datetime)``, whose microseconds the field then refused on save)."""

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        kwargs.setdefault("id", field.id)
        kwargs.setdefault("name", field.name)
        return Markup(self.data_template % {"text": html_params(type="text", value=field._value(), **kwargs)})


class SecondsDateTimeField(DateTimeField):
    """A date-time to the second, reading the formats people and browsers send."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("format", DATETIME_FORMATS)
        super().__init__(*args, **kwargs)

    def process_formdata(self, valuelist: list[str]) -> None:
        super().process_formdata(valuelist)
        if self.data is not None:
            self.data = self.data.replace(microsecond=0)


def install() -> None:
    """Make FAB's form generator use these fields for every model's date-times."""
    FieldConverter.conversion_table = tuple(
        ("is_datetime", SecondsDateTimeField, DateTimeInput) if marker == "is_datetime" else (marker, field, widget)
        for marker, field, widget in FieldConverter.conversion_table)
