"""Service > Tickets (issue 16): the ticket queue (tabs My open / My team / Unassigned /
Breached / All in scope, paged server-side), the ticket page (header, SLA state, actions by
status, the process log, a note box), the REST actions ``POST /api/v1/ticket/<id>/transfer``,
``/status``, ``/note``, ``/rate``, and Service > Transfer rules (admins).

Thin: every list comes from ``app.services.tickets`` (scoped, bounded), every write is one of
its use cases; a refusal is a flash message (pages) or 4xx JSON with field messages (API),
never a 500. The declared list/add/edit/show and ``/api/v1/ticket/`` come from
``app.services.tickets.TICKET`` (``views.declared``); this module's ``TicketView`` (in
``OWN_VIEWS``) sends its show page to the ticket page once ``views/__init__`` imports this
module before ``register_declared``.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, g, redirect, request, url_for
from flask_appbuilder import AppBuilder, BaseView, expose, has_access
from flask_appbuilder.api import BaseApi, protect, safe
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate
from wtforms import SelectField
from wtforms.validators import Length

from app import clock
from app.models.service import TransferRule
from app.security.request_bounds import db_int
from app.services import records, tickets
from app.services.errors import NotFound
from views import writes
from views.base import CRUD_PERMISSIONS, READ_WRITE_PERMISSIONS, CrmModelView
from views.declared import OWN_APIS, OWN_VIEWS, declared_api, declared_view

CATEGORY = "Service"


def category_args() -> dict[str, Any]:
    """What every add_view / add_link of the Service menu passes."""
    return {"category": CATEGORY, "category_label": _l("Service"), "category_icon": "fa-life-ring"}


def channel_field() -> SelectField:
    """The channel as a choice (phone, e-mail, online, in person, internal)."""
    return SelectField(_l("Channel"), choices=list(tickets.CHANNELS.items()), default="phone")


class TicketShowMixin:
    """The declared show page is the ticket page."""

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk: Any) -> Any:
        return redirect(url_for("TicketDeskView.page", pk=db_int(pk) or 0))


TicketView = declared_view(
    tickets.TICKET, TicketShowMixin,
    add_form_extra_fields={"channel": channel_field()},
    formatters_columns={"status": lambda value: tickets.STATUSES.get(value, value),
                        "channel": lambda value: tickets.CHANNELS.get(value, value)},
)
OWN_VIEWS[tickets.TICKET.name] = TicketView
#: Priority (default medium) and channel (default phone) may be left out of a new ticket.
TicketApi = declared_api(tickets.TICKET, add_optional_columns=("priority", "channel"))
OWN_APIS[tickets.TICKET.name] = TicketApi


# --- pages ----------------------------------------------------------------------------

def _page_number() -> int:
    number = db_int(request.args.get("page"))
    return number if number is not None and number >= 1 else 1


class TicketDeskView(BaseView):
    """The queue, the ticket page and its action buttons (can_read / can_write on Ticket)."""

    route_base = "/service/tickets"
    class_permission_name = "Ticket"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = {"queue": "read", "page": "read", "transfer": "write", "status": "write",
                              "note": "write", "rate": "write"}
    default_view = "queue"

    @expose("/")
    @has_access
    def queue(self) -> Any:
        tab = request.args.get("tab", "mine")
        if tab not in tickets.TABS:
            tab = "mine"
        page = _page_number()
        rows, total = tickets.queue(g.user, tab, page)
        now = clock.utc_now()
        states = {item.id: tickets.sla_state(item, now) for item in rows}
        pages = max(1, -(-total // tickets.PAGE_SIZE))
        return self.render_template("service/ticket_queue.html", rows=rows, total=total, tab=tab, page=page,
                                    pages=pages, tabs=tickets.TABS, states=states, statuses=tickets.STATUSES,
                                    local_text=clock.local_text, title=_l("Ticket queue"))

    @expose("/<int:pk>")
    @has_access
    def page(self, pk: int) -> Any:
        try:
            item = records.load(tickets.Ticket, pk, g.user)
        except NotFound:
            abort(404)
        people, teams = tickets.transfer_choices(g.user)
        return self.render_template(
            "service/ticket_page.html", item=item, people=people, teams=teams, log=tickets.log_rows(item, request.args.get("log_page")), state=tickets.sla_state(item),
            statuses=tickets.STATUSES, channels=tickets.CHANNELS, log_kinds=tickets.LOG_KINDS,
            moves=tickets.TRANSITIONS.get(item.status, ()), local_text=clock.local_text,
            can_write=self.appbuilder.sm.has_access("can_write", "Ticket"), title=item.code)

    def _act(self, pk: int, use_case: Any, done: Any) -> Any:
        return writes.form_action(use_case, url_for("TicketDeskView.page", pk=pk), done)

    @expose("/<int:pk>/transfer", methods=["POST"])
    @has_access
    def transfer(self, pk: int) -> Any:
        form = request.form
        assignee = g.user.id if form.get("to_me") else form.get("assignee")
        return self._act(pk, lambda: tickets.transfer(pk, g.user, assignee=assignee, team=form.get("team"),
                                                      reason=form.get("reason"), version=form.get("version")),
                         _l("Ticket transferred."))

    @expose("/<int:pk>/status", methods=["POST"])
    @has_access
    def status(self, pk: int) -> Any:
        form = request.form
        return self._act(pk, lambda: tickets.change_status(
            pk, g.user, form.get("to_status", ""), note=form.get("note"), resolution=form.get("resolution"),
            version=form.get("version")), _l("Ticket updated."))

    @expose("/<int:pk>/note", methods=["POST"])
    @has_access
    def note(self, pk: int) -> Any:
        return self._act(pk, lambda: tickets.add_note(pk, g.user, request.form.get("note")), _l("Note added."))

    @expose("/<int:pk>/rate", methods=["POST"])
    @has_access
    def rate(self, pk: int) -> Any:
        form = request.form
        return self._act(pk, lambda: tickets.rate(pk, g.user, form.get("satisfaction"), form.get("comment")),
                         _l("Thank you for the rating."))


# --- REST actions -----------------------------------------------------------------------

class TransferBody(Schema):
    assignee = fields.Integer(allow_none=True)
    team = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True, validate=validate.Length(max=tickets.TEXT_LIMIT))
    version = fields.Integer(allow_none=True)


class StatusBody(Schema):
    status = fields.String(required=True, validate=validate.OneOf([*tickets.STATUSES, "reopen"]))
    note = fields.String(allow_none=True, validate=validate.Length(max=tickets.TEXT_LIMIT))
    resolution = fields.String(allow_none=True, validate=validate.Length(max=tickets.TEXT_LIMIT))
    version = fields.Integer(allow_none=True)


class NoteBody(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=tickets.TEXT_LIMIT))


class RateBody(Schema):
    satisfaction = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=5))
    comment = fields.String(allow_none=True, validate=validate.Length(max=tickets.TEXT_LIMIT))


def _ticket_result(item: Any) -> dict[str, Any]:
    """What a ticket action answers: the ticket's id, code, status, assignee, team, version."""
    ticket = item if isinstance(item, tickets.Ticket) else item.ticket
    return {"id": ticket.id, "code": ticket.code, "status": ticket.status, "assignee": ticket.assignee_id,
            "team": ticket.team_id, "version": ticket.version, "satisfaction": ticket.satisfaction}


