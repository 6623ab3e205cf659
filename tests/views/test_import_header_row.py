"""Issue 11 §3, title rows: the mapping page shows the detected header row, lets the user
pick another one, and the dry run and the commit read from the row picked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, TransferJob
from tests.app.services.importing.conftest import MANUAL_HEADERS, write_xlsx
from tests.views.test_imports import _job_id, _mapping_form, _upload


def _selected_header(page: str) -> str | None:
    body = re.search(r'<select name="header_line"[^>]*>(.*?)</select>', page, re.S)
    chosen = body and re.search(r'<option value="(\d+)" selected', body.group(1))
    return chosen.group(1) if chosen else None


def _job(app: Any, job_id: int) -> TransferJob:
    with app.app_context():
        job = db.session.get(TransferJob, job_id)
        db.session.expunge(job)
        return job


def _customer(app: Any, name: str) -> Customer | None:
    with app.app_context():
        found = db.session.scalar(select(Customer).where(Customer.name == name))
        if found is not None:
            db.session.expunge(found)
        return found


def _two_header_rows(tmp_path: Path) -> Path:
    """Row 1 groups the columns with words that are also headers (detection picks it, the
    first of a tie); the real header is row 2."""
    return write_xlsx(tmp_path / "grouped.xlsx", {"S": [["客户名称", "联系方式", "备注"],
                                                        ["客户名称", "联系人姓名", "联系方式"],
                                                        ["Picked Co", "王", "13812345670"]]})


def test_title_row_blank_row_header_in_row_3_is_detected_and_offered(app: Any, client: Any, auth: Any,
                                                                      tmp_path: Path) -> None:
    auth.login("rep_a")
    rows = [["客户信息导入", None, None, "2024-05-01"], [], MANUAL_HEADERS,
            ["", "Titled Page Co", "", "王", "13812345674", "", "", "", "note"]]
    job_id = _job_id(_upload(client, write_xlsx(tmp_path / "titled.xlsx", {"S": rows})))
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    assert _selected_header(page) == "3"
    assert re.findall(r'<option value="(\d+)"', page.split('name="header_line"')[1].split("</select>")[0]) == \
        ["1", "3", "4"]  # the blank row 2 is not offered
    form = _mapping_form(page)
    assert list(form.values())[:5] == ["code", "name", "industry", "contact_name", "contact_phone"]
    response = client.post(f"/imports/{job_id}/mapping", data={**form, "header_line": "3", "mode": "create",
                                                                 "key": "code"})
    assert response.headers["Location"].endswith(f"/imports/{job_id}")
    client.post(f"/imports/{job_id}/commit")
    assert _job(app, job_id).created == 1
    assert _customer(app, "Titled Page Co").note == "note"


def test_user_picks_row_2_and_the_dry_run_and_commit_read_from_it(app: Any, client: Any, auth: Any,
                                                                  tmp_path: Path) -> None:
    auth.login("rep_a")
    job_id = _job_id(_upload(client, _two_header_rows(tmp_path)))
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    assert _selected_header(page) == "1" and "Header row" in page
    response = client.post(f"/imports/{job_id}/mapping", data={"header_line": "2", "switch_header": "1"})
    assert response.headers["Location"].endswith(f"/imports/{job_id}/mapping")
    assert _job(app, job_id).options["header_line"] == 2
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    assert _selected_header(page) == "2"
    form = _mapping_form(page)
    assert list(form.values()) == ["name", "contact_name", "contact_phone"]
    client.post(f"/imports/{job_id}/mapping", data={**form, "header_line": "2", "mode": "create", "key": "code"})
    job = _job(app, job_id)
    assert (job.status, job.total_rows, job.created, job.rejected) == ("previewed", 1, 1, 0)
    client.post(f"/imports/{job_id}/commit")
    assert _job(app, job_id).created == 1
    customer = _customer(app, "Picked Co")
    assert (customer.contact_name, customer.contact_phone) == ("王", "13812345670")


def test_changing_the_header_row_after_a_dry_run_needs_a_new_dry_run(app: Any, client: Any, auth: Any,
                                                                     tmp_path: Path) -> None:
    auth.login("rep_a")
    job_id = _job_id(_upload(client, _two_header_rows(tmp_path)))
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    client.post(f"/imports/{job_id}/mapping", data={**_mapping_form(page), "mode": "create", "key": "code"})
    assert _job(app, job_id).status == "previewed"
    client.post(f"/imports/{job_id}/mapping", data={"header_line": "2"})
    job = _job(app, job_id)
    assert (job.status, job.mapping, job.options["header_line"]) == ("uploaded", None, 2)
    page = client.post(f"/imports/{job_id}/commit", follow_redirects=True).get_data(as_text=True)
    assert "Run the dry run first" in page and _customer(app, "Picked Co") is None


def test_switching_sheet_forgets_the_header_row_and_the_dry_run(app: Any, client: Any, auth: Any,
                                                                tmp_path: Path) -> None:
    auth.login("rep_a")
    path = write_xlsx(tmp_path / "two.xlsx", {"A": [["客户名称", "联系方式"], ["Sheet A Co", "13812345671"]],
                                              "B": [["title"], ["客户名称", "联系方式"], ["Sheet B Co", "13812345672"]]})
    job_id = _job_id(_upload(client, path))
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    client.post(f"/imports/{job_id}/mapping", data={**_mapping_form(page), "mode": "create", "key": "code"})
    client.post(f"/imports/{job_id}/mapping", data={"sheet": "B"})
    job = _job(app, job_id)
    assert (job.sheet, job.status, job.mapping, (job.options or {}).get("header_line")) == ("B", "uploaded", None, None)
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    assert _selected_header(page) == "2" and list(_mapping_form(page).values()) == ["name", "contact_phone"]


def test_a_bad_header_row_is_a_message(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    rows = [["客户信息导入"], [], ["客户名称", "联系方式"], ["Bad Pick Co", "13812345673"]]
    job_id = _job_id(_upload(client, write_xlsx(tmp_path / "bad.xlsx", {"S": rows})))
    for bad in ("abc", "0", "-1", "2", "99", "21", "3.0", "１", "9" * 5000, ""):
        response = client.post(f"/imports/{job_id}/mapping", data={"header_line": bad, "switch_header": "1"},
                               follow_redirects=True)
        page = response.get_data(as_text=True)
        assert response.status_code == 200, bad
        assert "cannot be the header row" in page, bad
        assert (_job(app, job_id).options or {}).get("header_line") is None
    assert _selected_header(page) == "3"
