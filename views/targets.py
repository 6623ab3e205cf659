"""Reports → Sales targets (Admin): one year's grid, reps × 12 months, saved in one go.

Rules: 002 §七 and §十(二) (target attainment), 003 第三步 4 (月度销售业绩报表 against targets).
The rules live in ``app.services.targets`` (admin only, amount >= 0, audited); this page
reads the grid and hands every cell to ``targets.set_year``. A bad cell is shown in red
next to its input and nothing is stored.
"""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _l

from app.clock import local_today
from app.extensions import db
from app.services import targets
from app.services.errors import RuleViolation

#: The years the picker offers around this year.
YEARS_BACK, YEARS_AHEAD = 3, 2


def chosen_year(raw: Any) -> int:
    """The ``year`` argument, or this year (CRM zone) when missing or out of range."""
    this_year = local_today().year
    try:
        year = int(str(raw))
    except (TypeError, ValueError):
        return this_year
    return year if this_year - 10 <= year <= this_year + 10 else this_year


def grid_values(form: Any, rep_ids: list[int]) -> dict[tuple[int, int], str]:
    """Form inputs ``target-<rep>-<month>`` -> {(rep id, month): text}, for the listed reps only."""
    return {(rep, month): form.get(f"target-{rep}-{month}", "")
            for rep in rep_ids for month in range(1, 13)}


class SalesTargetView(BaseView):
    """``/targets/``: GET the grid for ``?year=``; POST saves every changed cell."""

    route_base = "/targets"
    class_permission_name = "SalesTarget"
    method_permission_name = {"index": "edit"}
    default_view = "index"

    @expose("/", methods=["GET", "POST"])
    @has_access
    def index(self) -> Any:
        year = chosen_year(request.values.get("year"))
        reps = targets.target_reps()
        rep_ids = [rep.id for rep in reps]
        values = {key: str(amount) for key, amount in targets.targets_for_year(year, rep_ids).items()}
        errors: dict[str, str] = {}
        if request.method == "POST":
            submitted = grid_values(request.form, rep_ids)
            try:
                changed = targets.set_year(g.user, year, submitted)
            except RuleViolation as exc:
                db.session.rollback()
                errors = {key: str(message) for key, message in exc.errors.items()}
                values = {key: text for key, text in submitted.items()}
            else:
                db.session.commit()
                flash(str(_l("Sales targets saved (%(n)d changed).", n=changed)), "success")
                return redirect(url_for(f"{self.endpoint}.index", year=year))
        this_year = local_today().year
        page = self.render_template(
            "crm/sales_targets.html", title=_l("Sales targets"), year=year, reps=reps, values=values, errors=errors,
            months=range(1, 13), years=range(this_year - YEARS_BACK, this_year + YEARS_AHEAD + 1))
        return (page, 400) if errors else page


def register(appbuilder: Any) -> None:
    """Add Reports → Sales targets (only Admin is granted ``SalesTarget``)."""
    appbuilder.add_view(SalesTargetView, "Sales targets", label=_l("Sales targets"), icon="fa-bullseye",
                        category="Reports", category_label=_l("Reports"), category_icon="fa-bar-chart")
