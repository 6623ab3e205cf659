"""The navbar quick search covers the declared record types, in scope (issue 13 + issue 11 §6)."""

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import CrmUser, Lead


def _lead(app: Any, owner: str, company: str, phone: str) -> str:
    with app.app_context():
        user = db.session.scalar(select(CrmUser).where(CrmUser.username == owner))
        lead = Lead(company=company, phone=phone, owner_id=user.id, status="new")
        db.session.add(lead)
        db.session.commit()
        return lead.code


def test_quick_search_finds_own_leads_by_name_code_and_phone_never_a_colleagues(app, client, auth):
    own = _lead(app, "rep_a", "星河数据有限公司", "13800001111")
    other = _lead(app, "rep_b", "星河软件有限公司", "13800002222")
    auth.login("rep_a")
    for typed in ("星河", own, "138 0000 1111"):
        page = client.get("/search/", query_string={"q": typed}).get_data(as_text=True)
        assert own in page, typed
        assert other not in page and "星河软件" not in page, typed
    for typed in (other, "13800002222"):
        page = client.get("/search/", query_string={"q": typed}).get_data(as_text=True)
        # the box echoes what was typed; no result names the colleague's lead
        assert page.count(other) == (2 if typed == other else 0) and "星河软件" not in page, typed  # navbar + page box
