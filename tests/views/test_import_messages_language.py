"""An import's stored messages are read in the READER's language (issue 11 §6, "an import error
stored in English"): the job's failure, its rows' errors, the progress answer and the error
report, whoever ran the job and in whatever language (or with none: the background pool)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import session
from flask_babel import refresh
from openpyxl import load_workbook

from app.extensions import appbuilder, db
from app.models import TransferJob
from app.services import messages, validation
from app.services.importing import jobs
from tests.app.services.importing.conftest import write_xlsx
from tests.views.test_imports import _job_id, _mapping_form, _upload

EN_HEADERS = ["Customer name", "Industry", "Contact name", "Contact phone"]
ZH_HEADERS = ["客户名称", "所属行业", "联系人姓名", "联系方式"]
#: A good row, a row without its required name, one with an unknown industry, one with a bad phone.
ROWS = [["Good Co", "", "王", "13812345678"], ["", "", "李", "13812345677"],
        ["Star Co", "星际旅行", "张", "13812345676"], ["Phone Co", "", "赵", "123"]]


def _in(app: Any, language: str) -> Any:
    """A pushed request context in ``language`` (to compute what the reader must see)."""
    context = app.test_request_context("/")
    context.push()
    session["locale"] = language
    refresh()
    return context


def _phone_problem(app: Any, language: str) -> str:
    """The phone rule's own message in ``language`` (its catalogue entry may still be missing)."""
    context = _in(app, language)
    try:
        validation.normalize_phone("123")
    except ValueError as exc:
        return str(exc)
    finally:
        context.pop()
    raise AssertionError("123 passed as a phone number")


def _dry_run(client: Any, auth: Any, username: str, language: str, path: Path) -> int:
    """``username`` uploads ``path`` in ``language`` and runs the dry run (inline in the tests)."""
    auth.login(username)
    client.get(f"/lang/{language}")
    job_id = _job_id(_upload(client, path))
    form = _mapping_form(client.get(f"/imports/{job_id}/mapping").get_data(as_text=True))
    client.post(f"/imports/{job_id}/mapping", data={**form, "mode": "create", "key": "code"})
    return job_id


def _failing_run(app: Any, client: Any, auth: Any, username: str, language: str, tmp_path: Path) -> int:
    """An import whose file became unreadable after its dry run (a failed job)."""
    job_id = _dry_run(client, auth, username, language,
                      write_xlsx(tmp_path / "broken.xlsx", {"S": [EN_HEADERS, ROWS[0]]}))
    with app.app_context():
        Path(db.session.get(TransferJob, job_id).stored_path).write_bytes(b"not a workbook")
        db.session.remove()
    client.post(f"/imports/{job_id}/commit")
    return job_id


def _reader(app: Any, auth: Any, language: str) -> Any:
    """Another person (an admin sees everyone's imports) reading in ``language``."""
    reader = app.test_client()
    reader.post("/login/", data={"username": "admin", "password": "Test-Pass-1234"})
    reader.get(f"/lang/{language}")
    return reader


def _report_errors(reader: Any, job_id: int) -> list[str]:
    response = reader.get(f"/imports/{job_id}/report")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    return [row[-1] for row in sheet.iter_rows(min_row=2, values_only=True)]


@pytest.fixture
def english_job(app: Any, client: Any, auth: Any, tmp_path: Path) -> int:
    path = write_xlsx(tmp_path / "customers.xlsx", {"Customers": [EN_HEADERS, *ROWS]})
    return _dry_run(client, auth, "rep_a", "en", path)


def test_row_errors_of_an_english_run_read_in_chinese(app: Any, client: Any, auth: Any, english_job: int) -> None:
    page = _reader(app, auth, "zh").get(f"/imports/{english_job}").get_data(as_text=True)
    assert "客户名称: 此项为必填项。" in page  # missing required value, the column in the reader's words
    assert "行业: 星际旅行 不在列表中；请从下拉列表中选择。" in page  # unknown dictionary value
    assert f"联系电话: {_phone_problem(app, 'zh')}" in page  # bad phone
    assert "This field is required" not in page and "is not in the list" not in page
    assert "Customer name:" not in page and "Contact phone:" not in page


