"""Issue 18 walked in a real browser ("Done when"): an admin adds 客户规模 (choice), 合作年限
(integer) and 关键需求标签 (tags) on Organisation → Custom fields, in Chinese, within a minute;
rep_a fills them in the customer add form (English: a select, a number, two tags in the
Select2 multi-select) and sees them on the customer's page (tags as coloured chips); imports
a workbook with the three columns through the import screens; sees them synced by label into
the team's xlsx sheet (and a cell changed in the sheet comes back); filters the list by
客户规模 and by a tag with the form above the list and sorts it by 合作年限 — in English and
in Chinese — never seeing rep_c's customer.

Skipped without chromium, like the other browser tests (the ``browser`` fixture)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Customer, SyncTarget
from app.services import custom_fields
from tests.browser.test_everyday_use import _alerts, _log_in, _open, _submit, _wait
from tests.browser.test_issue14_new_user import _console_errors
from tests.conftest import user_id

try:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select
except ImportError:  # the ``browser`` fixture skips the test and says why
    By = ec = Select = StaleElementReferenceException = None

pytestmark = pytest.mark.usefixtures("shanghai")

SIZES = "small | Small | 小型\nmedium | Medium | 中型\nlarge | Large | 大型\ngroup | Group | 集团"
NEEDS = "high_value | High value | 高价值客户 | #d9534f\nchurn_risk | Churn risk | 流失风险客户 | #f0ad4e"
#: (key, label_en, label_zh, kind, choices, ticked flags) as the admin types them.
FIELDS = (
    ("size", "Company size", "客户规模", "choice", SIZES, ("searchable", "in_list")),
    ("years", "Years of cooperation", "合作年限", "integer", "", ("searchable",)),
    ("needs", "Key needs", "关键需求标签", "tags", NEEDS, ("in_list",)),
)
RGB = {"#d9534f": "217, 83, 79", "#f0ad4e": "240, 173, 78"}
FORM_CO, IMPORTED_A, IMPORTED_B = "Form Trading Co", "导入甲贸易公司", "导入乙集团公司"
PLAIN_A, REP_C = "A 未填写客户", "C 华南集团客户"
NAMES = (FORM_CO, IMPORTED_A, IMPORTED_B, PLAIN_A, REP_C)
SHEET = "客户"
SHEET_HEADERS = ["客户编号", "客户名称", "联系方式", "客户规模", "合作年限", "关键需求标签"]


def _t(app: Any, lang: str, msgid: str, **values: Any) -> str:
    from flask_babel import force_locale, gettext

    with app.test_request_context("/"), force_locale(lang):
        return gettext(msgid, **values)


def _pick(driver: Any, select_css: str, shown: str) -> None:
    """Open the Select2 box of the ``<select>`` matched by ``select_css`` and click ``shown``."""
    box = driver.find_element(By.CSS_SELECTOR, f"{select_css} + .select2 .select2-selection")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    box.click()
    option = (f"//li[contains(@class, 'select2-results__option') and normalize-space(.)='{shown}'"
              " and not(@aria-selected='true')]")
    for attempt in range(5):  # select2 may redraw its results while opening: take the fresh one
        try:
            _wait(driver).until(ec.element_to_be_clickable((By.XPATH, option))).click()
            break
        except StaleElementReferenceException:
            if attempt == 4:
                raise
    if driver.find_elements(By.CSS_SELECTOR, ".select2-container--open"):
        driver.find_element(By.TAG_NAME, "h3").click()  # close a multi-select's dropdown


def _cell(driver: Any, label: str) -> Any:
    """The value cell of the show page's row labelled ``label``."""
    return driver.find_element(By.XPATH, f"//tr[*[1][normalize-space(.)='{label}']]/*[2]")


def _listed(driver: Any) -> list[str]:
    """The story's customers on the list page, in the order shown."""
    rows = driver.find_elements(By.CSS_SELECTOR, "table tbody tr")
    return [name for row in rows for name in NAMES if name in row.text]


def _filter(driver: Any, picks: list[tuple[str, str]], sort: str | None = None) -> list[str]:
    """Use the custom-field filter form above the customer list ((field, choice shown) picks,
    then the sort); returns the names listed."""
    form = driver.find_element(By.ID, "custom-filters")
    for name, shown in picks:
        _pick(driver, f"#filter-{name}", shown)
    if sort is not None:
        Select(form.find_element(By.ID, "filter-cf-sort")).select_by_value(sort)
    _submit(driver, form)
    # the form keeps what was asked for, so the user sees why the list is short
    kept = driver.find_element(By.ID, "custom-filters")
    for name, shown in picks:
        chosen = [o.text for o in Select(kept.find_element(By.ID, f"filter-{name}")).all_selected_options]
        assert shown in chosen, (name, chosen)
    if sort is not None:
        assert Select(kept.find_element(By.ID, "filter-cf-sort")).first_selected_option.get_attribute("value") == sort
    return _listed(driver)


