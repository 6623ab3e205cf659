"""Scope attacks on the dashboards (issue 17): a rep's home and dashboard never show another
rep's customers or amounts, a manager cannot reach another department through the filters,
a rep cannot drill into another dashboard's metric, and drill-down lists hold only what the
number counts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from app import clock
from tests.app.services.test_pipeline import _clean_opportunities, add_opportunity  # noqa: F401
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai")

NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)
FIGURE_JSON = re.compile(r'<script type="application/json" id="figure-data-(\w+)"[^>]*>(.*?)</script>', re.S)


def figures(html: str) -> dict[str, dict[str, Any]]:
    return {key: json.loads(body) for key, body in FIGURE_JSON.findall(html)}


def refused(response: Any) -> bool:
    return response.status_code == 403 or (response.status_code == 302 and "/login" in response.location)


@pytest.fixture
def others(app: Any, make_customer: Any) -> dict[str, int]:
    """rep_b (East Team) and rep_c (South) records with names and amounts nobody else has."""
    make_customer("rep_b", name="Secret Bravo Ltd", created_on=datetime(2026, 3, 3, tzinfo=UTC))
    make_customer("rep_c", name="Secret Charlie Ltd", created_on=datetime(2026, 3, 4, tzinfo=UTC))
    with app.app_context():
        add_opportunity("rep_b", "proposal", "777777.77", title="Bravo deal")
        add_opportunity("rep_c", "negotiation", "888888.88", title="Charlie deal")
        return {name: user_id(name) for name in ("rep_a", "rep_b", "rep_c", "manager")}


def test_rep_home_and_dashboard_never_show_another_reps_records(client, auth, others, make_customer):
    make_customer("rep_a", name="Mine Alpha", created_on=datetime(2026, 3, 5, tzinfo=UTC))
    auth.login("rep_a")
    with clock.frozen(NOW):
        pages = [client.get("/").text, client.get("/dashboards/sales").text]
        drills = [client.get(link).text for page in pages for fig in figures(page).values()
                  for link in fig["links"] if link]
    for html in pages + drills:
        for secret in ("Secret Bravo", "Secret Charlie", "777,777.77", "777777.77", "888,888.88", "888888.88"):
            assert secret not in html
    assert figures(pages[1])["new_customers"]["value"] == 1
    assert any("Mine Alpha" in html for html in drills)


def test_rep_cannot_filter_on_another_rep(client, auth, others):
    auth.login("rep_a")
    with clock.frozen(NOW):
        for args in (f"owner={others['rep_b']}", f"owner={others['rep_c']}"):
            response = client.get(f"/dashboards/sales?{args}")
            assert response.status_code == 200 and "alert-danger" in response.text
            assert figures(response.text)["new_customers"]["value"] == 0  # default filters: own records
            assert client.get(f"/dashboards/drill/new_customers?{args}").status_code == 400


def test_manager_cannot_see_south_through_owner_or_department(client, auth, others, app):
    with app.app_context():
        from app.extensions import db
        from app.models.org import Department

        south = db.session.query(Department).filter_by(name="South").one().id
        db.session.remove()
    auth.login("manager")
    with clock.frozen(NOW):
        for args in (f"owner={others['rep_c']}", f"department={south}"):
            response = client.get(f"/dashboards/manager?{args}")
            assert response.status_code == 200 and "alert-danger" in response.text, args
            assert "Secret Charlie" not in response.text and "888,888.88" not in response.text
            assert client.get(f"/dashboards/drill/new_customers?{args}").status_code == 400
            assert client.get(f"/dashboards/manager/export/xlsx?{args}").status_code == 400
        page = client.get("/dashboards/sales").text
        drill = client.get("/dashboards/drill/new_customers").text
    assert figures(page)["new_customers"]["value"] == 1  # rep_b's (East Team), not rep_c's
    assert "Secret Bravo" in drill and "Secret Charlie" not in drill
    # the owner choices offered are the manager's tree only
    assert f'value="{others["rep_c"]}"' not in page and f'value="{others["rep_b"]}"' in page


@pytest.mark.parametrize("key", ["funnel", "sales_by_rep", "open_tickets_by_priority", "users_online", "failed_jobs"])
def test_rep_may_not_drill_into_another_dashboards_metric(client, auth, key, app):
    from app.services import metrics

    with app.app_context():
        if key not in metrics.METRICS or metrics.METRICS[key].records is None:
            pytest.skip(f"{key} has no list (yet)")
    auth.login("rep_a")
    assert refused(client.get(f"/dashboards/drill/{key}"))


def test_service_may_not_drill_into_the_managers_metrics(client, auth, app):
    from app.services import metrics

    with app.app_context():
        keys = [k for k, m in metrics.METRICS.items() if m.dashboard == "manager" and m.records is not None]
    if not keys:
        pytest.skip("no manager metric with a list yet")
    auth.login("service")
    for key in keys:
        assert refused(client.get(f"/dashboards/drill/{key}")), key
