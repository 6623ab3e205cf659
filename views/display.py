"""How stored values read on the screens: empty, yes/no, times, codes and counts.

FAB renders a value with Jinja's ``str()``: ``None`` reads "None", a date-time carries
its microseconds, a boolean reads "True"/"False" and a JSON column is a Python dict.
These formatters turn such values into what a person reads; ``CrmModelView`` installs
them for every list and show column (``view_formatters``), derived from the values, not
declared per view. Exports keep their own cell rules (``ListExportMixin``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from markupsafe import Markup, escape

from app import clock
from app.security import alerts
from app.security.masking import ERASED
from app.services import company

#: Date-times are shown to the minute (seconds and microseconds say nothing to a person);
#: these are the defaults, the company's date format (Organisation → Company profile) decides.
DATETIME_FORMAT = clock.MINUTE_FORMAT
DATE_FORMAT = "%Y-%m-%d"


def day_format() -> str:
    """The ``strftime`` format of a day on screens: the company's date format (no query)."""
    return company.date_format()


def minute_format() -> str:
    """The ``strftime`` format of an instant on screens: the company's day, then HH:MM."""
    return f"{company.date_format()} %H:%M"


def shown_day(value: date | None) -> str:
    """A calendar day in the company's date format ("" for None; a date-time's own day)."""
    if value is None:
        return ""
    return value.strftime(day_format())


#: Text for a select's empty choice (WTForms shows the value "__None" when the text is empty).
BLANK_CHOICE = _l("(none)")


def shown_time(value: datetime | None) -> str:
    """An instant as the company's day and "HH:MM" in the CRM's zone ("" for None): the one
    place screens convert (``clock.local_text``; a naive value is taken as UTC, as stored)."""
    return clock.local_text(value, minute_format())


class LocalRecord:
    """A record as a template reads it: every date-time attribute as wall time in the CRM's
    zone (aware), everything else as stored. For templates that format times themselves
    (``.strftime``); ``display`` is the better way in a template."""

    def __init__(self, record: Any) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._record, name)
        return clock.to_local(value) if isinstance(value, datetime) else value


def local_record(record: Any) -> Any:
    """``record`` wrapped as a ``LocalRecord`` (None stays None)."""
    return None if record is None else LocalRecord(record)


def display(value: Any) -> Any:
    """One stored value as read on a page: None -> "", bools -> Yes/No (translated),
    date-times to the minute, dates in the company's date format; anything else unchanged
    (Markup stays Markup)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(_l("Yes") if value else _l("No"))
    if isinstance(value, datetime):
        return shown_time(value)
    if isinstance(value, date):
        return shown_day(value)
    if value == ERASED:
        return str(_l("(erased)"))
    return value


def labelled(choices: Mapping[str, Any] | list[tuple[str, Any]]) -> Callable[[Any], Any]:
    """A formatter showing a code's label from ``choices`` (code -> label); unknown codes as stored."""
    labels = dict(choices)

    def format_code(value: Any) -> Any:
        if value is None or value == "":
            return ""
        return str(labels.get(value, value))  # text, not a lazy string: exports write it too

    return format_code


def name_values(labels: Mapping[str, Any]) -> Callable[[Any], Markup]:
    """A formatter for a JSON mapping (counts, API calls): "label: value" per line, zero
    values left out, keys without a label shown as stored; "" when empty."""

    def format_mapping(value: Any) -> Markup:
        if not isinstance(value, Mapping):
            return escape(display(value))
        lines = [Markup("{}: {}").format(labels.get(key, key), number)
                 for key, number in sorted(value.items()) if number not in (0, None, "")]
        return Markup("<br>").join(lines)

    return format_mapping


