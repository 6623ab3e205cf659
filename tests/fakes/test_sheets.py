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


def test_raw_keeps_formula_text_user_entered_computes_it(fake: FakeSheets) -> None:
    sheet = client(fake).open_by_key("book1").worksheet("客户")
    sheet.update([["=1+2", "0012"]], "A4", value_input_option="RAW")
    sheet.update([["=1+2", "0012"]], "A5", value_input_option="USER_ENTERED")
    assert fake.values("book1", "客户")[3:5] == [["=1+2", "0012"], ["3", "12"]]  # Google computes =1+2


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
    # as the cassettes show a GridRange: every index (0 too), no sheetId when it is 0
    assert sheet["merges"] == [{"startRowIndex": 1, "endRowIndex": 3, "startColumnIndex": 0, "endColumnIndex": 1}]
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


# --- issue 21: what Google answers (gspread cassettes, tests/fakes/recorded/) -------------------

def _get(book: gspread.Spreadsheet, a1: str, **params: str) -> dict:
    return book.values_get(a1, params=params)


def test_formulas_are_computed_and_dates_are_serials_as_google_answers(fake: FakeSheets) -> None:
    book = client(fake).open_by_key("book1")
    sheet = book.worksheet("Other sheet")
    sheet.update([["=4/2", "2020-01-01", "string", 53], ["=3/2", 0.12, "1999-01-02", ""]], "A1:D2",
                 value_input_option="USER_ENTERED")
    # cassette test_get_all_values_date_time_render_options, answer by answer
    assert _get(book, "'Other sheet'!A1:D2", valueRenderOption="UNFORMATTED_VALUE",
                dateTimeRenderOption="SERIAL_NUMBER")["values"] == [[2, 43831, "string", 53], [1.5, 0.12, 36162]]
    assert _get(book, "'Other sheet'!A1:D2", valueRenderOption="UNFORMATTED_VALUE",
                dateTimeRenderOption="FORMATTED_STRING")["values"] == [[2, "2020-01-01", "string", 53],
                                                                       [1.5, 0.12, "1999-01-02"]]
    formatted = [["2", "2020-01-01", "string", "53"], ["1.5", "0.12", "1999-01-02"]]
    for dates in ("SERIAL_NUMBER", "FORMATTED_STRING"):  # ignored under FORMATTED_VALUE
        assert _get(book, "'Other sheet'!A1:D2", valueRenderOption="FORMATTED_VALUE",
                    dateTimeRenderOption=dates)["values"] == formatted
    assert _get(book, "'Other sheet'!A1:D2", valueRenderOption="FORMULA")["values"] == [
        ["=4/2", 43831, "string", 53], ["=3/2", 0.12, 36162]]
    fields = "sheets(data(rowData(values(userEnteredValue,effectiveValue,formattedValue))))"
    got = book.client.spreadsheets_get("book1", params={"ranges": ["'Other sheet'!A1:B2"], "fields": fields})
    first, second = (row["values"] for row in got["sheets"][0]["data"][0]["rowData"])
    assert first[0] == {"userEnteredValue": {"formulaValue": "=4/2"}, "effectiveValue": {"numberValue": 2},
                        "formattedValue": "2"}
    assert first[1] == {"userEnteredValue": {"numberValue": 43831}, "effectiveValue": {"numberValue": 43831},
                        "formattedValue": "2020-01-01"}
    assert second[0]["effectiveValue"] == {"numberValue": 1.5} and second[0]["formattedValue"] == "1.5"


