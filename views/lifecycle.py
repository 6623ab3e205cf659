"""Issue 19 data-lifecycle screens (Admin only, under Organisation):

- *Data retention* (``/retention/``): the open retention cases by type (code, name, phone
  masked, last activity, due since) with per-row and bulk decisions — archive, anonymise
  (several at once: a TOTP code), keep (``app.services.retention``);
- *Personal data erasure* (``/erasure/``): find a customer, contact or lead, see what would
  be erased and where copies live, tick extra free-text fields, give the reason, confirm
  with a TOTP code; the request queues an erasure run (the sweep of every copy runs on the
  task queue) and leads to the run's page (``/erasure/run/<id>``): queued, running (the
  step), done with the summary, or failed with "try again" (a code again)
  (``app.services.erasure``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, current_app, flash, g, make_response, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.security import step_up
from app.security.masking import mask_phone
from app.services import custom_fields, erasure, retention
from app.services.errors import NotFound, RuleForbidden, RuleViolation
from views import display

DECISION_LABELS = {retention.ARCHIVED: _l("Archive"), retention.ANONYMISED: _l("Anonymise"),
                   retention.KEPT: _l("Keep")}
BACKUP_NOTE = _l("Backups still hold the old values until their retention (30 days) removes them.")


def record_facts(record: Any) -> dict[str, str]:
    """Code, name and masked phone of a customer, contact, lead, follow-up or ticket."""
    if record is None:
        return {"code": "", "name": str(_l("(gone)")), "phone": ""}
    name = getattr(record, "name", None) or getattr(record, "contact_name", None) \
        or getattr(record, "company", None) or getattr(record, "title", None) or ""
    phone = getattr(record, "contact_phone", None) or getattr(record, "phone", None)
    return {"code": getattr(record, "code", "") or "", "name": str(name),
            "phone": mask_phone(phone) if phone and phone != erasure.ERASED else (phone or "")}


class RetentionView(BaseView):
    """Organisation → Data retention (``/retention/``)."""

    route_base = "/retention"
    class_permission_name = "DataRetention"
    method_permission_name = {"index": "read", "decide": "edit"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self) -> Any:
        """The open cases, grouped by record type."""
        groups = []
        for key, kind in retention.TYPES.items():
            rows = [(row.case, record_facts(row.record), retention.due_on(row.case.last_activity_at,
                                                                           retention.years(key))
                     if row.case.last_activity_at else None) for row in retention.open_cases(key)]
            groups.append({"key": key, "label": kind.label, "years": retention.years(key), "rows": rows,
                           "decisions": [(d, DECISION_LABELS[d]) for d in kind.decisions]})
        return self.render_template("crm/retention.html", groups=groups, shown=display.shown_time,
                                    shown_day=display.shown_day,
                                    code_field=step_up.CODE_FIELD, backup_note=BACKUP_NOTE,
                                    title=_l("Data retention"))

    @expose("/decide", methods=["POST"])
    @has_access
    def decide(self) -> Any:
        """Apply one decision to the ticked cases (``rowid``) or one case (``case``)."""
        ids = request.form.getlist("rowid") or request.form.getlist("case")
        try:
            done, refused = _sensitive(lambda: retention.decide(g.user, ids, request.form.get("decision", "")))
        except RuleViolation as exc:
            for message in exc.errors.values():
                flash(str(message), "danger")
            return redirect(url_for("RetentionView.index"))
        if done:
            flash(str(_l("Decided: %(n)d.", n=done)), "success")
        for reason in refused:
            flash(reason, "danger")
        return redirect(url_for("RetentionView.index"))


def _sensitive(use_case: Callable[[], Any]) -> Any:
    """Run one of these screens' sensitive use cases and answer its refusals: the step-up
    page without a fresh code, 403 for a non-admin, 404 for a record gone; a ``RuleViolation``
    (rolled back) is the caller's to show, on a form or as messages."""
    try:
        return use_case()
    except step_up.StepUpRequired as exc:
        db.session.rollback()
        abort(make_response(step_up.refusal(exc)))
    except RuleForbidden:
        db.session.rollback()
        abort(403)
    except NotFound:
        db.session.rollback()
        abort(404)
    except RuleViolation:
        db.session.rollback()
        raise


