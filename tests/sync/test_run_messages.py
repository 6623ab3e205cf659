"""Results stored by a run for later readers are shown in the reader's language, whoever
ran it and in whatever language (issue 11 §6): a sync run's result and its target's last
result, a scheduled import's or export's last result (the scheduler has no language)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models import CrmUser, SyncTarget, TransferJob, TransferSchedule
from app.services import message_text, messages, schedules
from app.services.importing import jobs
from tests.conftest import user_id
from tests.sync.conftest import HEADERS


def _shown(value: str | None, locale: str) -> str:
    with force_locale(locale):
        return message_text.shown(value)


def test_a_runs_counts_are_its_result_in_the_readers_language(app: Any, side: Any, make_target: Any,
                                                               sync: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="星河科技")
    side.create([HEADERS, ["", "苏州新材料", "陈静", "13912345678"]])
    target = make_target()
    log, _ = sync(target)  # outside any request, as the scheduler runs it
    assert log.status == "done"
    with app.app_context():
        stored = (log.message, db.session.get(SyncTarget, target).last_message)
        for value in stored:
            assert _shown(value, "en") == "Created in the CRM: 1, Added to the sheet: 1"
            assert _shown(value, "zh") == "CRM 中新建: 1, 添加到表格: 1"
            assert "app_created" not in message_text.text(value)


def test_a_stopped_runs_reason_is_read_in_the_readers_language(app: Any, side: Any, make_target: Any,
                                                                sync: Any) -> None:
    side.create([HEADERS])
    target = make_target()
    with app.app_context():
        db.session.execute(CrmUser.__table__.update().where(CrmUser.id == user_id("manager")).values(active=False))
        db.session.commit()
    log, _ = sync(target)
    assert log.status == "stopped"
    with app.app_context():
        assert "run-as user is deactivated" in _shown(log.message, "en")
        assert _shown(log.message, "zh") == "运行身份用户已停用，请为该同步目标另选一个用户。"


def test_the_run_list_shows_results_in_the_readers_language(app: Any, client: Any, auth: Any, side: Any,
                                                             make_target: Any, sync: Any) -> None:
    side.create([HEADERS])
    target = make_target()
    sync(target)
    auth.login("admin")
    client.get("/lang/zh")
    for url in ("/syncrunview/list/", f"/synctargetview/show/{target}"):
        page = client.get(url).get_data(as_text=True)
        assert "无变化" in page and "no changes" not in page and '"msgid"' not in page, url


def test_a_result_keeps_phone_numbers_masked(ctx: Any) -> None:
    from sync.fields import mask_phones_in

    message = messages.concat(["13912345678: ", messages.stored(_l("no changes"))])
    masked = message_text.map_text(message, mask_phones_in)
    assert "13912345678" not in message_text.text(message_text.to_column(masked, 4000))
    assert message_text.map_text(messages.stored(_l("no changes")), mask_phones_in) == {"msgid": "no changes"}


def test_a_column_value_round_trips_and_old_text_reads_as_it_is(ctx: Any) -> None:
    message = messages.stored(_l("%(n)d rows written to %(path)s", n=3, path="/srv/客户.xlsx"))
    stored = message_text.to_column(message, 2000)
    assert message_text.from_column(stored) == message
    assert message_text.text(stored) == "3 rows written to /srv/客户.xlsx"
    assert _shown(stored, "zh") == "已写入 3 行到 /srv/客户.xlsx"
    for old in ("app_created 1, sheet_added 2", '{"text": 1}', "{not json", None):
        assert message_text.from_column(old) == old
    assert message_text.to_column(message, 20) == "3 rows written to /s"  # too long for the pair: the text


def test_a_scheduled_imports_result_is_read_in_the_readers_language(ctx: Any, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "每日.csv").write_text("客户名称,联系方式\n宁波港通物流有限公司,13611112222\n坏行公司,123\n", encoding="utf-8")
    schedule = TransferSchedule(name="s", kind="folder_import", model="customer", cron="*/15 * * * *",
                                mode="upsert", run_as_id=user_id("rep_a"), path=str(inbox))
    db.session.add(schedule)
    db.session.commit()
    done = schedules.run(schedule)
    assert done.last_status == "done"
    assert message_text.text(done.last_message) == "每日.csv: 1 created, 0 updated, 0 unchanged, 1 rejected"
    assert message_text.from_column(done.last_message)["msgid"].startswith("%(file)s: %(created)d created")
    empty = schedules.run(db.session.get(TransferSchedule, schedule.id))
    assert _shown(empty.last_message, "zh") == "没有要导入的文件。"


def test_a_scheduled_runs_failure_is_read_in_the_readers_language(ctx: Any, tmp_path: Path) -> None:
    schedule = TransferSchedule(name="s", kind="folder_import", model="customer", cron="*/15 * * * *",
                                mode="upsert", run_as_id=user_id("rep_a"), path=str(tmp_path))
    db.session.add(schedule)
    db.session.execute(CrmUser.__table__.update().where(CrmUser.id == user_id("rep_a")).values(active=False))
    db.session.commit()
    failed = schedules.run(schedule)
    assert failed.last_status == "failed"
    assert _shown(failed.last_message, "zh") == "运行身份用户已停用，请另选一个用户。"
    assert "PermissionError" not in message_text.text(failed.last_message)


def test_the_sync_runs_own_entries_name_the_run_in_the_readers_language(app: Any, side: Any, make_target: Any,
                                                                          sync: Any, make_customer: Any) -> None:
    from app.models import AuditLog

    side.create([HEADERS, ["", "苏州新材料", "陈静", "13912345678"]])
    log, _ = sync(make_target())
    with app.app_context():
        reasons = set(db.session.scalars(select(AuditLog.reason).where(AuditLog.source == "sync")))
        assert reasons and {message_text.text(r) for r in reasons} == {f"sync #{log.id} t-{side.name}"}
        assert all(message_text.from_column(r)["msgid"] == "sync #%(run)d %(target)s" for r in reasons)


def test_a_scheduled_exports_result_and_refusal_keep_their_ids(ctx: Any, make_customer: Any, tmp_path: Path) -> None:
    make_customer("rep_a", name="Listed")

    def export(name: str, username: str, **fields: Any) -> TransferSchedule:
        schedule = TransferSchedule(name=name, kind="list_export", model="customer", cron="*/15 * * * *",
                                    mode="upsert", run_as_id=user_id(username), path=str(tmp_path / f"{name}.xlsx"),
                                    **fields)
        db.session.add(schedule)
        db.session.commit()
        return schedules.run(schedule)

    written = export("ok", "manager")
    assert written.last_status == "done"
    assert message_text.from_column(written.last_message)["msgid"] == "%(n)d rows written to %(path)s"
    assert _shown(written.last_message, "zh").startswith("已写入 1 行到 ")
    refused = export("sorted", "manager", filters="/customerview/list/?_oc_CustomerView=contact_phone&_od_CustomerView=asc")
    assert refused.last_status == "failed"
    assert message_text.text(refused.last_message) == "This list cannot be sorted by contact_phone."
    assert "msgid" in str(message_text.from_column(refused.last_message))  # rendered per reader, not stored text
    denied = export("denied", "viewer")
    assert denied.last_status == "failed" and "PermissionError" not in message_text.text(denied.last_message)
    job = db.session.scalar(select(TransferJob).where(TransferJob.schedule_id == denied.id))
    assert jobs.error_message(job)["msgid"] == "%(user)s may not export this list."