def test_formula_language_and_errors(fake: FakeSheets) -> None:
    fake.create("book2", "t", {"Sheet1": [], "Other sheet": []}, rows=30)
    book = client(fake).open_by_key("book2")
    sheet = book.worksheet("Other sheet")
    formulas = ['=2+3*4', '=(2+3)*4', '=-2^2', '=10/4', '=A1&"-"&B1', '=SUM(C1:C3)', '=AVERAGE(C1:C3)',
                '=MIN(C1:C3)', '=MAX(C1:C3)', '=ROUND(2.5)', '=ROUND(3.14159,2)', '=CONCATENATE("VIP","客户")',
                '=IF(C1>1,"big","small")', '=LEN("星河科技")', '=UPPER("abc")', '=LOWER("ABC")', '=C1=2',
                '=FOO(1)', '=1/0', '=A1+1', '=1+', '=D22']
    sheet.update([["keep", "x", 2], ["", "", 4], ["", "", 9]], "A1:C3", value_input_option="RAW")
    sheet.update([[f] for f in formulas], "D1", value_input_option="USER_ENTERED")
    shown = [row[0] for row in _get(book, f"'Other sheet'!D1:D{len(formulas)}")["values"]]
    assert shown == ["14", "20", "4", "2.5", "keep-x", "15", "5", "2", "9", "3", "3.14", "VIP客户", "big", "4",
                     "ABC", "abc", "TRUE", "#NAME?", "#DIV/0!", "#VALUE!", "#ERROR!", "#REF!"]  # D22: itself
    raw = _get(book, "'Other sheet'!D1:D3", valueRenderOption="UNFORMATTED_VALUE")["values"]
    assert raw == [[14], [20], [4]]  # numbers, not text
    got = book.client.spreadsheets_get("book2", params={"ranges": ["'Other sheet'!D18:D19"],
                                                        "fields": "sheets(data(rowData(values(effectiveValue))))"})
    name, zero = (row["values"][0]["effectiveValue"]["errorValue"] for row in got["sheets"][0]["data"][0]["rowData"])
    assert name["type"] == "NAME" and zero["type"] == "DIVIDE_BY_ZERO"


def test_formulas_keep_pointing_at_their_cells_when_rows_move(fake: FakeSheets) -> None:
    book = client(fake).open_by_key("book1")
    sheet = book.worksheet("客户")
    sheet.update([["=B2&B3"]], "C3", value_input_option="USER_ENTERED")
    assert _get(book, "'客户'!C3")["values"] == [["星河远航"]]
    sheet.insert_row(["C0", "新"], index=2)  # above both references
    assert _get(book, "'客户'!C4", valueRenderOption="FORMULA")["values"] == [["=B3&B4"]]
    assert _get(book, "'客户'!C4")["values"] == [["星河远航"]]
    sheet.delete_rows(3)  # the row B3 pointed at: Google shows #REF!
    assert _get(book, "'客户'!C3")["values"] == [["#REF!"]]


def test_a_book_not_shared_answers_403_like_google(fake: FakeSheets) -> None:
    fake.unshare("book1")
    response = client(fake).http_client.session.get("https://sheets.googleapis.com/v4/spreadsheets/book1")
    assert response.status_code == 403
    assert response.json() == {"error": {"code": 403, "message": "The caller does not have permission",
                                         "status": "PERMISSION_DENIED"}}  # cassette test_access_private_spreadsheet
    with pytest.raises(gspread.exceptions.APIError) as denied:
        client(fake).http_client.values_update("book1", "'客户'!A1", params={"valueInputOption": "RAW"},
                                               body={"values": [["x"]]})
    assert denied.value.response.status_code == 403
    assert fake.values("book1", "客户")[0] == ["客户编号", "客户名称"]  # nothing written


def test_structural_batch_update_is_all_or_nothing(fake: FakeSheets) -> None:
    http = client(fake).http_client
    sheet_id = fake.spreadsheets["book1"].sheet("客户").sheet_id
    rows = [{"deleteDimension": {"range": {"sheetId": sheet_id, "dimension": "ROWS", "startIndex": 2,
                                           "endIndex": 3}}},
            {"deleteDimension": {"range": {"sheetId": sheet_id, "dimension": "ROWS", "startIndex": 50,
                                           "endIndex": 51}}}]  # past the 10-row grid
    with pytest.raises(gspread.exceptions.APIError) as failed:
        http.batch_update("book1", {"requests": rows})
    assert failed.value.response.status_code == 400
    assert failed.value.response.json()["error"]["message"].startswith("Invalid requests[1].deleteDimension:")
    assert fake.values("book1", "客户") == [["客户编号", "客户名称"], ["C1", "星河"], ["C2", "远航"]]  # both rows kept
    assert fake.spreadsheets["book1"].sheet("客户").rows == 10
    adds = [{"addSheet": {"properties": {"title": "new"}}}, {"mergeCells": {"range": {"sheetId": 999}}}]
    with pytest.raises(gspread.exceptions.APIError):
        http.batch_update("book1", {"requests": adds})
    assert [s.title for s in fake.spreadsheets["book1"].sheets] == ["客户", "Other sheet"]  # the sheet not added