def with_empty(formatter: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``formatter`` that shows None as "" instead of calling it."""

    def format_value(value: Any) -> Any:
        return "" if value is None else formatter(value)

    return format_value


def view_formatters(columns: set[str], declared: Mapping[str, Callable[[Any], Any]]) -> dict[str, Callable]:
    """Formatters for every shown column: the declared ones (None shown empty around them)
    and ``display`` for the rest."""
    return {column: with_empty(declared[column]) if column in declared else display for column in columns}


#: Where an audit entry came from (``audit.current_source`` and ``audit_context`` sources).
SOURCE_LABELS = {"web": _l("Web page"), "api": _l("API"), "import": _l("Import"), "sync": _l("Sync"),
                 "script": _l("Script")}
#: Every audit action the code writes: row changes (``audit.collect_changes``) and the
#: events of ``audit.record`` (tests/app/services/test_audit_actions.py finds them all).
ACTION_LABELS = {
    "job_cancel": _l("Job cancel requested"), "calendar_import": _l("Public holidays imported"),
    "rate": _l("Rated"),
    "order_reopened": _l("Order reopened for a change"),
    "approval_submitted": _l("Sent for approval"), "approval_approved": _l("Approval step approved"),
    "approval_applied": _l("Approved change applied"), "approval_rejected": _l("Approval rejected"),
    "approval_withdrawn": _l("Approval request withdrawn"), "approval_conflict": _l("Approval ended in a conflict"),
    "approve": _l("Approved"),
    "approval_reassigned": _l("Approval passed to another approver"),
    "order_closed_short": _l("Order closed before it was delivered and paid in full"),
    "report_saved": _l("Report saved"), "report_deleted": _l("Report deleted"),
    "sales_target_set": _l("Sales target set"),
    "create": _l("Created"), "update": _l("Changed"), "delete": _l("Deleted"), "archive": _l("Archived"),
    "restore": _l("Restored"), "deactivate": _l("Deactivated"), "permission_change": _l("Permissions changed"),
    "login": _l("Logged in"), "logout": _l("Logged out"), "login_failed": _l("Wrong password"),
    "login_refused": _l("Login refused (limit reached)"),
    "login_totp_success": _l("Login code accepted"), "login_totp_failure": _l("Login code refused"),
    "step_up_success": _l("Code accepted for a sensitive action"),
    "step_up_failure": _l("Code refused for a sensitive action"),
    "totp_enrol": _l("Authenticator enrolled"), "totp_reenrol": _l("Authenticator replaced"),
    "totp_enrol_failed": _l("Authenticator enrolment failed"), "totp_reset": _l("Authenticator removed"),
    "reassign": _l("Records handed over"), "purge": _l("Account purged"), "reveal": _l("Masked value revealed"),
    "import": _l("Imported"), "export": _l("Exported"), "merge": _l("Merged"),
    "dismiss_duplicate": _l("Marked as not a duplicate"), "restore_duplicate": _l("Duplicate check restored"),
    "value_mapping": _l("Value mapped"), "sync_target_save": _l("Sync target saved"),
    "sync_conflict": _l("Sync conflict settled"), "assign": _l("Assigned"),
    "convert": _l("Converted to a customer"), "webform_honeypot": _l("Web form spam refused"),
    "outbox_retry": _l("Outbox message retried"), "outbox_test": _l("Test e-mail queued"),
    "greeting_sent": _l("Birthday greeting sent"), "setting_change": _l("Setting changed"),
    "company_logo_change": _l("Company logo changed"), "backup_restored": _l("Backup restored"),
    "backup_downloaded": _l("Backup downloaded"), "personal_data_erased": _l("Personal data erased"),
    "custom_field_purged": _l("Custom field purged"),
    "retention_decided": _l("Retention decision"),
    **alerts.LABELS,
}
#: What audit entries call records that no screen shows (``object_label``).
OBJECT_LABELS = {"TransferJob": _l("Import or export"), "RetentionCase": _l("Retention case")}


def _first_view(object_type: str | None) -> Any:
    """The first registered screen over the model named ``object_type`` (menus in order), or None."""
    from flask import current_app

    for view in getattr(current_app.appbuilder, "baseviews", []):
        datamodel = getattr(view, "datamodel", None)
        if datamodel is not None and datamodel.obj.__name__ == object_type:
            return view
    return None


def field_labels(object_type: str | None) -> Mapping[str, Any]:
    """The column labels of the screens over the model named ``object_type``, the first
    registered screen's winning (a field only another screen lists, such as a customer's
    archived-at on *Archived customers*, still has its label in an audit entry)."""
    from flask import current_app

    labels: dict[str, Any] = {}
    for view in getattr(current_app.appbuilder, "baseviews", []):
        datamodel = getattr(view, "datamodel", None)
        if datamodel is None or datamodel.obj.__name__ != object_type:
            continue
        for name, label in (getattr(view, "label_columns", None) or {}).items():
            # ours are lazy (translated); FAB fills the rest with plain English ("Archived At")
            if name not in labels or (isinstance(label, LazyString) and not isinstance(labels[name], LazyString)):
                labels[name] = label
    return labels


def object_label(object_type: str | None) -> str:
    """What an audit entry's object type (a model's class name) is called on the screens:
    its screen's ``object_label`` or record title (``show_title``), else ``OBJECT_LABELS``;
    an unknown type as stored."""
    if not object_type:
        return ""
    view = _first_view(object_type)
    for label in (getattr(view, "object_label", None), getattr(view, "show_title", None)):
        if isinstance(label, LazyString):  # FAB's generated "Show Customer" is plain text: not a label
            return str(label)
    return str(OBJECT_LABELS.get(object_type, object_type))


def object_type_named(typed: str | None) -> str | None:
    """The stored object type (a model's class name) that ``typed`` names, as a person types
    it in the audit log's filter: the name itself or what the list shows for it
    (``object_label``) in any of the CRM's languages, in any case ("follow-up", "跟进记录",
    "FollowUp" -> "FollowUp"); anything else as typed."""
    from flask import current_app
    from flask_appbuilder import Model
    from flask_babel import force_locale

    wanted = (typed or "").strip().casefold()
    names = sorted({mapper.class_.__name__ for mapper in Model.registry.mappers} | set(OBJECT_LABELS))
    for name in names:
        if wanted == name.casefold():
            return name
    for language in current_app.config.get("LANGUAGES") or {"en": {}}:
        with force_locale(language):
            labels = {object_label(name).casefold(): name for name in names}
        if wanted in labels:
            return labels[wanted]
    return typed


def audit_rows(changes: str | None, object_type: str | None) -> list[tuple[Any, Any, Any]]:
    """An audit entry's changes with the screen's field labels and related records' names
    (``audit.change_rows``); empty values read "—"."""
    from app.services import audit

    return [(label, _audit_value(before), _audit_value(after))
            for label, before, after in audit.change_rows(changes, object_type, field_labels(object_type))]


def _audit_value(value: Any) -> Any:
    return "—" if value is None else str(_l("(erased)")) if value == ERASED else value


def audit_changes_table(changes: str | None, object_type: str | None) -> Markup:
    """An entry's field-level before/after as a small table (values escaped)."""
    rows = Markup("").join(Markup("<tr><td>{}</td><td>{}</td><td>{}</td></tr>").format(*row)
                           for row in audit_rows(changes, object_type))
    return Markup('<table class="table table-condensed audit-changes">{}</table>').format(rows) if rows else Markup("")


