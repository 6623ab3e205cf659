"""Duplicates on entry (form and API), the dedup screens and merging (step-up, audit, aliases)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Customer, CustomerAlias, FollowUp
from tests.app.services.importing.conftest import write_xlsx
from tests.app.services.test_dedup_clusters import fresh_clusters  # noqa: F401 (autouse fixture)


def test_form_warns_about_a_duplicate_and_saves_when_confirmed(app: Any, client: Any, auth: Any,
                                                               make_customer: Any) -> None:
    pk = make_customer("rep_a", name="Acme Ltd", contact_name="Zhou", contact_phone="13800000001")
    auth.login("rep_a")
    form = {"name": "ACME ltd", "contact_name": "zhou", "contact_phone": "138-0000-0001"}
    page = client.post("/customerview/add", data=form).get_data(as_text=True)
    assert "looks like an existing customer" in page and f"/customerview/show/{pk}" in page
    assert 'value="ACME ltd"' in page  # the form is kept
    with app.app_context():
        assert db.session.query(Customer).count() == 1
    assert client.post("/customerview/add", data={**form, "allow_duplicate": "y"}).status_code == 302
    with app.app_context():
        assert db.session.query(Customer).count() == 2


def test_api_answers_409_with_the_matches_unless_confirmed(client: Any, api: Any, make_customer: Any) -> None:
    make_customer("rep_b", name="Acme Ltd", contact_name="Zhou", contact_phone="13800000001")
    headers = api("rep_a")
    body = {"name": "Acme Ltd", "contact_name": "Zhou", "contact_phone": "13800000001"}
    response = client.post("/api/v1/customer/", json=body, headers=headers)
    assert response.status_code == 409
    message = response.get_json()["message"]
    # rep_b's customer counts, but rep_a is not told its code or name
    assert message["duplicates"] == [] and "outside your data scope" in message["duplicate"]
    assert "Acme" not in message["duplicate"]
    assert client.post("/api/v1/customer/?allow_duplicate=1", json=body, headers=headers).status_code == 201


def test_block_policy_refuses_even_when_confirmed(app: Any, client: Any, api: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Acme Ltd", contact_name="Zhou", contact_phone="13800000001")
    app.config["CRM_DUPLICATES"] = "block"
    try:
        body = {"name": "Acme Ltd", "contact_name": "Zhou", "contact_phone": "13800000001"}
        response = client.post("/api/v1/customer/?allow_duplicate=1", json=body, headers=api("rep_a"))
        assert response.status_code == 409 and "not allowed" in json.dumps(response.get_json())
    finally:
        app.config["CRM_DUPLICATES"] = "warn"


def test_editing_other_fields_of_a_known_duplicate_is_not_blocked(client: Any, api: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Twin", contact_name="Li", contact_phone="13800000001")
    pk = make_customer("rep_a", name="Twin", contact_name="Li", contact_phone="13800000001")
    headers = api("rep_a")
    response = client.put(f"/api/v1/customer/{pk}", json={"note": "just a note", "version": 1}, headers=headers)
    assert response.status_code == 200, response.get_json()


def _cluster(make_customer: Any, make_follow_up: Any) -> tuple[int, int]:
    keep = make_customer("rep_a", name="Acme Ltd", contact_name="Zhou", contact_phone="13800000001")
    gone = make_customer("rep_b", name="ACME Limited", contact_name="Zhou", contact_phone="13800000001",
                         email="sales@acme.test")
    make_follow_up(gone, "rep_b", content="Met at the fair")
    return keep, gone


def test_manager_reviews_and_merges_with_step_up(app: Any, client: Any, auth: Any, make_customer: Any,
                                                 make_follow_up: Any, tmp_path: Path) -> None:
    keep, gone = _cluster(make_customer, make_follow_up)
    auth.login("manager")
    page = client.get("/duplicates/").get_data(as_text=True)
    assert "same phone" in page and f"ids={keep},{gone}" in page.replace("%2C", ",")
    review = client.get(f"/duplicates/review?ids={keep},{gone}").get_data(as_text=True)
    assert "sales@acme.test" in review and "138****0001" in review and "13800000001" not in review
    form = {"ids": [str(keep), str(gone)], "survivor": str(keep), "pick_email": str(gone), "pick_name": str(keep)}

    response = client.post("/duplicates/merge", data=form)
    assert response.status_code in (200, 401) and "authenticator" in response.get_data(as_text=True).lower()
    with app.app_context():
        assert db.session.get(Customer, gone).archived_at is None  # nothing merged without the code

    auth.grant_step_up("manager")
    response = client.post("/duplicates/merge", data=form)
    assert response.status_code == 302 and f"/customerview/show/{keep}" in response.headers["Location"]
    with app.app_context():
        survivor, merged = db.session.get(Customer, keep), db.session.get(Customer, gone)
        assert survivor.email == "sales@acme.test" and survivor.name == "Acme Ltd"
        assert merged.archived_at is not None
        assert {f.customer_id for f in db.session.scalars(select(FollowUp))} == {keep}
        alias = db.session.scalar(select(CustomerAlias))
        assert (alias.code, alias.customer_id) == (merged.code, keep)
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "merge"))
        assert json.loads(entry.detail)["merged"] == [merged.code] and entry.user_name == "manager"
        moved = db.session.scalar(select(AuditLog).where(AuditLog.object_type == "FollowUp",
                                                         AuditLog.action == "update"))
        assert "customer_id" in moved.changes
        old_code = merged.code
    # An old spreadsheet that still says the merged-away code updates the survivor.
    from app.services.importing import columns, jobs

    path = write_xlsx(tmp_path / "old.xlsx", {"s": [["客户编号", "客户名称", "联系方式", "备注"],
                                                    [old_code, "Acme Ltd", "13800000001", "from the old sheet"]]})
    with app.app_context():
        from app.extensions import appbuilder

        job = jobs.create_job(appbuilder.sm.find_user("manager"), "customer", path.name, path.read_bytes(),
                              mode="update")
        job.mapping = columns.auto_map(columns.CUSTOMER, ["客户编号", "客户名称", "联系方式", "备注"])
        jobs.start(job, commit=False)
        assert jobs.start(job, commit=True)
        assert db.session.get(Customer, keep).note == "from the old sheet"


def test_reps_cannot_merge_and_managers_only_within_scope(app: Any, client: Any, auth: Any, make_customer: Any,
                                                          make_follow_up: Any) -> None:
    keep, gone = _cluster(make_customer, make_follow_up)
    south = make_customer("rep_c", name="Acme Ltd", contact_name="Zhou", contact_phone="13800000001")
    auth.login("rep_a")
    auth.grant_step_up("rep_a")
    response = client.post("/duplicates/merge", data={"ids": [str(keep), str(gone)], "survivor": str(keep)})
    assert response.status_code in (302, 403)
    with app.app_context():
        assert db.session.get(Customer, gone).archived_at is None
    auth.logout()
    auth.login("manager_s")
    auth.grant_step_up("manager_s")
    assert client.get(f"/duplicates/review?ids={keep},{south}").status_code == 404
    response = client.post("/duplicates/merge", data={"ids": [str(south), str(gone)], "survivor": str(south)})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(Customer, gone).archived_at is None
