"""The report builder screens (自定义报表, 001 §四; issue 17 "Report builder"): a manager
builds level × industry over customers and reads the right table; saves and shares it; a
shared report opens in the opener's scope; exports (xlsx, PDF) follow can_export and, for
contact data, can_export_contacts (003 第三步 4); bad input shows messages, never a 500;
CSRF guards save and delete; Chinese labels reach the page, the xlsx and the PDF."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import openpyxl
import pypdf
import pytest
from flask_appbuilder.security.sqla.models import Role
from sqlalchemy import select

from app.extensions import db
from app.models.audit import AuditLog
from app.models.dictionaries import CustomerLevel, Industry
from app.models.org import CrmUser
from app.models.reports import SavedReport
from app.services import reports
from tests.conftest import user_id

LEVEL_BY_INDUSTRY = [("source", "customers"), ("dimensions", "level"), ("dimensions", "industry"),
                     ("measure", "count"), ("chart", "bar")]


class _Tables(HTMLParser):
    """Rows of the table with id ``table_id`` (cell texts, stripped)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside, self.rows, self.cell = table_id, False, [], None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join(self.cell.split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell += data


def pivot_of(html: str) -> list[list[str]]:
    parser = _Tables("report-pivot")
    parser.feed(html)
    return parser.rows


def as_dict(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    """Pivot rows -> {row label: {column label: cell}}."""
    header = rows[0]
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in rows[1:]}


def dictionaries(app: Any) -> dict[str, Any]:
    with app.app_context():
        levels = list(db.session.scalars(select(CustomerLevel).order_by(CustomerLevel.code)))
        make = db.session.scalars(select(Industry).where(Industry.label_zh == "制造业")).one()
        trade = db.session.scalars(select(Industry).where(Industry.label_zh == "批发和零售业")).one()
        return {"A": levels[0].id, "B": levels[1].id, "A_en": levels[0].label_en, "A_zh": levels[0].label_zh,
                "B_en": levels[1].label_en, "make": make.id, "make_en": make.label_en, "trade": trade.id,
                "trade_en": trade.label_en}


@pytest.fixture
def book(app: Any, make_customer: Any) -> dict[str, Any]:
    """rep_a: 2 × A/制造业, 1 × B/批发; rep_b (East Team): 1 × A/制造业; rep_c (South):
    1 × A/制造业 and 1 × B/批发 (outside the East manager's department)."""
    d = dictionaries(app)
    for owner, level, industry in (("rep_a", "A", "make"), ("rep_a", "A", "make"), ("rep_a", "B", "trade"),
                                   ("rep_b", "A", "make"), ("rep_c", "A", "make"), ("rep_c", "B", "trade")):
        make_customer(owner, level_id=d[level], industry_id=d[industry], name=f"{owner} {level} {industry}",
                      contact_name=f"Person of {owner}")
    return d


def preview(client: Any, pairs: list[tuple[str, str]] = LEVEL_BY_INDUSTRY) -> Any:
    return client.get(f"/reports/builder?{urlencode(pairs)}")


def test_manager_filters_level_by_industry_by_level_a(client, auth, book):
    """One select per filter of the chosen source; picking level A counts only level A, and
    the choice stays on the page, in the shareable link, the exports and the save form."""
    auth.login("manager")
    html = preview(client, LEVEL_BY_INDUSTRY + [("level", str(book["A"]))]).get_data(as_text=True)
    table = as_dict(pivot_of(html))
    assert set(table) == {book["A_en"], "Total"}
    assert table[book["A_en"]][book["make_en"]] == "3" and table["Total"]["Total"] == "3"
    level_select = html.split('id="filter-customers-level"')[1].split("</select>")[0]
    assert f'<option value="{book["A"]}" selected>{book["A_en"]}</option>' in level_select
    assert f'<option value="{book["B"]}">{book["B_en"]}</option>' in level_select
    assert 'id="filter-customers-industry"' in html and 'id="filter-tickets-priority"' in html
    tickets = html.split('data-source="tickets"')[1].split('class="report-source-filters"')[0]
    assert tickets.lstrip().startswith("hidden") and 'name="priority" id="filter-tickets-priority" disabled' in tickets
    link = html.split('id="report-link"')[0].rsplit('href="', 1)[1].split('"')[0]
    assert f"level={book['A']}" in link
    assert f"level={book['A']}" in html.split('id="report-export-xlsx" href="')[1].split('"')[0]
    assert f'name="level" value="{book["A"]}"' in html.split('id="report-save"')[1]
    again = as_dict(pivot_of(client.get(link.replace("&amp;", "&")).get_data(as_text=True)))
    assert again == table
    pdf = client.get(f"/reports/export/pdf?{urlencode(LEVEL_BY_INDUSTRY + [('level', str(book['A']))])}").data
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert f"Level = {book['A_en']}" in " ".join(text.split())  # the subtitle names the filter
    client.get("/lang/zh")
    zh = preview(client, LEVEL_BY_INDUSTRY + [("level", str(book["A"]))]).get_data(as_text=True)
    assert f'<option value="{book["A"]}" selected>{book["A_zh"]}</option>' in zh


def test_saved_report_keeps_its_filter(app, client, auth, book):
    auth.login("manager")
    assert _save(client, "Level A", [role_id(app, "Sales Rep")], level=str(book["A"])).status_code == 302
    pk = saved_id(app, "Level A")
    edit = client.get(f"/reports/builder?report={pk}").get_data(as_text=True)
    assert f'<option value="{book["A"]}" selected>' in edit.split('id="filter-customers-level"')[1]
    auth.logout()
    auth.login("rep_a")
    table = as_dict(pivot_of(client.get(f"/reports/saved/{pk}").get_data(as_text=True)))
    assert table["Total"]["Total"] == "2"  # rep_a's two level-A customers; the B one filtered out


def test_manager_builds_level_by_industry_and_sees_the_departments_counts(client, auth, book):
    auth.login("manager")
    answer = preview(client)
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    table = as_dict(pivot_of(html))
    a, b, total = book["A_en"], book["B_en"], "Total"
    assert table[a][book["make_en"]] == "3"  # rep_a 2 + rep_b 1; rep_c (South) not counted
    assert table[b][book["trade_en"]] == "1"
    assert table[a]["Total"] == "3" and table[total]["Total"] == "4"
    assert 'id="report-figure-data"' in html and "crm/charts.js" in html  # the chart and its data
    assert "/reports/export/xlsx?" in html and "/reports/export/pdf?" in html


def _save(client: Any, name: str, roles: list[int] = (), **extra: Any) -> Any:
    data = dict(LEVEL_BY_INDUSTRY[:1] + [("measure", "count"), ("chart", "bar")])
    data.update({"dimensions": ["level", "industry"], "name": name, "roles": list(roles), **extra})
    return client.post("/reports/save", data=data)


def role_id(app: Any, name: str) -> int:
    with app.app_context():
        return db.session.scalars(select(Role.id).where(Role.name == name)).one()


def saved_id(app: Any, name: str) -> int:
    with app.app_context():
        return db.session.scalars(select(SavedReport.id).where(SavedReport.name == name)).one()


def test_saved_report_shared_with_sales_reps_opens_in_each_readers_scope(app, client, auth, book):
    """A manager shares with "Sales Rep" (a role they do not hold): each rep reads it in
    their own scope, so sharing hands over no records."""
    auth.login("manager")
    answer = _save(client, "Levels by industry", [role_id(app, "Sales Rep")])
    assert answer.status_code == 302
    pk = saved_id(app, "Levels by industry")
    auth.logout()
    auth.login("rep_a")
    listing = client.get("/reports/saved").get_data(as_text=True)
    assert "Levels by industry" in listing and "Sales Rep" in listing
    table = as_dict(pivot_of(client.get(f"/reports/saved/{pk}").get_data(as_text=True)))
    assert table[book["A_en"]][book["make_en"]] == "2" and table["Total"]["Total"] == "3"  # rep_a's own only
    auth.logout()
    auth.login("rep_c")
    table = as_dict(pivot_of(client.get(f"/reports/saved/{pk}").get_data(as_text=True)))
    assert table["Total"]["Total"] == "2"


def test_manager_shares_with_a_role_they_hold_and_the_other_manager_sees_their_own_department(
        app, client, auth, book):
    auth.login("manager")
    assert _save(client, "Dept levels", [role_id(app, "Sales Manager")]).status_code == 302
    pk = saved_id(app, "Dept levels")
    auth.logout()
    auth.login("manager_s")
    table = as_dict(pivot_of(client.get(f"/reports/saved/{pk}").get_data(as_text=True)))
    assert table["Total"]["Total"] == "2"  # South: rep_c's two customers


def test_save_errors_are_shown_on_the_form_and_nothing_is_lost(app, client, auth, book):
    auth.login("manager")
    answer = _save(client, "   ", schedule="weekly")
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert "Give the report a name." in html
    assert 'name="dimensions" value="level"' in html and 'name="dimensions" value="industry"' in html
    assert '<option value="weekly" selected' in html
    answer = _save(client, "Weekly", schedule="weekly")  # no weekday, no recipients
    assert answer.status_code == 400 and "weekday" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(SavedReport.id)) is None


