"""The import's value-mapping step (issue 11 §4): dictionary values that match no entry.

The dry run counts, per dictionary column, each distinct value that names no entry (or
several) with the number of rows holding it; that costs nothing extra, since the run looks
every cell up anyway (``DictionaryLookup.find`` remembers misses too), and it is bounded
by the import's own bounds (rows, columns, cells). The job page lists at most
``MAX_SHOWN`` values per column, most rows first, the rest summarised; the user maps each
to an active entry of that dictionary or leaves it as an error (those rows are rejected
with a message naming the value and the column). The choices are remembered through
``dictionaries.remember_value`` (an alias for everyone, or the user's own memory: see
there) and kept on the job, so this job's next dry run and its commit use them, whoever
runs it; the next dry run lists what is still unknown.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models.dictionaries import DictionaryMixin
from app.models.transfers import PREVIEWED, TransferJob
from app.services import dictionaries
from app.services.dictionaries import lookup_key
from app.services.errors import RuleForbidden, RuleViolation
from app.services.importing import columns

#: Distinct unknown values listed per column (most rows first); the rest are summarised.
MAX_SHOWN = 50
#: Longer values are never listed: no alias may be longer (``dictionaries.clean_value``).
MAX_VALUE_CHARS = 100
#: Where a dry run's unknown values are kept in ``TransferJob.preview``.
PREVIEW_KEY = "values"
#: Where the job's own choices are kept in ``TransferJob.options``: field -> value key -> entry id.
OPTIONS_KEY = "values"


class UnknownValues:
    """Distinct unknown values per field with their row counts, filled by the run (one
    pass over the rows; at most one slot per distinct value, so bounded by the rows read)."""

    def __init__(self) -> None:
        #: field -> lookup_key -> [value as first written, rows, ambiguous]
        self.by_field: dict[str, dict[str, list[Any]]] = {}

    def add(self, fieldname: str, text: str, ambiguous: bool) -> None:
        """Count one row of ``fieldname`` holding ``text`` (grouped by ``lookup_key``: 教育Ｘ is 教育x)."""
        values = self.by_field.setdefault(fieldname, {})
        key = lookup_key(text)
        seen = values.get(key)
        if seen is None:
            values[key] = [text, 1, ambiguous]
        else:
            seen[1] += 1

    def summary(self) -> list[dict[str, Any]]:
        """JSON for the job: per field (in field order of the run) ``{"field", "values":
        [[value, rows, ambiguous], ...] (at most MAX_SHOWN, most rows first), "more_values",
        "more_rows"}`` — values too long to map count among the more."""
        groups = []
        for fieldname, values in self.by_field.items():
            ranked = sorted(values.values(), key=lambda item: -item[1])  # stable: first written first on ties
            shown = [item for item in ranked if len(item[0]) <= MAX_VALUE_CHARS][:MAX_SHOWN]
            more = len(ranked) - len(shown)
            groups.append({"field": fieldname, "values": shown, "more_values": more,
                           "more_rows": sum(item[1] for item in ranked) - sum(item[1] for item in shown)})
        return groups


def chosen_for(job: TransferJob) -> dict[str, dict[str, int]]:
    """field -> value key -> entry id that a run of ``job`` applies to values naming no entry:
    the job owner's remembered values (``dictionaries.personal_values``) overlaid with the
    choices made on this job. Aliases need nothing here: the lookups know them."""
    spec = columns.MODELS[job.model]
    chosen: dict[str, dict[str, int]] = {}
    for spec_field in spec.fields:
        if spec_field.dictionary is not None:
            chosen[spec_field.name] = dictionaries.personal_values(job.user_id, spec_field.dictionary)
    for fieldname, values in ((job.options or {}).get(OPTIONS_KEY) or {}).items():
        if fieldname in chosen and isinstance(values, dict):
            chosen[fieldname].update((str(k), v) for k, v in values.items() if isinstance(v, int))
    return {name: values for name, values in chosen.items() if values}


def resolve(spec: columns.ImportModel, chosen: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, Any]]:
    """``chosen`` with the entries loaded (one query per dictionary); entries deleted or
    retired since are left out, so their values show up as unknown again."""
    resolved: dict[str, dict[str, Any]] = {}
    for fieldname, values in chosen.items():
        model = next((f.dictionary for f in spec.fields if f.name == fieldname), None)
        if model is None or not values:
            continue
        entries = {e.id: e for e in db.session.scalars(
            select(model).where(model.id.in_(set(values.values())), model.active.is_(True)))}
        resolved[fieldname] = {key: entries[pk] for key, pk in values.items() if pk in entries}
    return resolved


@dataclass
class ValueGroup:
    """One dictionary column of the mapping step, as the job page shows it."""

    field: str
    header: str
    values: list[tuple[str, int, bool]]
    more_values: int
    more_rows: int
    #: (group label, [(entry id, "code label")]): a two-level dictionary (industries) gives one
    #: group per top-level entry, holding it and its children; others one group labelled "".
    choices: list[tuple[str, list[tuple[int, str]]]] = dataclass_field(default_factory=list)


def groups(job: TransferJob) -> list[ValueGroup]:
    """The unknown values of the job's last dry run, per column, with the active entries of
    each dictionary to pick from (``code label``, in order); empty when there are none."""
    stored = (job.preview or {}).get(PREVIEW_KEY) or []
    spec = columns.MODELS[job.model]
    headers = {name: header for header, name in (job.mapping or {}).items()}
    result = []
    for group in stored:
        model = _dictionary(spec, group.get("field"))
        if model is None or not group.get("values"):
            continue
        result.append(ValueGroup(
            group["field"], headers.get(group["field"]) or str(spec.field(group["field"]).label),
            [(str(text), int(rows), bool(ambiguous)) for text, rows, ambiguous in group["values"]],
            int(group.get("more_values") or 0), int(group.get("more_rows") or 0), choices(model)))
    return result


def choices(model: type) -> list[tuple[str, list[tuple[int, str]]]]:
    """The active entries of dictionary ``model`` to map a value to, in the dictionary's
    order, labelled ``code label`` in the user's language (see ``ValueGroup.choices``).
    The same list is repeated for every listed value, so children carry their own label only."""
    entries = db.session.scalars(select(model).where(model.active.is_(True)).order_by(model.sort_order, model.code)).all()
    if not hasattr(model, "parent_id"):
        return [("", [(entry.id, f"{entry.code} {entry.label}") for entry in entries])]
    own = DictionaryMixin.label.fget  # the entry's label without its parent's

    def named(entry: Any) -> str:
        return f"{entry.code} {own(entry)}"

    children: dict[int, list[Any]] = defaultdict(list)
    for entry in entries:
        if entry.parent_id is not None:
            children[entry.parent_id].append(entry)
    groups = [(named(top), [(top.id, named(top))] + [(child.id, named(child)) for child in children.pop(top.id, [])])
              for top in entries if top.parent_id is None]
    orphans = [child for retired_parent in children.values() for child in retired_parent]  # parent inactive
    if orphans:
        groups.append(("", [(child.id, f"{child.code} {child.label}") for child in orphans]))
    return groups


def listed(job: TransferJob) -> list[tuple[str, int]]:
    """(field, position) of every value the job page lists: the keys of ``apply_choices``."""
    stored = (job.preview or {}).get(PREVIEW_KEY) or []
    return [(group["field"], position) for group in stored if isinstance(group, dict) and "field" in group
            for position in range(len(group.get("values") or []))]


def digest(job: TransferJob) -> str:
    """A fingerprint of the listed values: a form posted for an earlier dry run's list
    (whose positions meant other values) is refused."""
    stored = (job.preview or {}).get(PREVIEW_KEY) or []
    return hashlib.sha256(json.dumps(stored, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def apply_choices(job: TransferJob, user: Any, choices: Mapping[tuple[str, int], str], everyone: bool,
                  shown_digest: str) -> tuple[int, list[str]]:
    """Apply the mapping step's form to ``job`` (a finished dry run): ``choices`` maps
    (field, position in the listed values) to the chosen entry id, "" to leave the value
    as an error; positions not listed are ignored.

    Each choice goes through ``dictionaries.remember_value`` (``everyone``: as an alias,
    only for users who may edit the dictionaries, else ``RuleForbidden`` before anything is
    stored) and is kept on the job. Returns (values mapped, messages of refused choices);
    ``RuleViolation`` when the dry run is not finished or has changed since the page was
    shown. The caller commits and starts the next dry run."""
    if job.status != PREVIEWED:
        raise RuleViolation(str(_l("Wait for the dry run to finish, then map the values.")))
    if shown_digest != digest(job):
        raise RuleViolation(str(_l("The dry run has changed since the page was shown; pick the values again.")))
    if everyone and not dictionaries.may_edit(user):
        raise RuleForbidden(str(_l("Only users who may edit the dictionaries can add aliases.")))
    spec = columns.MODELS[job.model]
    options = dict(job.options or {})
    kept = {name: dict(values) for name, values in (options.get(OPTIONS_KEY) or {}).items()}
    mapped, refused = 0, []
    for group in (job.preview or {}).get(PREVIEW_KEY) or []:
        model = _dictionary(spec, group.get("field"))
        for position, (text, _rows, _ambiguous) in enumerate(group.get("values") or []):
            entry_id = (choices.get((group["field"], position)) or "").strip()
            if model is None or not entry_id:
                continue
            try:
                entry = dictionaries.remember_value(user, model, entry_id, text, everyone,
                                                    reason=f"import #{job.id}: {job.filename}"[:256])
            except RuleViolation as exc:
                refused.append(str(exc) if text in str(exc) else f"{text}: {exc}")
                continue
            kept.setdefault(group["field"], {})[lookup_key(text)] = entry.id
            mapped += 1
    options[OPTIONS_KEY] = kept
    job.options = options
    return mapped, refused


def _dictionary(spec: columns.ImportModel, fieldname: Any) -> type | None:
    return next((f.dictionary for f in spec.fields if f.name == fieldname and f.dictionary is not None), None)
