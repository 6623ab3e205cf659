"""Large exports: background job with progress, then a download that keeps scope,
filters, masking and formula safety; other users cannot fetch it."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import load_workbook

from app.extensions import db
from app.models import TransferJob


def test_large_list_export_runs_in_background_scoped_and_masked(app: Any, client: Any, auth: Any,
                                                                make_customer: Any) -> None:
    for n in range(4):
        make_customer("rep_a", name=f"=cmd|{n}", contact_phone=f"1380000000{n}")
    make_customer("rep_b", name="Not mine")
    app.config["CRM_EXPORT_BACKGROUND_ROWS"] = 2
    try:
        auth.login("rep_a")
        response = client.get("/customerview/export/xlsx")
        assert response.status_code == 302 and "/exports/" in response.headers["Location"]
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "Download customers.xlsx (4 rows)" in page
        job_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        assert client.get(f"/exports/{job_id}/progress").get_json()["processed"] == 4
        download = client.get(f"/exports/{job_id}/download")
        rows = list(load_workbook(io.BytesIO(download.data)).active.iter_rows(values_only=True))
        assert len(rows) == 5
        names = {row[1] for row in rows[1:]}
        assert names == {f"'=cmd|{n}" for n in range(4)}  # neutralised, and rep_b's customer is absent
        phones = {row[5] for row in rows[1:]}
        assert all("****" in phone for phone in phones)
        auth.logout()
        auth.login("rep_b")
        assert client.get(f"/exports/{job_id}/download").status_code == 404
    finally:
        app.config["CRM_EXPORT_BACKGROUND_ROWS"] = 20000
    with app.app_context():
        assert db.session.get(TransferJob, job_id).status == "done"


def test_csv_streams_with_filters_applied(client: Any, auth: Any, make_customer: Any) -> None:
    make_customer("rep_a", name="Alpha")
    make_customer("rep_a", name="Beta")
    auth.login("rep_a")
    response = client.get("/customerview/export/csv?_flt_2_name=Alp")
    assert response.is_streamed
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert [row[1] for row in rows[1:]] == ["Alpha"]


def test_every_list_download_opens_in_excel(app: Any, client: Any, auth: Any, make_customer: Any) -> None:
    """Each list's xlsx and CSV download, with records whose cells are translated labels (a
    ticket's status, a lead's stage) or enums: a workbook, never a 500."""
    from sqlalchemy import select

    from app.models import Ticket
    from app.models.dictionaries import TicketType
    from app.services import tickets
    from tests.conftest import user_id

    customer = make_customer("rep_a")
    with app.app_context():
        from app.models import Customer
        from app.models.org import CrmUser

        kind = db.session.scalars(select(TicketType)).first()
        tickets.save_ticket({"customer": db.session.get(Customer, customer), "subject": "Broken", "ticket_type": kind},
                            db.session.get(CrmUser, user_id("admin")))
        db.session.commit()
        assert db.session.scalar(select(Ticket.id)) is not None
        urls = sorted(rule.rule.replace("<string:fmt>", fmt) for rule in app.url_map.iter_rules()
                      if rule.rule.endswith("/export/<string:fmt>") and "<" not in rule.rule[:-len("<string:fmt>")]
                      for fmt in ("xlsx", "csv"))
    auth.login("admin")
    assert any(url.startswith("/ticketview/") for url in urls)
    for url in urls:
        response = client.get(url)
        body = response.get_data()  # read to the end, as a browser does (a CSV streams)
        response.close()
        assert response.status_code in (200, 302), url
        if response.status_code == 200 and url.endswith("xlsx"):
            load_workbook(io.BytesIO(body))
