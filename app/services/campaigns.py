"""Marketing campaigns (市场活动, code MC + date + sequence): plan, approval, execution and
the evaluation (002 §五).

Status flow (``TRANSITIONS``)::

    planning --submit--> waiting (an approval request) --approved--> approved
    planning --submit, no policy applies--> approved
    approved --start--> running --finish--> done
    approved --revise--> planning   (to change the approved plan: it is approved again)
    planning / approved / running --cancel--> cancelled

- 002 §五(一) 活动策划: the plan (``PLAN_FIELDS``: theme, goal, type, time, place, form,
  content, budget, expected cost) is written in *planning* only. Once submitted it is
  locked: while *waiting* the requester withdraws the request (the approvals screen; the
  campaign goes back to planning through ``_settle``); once *approved* a change goes back
  through approval: "Revise plan" returns it to planning, then it is submitted again.
  Execution figures (actual cost, participants, notes) stay editable until *done*.
- The approval is ``campaign.approve`` (``app.services.approvals``), conditioned on the
  budget (``amount``): the policy "Approve a campaign" decides who approves; with no policy
  the campaign is approved at once.
- 002 §五(三) 效果评估: ``evaluate`` — participants, leads generated, leads converted,
  conversion rate, won opportunities and their amount, actual cost, cost per lead and ROI
  = (won amount − actual cost) / actual cost. It counts only the leads and opportunities
  the viewer may see and says so (``Evaluation.visible_leads`` of ``all_leads``).
- Leads carry their campaign (``Lead.campaign_id``, no database foreign key): every entry
  point of ``app.services.leads.save_lead`` calls ``campaign_for_lead``, which accepts only
  a campaign in the writer's scope that is not cancelled.

Data scope (``scope_rule``): a campaign is seen by whoever sees its owner (the owner, their
department's managers, admins) and by the members of the owner's department and of its
sub-departments (a rep tags leads with the campaigns their department runs). Writes need
``can_write`` on Campaign (Sales Manager, Admin) *and* the owner in the writer's own scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.clock import utc_now
from app.extensions import db
from app.models.customers import Customer
from app.models.dictionaries import CampaignType
from app.models.marketing import Campaign
from app.models.org import CrmUser, Department
from app.models.sales import Lead, Opportunity, Stage
from app.record_types import RecordType, declare
from app.security import data_scope, masking
from app.security.data_scope import owner_in, scope_clause, visible_owner_ids
from app.security.request_bounds import db_int
from app.security.rights import user_may
from app.services import approvals, audit, records, validation
from app.services.errors import RuleForbidden, RuleViolation
from app.services.importing.columns import DATE, DICT, USER, ImportField
from app.services.products import money

PERMISSION = "Campaign"
KIND = "campaign.approve"
PLANNING, WAITING, APPROVED, RUNNING, DONE, CANCELLED = (
    "planning", "waiting", "approved", "running", "done", "cancelled")
STATUSES = {
    PLANNING: _l("Planning"), WAITING: _l("Waiting for approval"), APPROVED: _l("Approved"),
    RUNNING: _l("Running"), DONE: _l("Done"), CANCELLED: _l("Cancelled"),
}
#: status -> statuses ``change_status`` may move it to (waiting / approved: ``submit`` and
#: the approval only).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    PLANNING: (CANCELLED,),
    WAITING: (),
    APPROVED: (RUNNING, PLANNING, CANCELLED),
    RUNNING: (DONE, CANCELLED),
    DONE: (),
    CANCELLED: (),
}
FORMS = {"online": _l("Online"), "offline": _l("Offline"), "hybrid": _l("Hybrid")}
#: The plan (002 §五(一)): written in planning only; approval covers it.
PLAN_FIELDS = ("name", "goal", "type", "starts_on", "ends_on", "place", "form", "content", "budget",
               "expected_cost")
#: Fields a save may set (form, API, import and sync rows).
EDITABLE = (*PLAN_FIELDS, "actual_cost", "participants", "owner", "note")
#: Execution fields still editable once the plan is locked (until done / cancelled).
EXECUTION_FIELDS = ("actual_cost", "participants", "note", "owner")
TEXT_LIMIT = 10000
MAX_PARTICIPANTS = 10_000_000
_TEXT_LIMITS = {"goal": TEXT_LIMIT, "content": TEXT_LIMIT, "note": TEXT_LIMIT}
_CENT = Decimal("0.01")
DASH = "—"


def status_label(status: str | None) -> str:
    """The status in the reader's language (the stored code when unknown)."""
    return str(STATUSES.get(status or "", status or ""))


