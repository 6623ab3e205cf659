"""The weekly e-mail of scheduled reports (``send_scheduled``), each recipient in their own
scope and language."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from app.services.reports.base import (
    _SQL,
    ReportResult,
    ReportSpec,
)
from app.services.reports.running import run
from app.services.reports.saved import may_open, spec_of

# --- scheduled e-mail -------------------------------------------------------------------


def may_export_contacts(user: Any) -> bool:
    """Reports ``can_export_contacts`` (003 第三步 4: only managers export contact data)."""
    from app.security.rights import user_may

    return user_may(user, "can_export_contacts", "Reports")


def _due(now: datetime) -> list[Any]:
    """Weekly reports whose weekday is today (CRM zone) not yet sent today."""
    from app.clock import crm_zone, from_local
    from app.extensions import db
    from app.models.reports import SavedReport

    local = now.astimezone(crm_zone())
    today_start = from_local(datetime.combine(local.date(), time()))
    return list(db.session.scalars(select(SavedReport).where(
        SavedReport.schedule == "weekly", SavedReport.schedule_weekday == local.weekday(),
        (SavedReport.last_sent_at.is_(None)) | (SavedReport.last_sent_at < today_start)).order_by(SavedReport.id)))


def send_scheduled(now: datetime | None = None) -> int:
    """Queue this week's e-mail of every scheduled report due today; returns how many.

    For each active recipient who may still open the report (``may_open``): it runs in THAT recipient's data scope, in their
    language (``notifications.language_of``), with its xlsx attached. A report with a
    contact-data dimension goes only to recipients who may export contact data (Reports
    ``can_export_contacts``); the others are SKIPPED (not sent a masked copy: a weekly
    masked list is noise). Recipients without an e-mail address or no longer allowed to
    open reports are skipped. ``last_sent_at`` makes it idempotent (once a day at most).
    Commits per report.
    """
    from app.clock import utc_now
    from app.extensions import db

    now = now or utc_now()
    sent = 0
    for report in _due(now):
        try:
            sent += _send_report(report)
        except Exception:  # one broken report must not stop the others
            db.session.rollback()
            import logging

            logging.getLogger(__name__).exception("Scheduled report %s failed", report.id)
            continue
        report.last_sent_at = now
        db.session.commit()
    return sent


def _send_report(report: Any) -> int:
    from app.security.rights import user_may

    spec = spec_of(report)
    contact = any(_SQL[spec.source].dims[d].sensitive for d in spec.dimensions)
    count = 0
    for user in report.recipients:
        if not user.is_active or "@" not in (user.email or "") or not user_may(user, "can_read", "Reports"):
            continue
        if not may_open(report, user):  # a role taken away since: no longer a reader
            continue
        if contact and not may_export_contacts(user):
            continue
        count += _mail_to(report, spec, user)
    return count


def _mail_to(report: Any, spec: ReportSpec, user: Any) -> int:
    from app.services import mail, notifications, report_export

    language = notifications.language_of(user)
    with force_locale(language):
        try:
            result = run(spec, user)
        except Exception as exc:  # noqa: BLE001 - e.g. the recipient lost read access to the source
            from app.services.errors import RuleViolation

            if isinstance(exc, RuleViolation):
                return 0
            raise
        attachment = report_export.xlsx(result.title, [result.figure], result.pivot)
        subject = _("Weekly report: %(name)s", name=report.name)
        text = _mail_text(report, result)
    mail.queue(user.email, subject, text, None, user_id=user.id, language=language,
               attachments=[(f"{report.name}.xlsx", attachment, XLSX_TYPE)])
    return 1


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _mail_text(report: Any, result: ReportResult) -> str:
    """Plain text: the title and the pivot (each row label: values), the xlsx attached."""
    lines = [result.title, ""]
    pivot = result.pivot
    lines.append("\t".join([str(pivot.index.name or ""), *(str(c) for c in pivot.columns)]))
    for label, row in pivot.iterrows():
        lines.append("\t".join([str(label), *("" if v is None else str(v) for v in row.tolist())]))
    lines += ["", _("The full report is attached as an Excel workbook.")]
    return "\n".join(lines)
