"""Finding dictionary entries from what people type: code, label (either language) or alias.

Imports and the sync accept ``36``, ``Manufacture of Automobiles``, ``汽车制造业``,
``制造业 > 汽车制造业``, an alias an admin gave the entry (``汽车``, ``Automotive``), for
labels that start with their code (``A 重要``) the label alone (``重要``), and a shortened
label that names one entry only (``转介绍`` for ``客户转介绍``). Matching ignores case,
width, spaces and invisible characters (``lookup_key``).

When a name fits several entries: a code beats any other name; a section and its own
division with the same name (教育 / 教育) give the division; then the one active entry.
Anything else is ambiguous and asks for the code.

A value that names no entry can be remembered as meaning one (the import's value-mapping
step): ``remember_value`` at the end of this module.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.services.validation import INVISIBLE

_SPACES = re.compile(r"\s+")
_AMBIGUOUS = object()
#: Between aliases when an admin types several on one line (Chinese lists use 、 and ，).
_ALIAS_SEPARATORS = re.compile(r"[\n\r,，;；、]+")
_MAX_ALIASES, _MAX_ALIAS_LENGTH = 50, 100
_CODE, _NAME, _PATH = 0, 1, 2  # how a name was given: its rank when names clash


def lookup_key(text: object) -> str:
    """The form names are compared in: NFKC (full-width ＩＴ is IT), case-folded, without
    spaces or invisible characters (a value pasted with bidi marks is the same value).
    Lookups, aliases and the remembered values of the import's value-mapping step all key on it."""
    return _SPACES.sub("", INVISIBLE.sub("", unicodedata.normalize("NFKC", str(text or ""))).casefold())


def _names(entry: Any) -> list[tuple[str, int]]:
    """Every name of ``entry`` with its rank (code, own name or alias, parent path)."""
    names = [(entry.code, _CODE), (entry.label_en, _NAME), (entry.label_zh, _NAME)]
    names += [(alias, _NAME) for alias in entry.alias_list]
    for label in (entry.label_en, entry.label_zh):
        head, _, rest = label.partition(" ")
        if rest and head.lower() == entry.code.lower():  # "A 重要", "A - high"
            names.append((rest.lstrip("- "), _NAME))
    parent = getattr(entry, "parent", None)
    if parent is not None:
        names += [(f"{parent.label_en}>{entry.label_en}", _PATH), (f"{parent.label_zh}>{entry.label_zh}", _PATH)]
    return names


