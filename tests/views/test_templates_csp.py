"""The content security policy blocks inline event handlers and ``javascript:`` links: a
template that uses one breaks silently in the browser (a confirm() that never asks, a
button that does nothing). Every template is walked, so a new page cannot bring one in."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "views" / "templates"
INLINE = re.compile(r"""<[^>]*\s(on[a-z]+)\s*=|href\s*=\s*["']\s*javascript:""", re.IGNORECASE)


def test_no_template_has_inline_handlers() -> None:
    found = [f"{path.relative_to(TEMPLATES)}: {match.group(0)[:60]}"
             for path in sorted(TEMPLATES.rglob("*.html"))
             for match in INLINE.finditer(path.read_text(encoding="utf-8"))]
    assert found == []