def _summary(driver: Any) -> str:
    """The import job page's summary once the job has finished (the page reloads itself)."""
    deadline = time.monotonic() + 20
    while not driver.find_elements(By.ID, "summary"):
        assert time.monotonic() < deadline, driver.find_element(By.TAG_NAME, "body").text[:1500]
        time.sleep(0.2)
    return driver.find_element(By.ID, "summary").text


def _customer(app: Any, name: str) -> tuple[int, dict]:
    with app.app_context():
        item = db.session.scalar(select(Customer).where(Customer.name == name))
        assert item is not None, f"{name} was not saved"
        found = (item.id, dict(item.custom or {}))
        db.session.remove()
        return found


def _workbook(path: Path, rows: list[list[Any]], title: str) -> str:
    book = Workbook()
    book.active.title = title
    for row in rows:
        book.active.append(row)
    book.save(path)
    return str(path)


def _sync(app: Any, target_id: int) -> Any:
    """One run of the target, as *Sync now* starts it (``runner.run`` on its own backend)."""
    from sync import backends, runner

    with app.app_context():
        target = db.session.get(SyncTarget, target_id)
        log = runner.run(target, backends.for_target(target))
        found = (log.status, str(log.message), dict(log.counts or {}))
        db.session.remove()
        return found


def _sheet_rows(path: Path) -> dict[str, list[str]]:
    sheet = load_workbook(path)[SHEET]
    rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    assert rows[0][:len(SHEET_HEADERS)] == SHEET_HEADERS, rows[0]
    return {row[1]: row for row in rows[1:] if any(row)}


def _admin_adds_the_fields(app: Any, driver: Any, base: str) -> None:
    """Step 1: Organisation → Custom fields in Chinese, three fields through the form."""
    _log_in(driver, base, "admin")
    _open(driver, f"{base}/lang/zh")
    started = time.monotonic()
    _open(driver, f"{base}/custom_fields/")
    assert driver.find_element(By.TAG_NAME, "h3").text == _t(app, "zh", "Custom fields")
    for key, label_en, label_zh, kind, choices, flags in FIELDS:
        driver.find_element(By.ID, "add-field").click()
        form = _wait(driver).until(lambda d: d.find_element(By.ID, "custom-field-form"))
        assert driver.find_element(By.TAG_NAME, "h3").text == _t(app, "zh", "Add a custom field")
        assert Select(form.find_element(By.ID, "record_type")).first_selected_option.text == "客户"
        form.find_element(By.ID, "key").send_keys(key)
        form.find_element(By.ID, "label_en").send_keys(label_en)
        form.find_element(By.ID, "label_zh").send_keys(label_zh)
        Select(form.find_element(By.ID, "kind")).select_by_value(kind)
        if choices:
            form.find_element(By.ID, "choices").send_keys(choices)
        assert form.find_element(By.ID, "active").is_selected()  # on by default
        for flag in flags:
            box = form.find_element(By.ID, flag)
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
            box.click()
        _submit(driver, form)
        assert "/custom_fields/add" not in driver.current_url, _alerts(driver)
        assert _t(app, "zh", "Custom field %(name)s saved.", name=label_zh) in _alerts(driver)
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"adding three fields took {elapsed:.0f} s"
    table = driver.find_element(By.CSS_SELECTOR, "table.custom-fields").text
    for _key, _en, label_zh, *_rest in FIELDS:
        assert label_zh in table, table
    chips = {e.text: e.get_attribute("data-colour")
             for e in driver.find_elements(By.CSS_SELECTOR, "table.custom-fields .label[data-colour]")}
    assert chips == {"高价值客户": "#d9534f", "流失风险客户": "#f0ad4e"}, chips
    assert _t(app, "zh", "Choice (drop-down)") in table and _t(app, "zh", "Tags (coloured)") in table


