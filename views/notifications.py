"""Screens for issue 14 (notifications): the inbox, the navbar bell, preferences, the outbox.

Thin: every rule (scope of the records a notification names, texts in the reader's
language, channels, sending and retries) lives in app/services/notifications.py and
app/services/mail.py.
"""

from __future__ import annotations

import math
from typing import Any

from flask import current_app, flash, g, redirect, request, session, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models.notifications import OutboxMessage
from app.models.org import CrmUser
from app.security import step_up
from app.security.masking import mask_phone
from app.security.request_bounds import db_int
from app.services import audit, mail, notifications
from app.services.errors import RuleViolation

STATUS_LABELS = {mail.QUEUED: _l("Queued"), mail.SENT: _l("Sent"), mail.FAILED: _l("Failed"),
                 mail.HELD: _l("Waiting for the digest"), mail.DIGESTED: _l("Sent in a digest")}
CHANNEL_LABELS = {notifications.IN_APP: notifications.IN_APP_LABEL, notifications.EMAIL: notifications.EMAIL_LABEL,
                  notifications.SMS: notifications.SMS_LABEL, "digest": _l("Morning digest")}
OUTBOX_PAGE_SIZE = 50


#: Highest page number read from a URL (a larger one would overflow the query's OFFSET).
MAX_PAGE = 1_000_000


def _page() -> int:
    """``?page=`` as 1..MAX_PAGE (anything else: 1; past the end: an empty page)."""
    number = db_int(request.args.get("page", 1))
    return min(number, MAX_PAGE) if number and number > 0 else 1


def _back(default: str) -> Any:
    """Back to the page the form was on (a path on this site only), else ``default``."""
    return redirect(step_up.safe_next(request.form.get("next"), default))


class NotificationsView(BaseView):
    """The reader's own notifications (newest first) and their channel preferences."""

    route_base = "/notifications"
    class_permission_name = "Notifications"
    method_permission_name = {"list": "read", "read_one": "write", "read_all": "write",
                              "preferences": "write"}
    base_permissions = ["can_read", "can_write"]
    default_view = "list"

    @expose("/")
    @has_access
    def list(self) -> Any:
        """One page (``?page=``) of the reader's notifications, in the reader's language."""
        page = _page()
        items, total = notifications.inbox(g.user, page)
        pages = max(1, math.ceil(total / notifications.PAGE_SIZE))
        return self.render_template("crm/notifications.html", items=items, page=page, pages=pages, total=total,
                                    unread=notifications.unread_count(g.user.id), title=_l("Notifications"))

    @expose("/<int:pk>/read", methods=["POST"])
    @has_access
    def read_one(self, pk: int) -> Any:
        """Mark one of the reader's notifications read (another user's: "no such")."""
        if not notifications.mark_read(g.user, [pk]):
            db.session.rollback()
            flash(str(_l("No such unread notification.")), "warning")
        else:
            db.session.commit()
        return _back(url_for("NotificationsView.list"))

    @expose("/read-all", methods=["POST"])
    @has_access
    def read_all(self) -> Any:
        """Mark all the reader's notifications read."""
        count = notifications.mark_read(g.user)
        db.session.commit()
        flash(str(_l("%(count)d notifications marked read.", count=count)), "info")
        return _back(url_for("NotificationsView.list"))

    @expose("/preferences", methods=["GET", "POST"])
    @has_access
    def preferences(self) -> Any:
        """The reader's channels per event and e-mail language; a bad value is a message."""
        errors: dict[str, str] = {}
        if request.method == "POST":
            chosen = {key: request.form.getlist(f"pref-{key}") for key in notifications.EVENTS}
            try:
                notifications.save_preferences(g.user, chosen, request.form.get("language", ""))
            except RuleViolation as exc:
                db.session.rollback()
                errors = exc.errors
            else:
                db.session.commit()
                flash(str(_l("Your notification settings are saved.")), "success")
                return redirect(url_for("NotificationsView.preferences"))
        return self.render_template(
            "crm/notification_preferences.html", events=notifications.EVENTS,
            prefs=notifications.preferences(g.user.id), fields=notifications.PREFERENCE_FIELDS,
            channel_labels=CHANNEL_LABELS, languages=current_app.config.get("LANGUAGES") or {},
            language=db.session.get(CrmUser, g.user.id).language or "", errors=errors,
            has_email="@" in (g.user.email or ""), has_phone=bool(getattr(g.user, "phone", None)),
            title=_l("Notification settings"))


