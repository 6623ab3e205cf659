"""Screens of imports and dictionaries show labels a person reads, never stored codes or
FAB's untranslatable class-name titles (issue 11 §6, on the import and dictionary pages)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.app.services.importing.conftest import MANUAL_HEADERS, write_xlsx
from tests.views.test_import_value_mapping import _dry_run


def test_import_pages_show_mode_status_model_and_outcome_labels(client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    path = write_xlsx(tmp_path / "a.xlsx", {"s": [MANUAL_HEADERS, ["", "甲公司", "", "李", "13800000001"],
                                                  ["", "乙公司", "", "王", "123"]]})
    job_id, page = _dry_run(client, path)
    assert f"#{job_id} · Customers · Create new records only</small>" in page
    headings = re.findall(r"<h4>([^<]*?) <small>first", page)
    assert headings == ["To create", "Rejected"]
    client.post(f"/imports/{job_id}/commit")
    page = client.get(f"/imports/{job_id}").get_data(as_text=True)
    assert re.findall(r"<h4>([^<]*?) <small>first", page) == ["Created", "Rejected"]
    history = client.get("/imports/").get_data(as_text=True)
    row = re.search(rf"<tr><td>{job_id}</td>(.*?)</tr>", history, re.S).group(1)
    assert "<td>Customers</td>" in row and "<td>Done</td>" in row and ">customer<" not in row


def test_dictionary_screens_have_their_own_titles(client: Any, auth: Any) -> None:
    auth.login("admin")
    for url, title in (("/industryview/add", "Add industry"), ("/customerlevelview/edit/1", "Edit customer level"),
                       ("/customersourceview/show/1", "Customer source"),
                       ("/followupmethodview/add", "Add follow-up method"),
                       ("/customertypeview/edit/1", "Edit customer type")):
        page = client.get(url).get_data(as_text=True)
        assert title in page, url
        assert not re.search(r"(Add|Edit|Show) (Industry|Customer (Level|Source|Type)|Follow Up Method)", page), url
