"""The role dashboards (issue 17, views/dashboards.py): who may open which page, the numbers
shown against a hand-made fixture (time-zone boundaries at a month end in Asia/Shanghai),
drill-down lists that match their numbers, bad filters, both languages, exports."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import escape
from pypdf import PdfReader

from app import clock
from app.services import report_export
from tests.app.services.test_pipeline import _clean_opportunities, add_opportunity  # noqa: F401
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai")

#: Mid-March 2026 in Shanghai: the month runs from 2026-02-28 16:00 UTC to 2026-03-31 16:00 UTC.
NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)
PAGES = ("sales", "manager", "service", "admin")
#: username -> the dashboard pages the role may open.
ALLOWED = {
    "rep_a": {"sales"},
    "manager": {"sales", "manager"},
    "service": {"sales", "service"},
    "viewer": {"sales", "manager", "service"},
    "admin": set(PAGES),
}
FIGURE_JSON = re.compile(r'<script type="application/json" id="figure-data-(\w+)"[^>]*>(.*?)</script>', re.S)


def figures(html: str) -> dict[str, dict[str, Any]]:
    """The figures a page embeds for its charts (metrics.Figure.as_dict()), by key."""
    return {key: json.loads(body) for key, body in FIGURE_JSON.findall(html)}


def refused(response: Any) -> bool:
    """Refused like the rest of the app: 403, or FAB's redirect to the login page."""
    return response.status_code == 403 or (response.status_code == 302 and "/login" in response.location)


def drill_total(client: Any, link: str) -> int:
    response = client.get(link)
    assert response.status_code == 200, link
    return int(re.search(r'<span id="drill-total" class="hidden">(\d+)</span>', response.text).group(1))


def test_every_figure_placed_is_a_metric_of_that_dashboard(app):
    from app.services import metrics
    from views.dashboards import PAGES as LAYOUT

    with app.app_context():
        placed = {key: page for page, keys in LAYOUT.items() for key in keys}
        assert {key: metrics.METRICS[key].dashboard for key in placed if key in metrics.METRICS} == placed
        assert set(placed) == set(metrics.METRICS)  # every metric has a place, every place a metric


@pytest.mark.parametrize("username", sorted(ALLOWED))
def test_each_page_opens_for_its_roles_and_is_refused_to_the_others(client, auth, username):
    auth.login(username)
    for page in PAGES:
        response = client.get(f"/dashboards/{page}")
        if page in ALLOWED[username]:
            assert response.status_code == 200, (username, page)
            assert 'id="dashboard-filters"' in response.text
        else:
            assert refused(response), (username, page, response.status_code)


