"""The demo's issue-17 data (app.services.demo_setup._demo_reports, orders.build_demo): six
months of closed orders, this year's targets and the manager's shared weekly report, so a
new user's dashboards and reports are not empty."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from app import clock
from app.extensions import db
from app.models.orders import Delivery, DeliveryLine, OrderLine, Payment, SalesOrder
from app.models.org import CrmUser
from app.models.reports import SalesTarget
from app.models.sales import Product
from app.services import demo_data, orders, reports
from app.services.demo_setup import _demo_reports
from tests.conftest import user_id


def test_demo_sells_over_six_months_sets_targets_and_shares_a_weekly_report(app: Any, make_customer: Any) -> None:
    owners = ("manager", "rep_a", "rep_b", "rep_c")
    for index in range(24):
        make_customer(owners[index % 4], name=f"演示客户 {index}")
    with app.app_context():
        try:
            demo_data.build_demo_products(db.session)
            people = [db.session.get(CrmUser, user_id(name)) for name in owners]
            made = orders.build_demo(db.session, people)
            _demo_reports(people)
            db.session.commit()
            months = {day.replace(day=1) for day in db.session.scalars(select(SalesOrder.order_date))}
            assert made == 24 and len(months) == 4  # this month's 3 orders and 21 closed ones back to 3 months
            assert db.session.scalar(select(func.count(SalesTarget.id))) == 4 * 12
            this_month = clock.local_today().replace(day=1)
            assert all(t.amount > 0 for t in db.session.scalars(select(SalesTarget).where(SalesTarget.month == this_month)))
            rep = db.session.get(CrmUser, user_id("rep_a"))
            (shared,) = reports.visible(rep)
            assert shared.schedule == "weekly" and shared.owner_id == user_id("manager")
            result = reports.run(reports.spec_of(shared), rep)
            assert sum(value for _a, _b, value in result.rows) == 6  # rep_a's own customers only
        finally:
            db.session.rollback()
            for model in (Payment, DeliveryLine, Delivery, OrderLine, SalesOrder, Product):  # FK order
                db.session.execute(delete(model))
            db.session.commit()
