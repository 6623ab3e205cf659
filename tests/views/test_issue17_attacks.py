"""Attacks on issue 17 (dashboards, drill-downs, report builder, exports, targets) from the
outside (anonymous, bad input, injection) and the inside (a rep or a manager reaching for
records or reports that are not theirs). The attacker's findings are fixed; each test keeps one. A test marked ``xfail(strict=True)`` would be a BUG the
attacker found: it fails while the product is wrong."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import openpyxl
import pypdf
import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models.reports import SavedReport
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai")

NOW = datetime(2026, 11, 15, 4, 0, tzinfo=UTC)
FIGURE_JSON = re.compile(r'<script type="application/json" id="figure-data-(\w+)"[^>]*>(.*?)</script>', re.S)
XSS = '</script><img src=x onerror=alert(1)>"><script>alert(2)</script>'
FORMULA = '=HYPERLINK("http://x","y")'
CONTACTS = [("source", "customers"), ("dimensions", "contact_name"), ("measure", "count"), ("chart", "bar")]
LEVEL = [("source", "customers"), ("dimensions", "level"), ("measure", "count"), ("chart", "bar")]


def figures(html: str) -> dict[str, dict[str, Any]]:
    return {key: json.loads(body) for key, body in FIGURE_JSON.findall(html)}


def refused(response: Any) -> bool:
    return response.status_code in (401, 403) or (response.status_code == 302 and "/login" in response.location)


def saved(app: Any, owner: str, name: str, pairs: list[tuple[str, str]] = LEVEL) -> int:
    with app.app_context():
        report = SavedReport(owner_id=user_id(owner), name=name, record_type=dict(pairs)["source"],
                             definition=json.dumps({"dimensions": [v for k, v in pairs if k == "dimensions"],
                                                    "measure": "count", "chart": "bar"}))
        db.session.add(report)
        db.session.commit()
        pk = report.id
        db.session.remove()
        return pk


# --- bad input: never a 500 ---------------------------------------------------------------------

@pytest.mark.parametrize("period", ["2026-13", "0000-01", "9999-12", "2026-1", "abc", "2026-00", "１２３４-05"])
def test_dashboard_bad_period_is_a_message_not_a_500(client, auth, period):
    auth.login("manager")
    for path in ("/dashboards/manager", "/dashboards/sales"):
        response = client.get(f"{path}?{urlencode({'period': period})}")
        assert response.status_code == 200 and "alert-danger" in response.text, (path, period)
    assert client.get(f"/dashboards/drill/new_customers?{urlencode({'period': period})}").status_code == 400
    assert client.get(f"/dashboards/manager/export/xlsx?{urlencode({'period': period})}").status_code == 400


@pytest.mark.parametrize("period", ["1900-01", "9998-12"])
def test_dashboard_extreme_valid_periods_render(client, auth, period):
    auth.login("admin")
    for page in ("manager", "sales", "service", "admin"):
        assert client.get(f"/dashboards/{page}?period={period}").status_code == 200, page
    assert client.get(f"/dashboards/drill/new_customers_trend?period={period}&category={period}").status_code == 200


@pytest.mark.parametrize("page", ["-1", "abc", "1e3", "99999999999999999999999"])
def test_drill_bad_page_numbers_are_400(client, auth, page):
    auth.login("rep_a")
    assert client.get(f"/dashboards/drill/new_customers?page={page}").status_code == 400


def test_drill_huge_page_number_is_not_a_500(client, auth):
    auth.login("rep_a")
    response = client.get(f"/dashboards/drill/new_customers?page={2**63 - 1}")
    assert response.status_code in (200, 400, 404)


@pytest.mark.parametrize("category", ["abc", "1.5", "-1", "' OR 1=1 --", "999999999999999999999", "None", ""])
def test_drill_wrong_category_is_404(client, auth, category):
    auth.login("manager")
    for key in ("pipeline_by_stage", "sales_by_rep", "stale_opportunities", "funnel", "new_customers_trend"):
        assert client.get(f"/dashboards/drill/{key}?{urlencode({'category': category})}").status_code == 404, key


def test_drill_unknown_metric_is_404(client, auth):
    auth.login("admin")
    for key in ("nope", "__init__", "METRICS", "..%2f..%2fetc"):
        assert client.get(f"/dashboards/drill/{key}").status_code == 404


@pytest.mark.parametrize("pairs, field", [
    ([("source", "customers"), ("dimensions", "level"), ("dimensions", "industry"), ("dimensions", "type")],
     "dimensions"),
    ([("source", "customers"), ("dimensions", "level"), ("measure", "sum:name")], "measure"),
    ([("source", "customers"), ("dimensions", "level"), ("measure", "max:id")], "measure"),
    ([("source", "customers"), ("dimensions", "name; DROP TABLE customer")], "dimensions"),
    ([("source", "customers"), ("dimensions", "level"), ("dimensions", "level")], "dimensions"),
    ([("source", "crm_user"), ("dimensions", "level")], "source"),
    ([("source", "customers"), ("dimensions", "level"), ("period_start", "2026-05-01"),
      ("period_end", "2026-04-01")], "period_end"),
    ([("source", "customers"), ("dimensions", "level"), ("period_start", "2026-02-30")], "period_start"),
    ([("source", "customers"), ("dimensions", "level"), ("owner", "abc")], "owner"),
    ([("source", "customers"), ("dimensions", "level"), ("owner", "99999999999999999999")], "owner"),
    ([("source", "customers"), ("dimensions", "level"), ("level", "1 OR 1=1")], "level"),
    ([("source", "customers"), ("dimensions", "level"), ("chart", "<script>")], "chart"),
])
def test_bad_report_specs_are_400_everywhere(client, auth, api, pairs, field):
    auth.login("manager")
    query = urlencode(pairs)
    page = client.get(f"/reports/builder?{query}")
    assert page.status_code == 400 and "<script>alert" not in page.text
    assert client.get(f"/reports/export/xlsx?{query}").status_code == 400
    response = client.get(f"/api/v1/report/run?{query}", headers=api("manager"))
    assert response.status_code == 400 and field in response.get_json()["errors"]


def test_report_period_start_year_one_is_not_a_500(client, auth, api):
    query = urlencode(LEVEL + [("period_start", "0001-01-01")])
    response = client.get(f"/api/v1/report/run?{query}", headers=api("manager"))
    assert response.status_code in (200, 400)


def test_report_period_end_9999_12_31_is_not_a_500(client, auth, api):
    query = urlencode(LEVEL + [("period_end", "9999-12-31")])
    response = client.get(f"/api/v1/report/run?{query}", headers=api("manager"))
    assert response.status_code in (200, 400)


def test_report_spec_with_thousands_of_keys_is_bounded(client, auth):
    auth.login("manager")
    pairs = LEVEL + [(f"junk{i}", "x") for i in range(3000)]
    assert client.get(f"/reports/builder?{urlencode(pairs)}").status_code == 200


# --- injection ----------------------------------------------------------------------------------

def test_hostile_customer_contact_name_is_escaped_in_the_builder_and_api(client, auth, make_customer, api):
    make_customer("rep_a", name="Hostile", contact_name=XSS)
    auth.login("admin")
    page = client.get(f"/reports/builder?{urlencode(CONTACTS)}")
    assert page.status_code == 200
    assert "<img src=x" not in page.text and "<script>alert" not in page.text
    # the figure's JSON blob can hold the name, but never a raw "</script>"
    for body in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', page.text, re.S):
        assert "<" not in body
    body = client.get(f"/api/v1/report/run?{urlencode(CONTACTS)}", headers=api("admin")).get_json()
    assert XSS in body["figure"]["categories"]  # JSON data as is: the page escapes it


def test_hostile_user_name_is_escaped_on_the_dashboard_drill_and_tooltip(app, client, auth, make_customer):
    with app.app_context():
        from app.models.org import CrmUser
        rep = db.session.get(CrmUser, user_id("rep_b"))
        old = rep.first_name
        rep.first_name = XSS
        db.session.commit()
        db.session.remove()
    try:
        make_customer("rep_b", name=XSS, created_on=datetime(2026, 11, 3, tzinfo=UTC))
        with app.app_context():
            from tests.app.services.test_pipeline import add_opportunity
            add_opportunity("rep_b", "proposal", "10.00", title=XSS)
        auth.login("manager")
        with clock.frozen(NOW):
            html = client.get("/dashboards/manager").text
            drills = [client.get(link).text for fig in figures(html).values() for link in fig["links"] if link]
        assert XSS in figures(html)["pipeline_by_rep"]["categories"][0] or any(
            XSS in c for f in figures(html).values() for c in f["categories"])
        for text in [html, *drills]:
            assert "<img src=x" not in text and "<script>alert" not in text
    finally:
        with app.app_context():
            rep = db.session.get(CrmUser, user_id("rep_b"))
            rep.first_name = old
            db.session.commit()
            db.session.remove()


def test_formula_in_a_category_is_neutralised_in_the_xlsx(client, auth, make_customer):
    make_customer("rep_a", name="Formula", contact_name=FORMULA)
    make_customer("rep_a", name="Cmd", contact_name="+cmd|' /C calc'!A0")
    auth.login("admin")
    response = client.get(f"/reports/export/xlsx?{urlencode(CONTACTS)}")
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(response.data))
    texts = [c.value for ws in book.worksheets for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert not any(t.startswith(("=", "+", "-", "@")) for t in texts), texts
    assert any("HYPERLINK" in t for t in texts) and any("calc" in t for t in texts)


def test_pdf_with_emoji_arabic_and_the_longest_name_a_contact_can_have(client, auth, make_customer):
    make_customer("rep_a", name="A", contact_name=("😀🎉 客户 مرحبا " + "长" * 64)[:64])  # contact_name is 64 wide
    make_customer("rep_a", name="B", contact_name="\u202egnp.exe")
    auth.login("admin")
    response = client.get(f"/reports/export/pdf?{urlencode(CONTACTS)}")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(response.data)).pages)
    assert "客户" in text


def test_ten_thousand_categories_export_bounded(app, client, auth):
    with app.app_context():
        from app.models.customers import Customer
        from app.models.dictionaries import CustomerType
        potential = db.session.scalars(select(CustomerType).filter_by(code="potential")).one()
        owner = user_id("rep_a")
        db.session.add_all([Customer(owner_id=owner, name=f"C{i}", contact_phone="13812345678",
                                     contact_name=f"Person {i:05d}", type=potential) for i in range(10_000)])
        db.session.commit()
        db.session.remove()
    auth.login("admin")
    for fmt in ("xlsx", "pdf"):
        response = client.get(f"/reports/export/{fmt}?{urlencode(CONTACTS)}")
        assert response.status_code == 200, fmt
    response = client.get(f"/reports/builder?{urlencode(CONTACTS)}")
    assert response.status_code == 200 and "Other" in response.text  # capped at MAX_GROUPS


# --- masking and contact-data export ------------------------------------------------------------

def test_viewer_without_reveal_sees_contact_names_masked(client, auth, make_customer, api):
    make_customer("rep_a", name="Masked Co", contact_name="张三丰")
    auth.login("viewer")
    page = client.get(f"/reports/builder?{urlencode(CONTACTS)}")
    assert page.status_code == 200 and "张三丰" not in page.text and "三丰" not in page.text
    body = client.get(f"/api/v1/report/run?{urlencode(CONTACTS)}", headers=api("viewer")).get_json()
    assert "三丰" not in json.dumps(body, ensure_ascii=False)
    pairs = [("source", "customers"), ("dimensions", "level"), ("dimensions", "contact_name")]
    assert "三丰" not in client.get(f"/reports/builder?{urlencode(pairs)}").text
    follow = [("source", "follow_ups"), ("dimensions", "contact_name")]
    assert client.get(f"/reports/builder?{urlencode(follow)}").status_code in (200, 403)


def test_rep_and_service_cannot_export_contact_reports(client, auth, make_customer):
    make_customer("rep_a", name="Masked Co", contact_name="张三丰")
    for who in ("rep_a", "service"):
        auth.login(who)
        for fmt in ("xlsx", "pdf"):
            assert client.get(f"/reports/export/{fmt}?{urlencode(CONTACTS)}").status_code == 403, who
        auth.logout()
    auth.login("rep_a")
    for fmt in ("xlsx", "pdf"):
        assert client.get(f"/reports/export/{fmt}?{urlencode(CONTACTS)}").status_code == 403
    pairs = [("source", "customers"), ("dimensions", "level"), ("dimensions", "contact_name")]
    assert client.get(f"/reports/export/xlsx?{urlencode(pairs)}").status_code == 403
    follow = [("source", "follow_ups"), ("dimensions", "contact_name")]
    assert client.get(f"/reports/export/xlsx?{urlencode(follow)}").status_code in (403, 400)


def test_rep_cannot_export_a_shared_contact_report(app, client, auth, make_customer):
    make_customer("rep_a", name="Masked Co", contact_name="张三丰")
    pk = saved(app, "manager", "Contacts", CONTACTS)
    with app.app_context():
        from flask_appbuilder.security.sqla.models import Role
        report = db.session.get(SavedReport, pk)
        report.roles = list(db.session.scalars(select(Role)))
        db.session.commit()
        db.session.remove()
    auth.login("viewer")
    assert "张三丰" not in client.get(f"/reports/saved/{pk}").text
    auth.logout()
    auth.login("rep_a")
    assert client.get(f"/reports/saved/{pk}").status_code == 200
    for fmt in ("xlsx", "pdf"):
        assert client.get(f"/reports/saved/{pk}/export/{fmt}").status_code == 403


def test_drill_lists_show_no_phone_numbers(client, auth, make_customer):
    make_customer("rep_a", name="Phone Co", contact_phone="13987654321", created_on=datetime(2026, 11, 3, tzinfo=UTC))
    auth.login("manager")
    with clock.frozen(NOW):
        html = client.get("/dashboards/drill/new_customers").text
    assert "Phone Co" in html and "13987654321" not in html and "1398765" not in html


# --- saved reports of someone else --------------------------------------------------------------

def test_someone_elses_private_report_is_404_on_every_route(app, client, auth, api):
    pk = saved(app, "rep_b", "Bravo private")
    auth.login("rep_a")
    assert client.get(f"/reports/saved/{pk}").status_code == 404
    assert client.get(f"/reports/builder?report={pk}").status_code == 404
    for fmt in ("xlsx", "pdf"):
        assert client.get(f"/reports/saved/{pk}/export/{fmt}").status_code == 404
    assert client.post(f"/reports/saved/{pk}/delete").status_code == 404
    response = client.post("/reports/save", data={**dict(LEVEL), "name": "Hijack", "pk": str(pk), "version": "1"})
    assert response.status_code == 404
    assert "Bravo private" not in client.get("/reports/saved").text
    with app.app_context():
        report = db.session.get(SavedReport, pk)
        assert report is not None and report.name == "Bravo private" and report.owner_id == user_id("rep_b")


def test_manager_cannot_open_a_reps_private_report(app, client, auth):
    pk = saved(app, "rep_a", "Alpha private")
    auth.login("manager")
    assert client.get(f"/reports/saved/{pk}").status_code == 404


def test_shared_report_cannot_be_edited_or_deleted_by_a_reader(app, client, auth):
    pk = saved(app, "manager", "Shared")
    with app.app_context():
        from flask_appbuilder.security.sqla.models import Role
        report = db.session.get(SavedReport, pk)
        report.roles = list(db.session.scalars(select(Role).where(Role.name != "Admin")))
        db.session.commit()
        version = report.version
        db.session.remove()
    auth.login("rep_a")
    assert client.get(f"/reports/saved/{pk}").status_code == 200
    assert client.post(f"/reports/saved/{pk}/delete").status_code == 403
    response = client.post("/reports/save", data={**dict(LEVEL), "name": "Mine now", "pk": str(pk),
                                                  "version": str(version)})
    assert response.status_code in (403, 404)
    with app.app_context():
        assert db.session.get(SavedReport, pk).name == "Shared"


def test_rep_cannot_share_a_report_with_admin_role_or_send_it_to_the_south(app, client, auth):
    from flask_appbuilder.security.sqla.models import Role
    with app.app_context():
        admin_role = db.session.scalars(select(Role.id).where(Role.name == "Admin")).one()
        south = user_id("rep_c")
    auth.login("rep_a")
    data = {**dict(LEVEL), "name": "Try admin", "roles": [str(admin_role)]}
    assert client.post("/reports/save", data=data).status_code == 400
    data = {**dict(LEVEL), "name": "Try mail", "schedule": "weekly", "weekday": "0",
            "recipients": [str(south)]}
    assert client.post("/reports/save", data=data).status_code == 400
    with app.app_context():
        assert not db.session.scalars(select(SavedReport)).all()


# --- scope through reports ----------------------------------------------------------------------

def test_rep_report_with_another_owner_filter_counts_nothing(client, auth, make_customer, api):
    make_customer("rep_c", name="South Secret")
    make_customer("rep_b", name="Bravo Secret")
    with client.application.app_context():
        others = [user_id("rep_b"), user_id("rep_c")]
    auth.login("rep_a")
    for other in others:
        query = urlencode(LEVEL + [("owner", str(other))])
        body = client.get(f"/api/v1/report/run?{query}", headers=api("rep_a")).get_json()
        assert body is not None
        if "pivot" in body:
            assert body["pivot"]["rows"][-1][-1] in (0, None), body
    owner_dim = [("source", "customers"), ("dimensions", "owner")]
    body = client.get(f"/api/v1/report/run?{urlencode(owner_dim)}", headers=api("rep_a")).get_json()
    assert len(body["figure"]["categories"]) <= 1


def test_manager_report_never_counts_the_south(client, auth, make_customer, api, app):
    make_customer("rep_c", name="South Secret")
    make_customer("rep_a", name="East One")
    with app.app_context():
        from app.models.org import Department
        south = db.session.scalars(select(Department.id).filter_by(name="South")).one()
    for pairs in (LEVEL + [("department", str(south))], [("source", "customers"), ("dimensions", "department")],
                  [("source", "customers"), ("dimensions", "owner")]):
        body = client.get(f"/api/v1/report/run?{urlencode(pairs)}", headers=api("manager")).get_json()
        text = json.dumps(body, ensure_ascii=False)
        assert "South" not in text or pairs[-1] == ("department", str(south)), text
        if ("department", str(south)) in pairs:
            assert body["pivot"]["rows"][-1][-1] in (0, None), body


# --- permissions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/dashboards/sales", "/dashboards/manager", "/dashboards/service",
                                  "/dashboards/admin", "/dashboards/drill/new_customers",
                                  "/dashboards/manager/export/xlsx", "/reports/builder", "/reports/saved",
                                  f"/reports/builder?{urlencode(LEVEL)}", f"/reports/export/xlsx?{urlencode(LEVEL)}",
                                  "/targets/"])
def test_anonymous_is_refused(client, path):
    assert refused(client.get(path)), path


def test_api_takes_jwt_not_cookie(client, auth, api):
    auth.login("manager")
    assert client.get(f"/api/v1/report/run?{urlencode(LEVEL)}").status_code == 401
    assert client.get(f"/api/v1/report/run?{urlencode(LEVEL)}", headers=api("manager")).status_code == 200


@pytest.mark.parametrize("user, allowed", [
    ("rep_a", {"sales"}), ("manager", {"sales", "manager"}), ("service", {"sales", "service"}),
    ("viewer", {"sales", "manager", "service"}), ("admin", {"sales", "manager", "service", "admin"})])
def test_dashboard_pages_and_drills_per_role(client, auth, user, allowed):
    auth.login(user)
    drill_of = {"sales": "new_customers", "manager": "won_customers", "service": "satisfaction",
                "admin": "users_online"}
    for page in ("sales", "manager", "service", "admin"):
        page_ok = client.get(f"/dashboards/{page}").status_code == 200
        drill_ok = client.get(f"/dashboards/drill/{drill_of[page]}").status_code == 200
        assert page_ok == (page in allowed), (user, page)
        assert drill_ok == (page in allowed), (user, page, "drill")


def test_manager_gets_no_admin_figures_even_through_the_export(client, auth):
    auth.login("manager")
    assert client.get("/dashboards/admin/export/xlsx").status_code == 403
    assert client.get("/dashboards/drill/security_alerts").status_code == 403


@pytest.mark.parametrize("user", ["rep_a", "manager", "service", "viewer"])
def test_only_admin_sets_targets(app, client, auth, user):
    auth.login(user)
    with app.app_context():
        rep = user_id("rep_a")
    assert refused(client.get("/targets/"))
    response = client.post("/targets/", data={"year": "2026", f"target-{rep}-11": "999999"})
    assert refused(response)
    with app.app_context():
        from app.models.reports import SalesTarget
        assert not db.session.scalars(select(SalesTarget)).all()


def test_viewer_cannot_save_reports(app, client, auth):
    auth.login("viewer")
    response = client.post("/reports/save", data={**dict(LEVEL), "name": "Viewer's"})
    assert refused(response)
    with app.app_context():
        assert not db.session.scalars(select(SavedReport)).all()


def test_csrf_on_every_post(app, client, auth, monkeypatch):
    pk = saved(app, "manager", "Keep me")
    auth.login("manager")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    assert client.post("/reports/save", data={**dict(LEVEL), "name": "No token"}).status_code == 400
    assert client.post(f"/reports/saved/{pk}/delete").status_code == 400
    with app.app_context():
        assert db.session.get(SavedReport, pk) is not None
        assert db.session.scalars(select(SavedReport).filter_by(name="No token")).first() is None


def test_csrf_on_targets(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    auth.login("admin")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    with app.app_context():
        rep = user_id("rep_a")
    response = client.post("/targets/", data={"year": "2026", f"target-{rep}-11": "5000"})
    assert response.status_code == 400
    with app.app_context():
        from app.models.reports import SalesTarget
        assert not db.session.scalars(select(SalesTarget)).all()


# --- time zone: one instant, one month everywhere --------------------------------------------------

def test_month_end_instant_counts_in_november_on_dashboard_report_and_drill(client, auth, make_customer, api):
    make_customer("rep_a", name="Boundary Co", created_on=datetime(2026, 10, 31, 16, 30, tzinfo=UTC))
    auth.login("rep_a")
    with clock.frozen(NOW):
        nov = figures(client.get("/dashboards/sales?period=2026-11").text)["new_customers"]
        octo = figures(client.get("/dashboards/sales?period=2026-10").text)["new_customers"]
        drill = client.get("/dashboards/drill/new_customers?period=2026-11").text
        drill_oct = client.get("/dashboards/drill/new_customers?period=2026-10").text
    assert nov["value"] == 1 and octo["value"] == 0
    assert "Boundary Co" in drill and "Boundary Co" not in drill_oct
    pairs = [("source", "customers"), ("dimensions", "created_month")]
    body = client.get(f"/api/v1/report/run?{urlencode(pairs)}", headers=api("rep_a")).get_json()
    assert body["figure"]["categories"] == ["2026-11"]
    for start, end, expected in (("2026-11-01", "2026-11-30", 1), ("2026-10-01", "2026-10-31", 0)):
        query = urlencode(LEVEL + [("period_start", start), ("period_end", end)])
        body = client.get(f"/api/v1/report/run?{query}", headers=api("rep_a")).get_json()
        assert (body["pivot"]["rows"][-1][-1] or 0) == expected, (start, body)
