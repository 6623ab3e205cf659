"""Organisation → Company (issue 19): one form saved through settings.save (errors by field,
400, nothing stored), the logo upload and its public link in the navbar, the date format
on the screens, the default language of the login page; Admin only."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import AuditLog, CompanyAsset
from app.services import company, settings


@pytest.fixture(autouse=True)
def _restore_company(app: Any) -> Any:
    yield
    company.forget()


def form(**changes: Any) -> dict[str, Any]:
    """The Company form as shown with defaults, plus ``changes``."""
    data = {key: str(s.default) for key, s in settings.SETTINGS.items() if s.page == "company"}
    data.update(changes)
    return data


def picture(fmt: str = "PNG", size: tuple[int, int] = (60, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "green").save(out, format=fmt)
    return out.getvalue()


def stored(app: Any, key: str) -> Any:
    with app.app_context():
        value = settings.get(key)
        db.session.remove()
        return value


def test_the_page_shows_every_company_setting_and_settings_does_not(client: Any, auth: Any) -> None:
    auth.login("admin")
    page = client.get("/company/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for key in ("company_name", "time_zone", "currency", "date_format", "default_language", "licensed_users", "logo"):
        assert f'name="{key}"' in text
    assert "Asia/Shanghai (UTC+08:00)" in text and "2026年12月01日" in text
    assert 'enctype="multipart/form-data"' in text
    other = client.get("/settings/").get_data(as_text=True)
    assert 'name="time_zone"' not in other and 'name="currency"' not in other
    assert 'href="/company/"' in client.get("/").get_data(as_text=True)


def test_admin_saves_the_form_audited(client: Any, auth: Any, app: Any) -> None:
    auth.login("admin")
    answer = client.post("/company/", data=form(company_name="Acme Ltd", currency="EUR", licensed_users="40"))
    assert answer.status_code == 302
    assert (stored(app, "company_name"), stored(app, "currency"), stored(app, "licensed_users")) == ("Acme Ltd", "EUR", 40)
    with app.app_context():
        keys = db.session.scalars(select(AuditLog.detail).where(AuditLog.action == "setting_change")).all()
        assert len(keys) == 3
    assert "Acme Ltd" in client.get("/").get_data(as_text=True)  # the navbar brand


@pytest.mark.parametrize(("key", "value"), [("time_zone", "Mars/Olympus_Mons"), ("date_format", "%d%m"),
                                            ("licensed_users", "-5"), ("default_language", "xx"),
                                            ("currency", "<b>")])
def test_a_bad_value_is_shown_by_its_field_and_nothing_is_stored(client: Any, auth: Any, app: Any,
                                                                 key: str, value: str) -> None:
    auth.login("admin")
    answer = client.post("/company/", data=form(company_name="Not stored", **{key: value}))
    assert answer.status_code == 400
    text = answer.get_data(as_text=True)
    assert f'id="setting-{key}"' in text and "has-error" in text and "error-message" in text
    assert stored(app, "company_name") == ""


def test_logo_upload_shows_in_the_navbar_and_is_served_to_everyone_with_an_etag(client: Any, auth: Any,
                                                                                 app: Any) -> None:
    auth.login("admin")
    answer = client.post("/company/", data=form(company_name="Acme", logo=(io.BytesIO(picture("WEBP")), "l.webp")),
                         content_type="multipart/form-data")
    assert answer.status_code == 302
    home = client.get("/").get_data(as_text=True)
    sha = company.current().logo_sha
    assert f'src="/company/logo?v={sha[:16]}"' in home and 'id="company-logo"' in home
    assert 'id="logo-preview"' in client.get("/company/").get_data(as_text=True)
    auth.logout()
    login_page = client.get("/login/").get_data(as_text=True)
    assert 'id="company-logo"' in login_page
    served = client.get(f"/company/logo?v={sha[:16]}")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.headers["ETag"] == f'"{sha}"' and "max-age=31536000" in served.headers["Cache-Control"]
    assert Image.open(io.BytesIO(served.data)).size == (60, 30)
    again = client.get("/company/logo", headers={"If-None-Match": f'"{sha}"'})
    assert again.status_code == 304
    auth.login("admin")
    removed = client.post("/company/", data=form(company_name="Acme", remove_logo="on"))
    assert removed.status_code == 302
    assert client.get("/company/logo").status_code == 404
    assert 'id="company-logo"' not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(("data", "message"), [
    (b"MZ\x90\x00 an executable", "not a PNG, JPEG or WebP"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * (600 * 1024), "larger than 512 KB"),
])
def test_a_bad_logo_is_a_message_by_the_field(client: Any, auth: Any, app: Any, data: bytes, message: str) -> None:
    auth.login("admin")
    answer = client.post("/company/", data=form(company_name="Acme", logo=(io.BytesIO(data), "logo.png")),
                         content_type="multipart/form-data")
    assert answer.status_code in (400, 413)
    if answer.status_code == 400:
        text = answer.get_data(as_text=True)
        assert 'id="setting-logo"' in text and message in text
    assert stored(app, "company_name") == ""
    with app.app_context():
        assert db.session.get(CompanyAsset, "logo") is None


@pytest.mark.parametrize("username", ["rep_a", "manager", "viewer", "service"])
def test_non_admins_are_refused(client: Any, auth: Any, app: Any, username: str) -> None:
    auth.login(username)
    for answer in (client.get("/company/"), client.post("/company/", data=form(company_name="Hijacked"))):
        assert answer.status_code in (302, 403)
        assert answer.status_code == 403 or "/company/" not in answer.headers.get("Location", "")
    assert stored(app, "company_name") == ""
    assert 'href="/company/"' not in client.get("/").get_data(as_text=True)


def test_anonymous_is_refused_the_page(client: Any, app: Any) -> None:
    answer = client.post("/company/", data=form(company_name="Hijacked"))
    assert answer.status_code in (302, 401, 403)
    assert stored(app, "company_name") == ""


def test_the_date_format_shows_on_lists_and_show_pages(client: Any, auth: Any, make_customer: Any,
                                                       make_follow_up: Any) -> None:
    pk = make_customer("rep_a")
    make_follow_up(pk, "rep_a", next_step="Send the quote", next_step_date=date(2026, 12, 1))
    auth.login("admin")
    assert "2026-12-01" in client.get("/followupview/list/").get_data(as_text=True)
    client.post("/company/", data=form(date_format="zh"))
    listed = client.get("/followupview/list/").get_data(as_text=True)
    assert "2026年12月01日" in listed and "2026-12-01" not in listed
    client.post("/company/", data=form(date_format="dmy"))
    assert "01/12/2026" in client.get("/followupview/list/").get_data(as_text=True)
    shown = client.get(f"/customerview/show/{pk}").get_data(as_text=True)
    assert clock.local_today().strftime("%d/%m/%Y ") in shown  # created on: day/month/year HH:MM


def test_the_default_language_is_the_login_page_s_and_a_user_s_without_one(client: Any, auth: Any,
                                                                          app: Any) -> None:
    assert '<html lang="en"' in client.get("/login/").get_data(as_text=True)
    auth.login("admin")
    client.post("/company/", data=form(default_language="zh"))
    auth.logout()
    fresh = app.test_client()
    login_page = fresh.get("/login/").get_data(as_text=True)
    assert '<html lang="zh"' in login_page
    with app.app_context():  # a user who picked English keeps it
        from app.models import CrmUser

        db.session.execute(CrmUser.__table__.update().where(CrmUser.username == "rep_a").values(language="en"))
        db.session.commit()
    fresh.post("/login/", data={"username": "rep_a", "password": "Test-Pass-1234"})
    assert '<html lang="en"' in fresh.get("/").get_data(as_text=True)
    other = app.test_client()
    other.post("/login/", data={"username": "rep_b", "password": "Test-Pass-1234"})
    assert '<html lang="zh"' in other.get("/").get_data(as_text=True)


def test_the_user_screen_refuses_a_user_beyond_the_licence_with_the_message(client: Any, auth: Any,
                                                                            app: Any) -> None:
    from flask_appbuilder.security.sqla.models import Role

    from app.models import CrmUser

    with app.app_context():
        active = db.session.scalar(select(db.func.count()).select_from(CrmUser).where(CrmUser.active.is_(True)))
        role = db.session.scalar(select(Role.id).where(Role.name == "Read Only"))
        db.session.remove()
    auth.login("admin")
    client.post("/company/", data=form(licensed_users=str(active)))
    auth.grant_step_up("admin")
    data = {"first_name": "New", "last_name": "Hire", "username": "newhire", "email": "newhire@example.com",
            "active": "y", "roles": [str(role)], "password": "Strong-Pass-2026", "conf_password": "Strong-Pass-2026"}
    answer = client.post("/users/add", data=data, follow_redirects=True)
    assert answer.status_code in (200, 400)
    assert f"The licence allows {active} active users" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(CrmUser).where(CrmUser.username == "newhire")) is None
    assert client.get("/users/list/").status_code == 200  # the session is usable after the refusal


def test_a_licence_below_the_active_users_is_saved_with_a_warning(client: Any, auth: Any, app: Any) -> None:
    from app.models import CrmUser

    with app.app_context():
        active = db.session.scalar(select(db.func.count()).select_from(CrmUser).where(CrmUser.active.is_(True)))
        db.session.remove()
    auth.login("admin")
    page = client.post("/company/", data=form(licensed_users="2"), follow_redirects=True).get_data(as_text=True)
    assert f"{active} users are active but the licence allows 2: deactivate {active - 2} of them" in page
    page = client.post("/company/", data=form(licensed_users=str(active)), follow_redirects=True)
    assert "users are active but the licence allows" not in page.get_data(as_text=True)


def test_custom_dates_follow_the_date_format_too(client: Any, auth: Any, make_customer: Any,
                                                 make_custom_field: Any) -> None:
    make_custom_field("customer", "signed", "date", label_en="Signed on", in_list=True)
    make_custom_field("customer", "met", "datetime", label_en="First met")
    pk = make_customer("rep_a", custom={"signed": "2026-12-01", "met": "2026-11-30T04:30:00Z"})
    auth.login("admin")
    client.post("/company/", data=form(date_format="dmy"))
    shown = client.get(f"/customerview/show/{pk}").get_data(as_text=True)
    assert "01/12/2026" in shown and "2026-12-01" not in shown
    assert "30/11/2026 " in shown  # the instant, in the CRM's zone
    assert "01/12/2026" in client.get("/customerview/list/").get_data(as_text=True)