class UnknownValue(ValueError):
    """A value that names no entry of the dictionary (``ambiguous``: it names several)."""

    def __init__(self, message: object, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


def _pick(entries: list[Any]) -> Any:
    """One entry out of several that share a name, or ``_AMBIGUOUS`` (see the module doc)."""
    if len(entries) > 1:
        parents = {getattr(e, "parent_id", None) for e in entries}
        entries = [e for e in entries if e.id not in parents] or entries
    if len(entries) > 1:
        entries = [e for e in entries if e.active] or entries
    return entries[0] if len(entries) == 1 else _AMBIGUOUS


class DictionaryLookup:
    """All entries of one dictionary, indexed by every name a user may type."""

    def __init__(self, model: type) -> None:
        self.model = model
        self._candidates: dict[str, dict[int, list[Any]]] = {}  # key -> rank -> entries
        self._memo: dict[str, Any] = {}
        for entry in db.session.scalars(select(model)):
            for name, rank in _names(entry):
                found = self._candidates.setdefault(lookup_key(name), {}).setdefault(rank, [])
                if entry not in found:
                    found.append(entry)
        self._index = {key: _pick(ranks[min(ranks)]) for key, ranks in self._candidates.items() if key}

    def _contained(self, key: str) -> Any:
        """Shortened labels (the manual's 展会 / 官网 / 转介绍): the one entry whose name contains them.
        Own names first: a parent path (制造业>…) contains the parent's name in every child."""
        if len(key) < 2:
            return None
        for ranks in ((_CODE, _NAME), (_PATH,)):
            found: dict[int, Any] = {}
            for name, by_rank in self._candidates.items():
                if key in name:
                    for rank in ranks:
                        found.update((id(e), e) for e in by_rank.get(rank, ()))
            if found:
                return _pick(list(found.values()))
        return None

    def find(self, text: object) -> Any:
        """The entry named by ``text`` (None for blank); ``UnknownValue`` (a ``ValueError``)
        naming the value if it names no entry or several.

        Remembered per text, misses too: an import repeats the same few values many thousand
        times, and a miss costs a scan of every name (``_contained``).
        """
        try:
            found = self._memo[text]
        except (KeyError, TypeError):
            found = self._find(text)
            if isinstance(text, str):
                self._memo[text] = found
        if isinstance(found, UnknownValue):  # a fresh exception each time: a re-raised one grows its traceback
            raise UnknownValue(found.args[0], found.ambiguous)
        return found

    def _find(self, text: object) -> Any:
        key = lookup_key(text)
        if not key:
            return None
        entry = self._index.get(key)
        if entry is None:
            entry = self._contained(key)
        if entry is _AMBIGUOUS:
            return UnknownValue(_l("%(value)s matches several entries; use the code.", value=str(text)), True)
        if entry is None:
            return UnknownValue(_l("%(value)s is not in the list; pick one of the dropdown values.", value=str(text)))
        return entry


def lookups_for(fields: Any) -> dict[str, DictionaryLookup]:
    """One lookup per dictionary field (import fields): built once per import or sync run."""
    return {f.name: DictionaryLookup(f.dictionary) for f in fields if getattr(f, "dictionary", None) is not None}


# --- writes: the rules of the dictionary screens and APIs -------------------------------


def check_entry(entry: Any) -> None:
    """A dictionary entry as it is about to be saved: unique code, labels, aliases that
    name this entry only (``check_aliases``), two-level industries (a parent exists, is
    top-level, is not the entry itself; an entry with sub-industries stays top-level).
    Raises ``RuleViolation`` naming the fields."""
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
        errors.update(check_aliases(entry))
        if hasattr(model, "parent_id"):
            problem = _parent_problem(entry, records.related_id(entry, "parent"))
            if problem:
                errors["parent"] = problem
    if errors:
        raise RuleViolation(errors)


def normalise_aliases(raw: object) -> list[str]:
    """Aliases as an admin typed them -> the stored list: split on line breaks, commas,
    semicolons and 、 (either width), each cleaned (NFKC, one plain space, trimmed), the
    repeats (same ``lookup_key``) dropped. Raises ``ValueError`` for more than 50 aliases
    or one longer than 100 characters."""
    from app.services import validation

    aliases: dict[str, str] = {}
    for part in _ALIAS_SEPARATORS.split(unicodedata.normalize("NFKC", str(raw or ""))):
        alias = validation.clean_line(part)
        if alias:
            if len(alias) > _MAX_ALIAS_LENGTH:
                raise ValueError(_l("At most %(n)d characters per alias: %(alias)s", n=_MAX_ALIAS_LENGTH,
                                    alias=alias[:20] + "…"))
            aliases.setdefault(lookup_key(alias), alias)
    if len(aliases) > _MAX_ALIASES:
        raise ValueError(_l("At most %(n)d aliases.", n=_MAX_ALIASES))
    return list(aliases.values())


def check_aliases(entry: Any) -> dict[str, str]:
    """Normalise ``entry.aliases`` (one a line, None for none) and return field errors: an
    alias that is already a name of another entry of the dictionary (code, label or alias),
    or a code/label that is another entry's alias, would name two entries and is refused."""
    try:
        aliases = normalise_aliases(entry.aliases)
    except ValueError as exc:
        return {"aliases": str(exc)}
    own = {lookup_key(name) for name in (entry.code, entry.label_en, entry.label_zh)}
    aliases = [alias for alias in aliases if lookup_key(alias) not in own]  # already its own name
    entry.aliases = "\n".join(aliases) or None
    others_names, others_aliases = _other_names(entry)
    errors: dict[str, str] = {}
    taken = [(a, others_names[lookup_key(a)]) for a in aliases if lookup_key(a) in others_names]
    if taken:
        alias, other = taken[0]
        errors["aliases"] = str(_l("%(alias)s already names %(entry)s (%(code)s); an alias must name one entry only.",
                                   alias=alias, entry=other.label, code=other.code))
    for field in ("code", "label_en", "label_zh"):
        other = others_aliases.get(lookup_key(getattr(entry, field)))
        if other is not None:
            errors[field] = str(_l("%(value)s is an alias of %(entry)s (%(code)s); remove it there first.",
                                   value=getattr(entry, field), entry=other.label, code=other.code))
    return errors


def _other_names(entry: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``lookup_key`` -> entry for the names (code, labels, aliases; not parent paths) and
    for the aliases of every other entry of ``entry``'s dictionary."""
    names: dict[str, Any] = {}
    aliases: dict[str, Any] = {}
    with db.session.no_autoflush:
        others = db.session.scalars(select(type(entry))).all()
    for other in others:
        if other is entry or (entry.id is not None and other.id == entry.id):
            continue
        for name, rank in _names(other):
            if rank != _PATH:
                names.setdefault(lookup_key(name), other)
        for alias in other.alias_list:
            aliases.setdefault(lookup_key(alias), other)
    return names, aliases


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


# --- remembered values: the import's value-mapping step (issue 11 §4) -------------------
#
# A value an import could not resolve (教育x) and a person mapped to an entry is remembered
# so the next file resolves it. Users who may edit the dictionaries remember it for
# everyone: it becomes an alias of the entry, so every later import, the sync and the
# forms' lookups accept it. Everyone else remembers it for their own imports only (their
# screen imports and the scheduled imports that run as them; never the sync, whose
# targets are shared): a rep must not change what a value means for colleagues. Both go
# through ``remember_value``; ``add_alias`` is the one door to a new alias outside the
# dictionary screens (which save whole alias lists through ``check_entry``).

#: ``ImportMapping.model`` under which a user's own remembered values are kept (not a model name).
PERSONAL_VALUES = "dictionary-values"
#: Values remembered per user and dictionary; past it the oldest are forgotten.
MAX_PERSONAL_VALUES = 1000


def may_edit(user: Any) -> bool:
    """Whether ``user`` may edit the dictionaries (``can_write`` on ``Dictionary``, the
    dictionary screens' own permission): only then is a mapped value remembered for everyone."""
    from app.security.rights import user_may

    return user_may(user, "can_write", "Dictionary")


def clean_value(text: object) -> str:
    """A value as it is remembered: NFKC, invisible characters dropped, one plain space,
    trimmed (how ``normalise_aliases`` cleans an alias). ``ValueError`` if empty or longer
    than an alias may be (100 characters)."""
    from app.services import validation

    value = validation.clean_line(unicodedata.normalize("NFKC", str(text or "")))
    if not lookup_key(value):
        raise ValueError(_l("An empty value cannot be mapped."))
    if len(value) > _MAX_ALIAS_LENGTH:
        raise ValueError(_l("At most %(n)d characters per alias: %(alias)s", n=_MAX_ALIAS_LENGTH,
                            alias=value[:20] + "…"))
    return value


def pickable_entry(model: type, entry_id: object, text: str) -> Any:
    """The active entry of dictionary ``model`` with id ``entry_id`` (as a form posts it),
    for the value ``text``; ``RuleViolation`` naming the value for an id of no entry of this
    dictionary (another dictionary's, a deleted one, not a number) or of an inactive entry
    (new records cannot pick it, so mapping a value to it would only move the error)."""
    from app.services.errors import RuleViolation

    raw = str(entry_id or "").strip()
    entry = db.session.get(model, int(raw)) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None
    if entry is None:
        raise RuleViolation(str(_l("Pick an entry of the list for %(value)s.", value=text)))
    if not entry.active:
        raise RuleViolation(str(_l("%(entry)s (%(code)s) is inactive and cannot be picked for %(value)s.",
                                   entry=entry.label, code=entry.code, value=text)))
    return entry


def add_alias(entry: Any, text: object, user: Any, reason: str | None = None) -> str:
    """Add ``text`` as one more alias of ``entry``, for everyone; returns it as stored.

    Cleaned as ``clean_value`` (so the lookups, which compare ``lookup_key``, find it in any
    width or case); a value that is already a name of ``entry`` changes nothing. Refused
    with ``RuleViolation`` ({"aliases": message}): a user who may not edit the dictionaries
    (status 403), a value holding an alias separator (, ; 、 — the dictionary screens would
    split it), and what ``check_aliases`` refuses (a name of another entry, more than 50
    aliases). Flushes, so the dictionary's audit hook records the aliases before/after
    (with ``reason``)."""
    from app.services import audit
    from app.services.errors import RuleForbidden, RuleViolation

    if not may_edit(user):
        raise RuleForbidden({"aliases": str(_l("Only users who may edit the dictionaries can add aliases."))})
    try:
        alias = clean_value(text)
    except ValueError as exc:
        raise RuleViolation({"aliases": str(exc)}) from None
    if _ALIAS_SEPARATORS.search(alias):
        raise RuleViolation({"aliases": str(_l(
            "%(value)s contains a comma, semicolon or 、, which separate aliases, so it cannot be an alias.",
            value=alias))})
    if lookup_key(alias) in {lookup_key(name) for name, rank in _names(entry) if rank != _PATH}:
        return alias
    before = entry.aliases
    with db.session.no_autoflush:
        entry.aliases = "\n".join([*entry.alias_list, alias])
        errors = check_aliases(entry)
    if errors.get("aliases"):
        entry.aliases = before
        raise RuleViolation({"aliases": errors["aliases"]})
    with audit.audit_context(reason=reason):
        db.session.flush()
    return alias


def remember_value(user: Any, model: type, entry_id: object, text: object, everyone: bool,
                   reason: str | None = None) -> Any:
    """The one use case that remembers "``text`` means this entry" (see the section note);
    returns the entry.

    ``entry_id`` must be an active entry of ``model`` (``pickable_entry``). ``everyone``:
    an alias (``add_alias``, which refuses users who may not edit the dictionaries); else
    kept for ``user``'s own imports (``personal_values``), audited as ``value_mapping``.
    Either way a value that already names another entry of the dictionary is refused with
    a message naming that entry. Raises ``RuleViolation``."""
    from app.services.errors import RuleViolation

    try:
        value = clean_value(text)
    except ValueError as exc:
        raise RuleViolation(str(exc)) from None
    entry = pickable_entry(model, entry_id, value)
    if everyone:
        add_alias(entry, value, user, reason)
        return entry
    other = _other_names(entry)[0].get(lookup_key(value))
    if other is not None:
        raise RuleViolation(str(_l("%(alias)s already names %(entry)s (%(code)s); an alias must name one entry only.",
                                   alias=value, entry=other.label, code=other.code)))
    _remember_personal(user, entry, value, reason)
    return entry


def _remember_personal(user: Any, entry: Any, value: str, reason: str | None) -> None:
    from app.models.transfers import ImportMapping
    from app.services import audit

    saved = db.session.get(ImportMapping, (user.id, PERSONAL_VALUES))
    memory = {name: dict(values) for name, values in (saved.mapping if saved else {}).items()}
    remembered = memory.setdefault(type(entry).__tablename__, {})
    key = lookup_key(value)
    remembered.pop(key, None)  # re-inserted last: the newest choice is the last forgotten
    remembered[key] = entry.id
    for old in list(remembered)[:-MAX_PERSONAL_VALUES]:
        del remembered[old]
    if saved is None:
        db.session.add(ImportMapping(user_id=user.id, model=PERSONAL_VALUES, mapping=memory))
    else:
        saved.mapping = memory
    audit.record("value_mapping", entry, {"value": value, "for": getattr(user, "username", None)}, reason=reason)


def personal_values(user_id: int, model: type) -> dict[str, int]:
    """``lookup_key(value)`` -> entry id: the values ``user_id`` remembered for their own
    imports in dictionary ``model`` (the entries may since have been retired: the caller
    checks)."""
    from app.models.transfers import ImportMapping

    saved = db.session.get(ImportMapping, (user_id, PERSONAL_VALUES))
    remembered = (saved.mapping or {}).get(model.__tablename__) if saved else None
    return {str(key): int(pk) for key, pk in (remembered or {}).items() if isinstance(pk, int)}
