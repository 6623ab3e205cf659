"""The value-mapping step in the import run (issue 11 §4): the dry run counts each distinct
unknown dictionary value once per column, bounded; the choices on a job and the owner's
remembered values resolve them in the dry run, the commit and scheduled imports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import Customer, Industry, TransferJob
from app.models.transfers import UPLOADED
from app.services import dictionaries
from app.services.errors import RuleViolation
from app.services.importing import values
from tests.app.services.importing.conftest import MANUAL_HEADERS, write_xlsx
from tests.app.services.importing.value_mapping_helpers import dictionaries_restored, industry_id


@pytest.fixture
def restored(app: Any) -> Any:
    with dictionaries_restored(app):
        yield


def _row(n: int, industry: str = "", level: str = "", source: str = "") -> list[Any]:
    return ["", f"公司{n}", industry, f"联系人{n}", f"139{n:08d}", "", level, source, ""]


def test_the_dry_run_lists_each_unknown_value_once_per_column(run_job: Any, tmp_path: Path) -> None:
    rows = [_row(n, "教育x" if n % 2 else "教育ｘ", "超级重要") for n in range(40)]
    rows += [_row(100, "其他", "A", "官网"), _row(101, "信息技术", "重要", "朋友介绍"), _row(102, "", "", "")]
    job = run_job("rep_a", write_xlsx(tmp_path / "a.xlsx", {"s": [MANUAL_HEADERS, *rows]}), commit=False)
    assert (job.created, job.rejected) == (1, 42)
    listed = {group["field"]: group for group in job.preview[values.PREVIEW_KEY]}
    assert listed["industry"]["values"] == [["教育ｘ", 40, False], ["其他", 1, True]]  # 其他 names several
    assert listed["level"]["values"] == [["超级重要", 40, False]]
    assert listed["source"]["values"] == [["朋友介绍", 1, False]]
    assert all(group["more_values"] == group["more_rows"] == 0 for group in listed.values())


def test_the_list_is_bounded_and_says_what_it_left_out() -> None:
    unknown = values.UnknownValues()
    for n in range(3000):
        for _ in range(1 + (n < 3)):
            unknown.add("industry", f"行业{n}", False)
    unknown.add("industry", "x" * (values.MAX_VALUE_CHARS + 1), False)
    (group,) = unknown.summary()
    assert len(group["values"]) == values.MAX_SHOWN
    assert group["values"][:4] == [["行业0", 2, False], ["行业1", 2, False], ["行业2", 2, False], ["行业3", 1, False]]
    assert (group["more_values"], group["more_rows"]) == (3001 - values.MAX_SHOWN, 3001 - values.MAX_SHOWN)


def test_choices_on_the_job_and_remembered_values_resolve_in_dry_run_and_commit(app: Any, run_job: Any,
                                                                                tmp_path: Path,
                                                                                restored: Any) -> None:
    with app.app_context():
        dictionaries.remember_value(appbuilder.sm.find_user(username="rep_a"), Industry, industry_id(app, "83"),
                                    "教育x", everyone=False)
        db.session.commit()
    path = write_xlsx(tmp_path / "a.xlsx", {"s": [MANUAL_HEADERS, _row(1, "教育Ｘ"), _row(2, "宠物医院")]})
    job = run_job("rep_a", path, options={values.OPTIONS_KEY: {"industry": {"宠物医院": industry_id(app, "84")}}})
    assert (job.status, job.created, job.rejected) == ("done", 2, 0), job.preview
    with app.app_context():
        codes = dict(db.session.execute(select(Customer.name, Industry.code).join(Customer.industry)).all())
        assert codes == {"公司1": "83", "公司2": "84"}
    # Another rep's job does not see rep_a's remembered value.
    job = run_job("rep_b", write_xlsx(tmp_path / "b.xlsx", {"s": [MANUAL_HEADERS, _row(3, "教育x")]}))
    assert job.rejected == 1 and job.preview[values.PREVIEW_KEY][0]["values"] == [["教育x", 1, False]]


def test_a_value_mapped_to_an_entry_retired_since_is_unknown_again(app: Any, run_job: Any, tmp_path: Path,
                                                                     restored: Any) -> None:
    with app.app_context():
        dictionaries.remember_value(appbuilder.sm.find_user(username="rep_a"), Industry, industry_id(app, "83"),
                                    "教育x", everyone=False)
        db.session.get(Industry, industry_id(app, "83")).active = False
        db.session.commit()
    job = run_job("rep_a", write_xlsx(tmp_path / "a.xlsx", {"s": [MANUAL_HEADERS, _row(1, "教育x")]}), commit=False)
    assert job.rejected == 1 and job.preview[values.PREVIEW_KEY][0]["values"] == [["教育x", 1, False]]


def test_scheduled_imports_use_the_run_as_users_remembered_values(app: Any, restored: Any, tmp_path: Path) -> None:
    from app.services.importing import jobs

    with app.app_context():
        rep = appbuilder.sm.find_user(username="rep_a")
        dictionaries.remember_value(rep, Industry, industry_id(app, "83"), "教育x", everyone=False)
        path = write_xlsx(tmp_path / "a.xlsx", {"s": [MANUAL_HEADERS, _row(1, "教育x")]})
        job = jobs.create_job(rep, "customer", path.name, path.read_bytes(), mode="upsert")
        job.mapping = jobs.propose_mapping(job)[1]
        db.session.commit()
        job = jobs.execute(job.id, commit=True)  # as a schedule runs it: no dry run, nobody to ask
        assert (job.created, job.rejected) == (1, 0)


def test_choices_need_a_finished_dry_run_of_the_same_list(app: Any, run_job: Any, tmp_path: Path,
                                                          restored: Any) -> None:
    path = write_xlsx(tmp_path / "a.xlsx", {"s": [MANUAL_HEADERS, _row(1, "教育x")]})
    done = run_job("rep_a", path, commit=False)
    with app.app_context():
        job = db.session.get(TransferJob, done.id)
        rep = appbuilder.sm.find_user(username="rep_a")
        education = str(industry_id(app, "83"))
        with pytest.raises(RuleViolation, match="changed since the page was shown"):
            values.apply_choices(job, rep, {("industry", 0): education}, False, "stale")
        # positions that were not listed are ignored, not guessed
        mapped, refused = values.apply_choices(job, rep, {("industry", 5): education, ("level", 0): education},
                                               False, values.digest(job))
        assert (mapped, refused) == (0, []) and dictionaries.personal_values(rep.id, Industry) == {}
        job.status = UPLOADED
        with pytest.raises(RuleViolation, match="Wait for the dry run"):
            values.apply_choices(job, rep, {("industry", 0): education}, False, values.digest(job))
        db.session.rollback()
