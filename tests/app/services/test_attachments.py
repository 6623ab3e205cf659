"""Attachments (issue 16): the kind is judged by the content (a PNG named .exe is a PNG, an
HTML page named .png is refused), the size limit is a setting, names lose their folders and
control characters, files are stored by hash under the files root, and only someone who may
see the record gets the file."""

from __future__ import annotations

import io
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage

from app.extensions import appbuilder, db
from app.models import Customer
from app.services import attachments, files, settings
from app.services.errors import NotFound, RuleViolation
from tests.app.services.test_problem_reports import HTML, PNG, sla_ready  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("shanghai", "sla_ready")

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def user(name: str) -> Any:
    return appbuilder.sm.find_user(username=name)


def upload(data: bytes, name: str, content_type: str = "image/png") -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=name, content_type=content_type)


@pytest.fixture
def customer(ctx: Any, make_customer: Any) -> Customer:
    return db.session.get(Customer, make_customer("rep_a"))


def test_a_png_named_exe_is_stored_as_the_png_it_is(customer: Customer) -> None:
    item = attachments.store(customer, upload(PNG, "invoice.exe", "application/x-msdownload"), user("rep_a"),
                             kinds=attachments.SCREENSHOT)
    db.session.commit()
    assert (item.content_type, item.filename, item.size) == ("image/png", "invoice.png", len(PNG))
    stored = files.roots()[0] / item.path
    assert item.path == f"attachments/{item.sha256[:2]}/{item.sha256}" and stored.read_bytes() == PNG
    assert [a.id for a in attachments.for_record(customer)] == [item.id]


@pytest.mark.parametrize(("data", "name"), [(HTML, "shot.png"), (b"MZ\x90\x00" + b"\x00" * 60, "shot.png"),
                                             (PDF, "shot.png"), (b"just text", "notes.txt")])
def test_content_that_is_not_an_allowed_kind_is_refused_with_a_message(customer: Customer, data: bytes,
                                                                       name: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        attachments.store(customer, upload(data, name), user("rep_a"), kinds=attachments.SCREENSHOT)
    assert caught.value.status == 415
    assert "PNG, JPG, GIF, WEBP" in caught.value.errors["file"]


def test_a_pdf_is_a_document(customer: Customer) -> None:
    item = attachments.store(customer, upload(PDF, "合同.pdf", "image/png"), user("rep_a"), kinds=attachments.DOCUMENT)
    assert (item.content_type, item.filename) == ("application/pdf", "合同.pdf")


def test_the_size_limit_is_the_setting(customer: Customer) -> None:
    settings.save({"attachment_max_mb": 1}, user("admin"))
    db.session.commit()
    big = PNG + b"\x00" * (1024 * 1024)
    with pytest.raises(RuleViolation) as caught:
        attachments.store(customer, upload(big, "big.png"), user("rep_a"), kinds=attachments.SCREENSHOT)
    assert caught.value.status == 413 and "larger than 1 MB" in caught.value.errors["file"]
    with pytest.raises(RuleViolation) as caught:
        attachments.store(customer, upload(b"", "empty.png"), user("rep_a"), kinds=attachments.SCREENSHOT)
    assert "empty" in caught.value.errors["file"]


@pytest.mark.parametrize(("raw", "clean"), [
    ("../../etc/passwd.png", "passwd.png"), ("C:\\Users\\li\\Desktop\\截图 1.png", "截图 1.png"),
    ("bad\x00name\r\n.png", "badname.png"), ("", "attachment.png"), ("photo.JPEG", "photo.png"),
    ("..", "attachment.png"), ("a" * 300 + ".png", "a" * 251 + ".png")])
def test_names_lose_folders_and_control_characters(raw: str, clean: str) -> None:
    assert attachments.clean_filename(raw, "png") == clean


def test_jpeg_names_keep_their_spelling() -> None:
    assert attachments.clean_filename("photo.JPEG", "jpg") == "photo.JPEG"


def test_only_someone_who_sees_the_record_gets_the_file(customer: Customer) -> None:
    item = attachments.store(customer, upload(PNG, "a.png"), user("rep_a"), kinds=attachments.SCREENSHOT)
    db.session.commit()
    found, path = attachments.for_download(item.id, user("rep_a"))
    assert found.id == item.id and path.read_bytes() == PNG
    assert attachments.for_download(item.id, user("manager"))[0].id == item.id
    for outsider in ("rep_b", "rep_c", "manager_s"):
        with pytest.raises(NotFound):
            attachments.for_download(item.id, user(outsider))
    with pytest.raises(NotFound):
        attachments.for_download(item.id + 1000, user("admin"))