#: Keys of an audit entry's detail (``audit.record(..., detail)``), as a person reads them.
DETAIL_LABELS = {
    "created": _l("Created"), "updated": _l("Updated"), "unchanged": _l("Unchanged"), "rejected": _l("Rejected"),
    "duplicates": _l("Duplicates"), "rows": _l("Rows"), "file": _l("File"), "mode": _l("Mode"),
    "model": _l("Record type"), "rolled_back": _l("Rolled back"), "seconds": _l("Seconds"),
    "format": _l("Format"), "unmasked": _l("Full values"), "ip": _l("IP address"), "purpose": _l("Purpose"),
    "action": _l("Action"), "outcome": _l("Outcome"), "until": _l("Until"), "username": _l("User name"),
    "from": _l("From"), "to": _l("To"), "other": _l("Other customer"), "pair": _l("Pair"), "value": _l("Value"),
    "for": _l("For"), "lead": _l("Lead"), "customer": _l("Customer"), "survivor": _l("Kept"),
    "merged": _l("Merged"), "field": _l("Field"), "code": _l("Code"), "via": _l("Via"), "seq": _l("Sequence"),
    "problem": _l("Problem"), "limit": _l("Limit"), "last_address": _l("Last address"), "scope": _l("Scope"),
    "target": _l("Sync target"), "kept": _l("Kept"), "changes": _l("Changes"), "opportunity": _l("Opportunity"),
    "rule": _l("Rule"), "owner": _l("Owner"), "reason": _l("Reason"),
    # issue 19: backups restored, personal data erased, retention decisions, settings
    "erasures_reapplied": _l("Personal-data erasures applied again"),
    "audit_in_safety_backup": _l("Audit entries only in the safety backup"), "safety_backup": _l("Safety backup"),
    "created_at": _l("Backup taken"), "size": _l("Size (bytes)"), "fields": _l("Fields erased"),
    "redacted": _l("Audit entries redacted"), "swept": _l("Copies cleared"), "sync_rows": _l("Sync rows"),
    "record_type": _l("Record type"), "record_id": _l("Record"), "decision": _l("Decision"),
    "key": _l("Setting"), "old": _l("Before"), "new": _l("After"),
}


def _detail_value(key: str, value: Any) -> Any:
    """A detail value as read: import modes and record types by their labels, yes/no, lists joined."""
    if key == "mode":
        from views.imports import MODE_LABELS

        return MODE_LABELS.get(value, value)
    if key == "model":
        from app.services.importing.columns import MODELS

        return MODELS[value].label if value in MODELS else value
    if key == "redacted" and isinstance(value, list):  # [seq, hash, fingerprint] each: say which entries
        return ", ".join(f"#{item[0]}" for item in value if isinstance(item, list) and item)
    if isinstance(value, list):
        return ", ".join(str(display(v)) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {display(v)}" for k, v in value.items())
    return display(value)


def audit_detail(value: Any) -> Markup:
    """An audit entry's detail (JSON text) as "label: value" lines; text that is not a JSON
    object as stored."""
    import json

    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        data = value
    if not isinstance(data, dict):
        return escape(display(data))
    lines = [Markup("{}: {}").format(DETAIL_LABELS.get(key, key), _detail_value(key, item))
             for key, item in data.items() if item not in (None, "", [])]
    return Markup("<br>").join(lines)


def html_lang() -> str:
    """The page's language for ``<html lang>`` ("zh" or "en"): screen readers, the browser's
    CJK font choice and the charts' locale read it."""
    locale = get_locale()
    return "zh" if locale is not None and locale.language == "zh" else "en"
