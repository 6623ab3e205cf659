"""The dedup tool: clusters of likely duplicates in the user's scope (stored by a
background scan and kept current on every save: ``app.services.dedup_clusters``; admins
may rescan), a side-by-side
review, and a merge into one survivor (a sensitive action: TOTP step-up); a pair reviewed
as a false match is dismissed ("Not duplicates") and listed under *Dismissed*, where it can
be restored. Dismissing and restoring need the merge permission (managers, admins)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.clock import to_local
from app.extensions import db
from app.models.customers import Customer, FollowUp
from app.security import masking, step_up
from app.security.data_scope import scope_clause
from app.security.request_bounds import db_int
from app.services import dedup, dedup_clusters, merge
from app.services.errors import NotFound, RuleViolation
from views import approvals as approvals_views

#: (column, label) rows of the review table, in the order of the customer form.
REVIEW_FIELDS = [
    ("name", _l("Customer name")), ("credit_code", _l("Unified social credit code")),
    ("type_id", _l("Customer type")), ("industry_id", _l("Industry")), ("contact_name", _l("Contact name")),
    ("contact_phone", _l("Contact phone")), ("email", _l("E-mail")), ("address", _l("Address")),
    ("level_id", _l("Customer level")), ("source_id", _l("Source")), ("owner_id", _l("Owner")),
    ("note", _l("Note")),
]
#: Clusters per page (the rendering, not the query, is what a page costs).
PAGE = 50


def shown(customer: Customer, column: str) -> str:
    """A member's value as the review shows it (relations by label, phones masked)."""
    if column == "contact_phone":
        return masking.mask_phone(customer.contact_phone)
    if column.endswith("_id"):
        related = getattr(customer, column[:-3])
        return "" if related is None else str(related)
    value = getattr(customer, column)
    return "" if value is None else str(value)