class ErasureView(BaseView):
    """Organisation → Personal data erasure (``/erasure/``)."""

    route_base = "/erasure"
    class_permission_name = "PersonalDataErasure"
    method_permission_name = {"index": "read", "erase": "edit", "run": "read", "retry": "edit"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self) -> Any:
        """Search (``q``), or one record's preview (``type`` + ``id``) with the erase form."""
        record_type, pk = request.args.get("type", ""), request.args.get("id", "")
        if record_type and pk:
            return self._form(record_type, pk)
        typed = request.args.get("q", "")
        try:
            found = [(key, record_facts(r), r.id) for key, r in erasure.find(g.user, typed)]
        except RuleForbidden:
            abort(403)
        return self.render_template("crm/erasure.html", typed=typed, found=found, preview=None,
                                    recent=erasure.runs.recent(), statuses=STATUS_LABELS, shown=display.shown_time,
                                    labels=_type_labels(), title=_l("Personal data erasure"))

    def _form(self, record_type: str, pk: Any, errors: dict[str, str] | None = None,
              values: dict[str, Any] | None = None) -> Any:
        try:
            seen = erasure.preview(g.user, record_type, pk)
        except RuleForbidden:
            abort(403)
        except (NotFound, RuleViolation):
            abort(404)
        page = self.render_template(
            "crm/erasure.html", preview=seen, facts=record_facts(seen.record), record_type=record_type,
            last_run=erasure.runs.latest(record_type, seen.record.id),
            errors=errors or {}, values=values or {}, code_field=step_up.CODE_FIELD, backup_note=BACKUP_NOTE,
            labels=_type_labels(), field_label=_field_label, title=_l("Personal data erasure"))
        return (page, 400) if errors else page

    @expose("/erase", methods=["POST"])
    @has_access
    def erase(self) -> Any:
        """Erase one record's personal data (reason, confirmation and a TOTP code required)."""
        form = request.form
        record_type, pk = form.get("type", ""), form.get("id", "")
        values = {"reason": form.get("reason", ""), "extras": form.getlist("extra")}
        if form.get("confirm") != "yes":
            return self._form(record_type, pk, {"confirm": str(_l("Tick the box to confirm the erasure."))}, values)
        try:
            run = _sensitive(lambda: erasure.erase(g.user, record_type, pk, values["reason"], values["extras"]))
        except RuleViolation as exc:
            return self._form(record_type, pk, {k: str(v) for k, v in exc.errors.items()}, values)
        return redirect(url_for("ErasureView.run", pk=run.id))

    @expose("/run/<int:pk>")
    @has_access
    def run(self, pk: int) -> Any:
        """One erasure run: queued, running (its step), done (the summary) or failed (try again)."""
        try:
            found = erasure.runs.load(pk)
        except NotFound:
            abort(404)
        shown = erasure.runs.state(found)
        title = _l("Personal data erased") if shown["status"] == "done" else _l("Personal data erasure")
        return self.render_template("crm/erasure_done.html", run=found, state=shown, summary=shown["summary"],
                                    step_label=_step_label, statuses=STATUS_LABELS, backup_note=BACKUP_NOTE,
                                    labels=_type_labels(), field_label=_field_label, code_field=step_up.CODE_FIELD,
                                    shown=display.shown_time, title=title)

    @expose("/run/<int:pk>/retry", methods=["POST"])
    @has_access
    def retry(self, pk: int) -> Any:
        """Queue a failed (or stopped) erasure again: a sensitive action (a TOTP code)."""
        try:
            _sensitive(lambda: erasure.retry(g.user, pk))
        except RuleViolation as exc:
            for message in exc.errors.values():
                flash(str(message), "danger")
        return redirect(url_for("ErasureView.run", pk=pk))


STATUS_LABELS = {"queued": _l("Queued"), "running": _l("Running"), "done": _l("Done"), "failed": _l("Failed")}
STEP_LABELS = {"records": _l("Clearing the record and its linked rows"), "audit": _l("Audit log"),
               "files": _l("Import and export files"), "search": _l("Search index")}


def _step_label(step: str | None) -> str:
    """The step a run is on, as the reader says it ("Text columns: follow_up")."""
    if not step:
        return ""
    if step.startswith("columns:"):
        return str(_l("Text columns: %(table)s", table=step.partition(":")[2]))
    return str(STEP_LABELS.get(step, step))


def _type_labels() -> dict[str, Any]:
    return {key: subject.label for key, subject in erasure.SUBJECTS.items()}


FIELD_LABELS = {
    "name": _l("Name"), "contact_name": _l("Contact name"), "contact_phone": _l("Contact phone"),
    "phone": _l("Phone"), "email": _l("E-mail"), "address": _l("Address"), "birthday": _l("Birthday"),
    "note": _l("Notes"), "title": _l("Title"), "company": _l("Company"), "content": _l("Content"),
    "next_step": _l("Next step"), "invalid_reason": _l("Reason it was invalid"),
}


def _field_label(name: str) -> Any:
    return FIELD_LABELS.get(name) or custom_fields.label_for(name) or name


def erasure_under_way(record_type: str, pk: Any) -> Any:
    """The record's unfinished erasure run (queued or running), or None: the customer's
    and contact's pages show "An erasure of this record is under way" with a link to it.
    One indexed query; None for a key that is not a number."""
    try:
        return erasure.runs.active(record_type, int(pk))
    except (TypeError, ValueError):
        return None


def register(appbuilder: AppBuilder) -> None:
    """Add this area's screens under Organisation (Admin only); templates get
    ``erasure_under_way(record_type, pk)``."""
    current_app.jinja_env.globals["erasure_under_way"] = erasure_under_way
    appbuilder.add_view(RetentionView, "Data retention", label=_l("Data retention"), icon="fa-hourglass-half",
                        category="Organisation", category_label=_l("Organisation"), category_icon="fa-users")
    appbuilder.add_view(ErasureView, "Personal data erasure", label=_l("Personal data erasure"),
                        icon="fa-user-times", category="Organisation", category_label=_l("Organisation"),
                        category_icon="fa-users")
