"""Messages stored for a later reader: a message id and its parameters, rendered in the
language of whoever reads them (issue 11 §6, "an import error stored in English").

A job writes its messages once (row errors, its failure) and people read them later, in
their own language; a scheduled job has no request locale at all. So a stored message is
never the rendered text but this JSON shape (``Message``):

* ``str`` (or a number, or None): literal text, shown as it is: data (a header or a value
  from the file), and every message stored before this shape existed;
* ``{"msgid": str, "params": {name: Message}}``, with ``"plural"`` and ``"n"`` for
  ``ngettext`` and ``"context"`` for ``pgettext``: a catalogue message; parameters that are
  messages themselves (a field label, "row 3 of this file") are rendered in the reader's
  language too;
* ``{"labels": {language: str}}``: a value with its own text per language (a dictionary
  entry passed as a parameter);
* ``{"column": header, "label": Message, "own": bool}``: a column of a file, named by its
  field's label; the file's own header is added where the reader needs it to find the
  column (``column``);
* ``{"parts": [Message, ...]}``: messages and text written one after the other.

The messages come from code all over the services (``str(_l(...))``, ``ValueError(_l(...))``,
``RuleViolation`` maps), rendered as soon as they are made. ``capturing()`` keeps their ids:
while it is open, gettext in this app context (flask_babel's ``get_domain()``, which is
``ctx.babel_domain`` as ``Domain.as_default`` sets it) returns a short marker instead of the
text, and ``Capture.stored`` turns text holding markers back into a ``Message`` — after
concatenation, joins or f-strings too. ``render`` gives the text in the current (or a given)
language through the real catalogue. Keep the windows tight (the rows of an import, a file
read): text rendered inside one and stored elsewhere would hold markers.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, g, has_app_context
from flask_babel import force_locale, get_domain, get_locale
from flask_babel.speaklater import LazyString

Message = str | int | float | None | dict[str, Any]

_START, _END = "\x02", "\x03"


class Capture:
    """The markers handed out in one app context while capturing, and their messages."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(4)  # text from a file cannot forge a marker
        self.items: list[Message] = []
        self._marker = re.compile(re.escape(f"{_START}{self.token}:") + r"(\d+)" + re.escape(_END))

    def mark(self, message: Message) -> str:
        self.items.append(message)
        return f"{_START}{self.token}:{len(self.items) - 1}{_END}"

    def stored(self, value: Any) -> Message:
        """``value`` (text holding markers, a lazy string, an exception, a number, a
        dictionary entry) as a ``Message``. Call it inside the window that rendered it."""
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if not isinstance(value, (str, LazyString, BaseException)) and hasattr(value, "label_zh"):
            return _labels(value)  # a dictionary entry: its label in the reader's language
        text = value if isinstance(value, str) else str(value)  # a lazy string renders into a marker here
        pieces: list[Message] = []
        last = 0
        for found in self._marker.finditer(text):
            pieces += [text[last:found.start()], self.items[int(found.group(1))]]
            last = found.end()
        return concat([*pieces, text[last:]]) if pieces else text