def test_owner_edits_and_deletes_others_may_not(app, client, auth, book):
    auth.login("admin")
    _save(client, "Shared", [role_id(app, "Sales Rep")])
    pk = saved_id(app, "Shared")
    auth.logout()
    auth.login("rep_a")
    assert client.get(f"/reports/builder?report={pk}").status_code == 403
    assert client.post(f"/reports/saved/{pk}/delete").status_code == 403
    assert _save(client, "Mine").status_code == 302
    mine = saved_id(app, "Mine")
    edit = client.get(f"/reports/builder?report={mine}").get_data(as_text=True)
    assert 'value="Mine"' in edit and f'name="pk" value="{mine}"' in edit
    assert as_dict(pivot_of(edit))["Total"]["Total"] == "3"  # the saved definition is previewed
    assert client.post(f"/reports/saved/{mine}/delete").status_code == 302
    with app.app_context():
        assert db.session.get(SavedReport, mine) is None and db.session.get(SavedReport, pk) is not None


def test_a_private_report_of_someone_else_is_not_found_everywhere(app, client, auth, book):
    auth.login("rep_a")
    _save(client, "Private")
    pk = saved_id(app, "Private")
    auth.logout()
    auth.login("rep_b")
    for url in (f"/reports/saved/{pk}", f"/reports/saved/{pk}/export/xlsx", f"/reports/saved/{pk}/export/pdf",
                f"/reports/builder?report={pk}"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/reports/saved/{pk}/delete").status_code == 404
    assert "Private" not in client.get("/reports/saved").get_data(as_text=True)


def _xlsx_rows(data: bytes) -> list[list]:
    sheet = openpyxl.load_workbook(io.BytesIO(data))["Pivot"]
    return [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]


def test_rep_exports_a_report_without_contact_data(app, client, auth, book):
    auth.login("rep_a")
    answer = client.get(f"/reports/export/xlsx?{urlencode(LEVEL_BY_INDUSTRY)}")
    assert answer.status_code == 200
    assert answer.mimetype.endswith("spreadsheetml.sheet")
    rows = _xlsx_rows(answer.data)
    assert rows[0] == ["Level", book["make_en"], book["trade_en"], "Total"]
    assert rows[-1] == ["Total", 2, 1, 3]
    pdf = client.get(f"/reports/export/pdf?{urlencode(LEVEL_BY_INDUSTRY)}")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    with app.app_context():
        logged = [json.loads(e.detail) for e in db.session.scalars(select(AuditLog).where(AuditLog.action == "export"))]
    assert {(d["model"], d["format"]) for d in logged} >= {("Report:customers", "xlsx"), ("Report:customers", "pdf")}


CONTACTS = [("source", "customers"), ("dimensions", "contact_name"), ("measure", "count"), ("chart", "table")]


def test_rep_may_not_export_a_report_with_contact_data(app, client, auth, book):
    auth.login("rep_a")
    page = preview(client, CONTACTS).get_data(as_text=True)
    assert 'id="report-contact-note"' in page
    for fmt in ("xlsx", "pdf"):
        answer = client.get(f"/reports/export/{fmt}?{urlencode(CONTACTS)}")
        assert answer.status_code == 403
        assert "Only managers may export it" in answer.get_data(as_text=True)
    _save(client, "Contacts", [], **{"dimensions": ["contact_name"]})
    assert client.get(f"/reports/saved/{saved_id(app, 'Contacts')}/export/xlsx").status_code == 403
    with app.app_context():
        assert db.session.scalar(select(AuditLog.id).where(AuditLog.action == "export")) is None


def test_manager_exports_contact_data_masked_as_on_the_screen(app, client, auth, book):
    """The export holds what the preview shows: contact names unmasked only for a user
    with the reveal right (Customer can_reveal_contact); the manager's state is asserted."""
    auth.login("manager")
    shown = [row[0] for row in pivot_of(preview(client, CONTACTS).get_data(as_text=True))[1:]]
    answer = client.get(f"/reports/export/xlsx?{urlencode(CONTACTS)}")
    assert answer.status_code == 200
    exported = [row[0] for row in _xlsx_rows(answer.data)[1:]]
    assert exported == shown
    with app.app_context():
        reveal = reports.may_reveal_contact(db.session.get(CrmUser, user_id("manager")))
    assert ("Person of rep_a" in exported) is reveal
    assert "Person of rep_c" not in " ".join(exported)  # South stays out either way


def test_viewer_may_preview_but_not_export_or_save(client, auth, book):
    auth.login("viewer")
    assert preview(client).status_code == 200
    assert client.get(f"/reports/export/xlsx?{urlencode(LEVEL_BY_INDUSTRY)}").status_code in (302, 403)
    assert _save(client, "Nope").status_code in (302, 403)


@pytest.mark.parametrize("pairs, message", [
    (LEVEL_BY_INDUSTRY + [("dimensions", "type")], "at most 2 dimensions"),
    ([("source", "spaceships"), ("dimensions", "level")], "Choose what to report on."),
    (LEVEL_BY_INDUSTRY + [("period_start", "2026-05-01"), ("period_end", "2026-04-01")], "ends before it starts"),
    (LEVEL_BY_INDUSTRY + [("owner", "abc")], "Choose a valid value."),
    (LEVEL_BY_INDUSTRY + [("period_start", "yesterday")], "Not a date"),
    ([("source", "customers"), ("dimensions", "level"), ("measure", "sum:name")], "not a number field"),
])
def test_bad_input_shows_messages_never_a_500(client, auth, book, pairs, message):
    auth.login("manager")
    for url in (f"/reports/builder?{urlencode(pairs)}", f"/reports/export/xlsx?{urlencode(pairs)}"):
        answer = client.get(url)
        assert answer.status_code == 400, url
        html = answer.get_data(as_text=True)
        assert 'id="report-errors"' in html and message in html


def test_save_and_delete_need_a_csrf_token(app, client, auth, book, monkeypatch):
    auth.login("rep_a")
    _save(client, "Kept")
    pk = saved_id(app, "Kept")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    assert _save(client, "Forged").status_code == 400
    assert client.post(f"/reports/saved/{pk}/delete").status_code == 400
    with app.app_context():
        assert db.session.get(SavedReport, pk) is not None
        assert db.session.scalar(select(SavedReport.id).where(SavedReport.name == "Forged")) is None


def test_chinese_labels_in_page_xlsx_and_pdf(client, auth, book):
    auth.login("manager")
    client.get("/lang/zh")
    html = preview(client).get_data(as_text=True)
    table = as_dict(pivot_of(html))
    assert table[book["A_zh"]]["制造业"] == "3"
    rows = _xlsx_rows(client.get(f"/reports/export/xlsx?{urlencode(LEVEL_BY_INDUSTRY)}").data)
    assert "制造业" in rows[0] and book["A_zh"] in [r[0] for r in rows]
    data = client.get(f"/reports/export/pdf?{urlencode(LEVEL_BY_INDUSTRY)}").data
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    assert "制造业" in text and "批发和零售业" in text and book["A_zh"].split()[-1] in text


def test_menu_has_the_report_builder_and_saved_reports(client, auth):
    auth.login("rep_a")
    html = client.get("/reports/builder").get_data(as_text=True)
    assert "/reports/builder" in html and "/reports/saved" in html
    assert 'id="report-sources"' in html and "crm/report_builder.js" in html
