"""The import screens answer a hostile file with a message, never a 500, and the mapping page
stays small (issue 10, "Files and paths"); the mapping page, the dry run and the commit all
read through the bounded reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.extensions import db
from app.models import Customer, TransferJob
from tests.app.services.importing.conftest import write_xlsx
from tests.app.services.importing.crafted import sheet_xml, xlsx
from tests.views.test_imports import _job_id, _mapping_form, _upload

XXE = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'


def _follow(client: Any, response: Any) -> str:
    assert response.status_code == 302, response.status_code
    return client.get(response.headers["Location"], follow_redirects=True).get_data(as_text=True)


def test_a_doctype_workbook_is_a_message_at_upload(client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    rows = b'<row r="1"><c r="A1" t="inlineStr"><is><t>&e;</t></is></c><c r="B1"><v>1</v></c></row>'
    path = xlsx(tmp_path / "xxe.xlsx", sheet_xml(rows).replace(b'<?xml version="1.0" encoding="UTF-8"?>', XXE))
    page = _follow(client, _upload(client, path))
    assert "document type declaration" in page and "root:" not in page


@pytest.mark.parametrize("columns", [18_000, 1_000_000])
def test_a_very_wide_csv_is_a_message_not_a_huge_page(client: Any, auth: Any, tmp_path: Path, columns: int) -> None:
    auth.login("rep_a")
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{n}" for n in range(columns)) + "\n" + ",".join("1" * 3) + "\n")
    response = _upload(client, path)
    page = client.get(response.headers["Location"], follow_redirects=True)
    assert page.status_code == 200 and len(page.data) < 200_000
    assert "more than 256 columns" in page.get_data(as_text=True)


def test_the_mapping_page_stays_small_whatever_the_cells_hold(client: Any, auth: Any, tmp_path: Path) -> None:
    """256 columns whose headers and cells hold 2,000 characters each: shown cut short."""
    auth.login("rep_a")
    path = tmp_path / "fat.csv"
    fat = ["长" * 2_000 + str(n) for n in range(256)]
    path.write_text(",".join(["客户名称", "联系方式"] + fat[2:]) + "\n" + "\n".join([",".join(fat)] * 3) + "\n")
    response = _upload(client, path)
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert html.count('<select name="map_') == 256 and len(page.data) < 1_000_000
    assert "长" * 59 + "…" in html and "长" * 61 not in html


def test_a_sheet_the_workbook_does_not_have_is_a_message(client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    path = write_xlsx(tmp_path / "two.xlsx", {"A": [["客户名称", "联系方式"], ["Acme", "13812345678"]],
                                              "B": [["x", "y"]]})
    job_id = _job_id(_upload(client, path))
    response = client.post(f"/imports/{job_id}/mapping", data={"sheet": "N" * 5000})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "no sheet named" in page
    with client.application.app_context():
        assert db.session.get(TransferJob, job_id).sheet == "A"


def test_upload_mapping_dry_run_and_commit_all_read_through_the_bounds(app: Any, client: Any, auth: Any,
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    auth.login("rep_a")
    rows = [["客户名称", "联系方式"]] + [[f"Bound Co {n}", f"1381234{n:04d}"] for n in range(30)]
    path = write_xlsx(tmp_path / "thirty.xlsx", {"s": rows})
    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_ROWS", 10)
    assert "more than 10 rows" in _follow(client, _upload(client, path))  # upload: opening the workbook

    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_ROWS", 100)
    job_id = _job_id(_upload(client, path))
    page = client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)
    form = {**_mapping_form(page), "mode": "create", "key": "code"}
    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_ROWS", 10)
    assert "more than 10 rows" in _follow(client, client.get(f"/imports/{job_id}/mapping"))  # mapping page
    assert "more than 10 rows" in _follow(client, client.post(f"/imports/{job_id}/mapping", data=form))

    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_ROWS", 100)
    client.post(f"/imports/{job_id}/mapping", data=form)  # the dry run passes
    monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_ROWS", 10)
    client.post(f"/imports/{job_id}/commit")  # the commit reads the file again
    with app.app_context():
        job = db.session.get(TransferJob, job_id)
        assert job.status == "failed" and "more than 10 rows" in job.error
        assert db.session.query(Customer).count() == 0


def test_the_dry_run_reads_through_the_bounds(app: Any, client: Any, auth: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    auth.login("rep_a")
    path = write_xlsx(tmp_path / "ten.xlsx", {"s": [["客户名称", "联系方式"]] + [["Co", "13812345678"]] * 20})
    job_id = _job_id(_upload(client, path))
    form = {**_mapping_form(client.get(f"/imports/{job_id}/mapping").get_data(as_text=True)), "mode": "create",
            "key": "code"}
    monkeypatch.setattr("app.services.importing.jobs.reading.read_table", _shrinking(app, monkeypatch))
    client.post(f"/imports/{job_id}/mapping", data=form)
    with app.app_context():
        job = db.session.get(TransferJob, job_id)
        assert job.status == "failed" and "more than 5 rows" in job.error


def _shrinking(app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """read_table as it is, except that the limit drops once the mapping page has read the file
    (so only the dry run's own read meets it)."""
    from app.services.importing import reading

    real, calls = reading.read_table, []

    def read(path: Any, sheet: Any = None, **options: Any) -> Any:
        calls.append(path)
        if len(calls) > 1:
            monkeypatch.setitem(app.config, "CRM_IMPORT_MAX_ROWS", 5)
        return real(path, sheet, **options)

    return read
