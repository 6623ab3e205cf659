"""Screens say everything in the reader's language, by their kind (issue 11 §6): a view
cannot start with FAB's English titles or column names, FAB's own security screens read
like the CRM's, coded values show their labels, and the follow-up list has a search box."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from sqlalchemy import select

from app import scheduler
from app.extensions import appbuilder, db
from app.models import Department, RoleDataScope, SyncConflict, SyncTarget, TransferJob, TransferSchedule
from app.services import permission_report
from tests.conftest import user_id
from tests.views.test_zh_pages import _collapse, js_texts, parse
from views.base import CrmModelView, UntranslatedView, untranslated_parts


def _text(response: Any) -> str:
    """What a person reads on the page (text nodes, titles, placeholders), one line."""
    return " | ".join(_collapse(parse(response.get_data(as_text=True)).texts))


# --- a view cannot ship untranslated ---------------------------------------------------

def _department_view(**attrs: Any) -> type:
    body = {"datamodel": SQLAInterface(Department), "list_title": _l("Departments"), "show_title": _l("Department"),
            "add_title": _l("Add department"), "edit_title": _l("Edit department"), "list_columns": ["name"],
            "show_columns": ["name"], "add_columns": ["name"], "edit_columns": ["name"], "search_columns": ["name"],
            "label_columns": {"name": _l("Name")}, **attrs}
    return type("ProbeDepartmentView", (CrmModelView,), body)


def test_a_view_keeping_fabs_default_title_refuses_to_start(ctx: Any) -> None:
    with pytest.raises(UntranslatedView, match=r"ProbeDepartmentView .*show_title 'Show Department'"):
        _department_view(show_title=None)()


def test_a_view_showing_or_searching_a_column_without_a_label_refuses_to_start(ctx: Any) -> None:
    with pytest.raises(UntranslatedView, match=r"ProbeDepartmentView .*search_columns 'members'"):
        _department_view(search_columns=["name", "members"])()
    with pytest.raises(UntranslatedView, match=r"show_columns 'parent'"):
        _department_view(show_columns=["name", "parent"], label_columns={"name": _l("Name")})()
    _department_view()()  # everything labelled: it starts


def test_a_route_the_view_does_not_serve_needs_no_title(ctx: Any) -> None:
    read_only = _department_view(add_title=None, edit_title=None, base_permissions=["can_read"])
    assert untranslated_parts(read_only()) == []


def test_every_registered_screen_is_translated(app: Any) -> None:
    """FAB's own screens included (users, roles, groups, permissions on views)."""
    with app.app_context():
        screens = [view for view in appbuilder.baseviews if hasattr(view, "label_columns")]
        assert len(screens) > 25
        assert {type(view).__name__: untranslated_parts(view) for view in screens
                if untranslated_parts(view)} == {}


# --- FAB's security screens ------------------------------------------------------------

def test_user_screens_show_no_true_none_or_none_choice(app: Any, client: Any, auth: Any) -> None:
    with app.app_context():
        admin = user_id("admin")
    auth.login("admin")
    for url in ("/users/list/", f"/users/show/{admin}", "/users/userinfo/", f"/users/edit/{admin}", "/users/add"):
        page = parse(client.get(url).get_data(as_text=True))
        # Shown text, and the markup FAB's search form inserts (its relation filters' choices).
        texts = {*page.texts, *(text for literal in js_texts(page.js) if "<" in literal
                                for text in parse(literal).texts)}
        assert not {"True", "False", "None", "__None"} & set(_collapse(texts)), url
    roles = client.get("/roles/list/").get_data(as_text=True)
    assert "Data Scope Rows" not in roles and "Data scope settings" in roles


def test_role_screen_search_labels_are_translated(client: Any, auth: Any) -> None:
    auth.login("admin")
    client.get("/lang/zh")
    texts = set(_collapse(parse(client.get("/roles/list/").get_data(as_text=True)).texts))
    assert "用户组" in texts and not {"Groups", "User", "Data Scope Rows"} & texts  # the search menu's labels


def test_a_roles_data_scope_reads_as_its_label(ctx: Any) -> None:
    row = db.session.scalars(select(RoleDataScope).where(RoleDataScope.scope == "own")).first()
    assert str(row).endswith(": Own records") and "own" not in str(row)


# --- coded values and titles on the CRM's own screens ----------------------------------

def _schedule(app: Any, tmp_path: Path) -> int:
    with app.app_context():
        schedule = TransferSchedule(name="nightly", kind="folder_import", model="customer", cron="5 1 * * *",
                                    mode="create", path=str(tmp_path), run_as_id=user_id("manager"),
                                    last_status="done", enabled=False)
        db.session.add(schedule)
        db.session.commit()
        return schedule.id


