"""Company settings (issue 19, 003 第一步): each saved and refused through settings.save,
read everywhere instead of constants — the zone moves "today" at once, the date format,
the default language, the logo (checked, re-encoded), the PDF header and the licence."""

from __future__ import annotations

import io
import json
import struct
import zlib
from datetime import UTC, date, datetime
from typing import Any

import pypdfium2
import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import AuditLog, CompanyAsset, CrmSetting, CrmUser
from app.services import company, orders, report_export, settings
from app.services.errors import RuleViolation


@pytest.fixture(autouse=True)
def _restore_company(app: Any) -> Any:
    """The test cleanup deletes the stored settings; this process's memory goes back too."""
    yield
    company.forget()


def admin(name: str = "admin") -> CrmUser:
    return db.session.scalar(select(CrmUser).where(CrmUser.username == name))


def save(**values: Any) -> dict[str, Any]:
    changed = settings.save(values, admin())
    db.session.commit()
    return changed


def png(width: int = 40, height: int = 20, colour: str = "red", **info: str) -> bytes:
    picture = Image.new("RGB", (width, height), colour)
    meta = PngImagePlugin.PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    out = io.BytesIO()
    picture.save(out, format="PNG", pnginfo=meta)
    return out.getvalue()


def bomb_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` pixels (a decompression bomb's start)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def test_every_setting_saves_and_the_readers_answer_it(ctx: Any) -> None:
    save(company_name="Acme 贸易有限公司", time_zone="Europe/London", currency="USD", date_format="zh",
         default_language="zh", licensed_users="25")
    assert company.name() == "Acme 贸易有限公司"
    assert clock.zone_name() == "Europe/London"
    assert company.currency() == "USD" and orders.company_currency() == "USD"
    assert company.date_format() == "%Y年%m月%d日"
    assert company.default_language() == "zh"
    assert company.licensed_users() == 25
    summary = company.summary()
    assert summary["time_zone"] == "Europe/London" and summary["licensed_users"] == 25
    actions = db.session.scalars(select(AuditLog.detail).where(AuditLog.action == "setting_change")).all()
    assert {json.loads(detail)["key"] for detail in actions} >= {"company_name", "time_zone", "currency",
                                                                 "date_format", "default_language", "licensed_users"}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("time_zone", "Mars/Olympus_Mons", "Unknown choice"),
    ("date_format", "%Y%m%d", "Unknown choice"),
    ("currency", "XBT", "Unknown choice"),
    ("default_language", "fr", "Unknown choice"),
    ("licensed_users", "-1", "from 0 to 100000"),
    ("licensed_users", "ten", "whole number"),
    ("company_name", "x" * 101, "At most 100 characters"),
])
def test_bad_values_are_refused_by_field_and_nothing_is_stored(ctx: Any, key: str, value: str, message: str) -> None:
    with pytest.raises(RuleViolation) as refused:
        settings.save({"company_name": "Stored?", key: value}, admin())
    db.session.rollback()
    assert set(refused.value.errors) == {key} and message in refused.value.errors[key]
    assert company.name() == "" and db.session.get(CrmSetting, "company_name") is None
    assert clock.zone_name() == "Asia/Shanghai"


def test_a_currency_stored_as_a_list_by_the_old_setting_reads_as_its_first_item(ctx: Any) -> None:
    db.session.add(CrmSetting(key="currency", value=json.dumps(["HKD", "CNY"])))
    db.session.commit()
    assert company.currency() == "HKD" and orders.company_currency() == "HKD"


def test_the_zone_change_moves_today_at_once_and_forget_restores_it(ctx: Any) -> None:
    evening = datetime(2026, 10, 31, 20, 0, tzinfo=UTC)
    with clock.frozen(evening):
        assert clock.local_today() == date(2026, 11, 1)  # Shanghai, UTC+8
        save(time_zone="Europe/London")
        assert clock.local_today() == date(2026, 10, 31)
        assert clock.to_local(evening).hour == 20  # GMT after the clocks went back
        save(time_zone="")  # the server's CRM_TIMEZONE again
        assert clock.local_today() == date(2026, 11, 1)
    save(time_zone="America/New_York")
    company.forget()
    assert clock.zone_name() == "Asia/Shanghai"


def test_a_rolled_back_save_leaves_the_zone_alone(ctx: Any) -> None:
    settings.save({"time_zone": "Europe/London"}, admin())
    db.session.rollback()
    assert clock.zone_name() == "Asia/Shanghai"


def test_another_process_change_is_read_by_the_refresh_with_one_query_per_period(
        ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db.session.add(CrmSetting(key="time_zone", value=json.dumps("Europe/Paris")))
    db.session.add(CrmSetting(key="date_format", value=json.dumps("dmy")))
    db.session.commit()
    company.refresh(force=True)
    assert clock.zone_name() == "Europe/Paris" and company.date_format() == "%d/%m/%Y"
    loads = []
    real = company.load
    monkeypatch.setattr(company, "load", lambda: loads.append(1) or real())
    for _ in range(50):
        company.refresh()
        clock.zone_name()
    assert loads == []  # inside the period: memory only
    monkeypatch.setitem(company._memory, "at", company._memory["at"] - company.REFRESH_SECONDS - 1)
    company.refresh()
    assert loads == [1]


def test_a_stored_zone_the_system_does_not_know_reads_as_the_server_zone(ctx: Any) -> None:
    db.session.add(CrmSetting(key="time_zone", value=json.dumps("Nowhere/Land")))
    db.session.commit()
    company.refresh(force=True)
    assert clock.zone_name() == "Asia/Shanghai"


def test_the_logo_is_re_encoded_as_png_without_metadata_and_scaled(ctx: Any) -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (1600, 1000), "blue").save(jpeg, format="JPEG", quality=30)
    company.save_logo(jpeg.getvalue(), admin())
    db.session.commit()
    data, content_type = company.logo()
    stored = Image.open(io.BytesIO(data))
    assert content_type == "image/png" and stored.format == "PNG" and stored.size == (819, 512)
    company.save_logo(png(comment="secret GPS 31.2,121.4") + b"<script>appended</script>", admin())
    db.session.commit()
    data, _ = company.logo()
    assert b"secret" not in data and b"script" not in data and Image.open(io.BytesIO(data)).size == (40, 20)
    assert company.current().logo_sha == db.session.get(CompanyAsset, "logo").sha256
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "company_logo_change")) is not None
    assert company.remove_logo(admin()) is True
    db.session.commit()
    assert company.logo() is None and company.brand()["logo"] == ""


@pytest.mark.parametrize(("data", "message"), [
    (b"%PDF-1.4 not a picture", "not a PNG, JPEG or WebP"),
    (b"GIF89a" + b"\0" * 100, "not a PNG, JPEG or WebP"),
    (b"", "Choose a picture"),
    (png()[:60], "not a PNG, JPEG or WebP"),  # cut short
    (bomb_header(50_000, 50_000), "at most 4000"),
    (bomb_header(4001, 10), "at most 4000"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * (512 * 1024), "larger than 512 KB"),
])
def test_bad_logos_are_refused_with_a_message(ctx: Any, data: bytes, message: str) -> None:
    with pytest.raises(RuleViolation) as refused:
        company.save_logo(data, admin())
    assert message in refused.value.errors["logo"]
    db.session.rollback()
    assert db.session.get(CompanyAsset, "logo") is None


def test_licensed_users_refuse_a_new_and_a_reactivated_user(ctx: Any, app: Any) -> None:
    active = db.session.scalar(select(db.func.count()).select_from(CrmUser).where(CrmUser.active.is_(True)))
    save(licensed_users=str(active))
    db.session.add(CrmUser(username="newbie", first_name="New", last_name="Bie", email="newbie@example.com",
                           active=True, password="x"))
    with pytest.raises(RuleViolation) as refused:
        db.session.flush()
    assert f"allows {active} active users" in refused.value.errors["active"]
    db.session.rollback()
    viewer = admin("viewer")
    viewer.active = False
    db.session.commit()
    viewer.active = True  # back within the licence: one seat is free again
    db.session.commit()
    save(licensed_users=str(active - 1))
    viewer.active = False
    db.session.commit()
    viewer.active = True
    with pytest.raises(RuleViolation):
        db.session.commit()
    db.session.rollback()
    save(licensed_users="0")  # not limited
    viewer = admin("viewer")
    viewer.active = True
    db.session.commit()
    assert viewer.active


def test_the_default_language_falls_back_to_the_server_setting(ctx: Any, app: Any) -> None:
    assert company.default_language() == app.config["BABEL_DEFAULT_LOCALE"]
    save(default_language="zh")
    assert company.default_language() == "zh"


def _pdf_text_and_corner(data: bytes) -> tuple[str, Any]:
    page = pypdfium2.PdfDocument(data)[0]
    text = page.get_textpage().get_text_range()
    picture = page.render(scale=2).to_pil().convert("RGB")
    return text, picture


def test_the_pdf_header_shows_the_logo_the_name_and_the_day_in_the_company_format(ctx: Any) -> None:
    plain_text, plain = _pdf_text_and_corner(report_export.pdf("Sales", []))
    save(company_name="Acme 贸易", date_format="zh")
    company.save_logo(png(200, 100, "red"), admin())
    db.session.commit()
    with clock.frozen(datetime(2026, 12, 1, 3, 0, tzinfo=UTC)):
        text, picture = _pdf_text_and_corner(report_export.pdf("Sales", []))
    assert "Acme 贸易" in text and "2026年12月01日" in text and "Acme" not in plain_text
    # the logo sits at the top left (12 mm margins: about 68 px at scale 2)
    red = [picture.getpixel((x, y)) for x in range(70, 130, 10) for y in range(72, 100, 6)]
    assert all(r > 200 and g < 60 and b < 60 for r, g, b in red)
    assert plain.getpixel((90, 80)) == (255, 255, 255)