class _CapturingDomain:
    """flask_babel's domain for this app context while capturing: gettext and friends
    answer a marker for (msgid, parameters); everything else is the real domain's."""

    def __init__(self, original: Any, capture: Capture) -> None:
        self.original, self.capture = original, capture

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)

    def _mark(self, message: dict[str, Any], variables: dict[str, Any]) -> str:
        if variables:
            message["params"] = {name: self.capture.stored(value) for name, value in variables.items()}
        return self.capture.mark(message)

    def gettext(self, string: str, **variables: Any) -> str:
        return self._mark({"msgid": string}, variables)

    def ngettext(self, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        return self._mark({"msgid": singular, "plural": plural, "n": num}, variables)

    def pgettext(self, context: str, string: str, **variables: Any) -> str:
        return self._mark({"msgid": string, "context": context}, variables)

    def npgettext(self, context: str, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        return self._mark({"msgid": singular, "plural": plural, "n": num, "context": context}, variables)


@contextmanager
def capturing() -> Iterator[Capture]:
    """While open, messages rendered in this app context keep their id and parameters
    (see the module doc); yields the ``Capture`` whose ``stored`` reads them back. Nested
    windows share one capture, and so does the next window after one left by an exception
    (whose text may hold markers). Outside an app context nothing is captured (``stored``
    then returns plain text, shown as it is)."""
    domain = get_domain() if has_app_context() else None
    if isinstance(domain, _CapturingDomain):
        yield domain.capture
        return
    if domain is None:
        yield Capture()
        return
    # An exception that left the last window may carry its markers: that capture reads them.
    capture = g.pop("_crm_capture", None) or Capture()
    context = g._flask_babel  # flask_babel's per-context namespace, set up by get_domain() above
    context.babel_domain = _CapturingDomain(domain, capture)
    try:
        yield capture
    except BaseException:
        g._crm_capture = capture
        raise
    finally:
        context.babel_domain = domain


@contextmanager
def uncaptured() -> Iterator[None]:
    """Real text for the block even inside a capture window: for text that code compares or
    matches (a field's label among known headers), never stores as a message."""
    domain = get_domain() if has_app_context() else None
    if not isinstance(domain, _CapturingDomain):
        yield
        return
    context = g._flask_babel
    context.babel_domain = domain.original
    try:
        yield
    finally:
        context.babel_domain = domain


def stored(value: Any) -> Message:
    """``value`` as a ``Message``: a lazy string or an exception whose message is one (or
    holds some) keeps the ids; plain text stays text. Opens a window when none is open."""
    with capturing() as capture:
        return capture.stored(value)


def concat(parts: Iterable[Message]) -> Message:
    """``parts`` written one after the other, as one ``Message`` (flattened; adjacent text merged)."""
    flat: list[Message] = []
    for part in parts:
        inner = part.get("parts") if isinstance(part, dict) and set(part) == {"parts"} else [part]
        for item in inner:
            if item is None or item == "":
                continue
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                item = str(item)
            if isinstance(item, str) and flat and isinstance(flat[-1], str):
                flat[-1] += item
            else:
                flat.append(item)
    if not flat:
        return ""
    return flat[0] if len(flat) == 1 else {"parts": flat}


def column(label: Any, header: str | None, own: bool) -> str:
    """How a message names a column of a file: the field's ``label`` (a lazy string) in the
    reader's language; the file's ``header`` is added when it is none of the field's own
    names (``own`` False), and in a file for fixing the rows (``render(..., file_headers=True)``)
    whenever it differs from the label. Inside ``capturing()`` a marker, else the text now."""
    domain = get_domain() if has_app_context() else None
    if isinstance(domain, _CapturingDomain):
        capture = domain.capture
        return capture.mark({"column": header, "label": capture.stored(label), "own": bool(own)})
    return _render({"column": header, "label": str(label), "own": bool(own)}, False)


def render(message: Message, locale: str | None = None, *, file_headers: bool = False) -> str:
    """The text of ``message`` in ``locale`` (default: the current request's language, or
    the default locale outside a request). ``file_headers``: the text goes into a file the
    reader fixes rows in, so columns also carry the file's header (``column``). A stored
    message that no longer formats (a catalogue entry changed its placeholders) falls back
    to the English text; never raises."""
    if locale:
        with force_locale(locale):
            return _render(message, file_headers)
    return _render(message, file_headers)


def default_locale() -> str:
    """The language of text kept for readers that cannot render (``BABEL_DEFAULT_LOCALE``)."""
    return str(current_app.config.get("BABEL_DEFAULT_LOCALE") or "en")


def languages() -> list[str]:
    """The languages the app offers (``LANGUAGES``), the default one first."""
    first = default_locale()
    return [first, *(code for code in current_app.config.get("LANGUAGES") or {} if code != first)]


def _render(message: Message, file_headers: bool) -> str:
    if message is None:
        return ""
    if isinstance(message, str):
        return message
    if not isinstance(message, dict):
        return str(message)
    if "msgid" in message:
        return _translate(message, file_headers)
    if "parts" in message:
        return "".join(_render(part, file_headers) for part in message.get("parts") or [])
    if "labels" in message:
        return _label(message.get("labels") or {})
    if "column" in message:
        return _column(message, file_headers)
    return ""


def _column(message: dict[str, Any], file_headers: bool) -> str:
    label, header = _render(message.get("label"), file_headers), message.get("column")
    if not header or header == label or (message.get("own") and not file_headers):
        return label or str(header or "")
    return f"{label} ({header})" if label else str(header)


def _translate(message: dict[str, Any], file_headers: bool) -> str:
    msgid = str(message["msgid"])
    params = {name: value if isinstance(value, (int, float)) else _render(value, file_headers)
              for name, value in (message.get("params") or {}).items()}
    domain = get_domain()
    if isinstance(domain, _CapturingDomain):
        domain = domain.original
    try:
        if "plural" in message:
            number = int(message.get("n") or 0)
            if "context" in message:
                return domain.npgettext(message["context"], msgid, message["plural"], number, **params)
            return domain.ngettext(msgid, message["plural"], number, **params)
        if "context" in message:
            return domain.pgettext(message["context"], msgid, **params)
        return domain.gettext(msgid, **params)
    except (KeyError, ValueError, TypeError):
        try:
            return msgid % params if params else msgid
        except (KeyError, ValueError, TypeError):
            return msgid


def _label(labels: dict[str, Any]) -> str:
    language = str(get_locale() or default_locale())
    for code in (language, language.split("_")[0], default_locale(), "en"):
        if labels.get(code):
            return str(labels[code])
    return next((str(text) for text in labels.values() if text), "")


def _labels(entry: Any) -> dict[str, Any]:
    """A dictionary entry's label in every language (a two-level one with its parent's)."""
    found = {}
    for code in languages():
        with force_locale(code):
            found[code] = str(entry.label)
    return {"labels": found}

