"""问题反馈 (000 附录3): any user reports a problem with the CRM; it becomes an internal ticket
(no customer) with the screenshot attached, every admin is told, and the reporter — only
the reporter, besides admins and the desk — sees it."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from app.extensions import appbuilder, db
from app.models import Notification
from app.models.service import Attachment, Ticket
from app.security import data_scope
from app.services import attachments, problem_reports, sla
from app.services.errors import NotFound, RuleViolation
from tests.conftest import user_id

pytestmark = pytest.mark.usefixtures("shanghai", "sla_ready")

#: The smallest valid PNG (1x1 pixel).
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"


@pytest.fixture
def sla_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """While ``app.services.sla`` is still a stub (another builder's), its ``start`` is a no-op
    for these tests; once written, the real one runs."""
    from app.models.service import Ticket as _Ticket

    try:
        sla.pause(_Ticket(), None)  # type: ignore[arg-type]
    except NotImplementedError:
        for name in ("start", "pause", "resume", "responded", "resolved", "reopened"):
            monkeypatch.setattr(sla, name, lambda ticket, at: None)
    except Exception:  # noqa: BLE001 - the real function refused a blank ticket: it is written
        pass


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def upload(data: bytes, name: str = "screen.png") -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=name, content_type="image/png")


def report(by: str = "rep_a", screenshot: Any = None, **values: Any) -> Ticket:
    values = {"description": "导出客户列表时报错\n页面显示 500", "steps": "1. 客户 > 导出\n2. 选 Excel", **values}
    item = problem_reports.report_problem(values, user(by), screenshot)
    db.session.commit()
    return item


def test_a_report_is_an_internal_ticket_without_customer_from_the_reporter(ctx: Any) -> None:
    item = report(screenshot=upload(PNG))
    assert item.code.startswith("T")
    assert item.customer_id is None and item.ticket_type.code == "internal" and item.channel == "internal"
    assert item.subject == "导出客户列表时报错" and item.steps.startswith("1. 客户")
    assert item.created_by_fk == user_id("rep_a")
    files = attachments.for_record(item)
    assert [(f.filename, f.content_type) for f in files] == [("screen.png", "image/png")]


def test_every_admin_is_told(ctx: Any) -> None:
    item = report()
    told = db.session.scalars(select(Notification).where(Notification.event == "problem_reported")).all()
    assert [n.user_id for n in told] == [user_id("admin")]
    assert item.code in str(told[0].params)


def test_the_description_is_required_and_named(ctx: Any) -> None:
    with pytest.raises(RuleViolation) as caught:
        problem_reports.report_problem({"description": "  ", "steps": "x"}, user("rep_a"))
    assert "Problem description" in caught.value.errors["description"]


def test_a_screenshot_that_is_html_is_refused_and_nothing_is_kept(ctx: Any) -> None:
    with pytest.raises(RuleViolation) as caught:
        problem_reports.report_problem({"description": "broken"}, user("rep_a"), upload(HTML, "shot.png"))
    db.session.rollback()
    assert caught.value.status == 415 and "screenshot" in caught.value.errors
    assert db.session.scalar(select(Ticket.id)) is None
    assert db.session.scalar(select(Attachment.id)) is None


def test_the_reporter_and_admins_see_it_other_reps_do_not(ctx: Any) -> None:
    item = report()
    assert [t.id for t in problem_reports.my_reports(user("rep_a"))] == [item.id]
    assert problem_reports.load_own(item.id, user("rep_a")).id == item.id
    assert problem_reports.my_reports(user("rep_b")) == []
    with pytest.raises(NotFound):
        problem_reports.load_own(item.id, user("rep_b"))
    assert data_scope.can_see(user("admin"), item)
    assert not data_scope.can_see(user("rep_b"), item)
    assert not data_scope.can_see(user("manager"), item)  # rep_a's manager: not a customer's ticket