class OutboxView(BaseView):
    """Admins: every queued, sent and failed e-mail and SMS; *Retry now*; a test e-mail."""

    route_base = "/outbox"
    class_permission_name = "Outbox"
    method_permission_name = {"list": "read", "retry": "write", "send_test": "write"}
    base_permissions = ["can_read", "can_write"]
    default_view = "list"

    @expose("/")
    @has_access
    def list(self) -> Any:
        """Messages newest first (``?status=`` filters, ``?page=``), counts per status."""
        status = request.args.get("status", "")
        query = select(OutboxMessage)
        if status in mail.STATUSES:
            query = query.where(OutboxMessage.status == status)
        page = _page()
        total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = db.session.scalars(query.order_by(OutboxMessage.id.desc())
                                  .offset((page - 1) * OUTBOX_PAGE_SIZE).limit(OUTBOX_PAGE_SIZE)).all()
        counts = dict(db.session.execute(select(OutboxMessage.status, func.count())
                                         .group_by(OutboxMessage.status)).all())
        return self.render_template(
            "crm/outbox.html", rows=rows, counts=counts, status=status, statuses=mail.STATUSES,
            status_labels=STATUS_LABELS, channel_labels=CHANNEL_LABELS, address=_shown_address,
            page=page, pages=max(1, math.ceil(total / OUTBOX_PAGE_SIZE)), configured=mail.email_configured(),
            max_attempts=current_app.config.get("MAIL_MAX_ATTEMPTS", 8), title=_l("Outbox"))

    @expose("/<int:pk>/retry", methods=["POST"])
    @has_access
    def retry(self, pk: int) -> Any:
        """*Retry now* for a failed message (audited ``outbox_retry``)."""
        message = mail.retry_now(pk)
        if message is None:
            db.session.rollback()
            flash(str(_l("Only a failed message can be retried.")), "warning")
        else:
            audit.record("outbox_retry", message, {"channel": message.channel, "attempts": message.attempts})
            db.session.commit()
            flash(str(_l("Message %(id)d is queued again.", id=pk)), "success")
        return redirect(url_for("OutboxView.list"))

    @expose("/test", methods=["POST"])
    @has_access
    def send_test(self) -> Any:
        """Queue a test e-mail to the typed address or the admin's own (audited ``outbox_test``)."""
        address = (request.form.get("address") or g.user.email or "").strip()
        if "@" not in address or len(address) > 200 or any(ch in address for ch in "\r\n <>,;"):
            flash(str(_l("Enter one e-mail address.")), "danger")
            return redirect(url_for("OutboxView.list"))
        subject = str(_l("Test e-mail from %(app)s", app=current_app.config.get("APP_NAME", "CRM")))
        body = str(_l("This is a test e-mail. If you read it, the CRM can send e-mail."))
        message = mail.queue(address, subject, body, user_id=g.user.id, language=session.get("locale"))
        audit.record("outbox_test", message, {"to": address})
        db.session.commit()
        if mail.email_configured():
            flash(str(_l("A test e-mail to %(address)s is queued; it is sent within a minute.", address=address)),
                  "success")
        else:
            flash(str(_l("A test e-mail is queued, but e-mail is not configured (MAIL_SERVER): it waits.")),
                  "warning")
        return redirect(url_for("OutboxView.list"))


def _shown_address(message: OutboxMessage) -> str:
    """An SMS's address is a phone: masked like every phone on a screen."""
    return mask_phone(message.to_address) if message.channel == mail.SMS else message.to_address


def notification_count() -> int:
    """The navbar bell's figure: the logged-in user's unread count, 0 for anyone else."""
    if not current_user or current_user.is_anonymous:
        return 0
    try:
        return notifications.unread_count(current_user.id)
    except SQLAlchemyError:  # the bell never breaks a page (an error page after a database fault)
        current_app.logger.warning("Unread notification count unavailable", exc_info=True)
        return 0


def _remember_language(response: Any) -> Any:
    """After the flag menu (FAB's ``LocaleView.index``) switched the screen's language, it
    becomes the user's language for e-mails too (a later choice on the preferences page
    wins until the next switch). Other requests cost one string comparison."""
    if request.endpoint != "LocaleView.index" or not current_user or current_user.is_anonymous:
        return response
    try:
        if notifications.record_language(current_user, session.get("locale")):
            db.session.commit()
    except Exception:  # a language not remembered must not break the switch itself
        db.session.rollback()
        current_app.logger.exception("Could not remember the user's language")
    return response


def register_notifications(appbuilder: AppBuilder) -> None:
    """The inbox and preferences (every logged-in role), the outbox (Admin; its menu entry:
    ``add_outbox_menu``), the bell's count for the navbar and the language hook."""
    appbuilder.add_view_no_menu(NotificationsView)
    appbuilder.add_view_no_menu(OutboxView)
    current_app.jinja_env.globals["notification_count"] = notification_count
    current_app.after_request(_remember_language)


def add_outbox_menu(appbuilder: AppBuilder, category: str = "Security") -> None:
    """*Outbox* in the ``category`` menu: called after that menu's other entries, so the
    navbar keeps its order (the menu that is added first comes first)."""
    appbuilder.add_link("Outbox", href="/outbox/", label=_l("Outbox"), icon="fa-envelope", category=category)
