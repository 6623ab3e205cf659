"""Finding dictionary entries from what people type: code, label (either language) or alias.

Imports and the sync accept ``36``, ``Manufacture of Automobiles``, ``汽车制造业``,
``制造业 > 汽车制造业``, an alias an admin gave the entry (``汽车``, ``Automotive``), for
labels that start with their code (``A 重要``) the label alone (``重要``), and a shortened
label that names one entry only (``转介绍`` for ``客户转介绍``). Matching ignores case,
spaces and width.

When a name fits several entries: a code beats any other name; a section and its own
division with the same name (教育 / 教育) give the division; then the one active entry.
Anything else is ambiguous and asks for the code.
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
#: Between aliases when an admin types several on one line (Chinese lists use 、 and ，).
_ALIAS_SEPARATORS = re.compile(r"[\n\r,，;；、]+")
_MAX_ALIASES, _MAX_ALIAS_LENGTH = 50, 100
_CODE, _NAME, _PATH = 0, 1, 2  # how a name was given: its rank when names clash


def lookup_key(text: object) -> str:
    return _SPACES.sub("", unicodedata.normalize("NFKC", str(text or "")).lower())


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
        """The entry named by ``text`` (None for blank); ``ValueError`` if unknown or ambiguous.

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
    others_names: dict[str, Any] = {}
    others_aliases: dict[str, Any] = {}
    for other in db.session.scalars(select(type(entry))):
        if other is entry or (entry.id is not None and other.id == entry.id):
            continue
        for name, rank in _names(other):
            if rank != _PATH:
                others_names.setdefault(lookup_key(name), other)
        for alias in other.alias_list:
            others_aliases.setdefault(lookup_key(alias), other)
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
