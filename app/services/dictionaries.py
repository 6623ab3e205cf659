"""Finding dictionary entries from what people type: code or label, either language.

Imports and the sync accept ``MFG-AUTO``, ``Automotive``, ``汽车制造``,
``Manufacturing > Automotive``, for labels that start with their code (``A 重要``) the
label alone (``重要``), and a shortened label that names one entry only (``转介绍`` for
``客户转介绍``). Matching ignores case, spaces and width.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db

_SPACES = re.compile(r"\s+")
_AMBIGUOUS = object()


def lookup_key(text: object) -> str:
    return _SPACES.sub("", unicodedata.normalize("NFKC", str(text or "")).lower())


def _names(entry: Any) -> list[str]:
    names = [entry.code, entry.label_en, entry.label_zh]
    for label in (entry.label_en, entry.label_zh):
        head, _, rest = label.partition(" ")
        if rest and head.lower() == entry.code.lower():  # "A 重要", "A - high"
            names.append(rest.lstrip("- "))
    parent = getattr(entry, "parent", None)
    if parent is not None:
        names += [f"{parent.label_en}>{entry.label_en}", f"{parent.label_zh}>{entry.label_zh}"]
    return names


class DictionaryLookup:
    """All entries of one dictionary, indexed by every name a user may type."""

    def __init__(self, model: type) -> None:
        self.model = model
        self._index: dict[str, Any] = {}
        self._memo: dict[str, Any] = {}
        for entry in db.session.scalars(select(model)):
            for name in _names(entry):
                key = lookup_key(name)
                known = self._index.get(key)
                self._index[key] = entry if known in (None, entry) else _AMBIGUOUS

    def _contained(self, key: str) -> Any:
        """Shortened labels (the manual's 展会 / 官网 / 转介绍): the one entry whose name contains them."""
        if len(key) < 2:
            return None
        found = {id(e): e for name, e in self._index.items() if e is not None and e is not _AMBIGUOUS and key in name}
        if len(found) > 1:
            return _AMBIGUOUS
        return next(iter(found.values()), None)

    def find(self, text: object) -> Any:
        """The entry named by ``text`` (None for blank); ``ValueError`` if unknown.

        Remembered per text: an import repeats the same few values many thousand times.
        """
        try:
            return self._memo[text]
        except (KeyError, TypeError):
            pass
        entry = self._find(text)
        if isinstance(text, str):
            self._memo[text] = entry
        return entry

    def _find(self, text: object) -> Any:
        key = lookup_key(text)
        if not key:
            return None
        entry = self._index.get(key)
        if entry is None:
            entry = self._contained(key)
        if entry is _AMBIGUOUS:
            raise ValueError(_l("%(value)s matches several entries; use the code.", value=str(text)))
        if entry is None:
            raise ValueError(_l("%(value)s is not in the list; pick one of the dropdown values.", value=str(text)))
        return entry


def lookups_for(fields: Any) -> dict[str, DictionaryLookup]:
    """One lookup per dictionary field (import fields): built once per import or sync run."""
    return {f.name: DictionaryLookup(f.dictionary) for f in fields if getattr(f, "dictionary", None) is not None}


# --- writes: the rules of the dictionary screens and APIs -------------------------------


def check_entry(entry: Any) -> None:
    """A dictionary entry as it is about to be saved: unique code, labels, two-level
    industries (a parent exists, is top-level, is not the entry itself; an entry with
    sub-industries stays top-level). Raises ``RuleViolation`` naming the fields."""
    from app.services import records, validation
    from app.services.errors import RuleViolation

    model = type(entry)
    errors: dict[str, str] = {}
    with db.session.no_autoflush:
        for name in ("code", "label_en", "label_zh"):
            try:
                setattr(entry, name, validation.require_text(getattr(entry, name), 100))
            except ValueError as exc:
                errors[name] = str(exc)
        if "code" not in errors:
            clash = select(model.id).where(model.code == entry.code)
            if entry.id is not None:
                clash = clash.where(model.id != entry.id)
            if db.session.scalar(clash) is not None:
                errors["code"] = str(_l("The code %(code)s is already used.", code=entry.code))
        if hasattr(model, "parent_id"):
            problem = _parent_problem(entry, records.related_id(entry, "parent"))
            if problem:
                errors["parent"] = problem
    if errors:
        raise RuleViolation(errors)


def _parent_problem(entry: Any, parent_id: int | None) -> str | None:
    if parent_id is None:
        return None
    model = type(entry)
    parent = db.session.get(model, parent_id)
    if parent is None or parent_id == entry.id:
        return str(_l("Pick an existing top-level entry as the parent."))
    if parent.parent_id is not None:
        return str(_l("Only two levels: the parent must be a top-level entry."))
    if entry.id is not None and db.session.scalar(select(model.id).where(model.parent_id == entry.id).limit(1)):
        return str(_l("This entry has sub-entries, so it stays top-level."))
    return None


def check_delete(entry: Any) -> None:
    """A dictionary entry in use is deactivated, never deleted (old records would point at
    nothing). Raises ``RuleViolation`` for one in use."""
    from app.services import records
    from app.services.errors import RuleViolation

    count = records.references(entry)
    if count:
        raise RuleViolation(str(_l("%(code)s is used by %(n)d records; untick Active instead of deleting it.",
                                   code=entry.code, n=count)))