def form_label(form: str | None) -> str:
    """The form (online / offline / hybrid) in the reader's language."""
    return str(FORMS.get(form or "", form or ""))


# --- data scope ---------------------------------------------------------------------------

def _ancestor_departments(department_id: int | None) -> set[int]:
    """The department and every department above it (departments are few: one query)."""
    if department_id is None:
        return set()
    parents = dict(db.session.execute(select(Department.id, Department.parent_id)).all())
    found: set[int] = set()
    current: int | None = department_id
    while current is not None and current not in found:
        found.add(current)
        current = parents.get(current)
    return found


@data_scope.per_user
def scope_rule(owners: set[int] | None, user: Any) -> Any:
    """SQL: campaigns whose owner the user sees, or whose owner belongs to the user's
    department or a department above it (the campaigns "my department runs")."""
    mine = owner_in(Campaign.owner_id, owners)
    if owners is None:
        return mine
    departments = _ancestor_departments(getattr(user, "department_id", None))
    if not departments:
        return mine
    members = select(CrmUser.id).where(CrmUser.department_id.in_(departments))
    return or_(mine, Campaign.owner_id.in_(members))


def _require_write(user: Any) -> None:
    if user is not None and not user_may(user, "can_write", PERMISSION):
        raise RuleForbidden(str(_l("You may not change campaigns.")))


def load_for_write(pk: Any, user: Any) -> Campaign:
    """A campaign the user may change: ``can_write`` on Campaign (``RuleForbidden``), in
    scope (``NotFound``) and owned by someone in the user's own scope (a member who only
    sees a department's campaign may not change it: ``RuleForbidden``)."""
    _require_write(user)
    item = records.load(Campaign, pk, user)
    allowed = visible_owner_ids(user)
    if allowed is not None and item.owner_id not in allowed:
        raise RuleForbidden(str(_l("Only the campaign's owner or their managers may change it.")))
    return item


# --- rules --------------------------------------------------------------------------------

def _participants(raw: Any, errors: dict[str, str]) -> int | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    number = db_int(validation.clean_line(raw)) if isinstance(raw, str) else raw
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_PARTICIPANTS:
        errors["participants"] = str(_l("Enter a whole number of people from 0 to %(max)d.", max=MAX_PARTICIPANTS))
        return None
    return number


def _clean_text(item: Campaign, errors: dict[str, str]) -> None:
    try:
        item.name = validation.require_text(item.name, 200)
    except ValueError as exc:
        errors["name"] = str(exc)
    item.place = validation.clean_line(item.place)[:200] or None
    for name, limit in _TEXT_LIMITS.items():
        value = validation.clean_block(getattr(item, name)) or None
        if value and len(value) > limit:
            errors[name] = str(_l("At most %(n)d characters.", n=limit))
        setattr(item, name, value)


def _clean_plan(item: Campaign, errors: dict[str, str]) -> None:
    form = validation.clean_line(item.form).lower() or None
    if form is not None and form not in FORMS:
        errors["form"] = str(_l("Choose online, offline or hybrid."))
    item.form = form
    for name in ("starts_on", "ends_on"):
        setattr(item, name, validation.day_value(getattr(item, name), name, errors))
    if item.starts_on and item.ends_on and item.ends_on < item.starts_on:
        errors["ends_on"] = str(_l("The campaign cannot end before it starts."))
    for name in ("budget", "expected_cost", "actual_cost"):
        setattr(item, name, money(getattr(item, name), name, errors))
    item.participants = _participants(item.participants, errors)
    try:
        validation.check_choice(item.type, records.previous(item, "type_id"))
    except ValueError as exc:
        errors["type"] = str(exc)


