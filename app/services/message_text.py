"""Messages kept in a text column for a later reader, rendered in the reader's language
(issue 11 §6): a schedule's and a sync target's last result, a sync run's result.

These results are written by the scheduler (no request, so no reader's language) or by
whoever pressed *Run now*, and read later by anyone. ``messages.Message`` keeps a message's
ids and parameters; the columns are text, so a message is stored as one of:

* plain text: literal, shown as it is (data, and every value stored before this shape);
* a JSON object ``{"text": <the message in the default language>, "message": <Message>}``,
  the pair ``importing.jobs`` keeps for a job's failure: readers that do not render (a
  database query, a log, a test) still find the default-language text in it.

``to_column`` writes, ``from_column`` reads back the ``Message``, ``shown`` renders it in
the current language (a view's formatter).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from app.services import messages
from app.services.messages import Message

_KEYS = {"text", "message"}
_START = '{"text":'


def to_column(message: Message, limit: int) -> str | None:
    """``message`` as a column value of at most ``limit`` characters (None stays None).

    Plain text is stored as it is; a message with ids as the JSON pair above. A pair longer
    than ``limit`` falls back to its default-language text, cut to ``limit``."""
    if message is None:
        return None
    if isinstance(message, str):
        return message[:limit]
    text = messages.render(message, messages.default_locale())
    stored = json.dumps({"text": text, "message": message}, ensure_ascii=False)
    return stored if len(stored) <= limit else text[:limit]


def from_column(value: str | None) -> Message:
    """The ``Message`` a column value holds: the pair's message, else the value itself."""
    if not isinstance(value, str) or not value.startswith(_START):
        return value
    try:
        data = json.loads(value)
    except ValueError:
        return value
    if isinstance(data, dict) and set(data) == _KEYS and isinstance(data["text"], str):
        return data["message"]
    return value


def text(value: str | None) -> str:
    """A column value's text in the default language (what readers that do not render see)."""
    return messages.render(from_column(value), messages.default_locale())


def shown(value: str | None) -> str:
    """A column value as the current reader reads it (their language); "" for None."""
    return messages.render(from_column(value))


def map_text(message: Message, change: Callable[[str], str]) -> Message:
    """``message`` with ``change`` applied to its literal text and text parameters (never to
    a msgid, which must stay the catalogue's key): e.g. masking phone numbers in a result."""
    if isinstance(message, str):
        return change(message)
    if not isinstance(message, dict):
        return message
    if "parts" in message:
        return {**message, "parts": [map_text(part, change) for part in message["parts"] or []]}
    if "params" in message:
        return {**message, "params": {name: map_text(value, change)
                                      for name, value in (message["params"] or {}).items()}}
    return message