class TicketActionsApi(writes.ActionApiMixin, BaseApi):
    """``POST /api/v1/ticket/<pk>/transfer`` (``assignee``, ``team`` ids, ``reason``,
    ``version``), ``/status`` (``status``: a status or ``reopen``, ``note``, ``resolution``,
    ``version``), ``/note`` (``note``), ``/rate`` (``satisfaction`` 1-5, ``comment``): the
    ticket page's actions through the same use cases. 400 for a body that is not valid JSON
    of the schema (field messages), 403 / 404 / 409 / 422 as the use case refuses; 200 with
    the ticket's id, code, status, assignee, team and version."""

    resource_name = "ticket"
    class_permission_name = "Ticket"
    base_permissions = ["can_write"]
    method_permission_name = {"transfer": "write", "status": "write", "note": "write", "rate": "write"}
    openapi_spec_tag = "Ticket"

    def _run(self, schema: Schema, call: Any) -> Any:
        return self.run_action(schema, call, _ticket_result)

    @expose("/<int:pk>/transfer", methods=["POST"])
    @protect()
    @safe
    def transfer(self, pk: int) -> Any:
        """Transfer a ticket to a person and/or a team, with a reason.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The ticket, transferred
        """
        return self._run(TransferBody(), lambda v: tickets.transfer(
            pk, g.user, assignee=v.get("assignee"), team=v.get("team"), reason=v.get("reason"),
            version=v.get("version")))

    @expose("/<int:pk>/status", methods=["POST"])
    @protect()
    @safe
    def status(self, pk: int) -> Any:
        """Move a ticket to another status (or reopen it).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The ticket, moved
        """
        return self._run(StatusBody(), lambda v: tickets.change_status(
            pk, g.user, v["status"], note=v.get("note"), resolution=v.get("resolution"), version=v.get("version")))

    @expose("/<int:pk>/note", methods=["POST"])
    @protect()
    @safe
    def note(self, pk: int) -> Any:
        """Add a note to the ticket's process log.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The ticket
        """
        return self._run(NoteBody(), lambda v: tickets.add_note(pk, g.user, v["note"]))

    @expose("/<int:pk>/rate", methods=["POST"])
    @protect()
    @safe
    def rate(self, pk: int) -> Any:
        """Rate a resolved ticket 1-5 with an optional comment.
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          responses:
            200:
              description: The ticket, rated
        """
        return self._run(RateBody(), lambda v: tickets.rate(pk, g.user, v["satisfaction"], v.get("comment")))