def clean_campaign(item: Campaign) -> None:
    """Normalise and check a campaign in place; ``RuleViolation`` lists every error: name
    required (≤ 200), ends on or after it starts, amounts Decimal ≥ 0 with 2 decimals,
    form online / offline / hybrid, participants a whole number ≥ 0."""
    errors: dict[str, str] = {}
    with db.session.no_autoflush:
        _clean_text(item, errors)
        _clean_plan(item, errors)
    if errors:
        raise RuleViolation(errors)


def _refuse_locked(item: Campaign, values: dict[str, Any]) -> None:
    """The plan is written in planning only; nothing but notes once done or cancelled."""
    status = item.status or PLANNING
    if status == PLANNING:
        return
    allowed = ("note",) if status in (DONE, CANCELLED) else EXECUTION_FIELDS
    locked = sorted(name for name in values if name not in allowed and _changes(item, name, values[name]))
    if not locked:
        return
    message = (_l("The plan is waiting for approval: withdraw the request to change it.") if status == WAITING
               else _l("The plan was approved: use 'Revise plan' to change it; it is then approved again.")
               if status == APPROVED else _l("This campaign is %(status)s: its plan can no longer change.",
                                             status=status_label(status)))
    raise RuleViolation({name: str(message) for name in locked}, status=409)


def _changes(item: Campaign, name: str, value: Any) -> bool:
    """Whether ``value`` differs from the stored one (a form sends every field)."""
    current = getattr(item, name)
    if hasattr(current, "id") or hasattr(value, "id"):
        return getattr(current, "id", None) != getattr(value, "id", value)
    if value in ("", None) and current in ("", None):
        return False
    if isinstance(current, Decimal) and value not in ("", None):
        errors: dict[str, str] = {}
        parsed = money(value, name, errors)
        return bool(errors) or parsed != current
    if isinstance(current, date) and isinstance(value, str):
        return validation.day_value(value, name, {}) != current
    if isinstance(current, int) and isinstance(value, str):
        return db_int(value.strip()) != current
    return current != value


def save_campaign(values: dict[str, Any], user: Any, *, pk: Any = None, version: Any = None) -> Campaign:
    """Add (``pk`` None) or change one campaign: the use case behind the form, the API and import.

    ``values``: field -> value (``type`` a ``CampaignType``, ``owner`` a user, dates as
    ``date`` or text, amounts as ``Decimal`` or text in yuan). Needs ``can_write`` on Campaign
    (``RuleForbidden``), loads in scope (``NotFound``), refuses a stale ``version``
    (``StaleRecord``), a locked plan field (409, see module doc) and broken rules
    (``clean_campaign``). A new campaign starts in planning, owned by its creator unless an
    owner in scope is given. Flushes; the caller commits.
    """
    is_new = pk is None
    if is_new:
        _require_write(user)
        item = Campaign(status=PLANNING)
    else:
        item = load_for_write(pk, user)
        records.check_version(item, version)
        _refuse_locked(item, values)
    with db.session.no_autoflush:
        records.assign(item, values, EDITABLE)
        clean_campaign(item)
        records.settle_owner(item, user)
    if is_new:
        db.session.add(item)
    records.flush()
    return item


def delete_campaign(pk: Any, user: Any) -> None:
    """Delete a campaign still in planning that no lead carries (else cancel it)."""
    item = load_for_write(pk, user)
    if item.status != PLANNING:
        raise RuleViolation(str(_l("Only a campaign in planning can be deleted; cancel it instead.")), status=409)
    used = db.session.scalar(select(func.count(Lead.id)).where(Lead.campaign_id == item.id)) or 0
    if used:
        raise RuleViolation(str(_l("%(n)d leads carry this campaign; cancel it instead.", n=used)), status=409)
    db.session.delete(item)
    records.flush()