class DuplicatesView(BaseView):
    route_base = "/duplicates"
    class_permission_name = "Duplicates"
    method_permission_name = {"index": "read", "review": "read", "merge_customers": "merge",
                              "dismissed": "merge", "dismiss": "merge", "restore": "merge", "rescan": "rescan"}
    base_permissions = ["can_read", "can_merge", "can_rescan"]
    default_view = "index"

    def _scoped(self, ids: list[int]) -> list[Customer]:
        """The requested customers, only if every one is live and in the user's scope."""
        if not ids:
            abort(404)
        found = db.session.scalars(select(Customer).where(
            Customer.id.in_(ids), Customer.archived_at.is_(None), scope_clause(g.user, Customer))).all()
        if len(found) != len(set(ids)):
            abort(404)
        return sorted(found, key=lambda c: ids.index(c.id))

    @expose("/")
    @has_access
    def index(self) -> Any:
        """The stored clusters in the user's scope, one SQL page at a time; the first visit
        after the upgrade starts the first scan (``dedup_clusters.refresh``)."""
        state = dedup_clusters.refresh(g.user)
        page = min(max(db_int(request.args.get("page")) or 1, 1), 1_000_000)
        clusters, total = dedup_clusters.clusters_in_scope(g.user, (page - 1) * PAGE, PAGE)
        ids = {cid for cluster in clusters for cid in cluster.ids}
        members = {c.id: c for c in db.session.scalars(select(Customer).options(selectinload(Customer.owner))
                                                       .where(Customer.id.in_(ids)))} if ids else {}
        return self.render_template(
            "crm/duplicates.html", clusters=clusters, members=members, total=total, page=page,
            pages=(total + PAGE - 1) // PAGE, labels={k: str(v) for k, v in dedup.RULE_LABELS.items()},
            mask=masking.mask_phone, title=_l("Duplicate customers"), may_merge=self._may_merge(), tab="clusters",
            state=state, score_label=str(_l("score")),
            may_rescan=self.appbuilder.sm.has_access("can_rescan", "Duplicates"), local=to_local,
        )

    @expose("/rescan", methods=["POST"])
    @has_access
    def rescan(self) -> Any:
        """"Rescan": a full scan in the background; refused while one runs."""
        try:
            dedup_clusters.start_scan(g.user)
        except dedup_clusters.ScanRunning as exc:
            flash(str(_l("A scan is already running (%(n)d %% done); this one was not started.",
                         n=exc.scan.processed)), "warning")
        else:
            flash(str(_l("The scan started; the list updates when it is done.")), "info")
        return redirect(url_for("DuplicatesView.index"))

    def _may_merge(self) -> bool:
        return self.appbuilder.sm.has_access("can_merge", "Duplicates")

    @expose("/dismissed")
    @has_access
    def dismissed(self) -> Any:
        """The pairs dismissed as false matches, both customers in the user's scope (restore here)."""
        page = min(max(db_int(request.args.get("page")) or 1, 1), 1_000_000)
        pairs, total = dedup.dismissed_in_scope(g.user, (page - 1) * PAGE, PAGE)
        return self.render_template(
            "crm/duplicates_dismissed.html", pairs=pairs, total=total, page=page,
            pages=(total + PAGE - 1) // PAGE, local=to_local, may_merge=True, tab="dismissed",
            title=_l("Duplicate customers"),
        )

    @expose("/review")
    @has_access
    def review(self) -> Any:
        ids = [db_int(v) for v in request.args.get("ids", "").split(",") if v.strip().isdigit()]
        if None in ids:
            abort(404)
        customers = self._scoped(ids)
        follow_ups = dict(db.session.execute(
            select(FollowUp.customer_id, func.count(FollowUp.id)).where(FollowUp.customer_id.in_(ids))
            .group_by(FollowUp.customer_id)).all())
        picked = merge.default_picks(customers[0], customers[1:])
        dismissed = dedup.dismissed_among(c.id for c in customers)
        done = {pair.pair for pair in dismissed}
        # the first pair still to review (pre-selected in "Not duplicates"); None: all dismissed
        open_pair = next(((a, b) for i, a in enumerate(customers) for b in customers[i + 1:]
                          if dedup.ordered(a.id, b.id) not in done), None)
        return self.render_template(
            "crm/duplicate_review.html", customers=customers, fields=REVIEW_FIELDS, shown=shown,
            picked={column: picked.get(column, customers[0].id) for column, _ in REVIEW_FIELDS},
            follow_ups=follow_ups, may_merge=self._may_merge(), dismissed=dismissed, open_pair=open_pair,
            by_id={c.id: c for c in customers}, local=to_local, reason_length=dedup.REASON_LENGTH,
            title=_l("Review duplicates"),
        )

    def _back(self, settled: bool = False) -> Any:
        """Where a dismiss/restore form returns (``back``): the review it came from (``ids``),
        unless ``settled`` left no pair of it to review, or the dismissed list; else the
        cluster list. Built from ids, never from a posted URL."""
        ids = [v for v in request.form.get("ids", "").split(",") if v.isdigit()]
        back = request.form.get("back")
        if back == "review" and len(ids) >= 2 and not (settled and len(ids) == 2):
            return redirect(url_for("DuplicatesView.review", ids=",".join(ids)))
        if back == "dismissed":
            return redirect(url_for("DuplicatesView.dismissed"))
        return redirect(url_for("DuplicatesView.index"))

    @expose("/dismiss", methods=["POST"])
    @has_access
    def dismiss(self) -> Any:
        """"Not duplicates": ``dedup.dismiss_pair`` on the two posted customers (``a``, ``b``)."""
        try:
            pair = dedup.dismiss_pair(g.user, request.form.get("a"), request.form.get("b"),
                                      request.form.get("reason"))
            codes = (pair.customer_low.code, pair.customer_high.code)
            db.session.commit()
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return self._back()
        except IntegrityError:  # the same pair dismissed at the same moment by someone else
            db.session.rollback()
            flash(str(_l("These customers were already marked as not duplicates.")), "info")
            return self._back()
        flash(str(_l("%(a)s and %(b)s are marked as not duplicates; the duplicate list no longer pairs them.",
                     a=codes[0], b=codes[1])), "success")
        return self._back(settled=True)

    @expose("/restore", methods=["POST"])
    @has_access
    def restore(self) -> Any:
        """Undo a dismissal (``dedup.restore_pair``): the pair may group again."""
        try:
            dedup.restore_pair(g.user, request.form.get("a"), request.form.get("b"))
            db.session.commit()
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return self._back()
        flash(str(_l("The pair is no longer dismissed; it shows among the duplicates again if it still matches.")),
              "success")
        return self._back()

    @expose("/merge", methods=["POST"])
    @has_access
    def merge_customers(self) -> Any:
        ids = [v for v in request.form.getlist("ids") if v.isdigit()]
        picks = {column: db_int(request.form[f"pick_{column}"]) for column, _ in REVIEW_FIELDS
                 if db_int(request.form.get(f"pick_{column}")) is not None}
        try:
            survivor = merge.merge_customers(ids, request.form.get("survivor"), picks, g.user)
        except step_up.StepUpRequired as exc:
            db.session.rollback()
            return step_up.refusal(exc)
        except NotFound:
            db.session.rollback()
            abort(404)
        except RuleViolation as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(url_for("DuplicatesView.review", ids=",".join(ids)))
        db.session.commit()
        flash(str(_l("Merged into %(code)s; the other codes now point to it.", code=survivor.code)), "success")
        approvals_views.flash_held(survivor.held_for_approval)  # a picked level waits for approval
        return redirect(url_for("CustomerView.show", pk=survivor.id))