def test_error_report_of_an_english_run_downloaded_in_chinese(app: Any, client: Any, auth: Any,
                                                              english_job: int) -> None:
    zh_errors = _report_errors(_reader(app, auth, "zh"), english_job)
    assert len(zh_errors) == 3
    assert any("客户名称" in e and "此项为必填项。" in e for e in zh_errors)
    assert any("行业" in e and "星际旅行 不在列表中；请从下拉列表中选择。" in e for e in zh_errors)
    assert any(_phone_problem(app, "zh") in e for e in zh_errors)
    # The file's own header is kept beside the label: the rows are fixed in that file.
    assert any("(Contact phone)" in e for e in zh_errors)
    assert not any("required" in e or "not in the list" in e for e in zh_errors)
    assert all(e.startswith("[第 ") for e in zh_errors)  # the row prefix too, and the column's header:
    zh_sheet = load_workbook(io.BytesIO(_reader(app, auth, "zh").get(f"/imports/{english_job}/report").data)).active
    assert next(zh_sheet.iter_rows(max_row=1, values_only=True))[-1] == "导入错误"
    en_errors = _report_errors(_reader(app, auth, "en"), english_job)
    assert any("Customer name: This field is required." in e for e in en_errors)


def test_a_chinese_run_reads_in_english(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "客户.xlsx", {"客户信息": [ZH_HEADERS, *ROWS]})
    job_id = _dry_run(client, auth, "rep_a", "zh", path)
    reader = _reader(app, auth, "en")
    page = reader.get(f"/imports/{job_id}").get_data(as_text=True)
    assert "Customer name: This field is required." in page
    assert "Industry: 星际旅行 is not in the list; pick one of the dropdown values." in page
    assert f"Contact phone: {_phone_problem(app, 'en')}" in page
    assert "此项为必填项" not in page and "不在列表中" not in page and "联系电话" not in page
    errors = _report_errors(reader, job_id)
    assert any("This field is required." in e and "客户名称" in e for e in errors)  # header as in the file
    assert not any("此项为必填项" in e or "不在列表中" in e for e in errors)
    zh_page = _reader(app, auth, "zh").get(f"/imports/{job_id}").get_data(as_text=True)
    assert "客户名称: 此项为必填项。" in zh_page


@pytest.mark.parametrize("written_in, read_in, expected", [
    ("en", "zh", "此文件不是可读取的工作簿（不是 .xlsx/.ods 压缩包）。"),
    ("zh", "en", "This file is not a readable workbook (not an .xlsx/.ods zip)."),
])
def test_a_failed_job_reads_in_the_readers_language(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                    written_in: str, read_in: str, expected: str) -> None:
    job_id = _failing_run(app, client, auth, "rep_a", written_in, tmp_path)
    reader = _reader(app, auth, read_in)
    page = reader.get(f"/imports/{job_id}").get_data(as_text=True)
    assert expected in page  # the reason inside the message is the reader's too
    assert reader.get(f"/imports/{job_id}/progress").get_json()["error"] == expected
    with app.app_context():
        job = db.session.get(TransferJob, job_id)
        # Text for readers that do not render (the scheduled jobs page): the default language.
        assert (job.status, job.error) == ("failed", "This file is not a readable workbook (not an .xlsx/.ods zip).")
        db.session.remove()