# --- approval and status ---------------------------------------------------------------

def _plan_snapshot(item: Campaign) -> dict[str, Any]:
    """The held plan as JSON-able values (the approval compares it when it applies)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, date):
            return value.isoformat()
        return value

    snapshot = {name: plain(getattr(item, name)) for name in PLAN_FIELDS if name != "type"}
    snapshot["type"] = item.type_id
    return snapshot


def _missing_for_submit(item: Campaign) -> dict[str, str]:
    required = {"starts_on": _l("A start date is required."), "ends_on": _l("An end date is required."),
                "budget": _l("A budget is required to submit the campaign.")}
    return {name: str(message) for name, message in required.items() if getattr(item, name) is None}


def submit(pk: Any, user: Any, *, version: Any = None, reason: str | None = None) -> Campaign:
    """Submit a campaign's plan for approval (002 §五: 活动预算审批).

    Only a campaign in planning with dates and a budget (``RuleViolation``). The policy of
    ``campaign.approve`` for the budget (``approvals.policy_for(amount=budget)``) decides:
    one applies → the campaign waits and an approval request holds it
    (``approvals.submit``, which notifies the approvers); none → approved at once.
    ``version`` (optional) refuses a stale page. Audited. Flushes; the caller commits.
    """
    item = load_for_write(pk, user)
    if version not in (None, ""):
        records.check_version(item, version)
    if item.status != PLANNING:
        raise RuleViolation({"status": str(_l("Only a campaign in planning can be submitted (this one is "
                                              "%(status)s).", status=status_label(item.status)))}, status=409)
    missing = _missing_for_submit(item)
    if missing:
        raise RuleViolation(missing)
    policy = approvals.policy_for(KIND, amount=item.budget)
    if policy is None:
        item.status = APPROVED
        records.flush()
        audit.record("approve", item, {"policy": None, "budget": format(item.budget, "f")})
        return item
    before = _plan_snapshot(item)
    item.status = WAITING
    records.flush()
    approvals.submit(KIND, item, user, {"status": APPROVED}, before=before, reason=reason, policy=policy)
    return item


def change_status(pk: Any, user: Any, to: str, *, version: Any = None) -> Campaign:
    """Move a campaign along ``TRANSITIONS``: start (approved → running), finish (running →
    done), revise (approved → planning: the plan is changed and approved again), cancel.

    ``RuleViolation`` (409) for a move the flow does not allow, waiting and approved
    included (``submit`` and the approval only). Audited. Flushes; the caller commits.
    """
    item = load_for_write(pk, user)
    if version not in (None, ""):
        records.check_version(item, version)
    to = validation.clean_line(to).lower()
    if to not in TRANSITIONS.get(item.status, ()):
        message = _l("The campaign is waiting for approval: withdraw the approval request first.") \
            if item.status == WAITING else _l("A campaign cannot go from %(before)s to %(after)s.",
                                              before=status_label(item.status), after=status_label(to))
        raise RuleViolation({"status": str(message)}, status=409)
    item.status = to
    records.flush()
    return item


def _current(item: Campaign) -> dict[str, Any]:
    return _plan_snapshot(item)


def _apply(request: Any, item: Campaign, approver: Any) -> None:
    """The last step approved: the waiting campaign is approved (re-checked: it must still
    be waiting with the plan it was submitted with)."""
    if item.status != WAITING:
        raise RuleViolation({"status": str(_l("The campaign is no longer waiting for approval (it is %(status)s).",
                                              status=status_label(item.status)))}, status=409)
    item.status = APPROVED
    records.flush()


def _settle(request: Any, item: Campaign, outcome: str) -> None:
    """Rejected, withdrawn or in conflict: a waiting campaign goes back to planning."""
    if item.status == WAITING:
        item.status = PLANNING
        records.flush()


approvals.register_kind(approvals.ChangeKind(
    KIND, _l("Approve a campaign"), "campaign", apply=_apply, current=_current, settle=_settle,
    conditions=("amount",)))


# --- the lead's campaign -------------------------------------------------------------

def _find_campaign(raw: Any, user: Any) -> Campaign | None:
    """A campaign in ``user``'s scope by object, id, code, "code name" text or exact name."""
    stmt = select(Campaign).where(scope_clause(user, Campaign))
    if isinstance(raw, Campaign):
        return db.session.scalar(stmt.where(Campaign.id == raw.id))
    if isinstance(raw, int) and not isinstance(raw, bool):
        return db.session.scalar(stmt.where(Campaign.id == raw))
    text = validation.clean_line(raw)
    if not text:
        return None
    first = text.split(" ", 1)[0]
    found = db.session.scalar(stmt.where(Campaign.code.in_({text, first})).limit(1))
    if found is None:
        found = db.session.scalar(stmt.where(Campaign.name == text).order_by(Campaign.id.desc()).limit(1))
    return found


