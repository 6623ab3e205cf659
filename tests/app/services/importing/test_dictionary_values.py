"""The manual's own template row (000 附录1) and the words typical workbooks use import
without errors: 信息技术, 重要, 官网表单, 教育, 医疗, 零售业 (issue 11 §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Customer
from tests.app.services.importing.conftest import MANUAL_HEADERS, write_xlsx


def test_the_manuals_template_row_imports(app: Any, run_job: Any, tmp_path: Path) -> None:
    """000 附录1: 所属行业 信息技术, 客户等级 重要, 信息来源 官网表单."""
    path = write_xlsx(tmp_path / "客户信息导入模板.xlsx", {"客户信息": [
        MANUAL_HEADERS,
        ["", "科技有限公司", "信息技术", "李娜", "13800138000", "北京市海淀区路", "重要", "官网表单", "2024年广交会接触"],
        ["", "星河教育科技有限公司", "教育", "王强", "13900139000", "", "一般", "官网", ""],
        ["", "康宁医疗器械有限公司", "医疗", "赵六", "13700137000", "", "", "展会", ""],
        ["", "鲜丰零售有限公司", "零售业", "钱七", "13600136000", "", "", "转介绍", ""],
    ]})
    job = run_job("rep_a", path)
    assert (job.status, job.created, job.rejected) == ("done", 4, 0), job.preview
    with app.app_context():
        rows = {c.name: c for c in db.session.scalars(select(Customer))}
        first = rows["科技有限公司"]
        assert (first.industry.code, first.level.code, first.source.code) == ("I", "A", "website")
        assert [rows[n].industry.code for n in ("星河教育科技有限公司", "康宁医疗器械有限公司", "鲜丰零售有限公司")] == [
            "83", "84", "52"]
