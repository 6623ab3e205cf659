"""The Sheets emulator answers the real gspread client the way Google does."""

from __future__ import annotations

import gspread
import pytest
import requests

from tests.fakes.sheets import FakeSheets


@pytest.fixture
def fake() -> FakeSheets:
    emulator = FakeSheets()
    emulator.create("book1", "客户表", {"客户": [["客户编号", "客户名称"], ["C1", "星河"], ["C2", "远航"]],
                                        "Other sheet": [["keep"]]}, rows=10, cols=5)
    return emulator


def client(fake: FakeSheets) -> gspread.Client:
    return gspread.Client(auth=None, session=fake.session())


def test_reads_are_trimmed_and_ranges_url_decoded(fake: FakeSheets) -> None:
    book = client(fake).open_by_key("book1")
    assert book.title == "客户表" and [w.title for w in book.worksheets()] == ["客户", "Other sheet"]
    sheet = book.worksheet("客户")
    assert (sheet.row_count, sheet.col_count) == (10, 5)
    assert sheet.get_values() == [["客户编号", "客户名称"], ["C1", "星河"], ["C2", "远航"]]
    assert book.values_get("'Other sheet'!A1:C3")["values"] == [["keep"]]
    assert fake.calls[-1].path.endswith("/values/'Other sheet'!A1:C3")
    assert "values" not in book.values_get("'客户'!D5:E6")  # an empty range has no values key


def test_raw_keeps_formula_text_user_entered_does_not(fake: FakeSheets) -> None:
    sheet = client(fake).open_by_key("book1").worksheet("客户")
    sheet.update([["=1+2", "0012"]], "A4", value_input_option="RAW")
    sheet.update([["=1+2", "0012"]], "A5", value_input_option="USER_ENTERED")
    assert fake.values("book1", "客户")[3:5] == [["=1+2", "0012"], ["#NAME?", "12"]]


def test_batch_update_and_structural_requests(fake: FakeSheets) -> None:
    book = client(fake).open_by_key("book1")
    before = fake.count()
    book.values_batch_update({"valueInputOption": "RAW", "data": [
        {"range": "'客户'!B2", "values": [["星河科技"]]}, {"range": "'客户'!A4:B4", "values": [["C3", "新"]]}]})
    sheet = book.worksheet("客户")
    sheet.delete_rows(2)  # gspread sends one deleteDimension batchUpdate
    new = book.add_worksheet("Added", rows=5, cols=3)
    assert new.title == "Added"
    assert fake.values("book1", "客户") == [["客户编号", "客户名称"], ["C2", "远航"], ["C3", "新"]]
    kinds = [c.kind for c in fake.calls[before:]]
    assert kinds.count("values_write") == 1 and kinds.count("structural") == 2


def test_errors_look_like_google(fake: FakeSheets) -> None:
    gc = client(fake)
    with pytest.raises(gspread.exceptions.SpreadsheetNotFound):
        gc.open_by_key("missing")
    sheet = gc.open_by_key("book1").worksheet("客户")
    with pytest.raises(gspread.exceptions.APIError) as grid:
        sheet.update([["x"]], "A11", value_input_option="RAW")
    assert grid.value.response.status_code == 400 and "exceeds grid limits" in str(grid.value)
    fake.fail_next(1, 429)
    with pytest.raises(gspread.exceptions.APIError) as quota:
        sheet.get_values()
    assert quota.value.response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    fake.fail(1, "timeout")
    with pytest.raises(requests.exceptions.ReadTimeout):
        sheet.get_values()
    assert sheet.get_values()[0] == ["客户编号", "客户名称"]  # faults are one-shot


def test_append_grows_the_grid(fake: FakeSheets) -> None:
    sheet = client(fake).open_by_key("book1").worksheet("客户")
    sheet.append_rows([[f"C{n}", "x"] for n in range(3, 15)], value_input_option="RAW")
    assert len(fake.values("book1", "客户")) == 15  # header, 2 rows, 12 appended
    assert fake.spreadsheets["book1"].sheet("客户").rows == 15  # was 10


def test_merged_cells_as_google_keeps_them(fake: FakeSheets) -> None:
    book = client(fake).open_by_key("book1")
    sheet = book.worksheet("客户")
    sheet.update([["C3", "新"]], "A4", value_input_option="RAW")
    sheet.merge_cells("B2:B4")  # gspread's mergeCells request; only the top-left value stays
    assert sheet.get_values("B2:B4") == [["星河"]]  # the covered cells read as nothing
    sheet.update([["hidden"]], "B3", value_input_option="RAW")
    assert fake.values("book1", "客户")[2] == ["C2"]  # kept under the merge, not shown
    sheet.insert_row(["C0", "first"], index=2)  # rows inserted above move the merge down
    assert fake.spreadsheets["book1"].sheet("客户").merges == [(2, 1, 5, 2)]
    sheet.delete_rows(3)  # deleting the merge's first row shrinks it (and its value goes)
    assert fake.spreadsheets["book1"].sheet("客户").merges == [(2, 1, 4, 2)]
    sheet.unmerge_cells("B3:B4")
    assert [row[:2] for row in fake.values("book1", "客户")[2:4]] == [["C2", "hidden"], ["C3"]]


def test_spreadsheets_get_gives_grid_data_and_merges_for_ranges(fake: FakeSheets) -> None:
    book = client(fake).open_by_key("book1")
    book.worksheet("客户").merge_cells("A2:A3")
    fields = "sheets(properties(sheetId,title,gridProperties(rowCount)),merges,data(startRow,rowData(values(effectiveValue))))"
    got = book.client.spreadsheets_get("book1", params={"ranges": ["'客户'!2:3", "'客户'!1:1"],
                                                                    "fields": fields})
    (sheet,) = got["sheets"]  # only the sheet the ranges name
    assert sheet["properties"]["gridProperties"]["rowCount"] == 10
    assert sheet["merges"] == [{"startRowIndex": 1, "endRowIndex": 3, "endColumnIndex": 1}]  # zeros left out
    first, header = sheet["data"]
    assert first["startRow"] == 1 and "startRow" not in header
    assert first["rowData"] == [{"values": [{"effectiveValue": {"stringValue": "C1"}},
                                            {"effectiveValue": {"stringValue": "星河"}}]},
                                {"values": [{}, {"effectiveValue": {"stringValue": "远航"}}]}]


def test_on_request_runs_an_edit_before_that_request_is_answered(fake: FakeSheets) -> None:
    sheet = client(fake).open_by_key("book1").worksheet("客户")
    fake.on_request(1, lambda: fake.spreadsheets["book1"].sheet("客户").write(1, 1, [["同事"]], raw=True))
    assert sheet.get_values("B2") == [["同事"]]
    assert sheet.get_values("B2") == [["同事"]] and not fake.actions


def test_get_by_data_filter_answers_like_get_with_ranges(fake: FakeSheets) -> None:
    http = client(fake).http_client
    fields = "sheets(properties(title),data(startRow,rowData(values(effectiveValue))))"
    body = {"dataFilters": [{"a1Range": "'客户'!3:3"}, {"a1Range": "'客户'!1:1"}]}
    got = http.request("post", "https://sheets.googleapis.com/v4/spreadsheets/book1:getByDataFilter",
                       params={"fields": fields}, json=body).json()
    expected = http.spreadsheets_get("book1", params={"ranges": ["'客户'!3:3", "'客户'!1:1"], "fields": fields})
    assert got == expected and got["sheets"][0]["data"][0]["startRow"] == 2
    assert fake.calls[-2].kind == "read"  # a POST that only reads