def campaign_for_lead(raw: Any, user: Any, before_id: int | None) -> Campaign | None:
    """The campaign a lead's save may set (form, API, import, sync, web form).

    ``raw``: a ``Campaign``, an id, a code (``MC…``, or "code name" as exported) or a
    name; empty clears it. Unchanged (``before_id``) is always kept. A new or changed one
    must be in ``user``'s scope (``RuleViolation`` — the same message whether it exists or
    not) and not cancelled (``RuleViolation``).
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if before_id is not None and getattr(raw, "id", raw) == before_id:
        return db.session.get(Campaign, before_id)
    found = _find_campaign(raw, user)
    if found is None:
        shown = getattr(raw, "code", raw)
        raise RuleViolation({"campaign": str(_l("No campaign %(value)s that you may see.", value=shown))})
    if found.id == before_id:
        return found
    if found.status == CANCELLED:
        raise RuleViolation({"campaign": str(_l("Campaign %(code)s was cancelled; pick another.", code=found.code))})
    return found


def campaign_choices(user: Any) -> Any:
    """SQL narrowing offered campaigns: not cancelled (scope is added by every lookup)."""
    def narrow(stmt: Any) -> Any:
        return stmt.where(Campaign.status != CANCELLED)

    return narrow


# --- evaluation (002 §五(三) 效果评估) ----------------------------------------------------

@dataclass
class Evaluation:
    """A campaign's figures as the viewer may see them. Money ``Decimal`` (2 places);
    ``conversion_rate`` / ``roi`` percentages (1 decimal) and ``cost_per_lead`` are None
    when dividing by zero (shown as "—")."""

    campaign: Campaign
    participants: int | None
    leads: int
    converted: int
    won_count: int
    won_amount: Decimal
    actual_cost: Decimal | None
    all_leads: int
    conversion_rate: Decimal | None = None
    cost_per_lead: Decimal | None = None
    roi: Decimal | None = None
    won_opportunities: list[Any] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures: money as "12345.67", percentages as "305.0", "—" for no value."""
        def shown(value: Any) -> Any:
            if value is None:
                return DASH
            return format(value, "f") if isinstance(value, Decimal) else value

        return {
            "campaign": {"id": self.campaign.id, "code": self.campaign.code, "name": self.campaign.name},
            "participants": shown(self.participants), "leads": self.leads, "leads_converted": self.converted,
            "conversion_rate": shown(self.conversion_rate), "won_opportunities": self.won_count,
            "won_amount": shown(self.won_amount), "actual_cost": shown(self.actual_cost),
            "cost_per_lead": shown(self.cost_per_lead), "roi": shown(self.roi),
            "visible_leads": self.leads, "all_leads": self.all_leads,
        }


