"""An audit entry labels a field with the screen that shows it, in the reader's language, even
when the model's first screen does not list that field (a customer's archived-at is on
*Archived customers* only)."""

from __future__ import annotations

from typing import Any

from flask_babel import force_locale

from views import display


def test_a_field_only_another_screen_lists_is_labelled_in_chinese(app: Any) -> None:
    with app.test_request_context(), force_locale("zh"):
        label = str(display.field_labels("Customer")["archived_at"])
    assert label != "Archived At" and not label.isascii()
