"""An audit entry's detail reads as labelled values in the reader's language, never raw JSON."""

from typing import Any

from flask_babel import force_locale

from views.display import audit_detail

IMPORT_DETAIL = ('{"created": 1, "duplicates": 0, "file": "每日客户.csv", "mode": "upsert", "model": "customer", '
                 '"rejected": 1, "rolled_back": false, "rows": 2, "seconds": 0.02}')


def test_import_detail_reads_as_labels_in_chinese(app: Any) -> None:
    with app.test_request_context(), force_locale("zh"):
        shown = str(audit_detail(IMPORT_DETAIL))
    assert "{" not in shown and "upsert" not in shown and "rolled_back" not in shown
    assert "每日客户.csv" in shown and "否" in shown


def test_text_that_is_not_json_is_shown_as_stored(app: Any) -> None:
    with app.test_request_context():
        assert str(audit_detail("plain <text>")) == "plain &lt;text&gt;"
