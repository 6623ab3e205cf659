"""The import's value-mapping step (issue 11 §4): each distinct dictionary value that names no
entry is listed once with its row count after the dry run, can be mapped to an active entry of
that dictionary or left as an error, and the choice is remembered for the next file (an alias
for users who may edit the dictionaries, the user's own memory for everyone else)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Customer, CustomerLevel, ImportMapping, Industry, TransferJob
from app.services.importing import values
from tests.app.services.importing.conftest import MANUAL_HEADERS, write_xlsx
from tests.app.services.importing.value_mapping_helpers import aliases_of, dictionaries_restored, industry_id
from tests.views.test_imports import _job_id, _mapping_form, _upload

#: 医院 is a seeded alias of 84 (卫生), so the file's second unknown value is 宠物医院.
UNKNOWN_EDUCATION, UNKNOWN_CLINIC = "教育x", "宠物医院"


@pytest.fixture
def restored(app: Any) -> Any:
    with dictionaries_restored(app):
        yield


def _rows(industry: str, count: int, start: int) -> list[list[Any]]:
    return [["", f"公司{start + n}", industry, f"联系人{start + n}", f"138{start + n:08d}", "", "", "", ""]
            for n in range(count)]


def _file(tmp_path: Path, name: str, *groups: tuple[str, int], start: int = 0) -> Path:
    rows = [MANUAL_HEADERS]
    for industry, count in groups:
        rows += _rows(industry, count, start)
        start += count
    return write_xlsx(tmp_path / name, {"客户信息": rows})


def _dry_run(client: Any, path: Path) -> tuple[int, str]:
    """Upload, accept the proposed mapping, run the dry run; (job id, job page)."""
    job_id = _job_id(_upload(client, path))
    form = _mapping_form(client.get(f"/imports/{job_id}/mapping").get_data(as_text=True))
    client.post(f"/imports/{job_id}/mapping", data={**form, "mode": "create", "key": "code"})
    return job_id, client.get(f"/imports/{job_id}").get_data(as_text=True)


def _listed(page: str) -> list[tuple[str, int]]:
    """(value, rows) of every value the mapping step lists."""
    found = re.findall(r'<td class="unknown-value">([^<]*).*?<td class="value-rows">(\d+)</td>', page, re.S)
    return [(html.unescape(text).strip(), int(rows)) for text, rows in found]


def _digest(page: str) -> str:
    return re.search(r'name="digest" value="([0-9a-f]*)"', page).group(1)


def _map(client: Any, job_id: int, page: str, choices: dict[str, Any], **extra: Any) -> str:
    data = {"digest": _digest(page), **{k: str(v) for k, v in choices.items()}, **extra}
    return client.post(f"/imports/{job_id}/values", data=data, follow_redirects=True).get_data(as_text=True)


def _job(app: Any, job_id: int) -> TransferJob:
    with app.app_context():
        job = db.session.get(TransferJob, job_id)
        db.session.expunge(job)
        return job


def test_the_manuals_template_row_imports_with_no_mapping_step(app: Any, client: Any, auth: Any,
                                                               tmp_path: Path) -> None:
    auth.login("rep_a")
    path = write_xlsx(tmp_path / "附录1.xlsx", {"客户信息": [
        MANUAL_HEADERS, ["", "科技有限公司", "信息技术", "李娜", "13800138000", "北京市海淀区", "重要", "官网表单", ""]]})
    job_id, page = _dry_run(client, path)
    assert "1 to create" in page and 'id="value-mapping"' not in page
    client.post(f"/imports/{job_id}/commit")
    with app.app_context():
        customer = db.session.scalar(select(Customer).where(Customer.name == "科技有限公司"))
        assert (customer.industry.code, customer.level.code, customer.source.code) == ("I", "A", "website")


def test_each_unknown_value_is_listed_once_with_its_row_count(client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    path = _file(tmp_path, "a.xlsx", (UNKNOWN_EDUCATION, 30), (UNKNOWN_CLINIC, 2), ("教育Ｘ", 20), ("教育", 3))
    _job_id_, page = _dry_run(client, path)
    assert "3 to create" in page and "52 rejected" in page
    # 教育Ｘ (full width) is the same value as 教育x: one line, 50 rows, shown as first written
    assert _listed(page) == [(UNKNOWN_EDUCATION, 50), (UNKNOWN_CLINIC, 2)]
    assert "所属行业" in page.split('id="value-mapping"')[1]  # the column as the file names it
    panel = page.split('id="value-mapping"')[1]
    assert "leave as error" in panel and '<optgroup label="P Education"><option value=' in panel
    assert ">83 Education</option>" in panel and ">A 重要" not in panel  # this dictionary's entries only


def test_a_rep_maps_a_value_for_their_own_imports(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                  restored: Any) -> None:
    education = industry_id(app, "83")
    seeded = aliases_of(app, Industry, "83")
    auth.login("rep_a")
    job_id, page = _dry_run(client, _file(tmp_path, "a.xlsx", (UNKNOWN_EDUCATION, 50), (UNKNOWN_CLINIC, 2)))
    assert _listed(page) == [(UNKNOWN_EDUCATION, 50), (UNKNOWN_CLINIC, 2)]
    assert "remembered for your own imports" in page and 'name="as_alias"' not in page
    page = _map(client, job_id, page, {"value-industry-0": education, "value-industry-1": ""})
    assert "1 values mapped" in page
    assert "50 to create" in page and "2 rejected" in page  # the dry run ran again with the choice
    assert _listed(page) == [(UNKNOWN_CLINIC, 2)]  # left as an error: still listed
    client.post(f"/imports/{job_id}/commit")
    job = _job(app, job_id)
    assert (job.status, job.created, job.rejected) == ("done", 50, 2)
    errors = [row["errors"] for row in job.preview["error"]]
    assert all("所属行业" in e and UNKNOWN_CLINIC in e and "not in the list" in e for e in errors) and len(errors) == 2
    with app.app_context():
        industries = db.session.execute(select(Customer.industry_id).where(Customer.name.like("公司%"))).scalars().all()
        assert industries == [education] * 50
    assert aliases_of(app, Industry, "83") == seeded  # nothing changed for anyone else

    # The next file: remembered, no mapping step.
    job_id, page = _dry_run(client, _file(tmp_path, "b.xlsx", (UNKNOWN_EDUCATION, 3), start=1000))
    assert "3 to create" in page and 'id="value-mapping"' not in page
    # ... for rep_a only: rep_b still gets the step.
    auth.logout()
    auth.login("rep_b")
    _job_id2, page = _dry_run(client, _file(tmp_path, "c.xlsx", (UNKNOWN_EDUCATION, 3), start=2000))
    assert _listed(page) == [(UNKNOWN_EDUCATION, 3)]


def test_a_dictionary_editor_maps_a_value_for_everyone(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                       restored: Any) -> None:
    education = industry_id(app, "83")
    auth.login("admin")
    job_id, page = _dry_run(client, _file(tmp_path, "a.xlsx", (UNKNOWN_EDUCATION, 50), (UNKNOWN_CLINIC, 2)))
    assert 'name="as_alias" value="1" checked' in page and "added to the entry as an alias" in page
    page = _map(client, job_id, page, {"value-industry-0": education}, as_alias="1")
    assert "50 to create" in page and "2 rejected" in page
    assert UNKNOWN_EDUCATION in aliases_of(app, Industry, "83")
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.object_type == "Industry",
                                                         AuditLog.object_id == str(education))
                                  .order_by(AuditLog.seq.desc()).limit(1))
        assert entry is not None and UNKNOWN_EDUCATION in entry.changes and f"import #{job_id}" in entry.reason
    client.post(f"/imports/{job_id}/commit")
    assert _job(app, job_id).created == 50
    # Everyone's next file resolves it, with no mapping step.
    auth.logout()
    auth.login("rep_b")
    _second, page = _dry_run(client, _file(tmp_path, "b.xlsx", (UNKNOWN_EDUCATION, 3), start=1000))
    assert "3 to create" in page and 'id="value-mapping"' not in page


def test_an_editor_may_keep_a_choice_to_their_own_imports(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                          restored: Any) -> None:
    seeded = aliases_of(app, Industry, "83")
    auth.login("admin")
    job_id, page = _dry_run(client, _file(tmp_path, "a.xlsx", (UNKNOWN_EDUCATION, 2)))
    page = _map(client, job_id, page, {"value-industry-0": industry_id(app, "83")})  # "as alias" unticked
    assert "2 to create" in page and aliases_of(app, Industry, "83") == seeded


def test_a_rep_cannot_add_an_alias_with_a_crafted_post(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                       restored: Any) -> None:
    seeded = aliases_of(app, Industry, "83")
    auth.login("rep_a")
    job_id, page = _dry_run(client, _file(tmp_path, "a.xlsx", (UNKNOWN_EDUCATION, 2)))
    page = _map(client, job_id, page, {"value-industry-0": industry_id(app, "83")}, as_alias="1")
    assert "Only users who may edit the dictionaries can add aliases" in page
    assert aliases_of(app, Industry, "83") == seeded
    assert _listed(page) == [(UNKNOWN_EDUCATION, 2)]  # nothing applied, nothing remembered
    with app.app_context():
        assert db.session.scalar(select(ImportMapping).where(ImportMapping.model == "dictionary-values")) is None
    # Nor through the dictionary screen or API.
    client.post(f"/industryview/edit/{industry_id(app, '83')}", data={"aliases": UNKNOWN_EDUCATION})
    assert aliases_of(app, Industry, "83") == seeded


def test_inactive_or_foreign_entries_cannot_be_picked(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                      restored: Any) -> None:
    with app.app_context():
        retired = Industry(code="X9", label_en="Retired", label_zh="停用行业", sort_order=9999, active=False)
        db.session.add(retired)
        db.session.commit()
        retired_id = retired.id
        level_ids = set(db.session.scalars(select(CustomerLevel.id)))
        foreign = next(pk for pk in db.session.scalars(select(Industry.id).where(Industry.active.is_(True)))
                       if pk not in level_ids)  # an industry id that no level has
    auth.login("admin")
    rows = [MANUAL_HEADERS, ["", "甲公司", UNKNOWN_EDUCATION, "李", "13800000001", "", "超级重要", "", ""]]
    job_id, page = _dry_run(client, write_xlsx(tmp_path / "a.xlsx", {"s": rows}))
    assert _listed(page) == [(UNKNOWN_EDUCATION, 1), ("超级重要", 1)]
    assert "停用行业" not in page  # inactive entries are not offered
    page = _map(client, job_id, page, {"value-industry-0": retired_id, "value-level-0": foreign}, as_alias="1")
    assert "is inactive and cannot be picked for 教育x" in page
    assert "Pick an entry of the list for 超级重要" in page
    assert _listed(page) == [(UNKNOWN_EDUCATION, 1), ("超级重要", 1)]
    assert aliases_of(app, Industry, "X9") == [] and all("超级重要" not in aliases_of(app, CustomerLevel, c)
                                                        for c in ("A", "B", "C"))
    page = _map(client, job_id, page, {"value-industry-0": "1 OR 1=1", "value-level-0": "-1"}, as_alias="1")
    assert "Pick an entry of the list for 教育x" in page and "Pick an entry of the list for 超级重要" in page


@pytest.mark.parametrize("username", ["admin", "rep_a"])
def test_a_value_that_names_another_entry_is_refused(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                     restored: Any, username: str) -> None:
    """Between the dry run and the choice an admin made 教育x an alias of 84 (卫生)."""
    auth.login(username)
    job_id, page = _dry_run(client, _file(tmp_path, "a.xlsx", (UNKNOWN_EDUCATION, 2)))
    with app.app_context():
        health = db.session.scalar(select(Industry).where(Industry.code == "84"))
        health.aliases = f"{health.aliases}\n教育X"
        db.session.commit()
    page = _map(client, job_id, page, {"value-industry-0": industry_id(app, "83")},
                **({"as_alias": "1"} if username == "admin" else {}))
    assert "教育x already names" in page and "(84)" in page and "an alias must name one entry only" in page
    assert UNKNOWN_EDUCATION not in aliases_of(app, Industry, "83")


def test_a_form_for_an_earlier_dry_run_is_refused(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                  restored: Any) -> None:
    auth.login("rep_a")
    job_id, page = _dry_run(client, _file(tmp_path, "a.xlsx", (UNKNOWN_EDUCATION, 2), (UNKNOWN_CLINIC, 1)))
    stale = page.replace(_digest(page), "0" * 32)
    answer = _map(client, job_id, stale, {"value-industry-0": industry_id(app, "83")})
    assert "The dry run has changed since the page was shown" in answer
    assert _listed(answer) == [(UNKNOWN_EDUCATION, 2), (UNKNOWN_CLINIC, 1)]


def test_the_list_of_values_is_bounded(client: Any, auth: Any, tmp_path: Path) -> None:
    auth.login("rep_a")
    groups = [(f"行业{n:03d}", 2 if n < 5 else 1) for n in range(values.MAX_SHOWN + 10)] + [("长" * 101, 4)]
    _job, page = _dry_run(client, _file(tmp_path, "many.xlsx", *groups))
    listed = _listed(page)
    assert len(listed) == values.MAX_SHOWN
    assert listed[:5] == [(f"行业{n:03d}", 2) for n in range(5)]  # most rows first
    assert "长" * 101 not in page.split('id="value-mapping"')[1].split("</form>")[0]  # too long to be an alias
    assert "11 more values in 14 rows are not listed" in page  # 10 one-row values + the 4 too long