# --- transfer rules -------------------------------------------------------------------

def strategy_field() -> SelectField:
    """A transfer rule's strategy as a choice (round robin, least loaded, team queue)."""
    return SelectField(_l("Strategy"), choices=list(tickets.STRATEGIES.items()), default="round_robin")


class TransferRuleView(CrmModelView):
    """转派规则 (000): admins route new tickets by type / category / keyword to a team, then
    round robin, least loaded or the team's queue. Tried by order, then id."""

    datamodel = SQLAInterface(TransferRule)
    class_permission_name = "TransferRule"
    method_permission_name = READ_WRITE_PERMISSIONS
    base_permissions = list(CRUD_PERMISSIONS)
    list_title = _l("Transfer rules")
    show_title = _l("Transfer rule")
    add_title = _l("Add transfer rule")
    edit_title = _l("Edit transfer rule")
    list_columns = ["position", "name", "ticket_type", "category", "keywords", "team", "strategy", "active"]
    add_columns = edit_columns = ["name", "position", "active", "ticket_type", "category", "keywords", "team",
                                  "strategy"]
    show_columns = add_columns
    order_columns = ["position", "name"]
    search_columns = ["name", "ticket_type", "team", "active"]
    base_order = ("position", "asc")
    label_columns = {"name": _l("Name"), "position": _l("Order"), "active": _l("Active"), "ticket_type": _l("Type"),
                     "category": _l("Category"), "keywords": _l("Keywords"), "team": _l("Team"),
                     "strategy": _l("Strategy")}
    description_columns = {
        "keywords": _l("One keyword a line; any of them in the subject or description matches (case and "
                       "full-width ignored)."),
        "team": _l("The department that gets the ticket; its active members take turns."),
    }
    add_form_extra_fields = edit_form_extra_fields = {"strategy": strategy_field()}
    # every new ticket folds and searches each rule's keywords: a bounded list
    validators_columns = {"keywords": [Length(max=tickets.KEYWORDS_LIMIT, message=_l("At most %(max)d characters."))]}
    formatters_columns = {"strategy": lambda value: tickets.STRATEGIES.get(value, value)}


def register(appbuilder: AppBuilder) -> None:
    """Service > Ticket queue (can_read on Ticket), Service > Transfer rules (Admin), the
    ticket actions API."""
    current_app.jinja_env.globals.update(ticket_statuses=tickets.STATUSES)
    appbuilder.add_view(TicketDeskView, "Ticket queue", label=_l("Ticket queue"), icon="fa-inbox",
                        **category_args())
    appbuilder.add_view(TransferRuleView, "Transfer rules", label=_l("Transfer rules"), icon="fa-random",
                        **category_args())
    appbuilder.add_api(TicketActionsApi)