def test_a_job_of_the_background_pool_reads_in_chinese(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    """No request at all (a scheduled or pooled run): messages are still kept as ids."""
    path = write_xlsx(tmp_path / "pool.xlsx", {"S": [EN_HEADERS, *ROWS]})
    with app.app_context():
        user = appbuilder.sm.find_user(username="rep_a")
        job = jobs.create_job(user, "customer", path.name, path.read_bytes())
        _, job.mapping = jobs.propose_mapping(job)
        db.session.commit()
        jobs.start(job, commit=False)
        job_id = job.id
        db.session.remove()
    page = _reader(app, auth, "zh").get(f"/imports/{job_id}").get_data(as_text=True)
    assert "客户名称: 此项为必填项。" in page and "星际旅行 不在列表中" in page


def test_an_interrupted_job_reads_in_the_readers_language(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "stuck.xlsx", {"S": [EN_HEADERS, ROWS[0]]})
    with app.app_context():
        user = appbuilder.sm.find_user(username="rep_a")
        job = jobs.create_job(user, "customer", path.name, path.read_bytes(), status="running", processed_rows=7)
        db.session.commit()
        job_id = job.id
        jobs.mark_interrupted()
        db.session.remove()
    context = _in(app, "zh")
    expected = messages.render({"msgid": "Interrupted by a restart after %(n)d rows; committed rows are kept. "
                                         "Upload the error report or the file again in update/upsert mode.",
                                "params": {"n": 7}})
    context.pop()
    assert "7" in expected and "Interrupted" not in expected  # the catalogue has it
    assert expected in _reader(app, auth, "zh").get(f"/imports/{job_id}").get_data(as_text=True)


def test_jobs_stored_as_text_before_are_shown_as_stored(app: Any, client: Any, auth: Any, tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "old.xlsx", {"S": [EN_HEADERS, ROWS[0]]})
    with app.app_context():
        user = appbuilder.sm.find_user(username="rep_a")
        failed = jobs.create_job(user, "customer", path.name, path.read_bytes(), status="failed",
                                 error="Old failure text.")
        done = jobs.create_job(user, "customer", path.name, path.read_bytes(), status="previewed", total_rows=1,
                               rejected=1, preview={"error": [{"line": 2, "code": None, "values": ["x"],
                                                               "errors": "Contact phone: old row text"}]})
        db.session.commit()
        ids = failed.id, done.id
        db.session.remove()
    reader = _reader(app, auth, "zh")
    assert "Old failure text." in reader.get(f"/imports/{ids[0]}").get_data(as_text=True)
    assert reader.get(f"/imports/{ids[0]}/progress").get_json()["error"] == "Old failure text."
    assert "Contact phone: old row text" in reader.get(f"/imports/{ids[1]}").get_data(as_text=True)


def test_headers_map_whatever_the_language_of_whoever_runs_the_import(app: Any, client: Any, auth: Any,
                                                                        tmp_path: Path) -> None:
    """The same kind: what a run does must not depend on its runner's language. An English
    template's headers map for a Chinese reader as they do for an English one."""
    path = write_xlsx(tmp_path / "template-en.xlsx", {"S": [EN_HEADERS, ROWS[0]]})
    auth.login("rep_a")
    client.get("/lang/zh")
    job_id = _job_id(_upload(client, path))
    form = _mapping_form(client.get(f"/imports/{job_id}/mapping").get_data(as_text=True))
    assert form == {"map_0": "name", "map_1": "industry", "map_2": "contact_name", "map_3": "contact_phone"}


def test_messages_keep_ids_through_joins_and_nested_reasons(app: Any) -> None:
    """The capture reads ids back after the services built text from them (joins, f-strings)."""
    from flask_babel import lazy_gettext as _l

    with app.app_context():
        with messages.capturing() as capture:
            reason = str(_l("not an .xlsx/.ods zip"))[:120]
            text = f"{_l('Customer name')}: {ValueError(_l('This file is not a readable workbook (%(why)s).', why=reason))}"
            stored = capture.stored(text)
        assert stored == {"parts": [{"msgid": "Customer name"}, ": ", {
            "msgid": "This file is not a readable workbook (%(why)s).",
            "params": {"why": {"msgid": "not an .xlsx/.ods zip"}}}]}
        assert messages.render(stored, "zh") == "客户名称: 此文件不是可读取的工作簿（不是 .xlsx/.ods 压缩包）。"
        assert str(_l("Customer name")) == "Customer name"  # the window is closed again
        assert messages.render({"msgid": "%(n)d broken %(x)s", "params": {"n": "not a number"}}) == \
            "%(n)d broken %(x)s"  # a stored message that no longer formats never raises


def test_header_detection_is_unchanged_while_messages_keep_their_ids(app: Any, tmp_path: Path) -> None:
    """The run reads the file inside a capture window: the labels it matches headers against
    must stay text there. A title row above headers that only the customer fields' English
    labels name: the header is row 3 for the mapping page and for the run alike."""
    path = write_xlsx(tmp_path / "titled.xlsx", {"S": [["Customer list", None, "2024-05-01"], [],
                                                       ["Customer name", "Unified social credit code"],
                                                       ["Titled Co", "91350100M000100Y43"]]})
    with app.app_context():
        user = appbuilder.sm.find_user(username="rep_a")
        job = jobs.create_job(user, "customer", path.name, path.read_bytes())
        table, job.mapping = jobs.propose_mapping(job)
        assert table.header_line == 3 and job.mapping == {"Customer name": "name",
                                                          "Unified social credit code": "credit_code"}
        db.session.commit()
        jobs.start(job, commit=False)
        job = db.session.get(TransferJob, job.id)
        assert (job.status, job.total_rows, job.rejected) == ("previewed", 1, 1)  # the data row, no phone
        db.session.remove()


def test_a_dictionary_entry_as_a_parameter_reads_in_the_readers_language(app: Any) -> None:
    """A parameter that is a dictionary entry keeps its label in every language (what
    ``validation.check_choice`` stores once it passes the entry rather than its label)."""
    from flask_babel import lazy_gettext as _l
    from sqlalchemy import select

    from app.models import Industry

    with app.app_context():
        entry = db.session.scalars(select(Industry).where(Industry.parent_id.isnot(None))).first()
        with messages.capturing() as capture:
            stored = capture.stored(ValueError(_l("%(label)s is no longer in use; pick another value.", label=entry)))
        assert messages.render(stored, "zh") == f"{entry.parent.label_zh} > {entry.label_zh} 已停用，请选择其他选项。"
        assert messages.render(stored, "en").startswith(f"{entry.parent.label_en} > {entry.label_en} is no longer")
        db.session.remove()