def _rep_fills_the_form(app: Any, driver: Any, base: str) -> int:
    """Step 2: rep_a, in English, adds a customer with the three fields; the page shows them."""
    _log_in(driver, base, "rep_a")
    _open(driver, f"{base}/lang/en")
    _open(driver, f"{base}/customerview/add")
    form = driver.find_element(By.ID, "model_form")
    section = form.find_element(By.CSS_SELECTOR, "fieldset.crm-custom-section").text
    assert "Company size" in section and "Years of cooperation" in section and "Key needs" in section, section
    form.find_element(By.NAME, "name").send_keys(FORM_CO)
    form.find_element(By.NAME, "contact_name").send_keys("Li Lei")
    form.find_element(By.NAME, "contact_phone").send_keys("13855501001")
    _pick(driver, "select[name=cf_size]", "Large")
    form.find_element(By.NAME, "cf_years").send_keys("12")
    _pick(driver, "select[name=cf_needs]", "High value")
    _pick(driver, "select[name=cf_needs]", "Churn risk")
    _submit(driver, form)
    assert "/customerview/add" not in driver.current_url, _alerts(driver)
    pk, custom = _customer(app, FORM_CO)
    assert custom == {"size": "large", "years": 12, "needs": ["high_value", "churn_risk"]}, custom

    _open(driver, f"{base}/customerview/show/{pk}")
    assert _cell(driver, "Company size").text == "Large"
    assert _cell(driver, "Years of cooperation").text == "12"
    chips = _cell(driver, "Key needs").find_elements(By.CSS_SELECTOR, ".crm-tag")
    shown = {c.text: c.value_of_css_property("background-color") for c in chips}
    assert set(shown) == {"High value", "Churn risk"}, shown
    assert RGB["#d9534f"] in shown["High value"] and RGB["#f0ad4e"] in shown["Churn risk"], shown
    return pk


def _rep_imports(app: Any, driver: Any, base: str, folder: Path) -> None:
    """Step 3: a workbook with the three columns through upload → mapping → dry run → import."""
    path = _workbook(folder / "客户导入.xlsx", [
        ["客户名称", "联系方式", "客户规模", "合作年限", "关键需求标签"],
        [IMPORTED_A, "13855501002", "中型", 5, "高价值客户"],
        [IMPORTED_B, "13855501003", "集团", "８", "流失风险客户，高价值客户"],
    ], "客户信息")
    _open(driver, f"{base}/imports/")
    form = driver.find_element(By.ID, "upload-form")
    Select(form.find_element(By.ID, "model")).select_by_value("customer")
    form.find_element(By.ID, "file").send_keys(path)
    _submit(driver, form)
    form = _wait(driver).until(lambda d: d.find_element(By.ID, "mapping-form"))
    mapped = [Select(s).first_selected_option.text for s in form.find_elements(By.CSS_SELECTOR, "select[name^=map_]")]
    assert mapped[2:] == ["Company size", "Years of cooperation", "Key needs"], mapped
    dry_run = form.find_element(By.CSS_SELECTOR, "button.btn-primary[type=submit]")  # not "Use this header row"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", dry_run)
    dry_run.click()
    _wait(driver).until(ec.staleness_of(dry_run))
    summary = _summary(driver)
    assert "2 to create" in summary and "0 rejected" in summary, summary + _alerts(driver)
    commit = driver.find_element(By.XPATH, "//form[contains(@action, '/commit')]")
    _submit(driver, commit)
    summary = _summary(driver)
    assert "2 created" in summary and "0 rejected" in summary, summary
    assert _customer(app, IMPORTED_A)[1] == {"size": "medium", "years": 5, "needs": ["high_value"]}
    imported = _customer(app, IMPORTED_B)[1]
    assert imported == {"size": "group", "years": 8, "needs": imported["needs"]}, imported
    assert sorted(imported["needs"]) == ["churn_risk", "high_value"], imported
    _open(driver, f"{base}/customerview/show/{_customer(app, IMPORTED_B)[0]}")
    assert _cell(driver, "Company size").text == "Group" and _cell(driver, "Years of cooperation").text == "8"
    assert {c.text for c in _cell(driver, "Key needs").find_elements(By.CSS_SELECTOR, ".crm-tag")} == {
        "High value", "Churn risk"}


