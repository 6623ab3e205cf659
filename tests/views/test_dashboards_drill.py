"""Drill-down lists that explain their numbers (issue 17, story17 findings): a product's
sales list its order LINES (not whole orders), every amount column says what it holds and
its total over all records is shown, target attainment says sales ÷ target, the forecast
lists the weighted amounts; a page past the end shows the last page (never an OFFSET that
overflows); the funnel's table names its steps and shows "–" where no % applies."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from app import clock
from app.extensions import db
from tests.app.services.test_metrics import order, product_id, target
from tests.app.services.test_pipeline import _clean_opportunities, add_opportunity  # noqa: F401
from tests.views.test_dashboards import figures

pytestmark = pytest.mark.usefixtures("shanghai")

NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)
MARCH = "period=2026-03"


def _headings(html: str) -> list[str]:
    head = re.search(r'<table[^>]*id="drill-list".*?<thead>(.*?)</thead>', html, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", h).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)]


def _sum(html: str) -> str:
    return re.search(r'<tr id="drill-sum">.*?<th class="text-right">([^<]*)</th>', html, re.S).group(1)


def _number(html: str) -> str:
    return re.search(r'<strong id="drill-number">([^<]*)</strong>', html).group(1)


@pytest.fixture()
def sales(app, make_customer):
    """rep_a (East): an order of a Pump (60) and a Valve (40), another of a Pump (70); a target of 200."""
    customer = make_customer("rep_a")
    with app.app_context():
        both = order("rep_a", customer, "approved", date(2026, 3, 5), {"Pump": "60.00", "Valve": "40.00"})
        pump = order("rep_a", customer, "approved", date(2026, 3, 6), {"Pump": "70.00"})
        target("rep_a", date(2026, 3, 1), "340.00")
        yield {"both": both, "pump": pump, "product": product_id("Pump")}
        from app.models.orders import SalesOrder
        db.session.execute(db.delete(SalesOrder).where(SalesOrder.id.in_([both, pump])))
        db.session.commit()


def test_product_drill_lists_the_order_lines_that_add_up_to_the_bar(client, auth, sales):
    auth.login("manager")
    with clock.frozen(NOW):
        html = client.get(f"/dashboards/drill/sales_by_product?{MARCH}&category={sales['product']}").text
    assert _number(html) == "130.00"
    assert _headings(html) == ["Sales order", "Product", "Quantity", "Owner", "Order date", "Line amount"]
    assert _sum(html) == "130.00"  # 60 + 70: the Pump lines, not the orders' totals (100 + 70)
    body = html[html.index('id="drill-list"'):]
    assert "Valve" not in body and "100.00" not in body
    assert f"/show/{sales['both']}\"" in body and f"/show/{sales['pump']}\"" in body  # the order's page


def test_order_drills_say_order_total_and_add_up(client, auth, sales):
    auth.login("manager")
    with clock.frozen(NOW):
        page = figures(client.get(f"/dashboards/manager?{MARCH}").text)
        region = next(link for link in page["sales_by_department"]["links"] if link)
        html = client.get(region).text
    assert "Order total" in _headings(html) and "Amount" not in _headings(html)
    assert _sum(html) == _number(html) == "170.00"


def test_target_attainment_drill_says_sales_divided_by_target(client, auth, sales):
    auth.login("manager")
    with clock.frozen(NOW):
        page = figures(client.get(f"/dashboards/manager?{MARCH}").text)
        link = next(link for link in page["target_attainment"]["links"] if link)
        html = client.get(link).text
    explain = re.search(r'<p id="drill-explain">(.*?)</p>', html, re.S).group(1)
    assert "50.0% = sales 170.00" in explain and "target 340.00" in explain
    assert _sum(html) == "170.00" and "Order total" in _headings(html)


def test_forecast_drill_shows_the_weighted_amounts(client, auth, app):
    with app.app_context():
        add_opportunity("rep_a", "proposal", "1000.00", close=date(2026, 3, 20))
    auth.login("rep_a")
    with clock.frozen(NOW):
        html = client.get(f"/dashboards/drill/forecast_month?{MARCH}").text
    headings = _headings(html)
    assert "Opportunity amount (unweighted)" in headings and "Weighted amount" in headings
    assert "500.00" in html[html.index('id="drill-list"'):]  # 1,000.00 × 50 %
    assert _number(html) == "500.00"


def test_a_page_past_the_end_shows_the_last_page(client, auth, make_customer):
    from views.dashboards import DRILL_MAX_PAGE

    for i in range(53):
        make_customer("rep_a", name=f"Bulk {i:02d}", created_on=datetime(2026, 3, 10, tzinfo=UTC))
    auth.login("rep_a")
    with clock.frozen(NOW):
        for page in (2, 999, DRILL_MAX_PAGE):
            response = client.get(f"/dashboards/drill/new_customers?{MARCH}&page={page}")
            assert response.status_code == 200, page
            assert "Page 2 of 2" in response.text and response.text.count("/customerview/show/") == 3, page
        for page in (DRILL_MAX_PAGE + 1, 2**63 - 1, 2**62):
            assert client.get(f"/dashboards/drill/new_customers?{MARCH}&page={page}").status_code == 400, page
        empty = client.get("/dashboards/drill/new_customers?period=2020-01&page=5")
    assert empty.status_code == 200 and "No records." in empty.text


def test_funnel_table_names_its_steps_and_units_come_from_the_series(client, auth):
    import views.dashboards as dashboards

    assert not hasattr(dashboards, "SERIES_UNITS")
    auth.login("manager")
    with clock.frozen(NOW):
        html = client.get(f"/dashboards/manager?{MARCH}").text
    funnel = figures(html)["funnel"]
    assert funnel["units"][:2] == ["count", "percent"] and funnel["series"][1]["unit"] == "percent"
    assert funnel["dimension"] == "Step" and funnel["keys"][:3] == ["leads", "qualified", "converted"]
    block = html[html.index('id="figure-funnel"'):]
    assert re.search(r'<th scope="col" class="crm-figure-dimension">Step</th>', block)
    assert ">–</span>" in block[:block.index("</table>")]  # no % at the first step
    pipeline = figures(client.get(f"/dashboards/sales?{MARCH}").text)["pipeline_by_stage"]
    assert pipeline["units"] == ["money", "count"]
