"""Form fields that every generated FAB form uses (installed once by ``install``)."""

from __future__ import annotations

from typing import Any

from flask_appbuilder.fieldwidgets import DateTimePickerWidget
from flask_appbuilder.forms import FieldConverter
from markupsafe import Markup
from wtforms import BooleanField, DateTimeField
from wtforms.validators import DataRequired, InputRequired
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


class TickBox(BooleanField):
    """A yes/no column: unticked is an answer, not a missing one (FAB marks every NOT NULL
    column required, so an inactive dictionary entry could not be saved as it was shown)."""

    def __init__(self, *args: Any, validators: Any = None, **kwargs: Any) -> None:
        kept = [v for v in validators or [] if not isinstance(v, (InputRequired, DataRequired))]
        super().__init__(*args, validators=kept, **kwargs)


#: FAB's generated fields replaced by ours, by FAB's type marker.
_REPLACED = {"is_datetime": (SecondsDateTimeField, DateTimeInput), "is_boolean": (TickBox, None)}


def install() -> None:
    """Make FAB's form generator use these fields for every model's date-times and yes/no columns."""
    FieldConverter.conversion_table = tuple(
        (marker, *_REPLACED.get(marker, (field, widget))) for marker, field, widget in FieldConverter.conversion_table)
