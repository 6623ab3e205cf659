"""Form fields and list filters that every generated FAB screen uses (installed once by ``install``).

Date-times are instants stored in UTC and read and written by people in the CRM's zone
(``app.clock``): a date-time field shows the stored instant as wall time there and reads
what is typed as wall time there; so does a list filter on a date-time column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dateutil import parser as date_parser
from flask_appbuilder.fieldwidgets import DateTimePickerWidget
from flask_appbuilder.forms import FieldConverter
from flask_appbuilder.models.sqla import filters as sqla_filters
from markupsafe import Markup
from wtforms import BooleanField, DateTimeField
from wtforms.validators import DataRequired, InputRequired
from wtforms.widgets import html_params

from app import clock

#: Formats a date-time field reads: what it writes first, then with fractions and without seconds.
DATETIME_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S",
                    "%Y-%m-%dT%H:%M",
                    # as Excel and WPS write dates in China, and the API and importer read them
                    "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M"]


class DateTimeInput(DateTimePickerWidget):
    """FAB's picker, but the value is written in the field's own format (FAB writes
    ``str(datetime)``, whose microseconds the field then refused on save)."""

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        kwargs.setdefault("id", field.id)
        kwargs.setdefault("name", field.name)
        return Markup(self.data_template % {"text": html_params(type="text", value=field._value(), **kwargs)})


class SecondsDateTimeField(DateTimeField):
    """A date-time to the second, in the CRM's zone, reading the formats people and browsers send.

    A stored value or default (an instant; a model default is ``clock.utc_now``) is shown as
    wall time in the CRM's zone, so a new follow-up's time reads as the clock on the wall;
    what is typed is wall time there and becomes an aware instant (``clock.from_local``).
    A typed value saved unchanged is the same instant, to the second.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("format", DATETIME_FORMATS)
        super().__init__(*args, **kwargs)

    def process_data(self, value: Any) -> None:
        super().process_data(value)
        if isinstance(self.data, datetime):
            self.data = clock.to_local(self.data).replace(microsecond=0)

    def process_formdata(self, valuelist: list[str]) -> None:
        super().process_formdata(valuelist)
        if self.data is not None:
            try:
                self.data = clock.from_local(self.data.replace(microsecond=0))
            except OverflowError:  # 0001-01-01 00:00 is before the first UTC instant east of Greenwich
                self.data = None
                raise ValueError(self.gettext("Not a valid datetime value.")) from None

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        return clock.local_text(self.data, self.format[0]) if isinstance(self.data, datetime) else ""


class TickBox(BooleanField):
    """A yes/no column: unticked is an answer, not a missing one (FAB marks every NOT NULL
    column required, so an inactive dictionary entry could not be saved as it was shown)."""

    def __init__(self, *args: Any, validators: Any = None, **kwargs: Any) -> None:
        kept = [v for v in validators or [] if not isinstance(v, (InputRequired, DataRequired))]
        super().__init__(*args, validators=kept, **kwargs)


#: FAB's generated fields replaced by ours, by FAB's type marker.
_REPLACED = {"is_datetime": (SecondsDateTimeField, DateTimeInput), "is_boolean": (TickBox, None)}


def typed_instant(value: Any) -> Any:
    """A list filter's date-time as typed (CRM-zone wall time, or with its own offset) as an
    instant; text that is no date-time is left for FAB's filter (which then ignores it)."""
    if isinstance(value, str):
        try:
            value = date_parser.parse(value)
        except (ValueError, OverflowError):
            return value
    try:
        return clock.from_local(value) if isinstance(value, datetime) else value
    except OverflowError:  # the first or last day of the calendar: nothing is stored there
        return None


def _local_filter(base: type) -> type:
    """FAB's filter ``base`` reading its value as a CRM-zone date-time (``typed_instant``)."""

    def apply(self: Any, query: Any, value: Any) -> Any:
        return base.apply(self, query, typed_instant(value))

    return type(base.__name__, (base,), {"apply": apply, "__module__": __name__})


def install() -> None:
    """Make FAB's form generator use these fields for every model's date-times and yes/no
    columns, and its list filters read date-times in the CRM's zone (screens and the REST API)."""
    FieldConverter.conversion_table = tuple(
        (marker, *_REPLACED.get(marker, (field, widget))) for marker, field, widget in FieldConverter.conversion_table)
    converter = sqla_filters.SQLAFilterConverter
    if not getattr(converter, "_crm_local_times", False):
        converter.conversion_table = tuple(
            (marker, [_local_filter(flt) for flt in filters] if marker == "is_datetime" else filters)
            for marker, filters in converter.conversion_table)
        converter._crm_local_times = True