def test_anonymous_is_sent_to_login_from_pages_drill_and_export(client):
    for path in ("/dashboards/sales", "/dashboards/manager", "/dashboards/drill/new_customers",
                 "/dashboards/manager/export/xlsx"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.location, path


def _customers_around_month_start(make_customer: Any) -> None:
    """rep_a: 3 customers in March 2026 (Shanghai), 2 in February (one at 23:30 on 28 Feb
    Shanghai time, i.e. 15:30 UTC: still February); rep_b (East Team) 1 in March."""
    march = [datetime(2026, 2, 28, 16, 30, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC),
             datetime(2026, 3, 31, 15, 59, tzinfo=UTC)]
    february = [datetime(2026, 2, 28, 15, 30, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC)]
    for i, at in enumerate(march):
        make_customer("rep_a", name=f"March A{i}", created_on=at)
    for i, at in enumerate(february):
        make_customer("rep_a", name=f"February A{i}", created_on=at)
    make_customer("rep_b", name="March B", created_on=datetime(2026, 3, 2, tzinfo=UTC))


def test_rep_kpi_tile_shows_this_month_vs_last_in_the_crm_zone(client, auth, make_customer):
    _customers_around_month_start(make_customer)
    auth.login("rep_a")
    with clock.frozen(NOW):
        page = client.get("/dashboards/sales").text
    tile = figures(page)["new_customers"]
    assert (tile["value"], tile["previous"]) == (3, 2)
    block = page[page.index('id="figure-new_customers"'):]
    block = block[:block.index("</script>")]
    assert re.search(r">\s*3\s*</a>", block) and "▲ 50.0%" in block  # value, change
    assert 'class="crm-kpi-previous-value">2<' in block


def test_manager_sees_the_department_and_a_filter_narrows_it(client, auth, make_customer, app):
    _customers_around_month_start(make_customer)
    make_customer("rep_c", name="South March", created_on=datetime(2026, 3, 5, tzinfo=UTC))
    with app.app_context():
        rep_b_id = user_id("rep_b")
    auth.login("manager")
    with clock.frozen(NOW):
        mine = figures(client.get("/dashboards/sales").text)["new_customers"]
        rep_b = figures(client.get(f"/dashboards/sales?owner={rep_b_id}").text)["new_customers"]
        february = figures(client.get("/dashboards/sales?period=2026-02").text)["new_customers"]
    assert mine["value"] == 4  # rep_a 3 + rep_b 1 (East tree); South's not counted
    assert rep_b["value"] == 1
    assert (february["value"], february["previous"]) == (2, 0)


def test_drill_down_lists_as_many_records_as_each_number(client, auth, make_customer, make_follow_up, app):
    _customers_around_month_start(make_customer)
    customer = make_customer("rep_a", name="Followed", created_on=datetime(2026, 3, 3, tzinfo=UTC))
    for day in (1, 2, 20):
        make_follow_up(customer, "rep_a", followed_at=datetime(2026, 3, day, 8, tzinfo=UTC))
    make_follow_up(customer, "rep_a", followed_at=datetime(2026, 2, 28, 15, tzinfo=UTC))  # February in Shanghai
    with app.app_context():
        add_opportunity("rep_a", "proposal", "1000.00")
        add_opportunity("rep_a", "negotiation", "2500.50")
        add_opportunity("rep_b", "proposal", "300.00")
    auth.login("manager")
    checked = 0
    with clock.frozen(NOW):
        for page in ("sales", "manager"):
            for key, fig in figures(client.get(f"/dashboards/{page}").text).items():
                if fig["unit"] != "count":
                    continue
                if fig["chart"] == "number" and fig["links"] and fig["links"][0]:
                    assert drill_total(client, fig["links"][0]) == Decimal(fig["value"] or 0), key
                    checked += 1
                elif fig["series"]:
                    for link, value in zip(fig["links"], fig["series"][0]["values"], strict=False):
                        if link:
                            assert drill_total(client, link) == Decimal(value or 0), (key, link)
                            checked += 1
    assert checked >= 2
    with clock.frozen(NOW):
        follow = figures(client.get("/dashboards/sales").text)["follow_ups"]
    assert follow["value"] == 3


def test_drill_list_links_each_record_to_its_page_and_pages_by_fifty(client, auth, make_customer):
    for i in range(53):
        make_customer("rep_a", name=f"Bulk {i:02d}", created_on=datetime(2026, 3, 10, tzinfo=UTC))
    auth.login("rep_a")
    with clock.frozen(NOW):
        first = client.get("/dashboards/drill/new_customers?period=2026-03")
        second = client.get("/dashboards/drill/new_customers?period=2026-03&page=1")
    assert first.status_code == 200 and second.status_code == 200
    assert 'id="drill-total" class="hidden">53<' in first.text
    assert first.text.count("/customerview/show/") == 50 and second.text.count("/customerview/show/") == 3
    assert "Bulk" in second.text and 'id="drill-pages"' in first.text


def test_bad_filters_show_the_page_with_a_message_not_a_500(client, auth):
    auth.login("manager")
    for args in ("period=2026-13", "period=soon", "owner=abc", "department=999999", "owner=99999999999999999999"):
        response = client.get(f"/dashboards/manager?{args}")
        assert response.status_code == 200, args
        assert 'alert-danger' in response.text or "alert alert-danger" in response.text, args


def test_bad_drill_requests_are_refused_cleanly(client, auth):
    auth.login("admin")
    assert client.get("/dashboards/drill/no_such_metric").status_code == 404
    assert client.get("/dashboards/drill/new_customers?category=nonsense").status_code == 404
    assert client.get("/dashboards/drill/new_customers?page=-1").status_code == 400
    assert client.get("/dashboards/drill/new_customers?period=2026-99").status_code == 400
    assert client.get("/dashboards/nowhere/export/xlsx").status_code == 404


def test_the_zh_page_has_chinese_labels_and_lang(client, auth, app):
    auth.login("manager")
    client.get("/lang/zh")
    with clock.frozen(NOW):
        page = client.get("/dashboards/manager").text
    # the charts draw in Chinese (ECharts "ZH") and the page says its language
    assert 'data-locale="ZH"' in page and 'data-locale="EN"' not in page
    assert re.search(r'<html[^>]*lang="zh"', page)
    with app.test_request_context(), force_locale("zh"):
        wanted = [_("Filter"), _("Department"), _("Sales dashboard"), _("Period")]
    assert wanted[0] != "Filter" and all(text in page for text in wanted)
    client.get("/lang/en")
    with clock.frozen(NOW):
        english = client.get("/dashboards/manager").text
    assert "Sales dashboard" in english and 'data-locale="ZH"' not in english
    assert re.search(r'<html[^>]*lang="en"', english)


def test_charts_are_served_locally_behind_the_nonce(client, auth):
    auth.login("rep_a")
    page = client.get("/dashboards/sales").text
    for script in ("vendor/echarts/echarts.min.js", "crm/charts.js"):
        tag = re.search(r'<script src="[^"]*' + re.escape(script) + r'"[^>]*>', page)
        assert tag and "nonce=" in tag.group(0), script
        assert client.get(re.search(r'src="([^"]+)"', tag.group(0)).group(1)).status_code == 200
    assert client.get("/static/vendor/echarts/LICENSE").status_code == 200


def test_figures_have_their_definition_and_a_table(client, auth, make_customer):
    make_customer("rep_a", name="Help", created_on=datetime(2026, 3, 10, tzinfo=UTC))
    auth.login("manager")
    with clock.frozen(NOW):
        page = client.get("/dashboards/manager").text
    for key, fig in figures(page).items():
        block = page[page.index(f'id="figure-{key}"'):]
        heading = block[:block.index('class="panel-body"')]
        assert f'title="{escape(fig["help"])}"' in heading and "fa-info-circle" in heading, key
        if fig["chart"] not in ("number",) and fig["categories"]:
            assert "crm-figure-table" in block[:block.index("</script>")], key


def test_export_needs_reports_export_and_sends_the_pages_figures(client, auth, monkeypatch, make_customer):
    make_customer("rep_a", name="Exported", created_on=datetime(2026, 3, 10, tzinfo=UTC))
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(report_export, "xlsx", lambda title, figs, pivot=None: calls.append(
        (title, [f.key for f in figs])) or b"PK-xlsx")
    monkeypatch.setattr(report_export, "pdf", lambda title, figs, pivot=None, subtitle="": calls.append(
        (title, [f.key for f in figs])) or b"%PDF-1.7")
    auth.login("manager")
    with clock.frozen(NOW):
        page = client.get("/dashboards/manager").text
        assert 'id="dashboard-export-xlsx"' in page
        xlsx = client.get("/dashboards/manager/export/xlsx?period=2026-03")
        pdf = client.get("/dashboards/manager/export/pdf?period=2026-03")
    assert xlsx.status_code == 200 and xlsx.data == b"PK-xlsx" and "attachment" in xlsx.headers["Content-Disposition"]
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert calls[0][1] == list(figures(page)) and calls[0][0] == "Sales dashboard"
    auth.logout()
    auth.login("viewer")  # Read Only: may look, may not export
    assert 'id="dashboard-export-xlsx"' not in client.get("/dashboards/manager").text
    assert client.get("/dashboards/manager/export/xlsx").status_code == 403
    auth.logout()
    auth.login("rep_a")  # may export, but not a page they may not open
    assert refused(client.get("/dashboards/manager/export/pdf"))
    assert len(calls) == 2


def test_home_page_shows_the_rep_dashboard_and_managers_get_a_link(client, auth, make_customer):
    make_customer("rep_a", name="Home", created_on=datetime(2026, 3, 10, tzinfo=UTC))
    auth.login("rep_a")
    with clock.frozen(NOW):
        home = client.get("/").text
    assert 'id="home-dashboard"' in home and figures(home)["new_customers"]["value"] == 1
    assert 'id="follow-ups-due"' in home  # what was there stays
    assert 'id="home-manager-dashboard"' not in home
    auth.logout()
    auth.login("manager")
    assert 'id="home-manager-dashboard"' in client.get("/").text


def test_real_export_files_hold_the_pages_figures(client, auth, make_customer, app):
    make_customer("rep_a", name="Exported", created_on=datetime(2026, 3, 10, tzinfo=UTC))
    auth.login("manager")
    client.get("/lang/zh")
    with clock.frozen(NOW):
        xlsx = client.get("/dashboards/sales/export/xlsx?period=2026-03")
        pdf = client.get("/dashboards/sales/export/pdf?period=2026-03")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    assert pdf.status_code == 200 and pdf.data[:4] == b"%PDF"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    with app.test_request_context(), force_locale("zh"):
        from app.services import metrics

        title = str(metrics.METRICS["new_customers"].title)
    assert title in text