def test_scheduled_transfers_show_labels_not_codes(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    pk = _schedule(app, tmp_path)
    auth.login("admin")
    for url in ("/transferscheduleview/list/", f"/transferscheduleview/show/{pk}"):
        shown = _text(client.get(url))
        assert "Import every file dropped in a folder" in shown and "folder_import" not in shown, url
        assert "Customers" in shown and "Done" in shown, url
    assert "Create new records only" in _text(client.get(f"/transferscheduleview/show/{pk}"))
    form = client.get("/transferscheduleview/add").get_data(as_text=True)
    assert re.search(r'<option[^>]*value="upsert"[^>]*>\s*Update existing, create the rest', form)
    assert "Add scheduled import or export" in form
    with app.app_context():  # a run of any schedule: the list's filters must not offer runs by their repr
        db.session.add(TransferJob(kind="export", model="customer", user_id=user_id("admin"),
                                   filename="weekly-report.xlsx", status="done"))
        db.session.commit()
    assert "weekly-report.xlsx" not in client.get("/transferscheduleview/list/").get_data(as_text=True)


def test_jobs_page_shows_five_field_cron_and_status_labels(app: Any, client: Any, auth: Any,
                                                           tmp_path: Path) -> None:
    _schedule(app, tmp_path)
    auth.login("admin")
    page = client.get("/jobs/").get_data(as_text=True)
    assert "<code>5 1 * * *</code>" in page and "cron[" not in page
    assert re.search(r"<td>\s*Done\s*</td>", page)


def test_cron_text_is_the_five_field_line() -> None:
    assert scheduler.cron_text(CronTrigger(hour=1, minute=5)) == "5 1 * * *"
    assert scheduler.cron_text(CronTrigger(minute="*/15", day_of_week="mon-fri")) == "*/15 * * * mon-fri"


def test_sync_screens_have_titles_and_field_labels(app: Any, client: Any, auth: Any, make_customer: Any,
                                                   tmp_path: Path) -> None:
    customer = make_customer("rep_a", name="星河科技")
    with app.app_context():
        target = SyncTarget(name="team", backend="xlsx", location=str(tmp_path / "t.xlsx"), worksheet="客户",
                            run_as_id=user_id("manager"), enabled=False)
        db.session.add(target)
        db.session.flush()
        db.session.add(SyncConflict(target_id=target.id, record_id=customer, key="C1", field="contact_name",
                                    base="a", app_value="b", sheet_value="c"))
        db.session.commit()
        target_id = target.id
        conflict = db.session.scalar(select(SyncConflict.id))
    auth.login("admin")
    for url in ("/syncconflictview/list/", f"/syncconflictview/show/{conflict}"):
        shown = _text(client.get(url))
        assert "Contact name" in shown and "contact_name" not in shown, url
    assert "Sync conflict" in _text(client.get(f"/syncconflictview/show/{conflict}"))
    shown = _text(client.get(f"/synctargetview/show/{target_id}"))
    assert "Sync target" in shown and "Show Sync Target" not in shown


def test_posting_an_empty_sync_target_form_is_a_message_not_a_500(client: Any, auth: Any) -> None:
    auth.login("admin")
    response = client.post("/synctargetview/add", data={})
    assert response.status_code == 200
    assert "Not a valid choice" in response.get_data(as_text=True) or "required" in response.get_data(as_text=True)


def test_permission_report_headings_and_scope_in_the_readers_language(client: Any, auth: Any) -> None:
    assert all(isinstance(column, LazyString) for column in permission_report.COLUMNS)  # rendered when shown
    auth.login("admin")
    client.get("/lang/zh")
    page = _text(client.get("/security/permission-report/"))
    assert "Data scope" not in page and "数据范围" in page and "Last login" not in page
    client.get("/lang/en")
    texts = _collapse(parse(client.get("/security/permission-report/").get_data(as_text=True)).texts)
    assert "All records" in texts and "all" not in texts and "own" not in texts


# --- the audit log names objects and actions as the screens do ------------------------

def test_audit_log_names_object_types_by_their_screens(app: Any, client: Any, auth: Any,
                                                       make_customer: Any) -> None:
    make_customer("rep_a", name="星河科技")
    auth.login("admin")  # a login entry on a user
    shown = _text(client.get("/auditlogview/list/"))
    assert "CrmUser" not in shown and "Logged in" in shown and "login" not in shown.split(" | ")
    client.get("/lang/zh")
    shown = _text(client.get("/auditlogview/list/"))
    assert "客户" in shown.split(" | ") and "Customer" not in shown.split(" | ")


def test_audit_entry_of_a_new_record_has_no_id_row(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    from app.models import AuditLog

    pk = make_customer("rep_a", name="星河科技")
    with app.app_context():
        entry = db.session.scalar(select(AuditLog.id).where(AuditLog.object_type == "Customer",
                                                            AuditLog.object_id == str(pk)))
    auth.login("admin")
    changes = client.get(f"/auditlogview/show/{entry}").get_data(as_text=True)
    changes = changes[changes.index("audit-changes"):]
    assert "<td>Customer name</td>" in changes and "<td>Id</td>" not in changes and "<td>id</td>" not in changes


# --- the follow-up list's search box ---------------------------------------------------

def test_follow_up_list_search_box_narrows_the_list_and_its_download(app: Any, client: Any, auth: Any,
                                                                      make_customer: Any,
                                                                      make_follow_up: Any) -> None:
    acme = make_customer("rep_a", name="Acme Trading")
    other = make_customer("rep_a", name="Zenith Works")
    make_follow_up(acme, "rep_a", content="Called about the quote")
    make_follow_up(other, "rep_a", content="Sent the brochure")
    auth.login("rep_a")
    page = client.get("/followupview/list/?q=ACME").get_data(as_text=True)
    assert 'id="follow-up-search-q"' in page and 'value="ACME"' in page
    assert "Called about the quote" in page and "Sent the brochure" not in page
    assert "Sent the brochure" in client.get("/followupview/list/?q=brochure").get_data(as_text=True)
    assert "Called about" in client.get("/followupview/list/").get_data(as_text=True)
    download = client.get("/followupview/export/csv?q=brochure").get_data(as_text=True)
    assert "Sent the brochure" in download and "Called about" not in download
    refused = client.get("/followupview/list/?q=" + "x" * 101, follow_redirects=True).get_data(as_text=True)
    assert "Search text is too long" in refused
    shown = client.get(f"/followupview/show/{db_first_follow_up(app)}?q=brochure")
    assert shown.status_code == 200  # a record's page ignores the box


def db_first_follow_up(app: Any) -> int:
    from app.models import FollowUp

    with app.app_context():
        return db.session.scalar(select(FollowUp.id).order_by(FollowUp.id))