def _percent(part: Decimal, whole: Decimal) -> Decimal | None:
    if not whole:
        return None
    return (part * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def leads_in_scope(item: Campaign, user: Any) -> Any:
    """SELECT of the campaign's leads the user may see (by code)."""
    return select(Lead).where(Lead.campaign_id == item.id, scope_clause(user, Lead)).order_by(Lead.code)


def _won_opportunities(item: Campaign, user: Any) -> list[Opportunity]:
    """Won opportunities the user may see that came from the campaign's visible leads:
    the opportunity a lead was converted into, and the converted customer's opportunities
    created at or after the conversion (an older deal of a linked customer is not the
    campaign's)."""
    visible = and_(Lead.campaign_id == item.id, scope_clause(user, Lead))
    direct = select(Lead.opportunity_id).where(visible, Lead.opportunity_id.is_not(None))
    later = select(Opportunity.id).join(Lead, and_(Lead.customer_id == Opportunity.customer_id,
                                                   Lead.converted_at.is_not(None),
                                                   Opportunity.created_on >= Lead.converted_at)).where(visible)
    stmt = (select(Opportunity).join(Stage, Stage.id == Opportunity.stage_id)
            .where(Stage.is_won.is_(True), scope_clause(user, Opportunity),
                   or_(Opportunity.id.in_(direct), Opportunity.id.in_(later)))
            .order_by(Opportunity.id))
    return list(db.session.scalars(stmt).unique())


def evaluate(pk: Any, user: Any) -> Evaluation:
    """The campaign's evaluation (002 §五(三)) as ``user`` may see it (``NotFound`` out of scope).

    Leads generated = the campaign's leads in the user's scope; converted = those with a
    conversion; conversion rate = converted / leads (%, 1 decimal); won opportunities and
    their amount (``_won_opportunities``, each in the user's scope); cost per lead = actual
    cost / leads (2 places); ROI = (won amount − actual cost) / actual cost (%, 1 decimal).
    A division by zero (no lead, no actual cost) gives None. ``all_leads`` counts every
    lead of the campaign, for the page's "N of M leads".
    """
    item = records.load(Campaign, pk, user)
    counts = db.session.execute(
        select(func.count(Lead.id), func.count(Lead.converted_at))
        .where(Lead.campaign_id == item.id, scope_clause(user, Lead))).one()
    total = db.session.scalar(select(func.count(Lead.id)).where(Lead.campaign_id == item.id)) or 0
    won = _won_opportunities(item, user)
    won_amount = sum((o.amount or Decimal(0) for o in won), Decimal(0)).quantize(_CENT, rounding=ROUND_HALF_UP)
    result = Evaluation(item, item.participants, counts[0], counts[1], len(won), won_amount, item.actual_cost,
                        total, won_opportunities=won)
    result.conversion_rate = _percent(Decimal(result.converted), Decimal(result.leads))
    cost = item.actual_cost
    if cost is not None and result.leads:
        result.cost_per_lead = (cost / result.leads).quantize(_CENT, rounding=ROUND_HALF_UP)
    if cost:
        result.roi = _percent(won_amount - cost, cost)
    return result


def evaluation_sheets(result: Evaluation, user: Any) -> tuple[list[list[Any]], list[list[Any]]]:
    """The export's two sheets as rows (header first): the figures, and the leads in the
    user's scope with masked phones. Values are plain; the writer neutralises formulas."""
    item = result.campaign
    figures = result.as_dict()
    rows = [[str(_l("Figure")), str(_l("Value"))],
            [str(_l("Campaign")), f"{item.code} {item.name}"],
            [str(_l("Status")), status_label(item.status)],
            [str(_l("Participants")), figures["participants"]],
            [str(_l("Leads generated")), result.leads],
            [str(_l("Leads converted")), result.converted],
            [str(_l("Conversion rate (%)")), figures["conversion_rate"]],
            [str(_l("Won opportunities")), result.won_count],
            [str(_l("Won amount")), figures["won_amount"]],
            [str(_l("Actual cost")), figures["actual_cost"]],
            [str(_l("Cost per lead")), figures["cost_per_lead"]],
            [str(_l("ROI (%)")), figures["roi"]],
            [str(_l("Counted")), str(_l("Figures count only the leads and opportunities you may see: "
                                        "%(n)d of %(m)d leads.", n=result.leads, m=result.all_leads))]]
    leads = [[str(_l("Lead code")), str(_l("Company")), str(_l("Contact")), str(_l("Phone")), str(_l("Status")),
              str(_l("Owner")), str(_l("Converted at"))]]
    from app.services.leads import status_label as lead_status

    for lead in db.session.scalars(leads_in_scope(item, user).limit(MAX_EXPORT_LEADS)):
        leads.append([lead.code, lead.company, lead.contact_name, masking.mask_phone(lead.phone),
                      lead_status(lead.status),
                      lead.owner.username if lead.owner else "", lead.converted_at])
    return rows, leads


#: Leads one evaluation export lists (a request does bounded work).
MAX_EXPORT_LEADS = 50_000


# --- declaration -------------------------------------------------------------------------

def _search(text: str) -> Any:
    like = f"%{text}%"
    return Campaign.code.ilike(like) | Campaign.name.ilike(like)


DEMO_CAMPAIGNS = (
    ("2026 春季工业展", "expo", "offline", "上海新国际博览中心", Decimal("80000.00"), Decimal("72500.00"), 420),
    ("智能制造线上研讨会", "seminar", "online", "线上直播", Decimal("15000.00"), Decimal("12345.67"), 180),
)


def build_demo(session: Session, owners: list[Any]) -> int:
    """Two demo campaigns (one done, one running) owned by the first owner, each carried by
    a share of the demo leads of the owners' department (some converted, one with a won
    opportunity: the evaluation has figures). Flushes; returns the campaigns made."""
    owner = owners[0]
    kinds = {t.code: t for t in session.scalars(select(CampaignType))}
    today = date.today()
    made = []
    for index, (name, kind, form, place, budget, cost, people) in enumerate(DEMO_CAMPAIGNS):
        starts = today - timedelta(days=60 - 30 * index)
        item = Campaign(name=name, type=kinds.get(kind), form=form, place=place, budget=budget,
                        expected_cost=budget, actual_cost=cost, participants=people, owner=owner,
                        status=(DONE, RUNNING)[index], starts_on=starts, ends_on=starts + timedelta(days=3),
                        goal="获取制造业新线索", content="展位演示与方案讲解")
        session.add(item)
        made.append(item)
    session.flush()
    _demo_leads(session, made, owners)
    return len(made)


def _demo_leads(session: Session, made: list[Campaign], owners: list[Any]) -> None:
    """A share of the owners' open leads carry the campaigns; the first three of the first
    campaign are converted into a customer of their owner, the first with that customer's
    opportunity moved to a won stage."""
    ids = [getattr(o, "id", None) for o in owners]
    picked = session.scalars(select(Lead).where(Lead.owner_id.in_(ids), Lead.campaign_id.is_(None),
                                                Lead.converted_at.is_(None)).order_by(Lead.id).limit(24)).all()
    for index, lead in enumerate(picked):
        lead.campaign_id = made[index % len(made)].id
    won = session.scalar(select(Stage).where(Stage.is_won.is_(True)).order_by(Stage.sort_order).limit(1))
    for index, lead in enumerate(picked[0:6:2]):
        customer = session.scalar(select(Customer).where(Customer.owner_id == lead.owner_id)
                                  .order_by(Customer.id).offset(index).limit(1))
        if customer is None:
            continue
        lead.customer, lead.status, lead.converted_at = customer, "converted", utc_now()
        deal = session.scalar(select(Opportunity).where(Opportunity.customer_id == customer.id).limit(1))
        if index == 0 and deal is not None and won is not None:
            deal.stage, lead.opportunity = won, deal
    session.flush()


CAMPAIGN = declare(RecordType(
    name="campaign", model=Campaign, label=_l("Campaign"), plural=_l("Campaigns"), plural_en="Campaigns",
    permission=PERMISSION, scope=scope_rule, code_prefix="MC",
    editable=EDITABLE, save=save_campaign, delete=delete_campaign,
    list_columns=("code", "name", "type", "starts_on", "ends_on", "status", "budget", "actual_cost", "owner"),
    show_columns=("code", "name", "goal", "type", "starts_on", "ends_on", "place", "form", "content", "budget",
                  "expected_cost", "actual_cost", "participants", "status", "owner", "note"),
    search_columns=("code", "name", "type", "status", "form", "owner", "starts_on"),
    order_columns=("code", "name", "starts_on", "status", "budget"),
    labels={"name": _l("Theme"), "goal": _l("Goal"), "type": _l("Campaign type"), "starts_on": _l("Starts on"),
            "ends_on": _l("Ends on"), "place": _l("Place"), "form": _l("Form"), "content": _l("Content"),
            "budget": _l("Budget"), "expected_cost": _l("Expected cost"), "actual_cost": _l("Actual cost"),
            "participants": _l("Participants"), "status": _l("Status"), "note": _l("Notes")},
    descriptions={"form": _l("online, offline or hybrid"),
                  "budget": _l("Approval follows the budget: the policy 'Approve a campaign' decides who approves."),
                  "name": _l("The plan (theme to expected cost) is locked once submitted for approval.")},
    fields=(
        ImportField("code", _l("Campaign code"), "活动编号", ("code", "campaign no", "编号"), max_length=20,
                    note=_l("Leave empty for new campaigns: the CRM numbers them.")),
        ImportField("name", _l("Theme"), "活动主题", ("name", "theme", "campaign", "主题", "活动名称"), required=True,
                    max_length=200),
        ImportField("type", _l("Campaign type"), "活动类型", ("type", "类型"), DICT, dictionary=CampaignType),
        ImportField("starts_on", _l("Starts on"), "开始日期", ("starts on", "start", "开始时间"), DATE),
        ImportField("ends_on", _l("Ends on"), "结束日期", ("ends on", "end", "结束时间"), DATE),
        ImportField("place", _l("Place"), "活动地点", ("place", "location", "地点"), max_length=200),
        ImportField("form", _l("Form"), "活动形式", ("form", "format", "形式"), max_length=16,
                    note=_l("online, offline or hybrid.")),
        ImportField("goal", _l("Goal"), "活动目标", ("goal", "目标"), max_length=TEXT_LIMIT),
        ImportField("content", _l("Content"), "活动内容", ("content", "内容"), max_length=TEXT_LIMIT),
        ImportField("budget", _l("Budget"), "活动预算", ("budget", "预算"), max_length=32),
        ImportField("expected_cost", _l("Expected cost"), "预计费用", ("expected cost", "预计成本"), max_length=32),
        ImportField("actual_cost", _l("Actual cost"), "实际费用", ("actual cost", "实际成本"), max_length=32),
        ImportField("participants", _l("Participants"), "参与人数", ("participants", "人数"), max_length=12),
        ImportField("owner", _l("Owner"), "负责人", ("owner", "负责人"), USER,
                    note=_l("User name or full name; empty = you.")),
        ImportField("note", _l("Notes"), "备注", ("note", "notes", "备注"), max_length=TEXT_LIMIT),
    ),
    # Managers plan and run campaigns (admins have every permission); reps read the campaigns
    # of their department (to tag leads) and export the evaluation; Read Only reads.
    roles={"Sales Manager": "read|write|delete|export", "Sales Rep": "read|export", "Read Only": "read"},
    menu_category="Marketing", menu_icon="fa-bullhorn",
    search=_search,
    demo=build_demo,
))
