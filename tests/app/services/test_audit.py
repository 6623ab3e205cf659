"""The audit log: one writer for views, API and scripts; hash chain; read-only screens."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text

from app.extensions import appbuilder, db
from app.models import AuditLog, Customer
from app.models.base import acting_user_id
from app.services import audit
from app.services.audit import audit_context, verify_chain


def _entries(app, **where):
    with app.app_context():
        query = select(AuditLog).order_by(AuditLog.seq)
        for key, value in where.items():
            query = query.where(getattr(AuditLog, key) == value)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows


def test_view_edit_is_audited_field_by_field(app, client, auth, make_customer):
    pk = make_customer("rep_a", name="Before Ltd", contact_phone="13812345678")
    auth.login("rep_a")
    client.post(f"/customerview/edit/{pk}", data={"name": "After Ltd", "contact_phone": "13987654321",
                                                  "edit_version": "1"})
    entry = _entries(app, action="update", object_id=str(pk), object_type="Customer")[-1]
    changes = json.loads(entry.changes)
    assert entry.source == "web" and entry.user_name == "rep_a" and entry.object_type == "Customer"
    assert changes["name"] == ["Before Ltd", "After Ltd"]
    # Phone numbers are masked in the log itself.
    assert changes["contact_phone"] == ["138****5678", "139****4321"]
    assert "13987654321" not in entry.changes


def test_api_change_is_audited(app, client, api, make_customer):
    pk = make_customer("rep_a", name="Via API")
    client.put(f"/api/v1/customer/{pk}", json={"name": "Changed via API", "version": 1}, headers=api("rep_a"))
    entry = _entries(app, action="update", object_id=str(pk))[-1]
    assert entry.source == "api" and json.loads(entry.changes)["name"] == ["Via API", "Changed via API"]


def test_script_change_is_audited(app, make_customer):
    pk = make_customer("rep_a", name="Scripted")
    with app.app_context():
        token = acting_user_id.set(appbuilder.sm.find_user(username="manager").id)
        try:
            with audit_context(reason="nightly clean-up"):
                db.session.get(Customer, pk).name = "Scripted and fixed"
                db.session.commit()
        finally:
            acting_user_id.reset(token)
    entry = _entries(app, action="update", object_id=str(pk))[-1]
    assert (entry.source, entry.user_name, entry.reason) == ("script", "manager", "nightly clean-up")


def test_create_archive_restore_are_recorded(app, client, auth, make_customer):
    pk = make_customer("rep_a")
    auth.login("manager")
    client.post(f"/customerview/delete/{pk}")
    client.post(f"/archivedcustomerview/action/restore/{pk}")
    actions = [e.action for e in _entries(app, object_id=str(pk), object_type="Customer")]
    assert actions == ["create", "archive", "restore"]


def test_chain_verifies_and_catches_tampering(app, make_customer):
    for i in range(3):
        make_customer("rep_a", name=f"Chain {i}")
    with app.app_context():
        report = verify_chain(db.session)
        assert report.ok and report.checked == 6  # 3 customers + their 3 primary contacts
        second = db.session.scalars(select(AuditLog).order_by(AuditLog.seq)).all()[1]
        # Someone with database access rewrites history...
        db.session.execute(text("UPDATE audit_log SET user_name = 'nobody' WHERE id = :id"), {"id": second.id})
        db.session.commit()
        report = verify_chain(db.session)
        assert not report.ok and report.broken_seq == second.seq and "altered" in report.problem


def test_chain_catches_a_deleted_entry(app, make_customer):
    for i in range(3):
        make_customer("rep_a", name=f"Gone {i}")
    with app.app_context():
        db.session.execute(text("DELETE FROM audit_log WHERE seq = 2"))
        db.session.commit()
        report = verify_chain(db.session)
        assert report.broken_seq == 2 and "missing" in report.problem


def test_audit_verify_command(app, make_customer, tmp_path):
    make_customer("rep_a")
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["crm", "audit-verify"])
    assert ok.exit_code == 0 and "2 entries verified" in ok.output
    with app.app_context():
        db.session.execute(text("UPDATE audit_log SET action = 'export'"))
        db.session.commit()
    broken = runner.invoke(args=["crm", "audit-verify"])
    assert broken.exit_code == 1 and "BROKEN at entry #1" in broken.output


def test_orm_cannot_rewrite_entries(app, make_customer):
    make_customer("rep_a")
    with app.app_context():
        entry = db.session.scalars(select(AuditLog)).first()
        entry.action = "nothing"
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.commit()
        db.session.rollback()


@pytest.mark.parametrize("username,allowed", [("admin", True), ("rep_a", False), ("manager", False)])
def test_only_admins_read_the_audit_log(client, auth, make_customer, username, allowed):
    make_customer("rep_a", name="Secret history")
    auth.login(username)
    page = client.get("/auditlogview/list/", follow_redirects=True).get_data(as_text=True)
    assert ("auditlogview/show" in page and "Secret history" not in page) is allowed
    export = client.get("/auditlogview/export/csv")
    assert (export.status_code == 200) is allowed
    export.close()  # a streamed download holds its request open until read or closed
    # No route changes an entry, even for admins.
    assert client.post("/auditlogview/delete/1").status_code in (302, 403, 404, 405)
    assert client.post("/auditlogview/edit/1", data={"action": "x"}).status_code in (302, 403, 404, 405)


def test_record_history_on_customer_page(client, auth, make_customer):
    pk = make_customer("rep_a", name="With history")
    auth.login("manager")
    page = client.get(f"/customerview/show/{pk}?tab=history").get_data(as_text=True)
    assert 'id="record-history"' in page and "With history" in page
    auth.logout()
    auth.login("rep_a")  # no can_history: no history tab, and asking for it is refused
    assert client.get(f"/customerview/show/{pk}?tab=history").status_code == 404
    assert 'id="tab-history"' not in client.get(f"/customerview/show/{pk}").get_data(as_text=True)


def test_concurrent_writers_keep_one_chain(app, make_customer):
    """Two processes appending at once must not fork the chain (the head row serialises them)."""
    code = (
        "import sys\n"
        "from app import create_app\n"
        "from config import TestConfig\n"
        f"TestConfig.SQLALCHEMY_DATABASE_URI = {app.config['SQLALCHEMY_DATABASE_URI']!r}\n"
        "a = create_app(TestConfig)\n"
        "from app.extensions import db\n"
        "from app.services.audit import record\n"
        "with a.app_context():\n"
        "    for i in range(20):\n"
        "        record('export', None, {'n': i}); db.session.commit()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with app.app_context():
        report = verify_chain(db.session)
    assert report.ok and report.checked == 40


def test_an_event_about_the_signed_in_user_names_the_user_not_the_proxy(app):
    """FAB hands ``g.user`` around as a werkzeug LocalProxy: the entry names the user row
    ("CrmUser" and its id), not "LocalProxy" (step-up and TOTP events did)."""
    from werkzeug.local import LocalProxy

    from app.models import CrmUser
    from app.services import audit
    from tests.conftest import user_id

    with app.app_context():
        user = db.session.get(CrmUser, user_id("rep_a"))
        audit.record("step_up_success", LocalProxy(lambda: user), user=user)
        db.session.commit()
        entry = db.session.scalars(select(AuditLog).where(AuditLog.action == "step_up_success")).one()
        assert (entry.object_type, entry.object_id) == ("CrmUser", str(user.id))


def test_compact_json_is_the_text_json_writes_for_every_character_so_old_entries_verify() -> None:
    # The chain hashes entries as compact JSON; entries hashed with ``json`` before orjson
    # must hash the same now, so the two must agree on every code point.
    from app.services.audit import compact_json

    def expected(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)

    characters = [chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]
    for start in range(0, len(characters), 2048):
        value = [1, None, True, "".join(characters[start:start + 2048]), {"k": [None, -7]}]
        assert compact_json(value) == expected(value)
    for odd in ([2 ** 70], ["\ud800"], {1: "x"}):  # orjson refuses these: json's text, as before
        assert compact_json(odd) == expected(odd)


def test_an_entry_built_before_its_row_is_stored_reads_as_one_built_after(ctx: Any) -> None:
    """An import's checking process builds the create entries with stand-ins for what storing
    decides (``later``); its writer fills them in (``filled``): the same text as built with the
    values, whatever they hold."""
    from app.models.activities import Activity

    stamp = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    row = {"kind": "call", "due_at": stamp, "assignee_id": 3, "customer_id": 7, "status": "open", "version": 1,
           "note": None}
    stored = {"code": "A20261203001", "id": 41, "from_follow_up_id": 9, "subject": 'Next step of "G1" \\ 下一步 ＡＢＣ'}
    expected = audit.created_changes(Activity, [{**row, **stored}])
    marked = audit.created_changes(Activity, [{**row, **{key: audit.later(key) for key in stored if key != "id"}}],
                                   ahead=("id",))
    assert marked != expected and audit.filled(marked[0], stored) == expected[0]
    assert json.loads(expected[0])["subject"] == [None, stored["subject"]]


def test_many_entries_filled_at_once_read_as_each_filled_alone(ctx: Any) -> None:
    """The writer fills a chunk's entries column by column (``filled_rows``): each reads as
    filled alone, and an entry whose row held its own code keeps it."""
    from app.models.activities import Activity

    stamp = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    row = {"kind": "call", "due_at": stamp, "assignee_id": 3, "customer_id": 7, "status": "open", "version": 1}
    rows = [{**row, "code": audit.later("code"), "subject": audit.later("subject")},
            {**row, "code": "A-TYPED-1", "subject": "typed"}]
    marked = audit.created_changes(Activity, rows, ahead=("id",))
    stored = [{"code": "A20261203001", "subject": 'Next step of "G1"', "id": 41}, {"code": "", "subject": "", "id": 42}]
    assert audit.filled_rows(marked, {"code": ["A20261203001", ""], "subject": ['Next step of "G1"', ""],
                                      "id": [41, 42]}) == [audit.filled(marked[0], stored[0]),
                                                           audit.filled(marked[1], {"id": 42})]
    assert json.loads(audit.filled_rows(marked, {"code": ["x", "y"], "id": [1, 2]})[1])["code"] == [None, "A-TYPED-1"]


def test_a_chunk_entries_show_each_instant_as_it_alone_would(ctx: Any) -> None:
    """``created_changes`` shows each distinct instant once per chunk: rows sharing a moment
    written in two zones, or a wall time repeated when clocks go back, read as each row alone."""
    from zoneinfo import ZoneInfo

    from app.models.activities import Activity

    berlin = ZoneInfo("Europe/Berlin")
    moments = [datetime(2026, 12, 3, 9, 30, tzinfo=UTC), datetime(2026, 12, 3, 10, 30, tzinfo=berlin),
               datetime(2026, 10, 25, 2, 30, tzinfo=berlin), datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=berlin)]
    rows = [{"kind": "call", "due_at": moment, "created_on": moments[0], "assignee_id": 3, "status": "open"}
            for moment in moments]
    together = audit.created_changes(Activity, rows)
    assert together == [audit.created_changes(Activity, [row])[0] for row in rows]
    assert len({json.loads(text)["due_at"][1] for text in together}) == 3  # 9:30 UTC twice; the fold's two
