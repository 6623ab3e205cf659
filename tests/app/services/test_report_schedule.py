"""Scheduled reports (001 §四, issue 17): the weekly e-mail is computed in EACH recipient's
scope and language with its xlsx attached, contact-data reports go only to those who may
export contact data, inactive recipients and those who can no longer open the report are
skipped, and a day's run is sent once."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models.dictionaries import CustomerLevel
from app.models.notifications import OutboxMessage
from app.models.reports import SavedReport
from app.services import report_export, reports

pytestmark = pytest.mark.usefixtures("shanghai")

#: Monday 2026-03-02 07:00 in Shanghai.
MONDAY = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


@pytest.fixture
def workbooks(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every xlsx the job builds: its title and pivot (the exporter itself is tested elsewhere)."""
    built: list[dict[str, Any]] = []

    def xlsx(title: str, figures: list[Any], pivot: Any = None) -> bytes:
        built.append({"title": title, "pivot": pivot, "figures": figures})
        return b"PK-fake"
    monkeypatch.setattr(report_export, "xlsx", xlsx)
    return built


@pytest.fixture
def customers(app: Any, make_customer: Any) -> int:
    with app.app_context():
        level = db.session.scalars(select(CustomerLevel).order_by(CustomerLevel.id)).first().id
    for owner, n in (("rep_a", 2), ("rep_b", 1), ("rep_c", 3)):
        for i in range(n):
            make_customer(owner, name=f"{owner} {i}", level_id=level, contact_name=f"王{owner}{i}")
    return level


def schedule(owner: str, name: str, recipients: list[str], dimensions: list[str], weekday: int = 0,
             roles: tuple[str, ...] = ("Sales Rep",)) -> int:
    """Save a weekly report shared with ``roles`` (recipients must be able to open it)."""
    spec = reports.parse_spec({"source": "customers", "dimensions": dimensions})
    item = reports.save(user(owner), name, spec, schedule="weekly", weekday=weekday,
                        recipients=[user(r).id for r in recipients],
                        roles=[appbuilder.sm.find_role(r).id for r in roles])
    db.session.commit()
    return item.id


def outbox() -> dict[str, OutboxMessage]:
    return {m.to_address.split("@")[0]: m for m in db.session.scalars(select(OutboxMessage))}


def test_each_recipient_gets_their_own_numbers(ctx: Any, customers: int, workbooks: list) -> None:
    schedule("manager", "Customers by owner", ["manager", "rep_a", "rep_c"], ["owner"])
    assert reports.send_scheduled(MONDAY) == 3
    db.session.expire_all()
    mails = outbox()
    assert set(mails) == {"manager", "rep_a", "rep_c"}
    assert "Rep_A" in mails["rep_a"].text_body and "Rep_B" not in mails["rep_a"].text_body
    assert "Rep_C" not in mails["rep_a"].text_body
    assert "Rep_A" in mails["manager"].text_body and "Rep_B" in mails["manager"].text_body
    assert "Rep_C" not in mails["manager"].text_body
    assert "Customers by owner" in mails["rep_a"].subject
    totals = sorted(book["pivot"].loc["Total", "Total"] for book in workbooks)
    assert totals == [2, 3, 3]  # rep_a 2, manager (East tree) 3, rep_c 3


def test_sent_once_a_day_and_only_on_its_weekday(ctx: Any, customers: int, workbooks: list) -> None:
    pk = schedule("manager", "Weekly", ["manager"], ["level"], weekday=0)
    assert reports.send_scheduled(datetime(2026, 3, 2, 23, 0, tzinfo=UTC)) == 0  # Tuesday in Shanghai
    assert reports.send_scheduled(MONDAY) == 1
    assert reports.send_scheduled(MONDAY.replace(hour=23, minute=30)) == 0  # same day again
    assert db.session.get(SavedReport, pk).last_sent_at is not None
    assert reports.send_scheduled(datetime(2026, 3, 8, 23, 0, tzinfo=UTC)) == 1  # next Monday
    assert len(db.session.scalars(select(OutboxMessage)).all()) == 2


def test_contact_data_only_to_those_who_may_export_it(ctx: Any, customers: int, workbooks: list) -> None:
    """Reps may not export contact data (003 第三步 4): they are skipped, not sent a copy."""
    schedule("manager", "Contacts", ["manager", "rep_a"], ["contact_name"])
    assert reports.send_scheduled(MONDAY) == 1
    assert set(outbox()) == {"manager"}
    assert "王rep_a0" in outbox()["manager"].text_body


def test_inactive_recipient_skipped(ctx: Any, customers: int, workbooks: list) -> None:
    schedule("manager", "Weekly", ["manager", "rep_a"], ["level"])
    db.session.get(type(user("rep_a")), user("rep_a").id).active = False
    db.session.commit()
    assert reports.send_scheduled(MONDAY) == 1
    assert set(outbox()) == {"manager"}


def test_written_in_the_recipients_language(ctx: Any, customers: int, workbooks: list) -> None:
    rep = user("rep_a")
    rep.language = "zh"
    db.session.commit()
    schedule("manager", "Levels", ["manager", "rep_a"], ["level"])
    reports.send_scheduled(MONDAY)
    level = db.session.get(CustomerLevel, customers)
    mails = outbox()
    assert mails["rep_a"].language == "zh"
    assert level.label_zh in mails["rep_a"].text_body
    assert level.label_en in mails["manager"].text_body


def test_the_job_is_registered() -> None:
    from app import scheduler

    job = scheduler.definition(reports.JOB_ID)
    assert job.func is reports.send_scheduled_job


def test_the_xlsx_is_attached_with_the_recipients_own_numbers(ctx: Any, customers: int) -> None:
    """The real workbook rides on the outbox row (one attachment, opens with openpyxl) and
    holds the recipient's numbers only; the text body keeps its short summary."""
    schedule("manager", "Customers by owner", ["manager", "rep_a"], ["owner"])
    assert reports.send_scheduled(MONDAY) == 2
    db.session.expire_all()
    mails = outbox()
    for who, owners, total in (("rep_a", ["Rep_A Test"], 2), ("manager", ["Rep_A Test", "Rep_B Test"], 3)):
        message = mails[who]
        assert len(message.attachments) == 1
        attachment = message.attachments[0]
        assert attachment.filename == "Customers by owner.xlsx" and attachment.content_type == reports.XLSX_TYPE
        book = openpyxl.load_workbook(io.BytesIO(attachment.data))
        cells = [[c.value for c in row] for row in book["Pivot"].iter_rows()]
        labels = [row[0] for row in cells if row and row[0]]
        assert [name for name in labels if str(name).startswith("Rep_")] == owners
        assert cells[-1][0] == "Total" and cells[-1][-1] == total
        text = " ".join(str(c) for row in cells for c in row if c is not None)
        assert "Rep_C" not in text and (who == "manager" or "Rep_B" not in text)
        assert "Rep_A" in message.text_body and "attached" in message.text_body


def test_a_recipient_who_lost_the_shared_role_is_skipped(ctx: Any, customers: int, workbooks: list) -> None:
    pk = schedule("manager", "Weekly", ["manager", "rep_a"], ["level"])
    db.session.get(SavedReport, pk).roles = []
    db.session.commit()
    assert reports.send_scheduled(MONDAY) == 1
    assert set(outbox()) == {"manager"}