def _team_sheet(app: Any, driver: Any, base: str, folder: Path, form_pk: int) -> None:
    """Step 4: rep_a's xlsx target shows the values by label; a cell changed there comes back."""
    path = folder / "team-customers.xlsx"
    _workbook(path, [SHEET_HEADERS], SHEET)
    with app.app_context():
        target = SyncTarget(name="story18 team sheet", backend="xlsx", location=str(path), worksheet=SHEET,
                            run_as_id=user_id("rep_a"))
        db.session.add(target)
        db.session.commit()
        target_id = target.id
        db.session.remove()
    status, message, counts = _sync(app, target_id)
    assert status == "done", message
    rows = _sheet_rows(path)
    assert REP_C not in rows, "rep_c's customer reached rep_a's sheet"
    assert rows[FORM_CO][3:6] == ["大型", "12", "高价值客户, 流失风险客户"], rows[FORM_CO]
    assert rows[IMPORTED_A][3:6] == ["中型", "5", "高价值客户"], rows[IMPORTED_A]
    assert rows[IMPORTED_B][3:6] == ["集团", "8", "高价值客户, 流失风险客户"], rows[IMPORTED_B]

    book = load_workbook(path)
    sheet = book[SHEET]
    line = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(row=r, column=2).value == FORM_CO)
    sheet.cell(row=line, column=5).value = "20"  # a colleague types 20 years into the sheet
    book.save(path)
    status, message, counts = _sync(app, target_id)
    assert status == "done" and counts.get("app_updated", 0) == 1, (message, counts)
    _open(driver, f"{base}/customerview/show/{form_pk}")
    assert _cell(driver, "Years of cooperation").text == "20"
    assert _cell(driver, "Company size").text == "Large"  # untouched fields stay


def _rep_filters_the_list(app: Any, driver: Any, base: str) -> None:
    """Step 5: the filter form above the list, by 客户规模, by a tag, sorted by 合作年限."""
    _open(driver, f"{base}/customerview/list/")
    headers = [th.text.strip() for th in driver.find_elements(By.CSS_SELECTOR, "table th")]
    assert "Company size" in headers and "Key needs" in headers, headers
    assert sorted(_listed(driver)) == sorted([FORM_CO, IMPORTED_A, IMPORTED_B, PLAIN_A])
    assert _filter(driver, [("cf_size", "Large")]) == [FORM_CO]
    assert "cf_size=large" in driver.current_url
    _open(driver, f"{base}/customerview/list/")
    assert _filter(driver, [("cf_needs", "Churn risk")], sort="cf_years") == [IMPORTED_B, FORM_CO]
    _open(driver, f"{base}/customerview/list/")
    assert _filter(driver, [("cf_needs", "High value")], sort="-cf_years") == [FORM_CO, IMPORTED_B, IMPORTED_A]
    # several sizes: any of them, still only rep_a's
    _open(driver, f"{base}/customerview/list/")
    assert _filter(driver, [("cf_size", "Large"), ("cf_size", "Group")], sort="cf_years") == [IMPORTED_B, FORM_CO]

    # in Chinese: labels from the definitions, choices by their Chinese names
    _open(driver, f"{base}/lang/zh")
    _open(driver, f"{base}/customerview/list/")
    labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#custom-filters label")]
    assert "客户规模" in labels and "关键需求标签" in labels, labels
    assert _filter(driver, [("cf_size", "集团")]) == [IMPORTED_B]
    _open(driver, f"{base}/customerview/list/")
    assert _filter(driver, [("cf_size", "大型"), ("cf_size", "中型")], sort="cf_years") == [IMPORTED_A, FORM_CO]
    _open(driver, f"{base}/customerview/list/")
    assert _filter(driver, [("cf_needs", "高价值客户")], sort="cf_years") == [IMPORTED_A, IMPORTED_B, FORM_CO]
    _open(driver, f"{base}/customerview/show/{_customer(app, FORM_CO)[0]}")
    assert _cell(driver, "客户规模").text == "大型" and _cell(driver, "合作年限").text == "20"
    assert {c.text for c in _cell(driver, "关键需求标签").find_elements(By.CSS_SELECTOR, ".crm-tag")} == {
        "高价值客户", "流失风险客户"}


def test_custom_fields_from_the_admin_screen_to_the_filtered_list(app: Any, browser: Any, live_server: str,
                                                                   make_customer: Any, tmp_path: Path) -> None:
    driver, base = browser, live_server
    make_customer("rep_c", name=REP_C, contact_phone="13855509009",
                  custom={"size": "large", "years": 30, "needs": ["high_value", "churn_risk"]})
    make_customer("rep_a", name=PLAIN_A, contact_phone="13855509001")
    _console_errors(driver)  # start from an empty browser log
    try:
        _admin_adds_the_fields(app, driver, base)
        form_pk = _rep_fills_the_form(app, driver, base)
        _rep_imports(app, driver, base, tmp_path)
        _team_sheet(app, driver, base, tmp_path, form_pk)
        _rep_filters_the_list(app, driver, base)
        assert not _console_errors(driver), "JS errors or CSP violations on the way"
    finally:
        _open(driver, f"{base}/lang/en")
        custom_fields.forget()  # the fields are removed after the test: no stale definitions in memory