def test_write_answers_count_and_name_what_was_written(fake: FakeSheets) -> None:
    http = client(fake).http_client
    answer = http.values_update("book1", "'Other sheet'!A1", params={"valueInputOption": "RAW"},
                                body={"values": [["a", None, "c"], [None, None], ["x"]]})
    assert answer["updatedRange"] == "'Other sheet'!A1:C3"  # the written area, not its first cell
    assert (answer["updatedRows"], answer["updatedColumns"], answer["updatedCells"]) == (2, 2, 3)  # nulls skipped
    answer = http.values_batch_update("book1", {"valueInputOption": "RAW", "data": [
        {"range": "'客户'!A4:D4", "values": [["A4", "B4", "", "D4"]]},
        {"range": "'客户'!A1:D1", "values": [["A1", "B1", "", "D1"]]},
        {"range": "'Other sheet'!B2", "values": [["second sheet"]]}]})
    # cassette test_batch_update: distinct rows and columns
    assert (answer["totalUpdatedRows"], answer["totalUpdatedColumns"], answer["totalUpdatedCells"],
            answer["totalUpdatedSheets"]) == (3, 5, 9, 2)
    assert [r["updatedRange"] for r in answer["responses"]] == ["'客户'!A4:D4", "'客户'!A1:D1", "'Other sheet'!B2"]
    assert fake.values("book1", "Other sheet")[1] == ["", "second sheet"]  # each range on its own sheet


def test_append_finds_the_table(fake: FakeSheets) -> None:
    http = client(fake).http_client
    fake.create("book2", "t", {"Sheet1": []})
    row = {"values": [["x", "", "z"]]}
    first = http.values_append("book2", "'Sheet1'", params={"valueInputOption": "RAW"}, body=row)
    assert "tableRange" not in first and first["updates"]["updatedRange"] == "Sheet1!A1:C1"
    # cassette test_append_row_with_empty_value: B1 is empty, so the last table is C1
    second = http.values_append("book2", "'Sheet1'", params={"valueInputOption": "RAW"}, body=row)
    assert second["tableRange"] == "Sheet1!C1" and second["updates"]["updatedRange"] == "Sheet1!C2:E2"
    third = http.values_append("book2", "'Sheet1'!A1", params={"valueInputOption": "RAW"}, body=row)
    assert third["tableRange"] == "Sheet1!A1" and third["updates"]["updatedRange"] == "Sheet1!A2:C2"


def test_add_sheet_index_invalid_bodies_and_quoting(fake: FakeSheets) -> None:
    gc = client(fake)
    reply = gc.http_client.batch_update("book1", {"requests": [{"addSheet": {"properties": {"title": "D3"}}}]})
    assert reply["replies"][0]["addSheet"]["properties"]["index"] == 2  # its real position
    with pytest.raises(gspread.exceptions.APIError) as bad:
        gc.http_client.values_update("book1", "'客户'!A1", params={"valueInputOption": "RAW"}, body={"values": "X"})
    error = bad.value.response.json()["error"]
    assert error["code"] == 400 and error["details"][0]["fieldViolations"][0]["field"] == "data.values"
    assert fake.values("book1", "客户")[0] == ["客户编号", "客户名称"]  # X was not written
    assert gc.open_by_key("book1").values_get("'D3'!A1:B2")["range"] == "'D3'!A1:B2"  # a cell-like name: quoted
    fake.create("book3", "t", {"Sheet1": [["a"]]}, rows=4, cols=4)
    assert gc.open_by_key("book3").values_get("'Sheet1'")["range"] == "Sheet1!A1:D4"  # bare, the whole grid


def test_booleans_numbers_and_date_times_under_each_render_option(fake: FakeSheets) -> None:
    book = client(fake).open_by_key("book1")
    book.worksheet("Other sheet").update([["TRUE", "false", 12.5, "2020-01-01 12:00"]], "A1",
                                         value_input_option="USER_ENTERED")
    a1 = "'Other sheet'!A1:D1"
    assert _get(book, a1)["values"] == [["TRUE", "FALSE", "12.5", "2020-01-01 12:00"]]
    assert _get(book, a1, valueRenderOption="UNFORMATTED_VALUE")["values"] == [[True, False, 12.5, 43831.5]]
    assert _get(book, a1, valueRenderOption="UNFORMATTED_VALUE",
                dateTimeRenderOption="FORMATTED_STRING")["values"] == [[True, False, 12.5, "2020-01-01 12:00"]]
    got = book.client.spreadsheets_get("book1", params={"ranges": [a1],
                                                        "fields": "sheets(data(rowData(values(effectiveValue))))"})
    assert got["sheets"][0]["data"][0]["rowData"][0]["values"] == [
        {"effectiveValue": {"boolValue": True}}, {"effectiveValue": {"boolValue": False}},
        {"effectiveValue": {"numberValue": 12.5}}, {"effectiveValue": {"numberValue": 43831.5}}]
