"""The import screens end to end: template, upload, mapping, dry run, commit, report, limits."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, TransferJob
from app.services import background
from tests.app.services.importing.conftest import MANUAL_HEADERS, write_xlsx


def _upload(client: Any, path: Path, model: str = "customer") -> Any:
    with path.open("rb") as handle:
        return client.post("/imports/upload", data={"model": model, "file": (handle, path.name)},
                           content_type="multipart/form-data")


def _job_id(response: Any) -> int:
    return int(re.search(r"/imports/(\d+)", response.headers["Location"]).group(1))


def _mapping_form(page: str) -> dict[str, str]:
    """The mapping form as the browser would submit it (selected options)."""
    form = {}
    for name, body in re.findall(r'<select name="(map_\d+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        form[name] = chosen.group(1) if chosen else ""
    return form


def test_template_has_headers_required_marks_and_dictionary_dropdowns(client: Any, auth: Any) -> None:
    auth.login("rep_a")
    response = client.get("/imports/template/customer")
    assert response.status_code == 200
    workbook = load_workbook(io.BytesIO(response.data))
    sheet = workbook.worksheets[0]
    headers = [c.value for c in sheet[1]]
    assert "Customer name *" in headers and "Contact phone *" in headers and "Industry" in headers
    industry_col = headers.index("Industry") + 1
    lists = workbook["lists"]
    industries = [row[0] for row in lists.iter_rows(min_col=industry_col, max_col=industry_col, values_only=True)]
    assert "Manufacturing > Manufacture of Automobiles" in industries
    assert lists.sheet_state == "hidden"
    ranges = {str(dv.sqref): dv.formula1 for dv in sheet.data_validations.dataValidation}
    assert any("lists" in formula for formula in ranges.values())
    assert len(workbook.sheetnames) == 3  # data, lists, notes
    # The template maps back without editing.
    assert client.get("/imports/template/follow_up").status_code == 200


def test_upload_map_dry_run_commit_and_report(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    path = write_xlsx(tmp_path / "客户.xlsx", {"客户信息": [
        MANUAL_HEADERS,
        ["", "杭州西湖茶业有限公司", "批发", "周杰", "13911112222", "杭州市", "一般", "转介绍", ""],
        ["", "坏行", "批发", "周杰", "123", "", "", "展会推广", ""],
    ]})
    response = _upload(client, path)
    assert response.status_code == 302
    job_id = _job_id(response)
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    form = _mapping_form(page)
    assert list(form.values())[:5] == ["code", "name", "industry", "contact_name", "contact_phone"]
    response = client.post(f"/imports/{job_id}/mapping", data={**form, "mode": "create", "key": "code"})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Dry run, nothing saved yet" in page and "1 to create" in page and "1 rejected" in page
    with app.app_context():
        assert db.session.scalar(select(Customer).where(Customer.name == "杭州西湖茶业有限公司")) is None
    response = client.post(f"/imports/{job_id}/commit")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "1 created" in page
    progress = client.get(f"/imports/{job_id}/progress").get_json()
    assert progress["status"] == "done" and progress["processed"] == progress["total"] == 2
    report = client.get(f"/imports/{job_id}/report")
    assert report.status_code == 200
    rows = list(load_workbook(io.BytesIO(report.data)).active.iter_rows(values_only=True))
    assert rows[1][1] == "坏行" and "联系方式" in rows[1][-1]
    assert "客户.xlsx" in client.get("/imports/").get_data(as_text=True)  # history


def test_someone_elses_job_is_not_found(client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    job_id = _job_id(_upload(client, write_xlsx(tmp_path / "a.xlsx", {"s": [["客户名称", "联系方式"], ["A", "13812345678"]]})))
    auth.logout()
    auth.login("rep_b")
    for url in (f"/imports/{job_id}", f"/imports/{job_id}/mapping", f"/imports/{job_id}/progress"):
        assert client.get(url).status_code == 404
    assert client.post(f"/imports/{job_id}/commit").status_code == 404


def test_mapping_is_remembered_per_user_and_model(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    path = write_xlsx(tmp_path / "m.xlsx", {"s": [["Firma", "Tel."], ["Remembered GmbH", "13812345678"]]})
    job_id = _job_id(_upload(client, path))
    form = _mapping_form(client.get(f"/imports/{job_id}/mapping").get_data(as_text=True))
    assert form == {"map_0": "", "map_1": ""}  # unknown headers: nothing guessed
    client.post(f"/imports/{job_id}/mapping", data={"map_0": "name", "map_1": "contact_phone", "mode": "create",
                                                    "key": "code"})
    second = _job_id(_upload(client, path))
    form = _mapping_form(client.get(f"/imports/{second}/mapping").get_data(as_text=True))
    assert form == {"map_0": "name", "map_1": "contact_phone"}
    auth.logout()
    auth.login("rep_b")
    third = _job_id(_upload(client, path))
    assert _mapping_form(client.get(f"/imports/{third}/mapping").get_data(as_text=True)) == {"map_0": "", "map_1": ""}


def test_missing_required_column_is_refused_with_a_message(client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    job_id = _job_id(_upload(client, write_xlsx(tmp_path / "n.xlsx", {"s": [["客户名称", "备注"], ["A", "x"]]})))
    response = client.post(f"/imports/{job_id}/mapping", data={"map_0": "name", "map_1": "note", "mode": "create",
                                                               "key": "code"}, follow_redirects=True)
    assert "Map a column to Contact phone" in response.get_data(as_text=True)


def test_bad_files_get_clear_messages(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0 not really")
    page = _upload(client, old)
    assert "save the file as .xlsx" in client.get(page.headers["Location"]).get_data(as_text=True)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK not a zip")
    page = _upload(client, broken)
    assert "not a readable workbook" in client.get(page.headers["Location"]).get_data(as_text=True)
    app.config["MAX_CONTENT_LENGTH"] = 2000
    try:
        big = tmp_path / "big.csv"
        big.write_text("客户名称,联系方式\n" + "A,13812345678\n" * 400, encoding="utf-8")
        response = _upload(client, big)
        assert response.status_code == 302
        assert "upload limit" in client.get(response.headers["Location"]).get_data(as_text=True)
    finally:
        app.config["MAX_CONTENT_LENGTH"] = 20 * 1024 * 1024
    with app.app_context():
        assert db.session.scalar(select(TransferJob)) is None


def test_read_only_users_cannot_import(client: Any, auth: Any) -> None:
    auth.login("viewer")
    assert client.get("/imports/").status_code in (302, 403)
    assert client.get("/imports/template/customer").status_code in (302, 403)


def test_import_runs_in_the_background_and_reports_progress(app: Any, client: Any, auth: Any,
                                                            tmp_path: Path) -> None:
    import time

    rows = [["客户名称", "联系方式"]] + [[f"Background {n}", f"1381234{n:04d}"] for n in range(300)]
    path = write_xlsx(tmp_path / "bg.xlsx", {"s": rows})
    auth.login("rep_a")
    job_id = _job_id(_upload(client, path))
    form = _mapping_form(client.get(f"/imports/{job_id}/mapping").get_data(as_text=True))
    app.config["CRM_IMPORT_INLINE"] = False
    try:
        client.post(f"/imports/{job_id}/mapping", data={**form, "mode": "create", "key": "code"})
        seen = []
        for _ in range(200):  # the request returned at once; the job finishes on its own thread
            seen.append(client.get(f"/imports/{job_id}/progress").get_json())
            if seen[-1]["status"] == "previewed":
                break
            time.sleep(0.05)
        assert seen[-1]["status"] == "previewed" and seen[-1]["processed"] == seen[-1]["total"] == 300
        client.post(f"/imports/{job_id}/commit")
        for _ in range(200):
            state = client.get(f"/imports/{job_id}/progress").get_json()
            if state["status"] == "done":
                break
            time.sleep(0.05)
        assert state["created"] == 300
    finally:
        app.config["CRM_IMPORT_INLINE"] = True
        background.drain()  # the search indexing the import asks for at its end (PostgreSQL)
    with app.app_context():
        assert db.session.query(Customer).filter(Customer.name.like("Background %")).count() == 300


def test_odd_files_do_not_break_the_flow(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    headers_only = write_xlsx(tmp_path / "h.xlsx", {"s": [["客户名称", "联系方式", "客户名称"]]})
    job_id = _job_id(_upload(client, headers_only))
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    assert "客户名称 (2)" in page  # duplicate headers stay separate columns
    response = client.post(f"/imports/{job_id}/mapping", data={"map_0": "name", "map_1": "contact_phone",
                                                               "map_2": "no_such_field", "mode": "create",
                                                               "key": "code"})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "0 rows read" in page and "disabled" in page
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    response = client.get(f"/imports/{_job_id(_upload(client, empty))}/mapping", follow_redirects=True)
    assert "The file is empty" in response.get_data(as_text=True)
