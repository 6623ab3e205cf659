"""Duplicate customers: one matching rule for entry, import, the dedup tool and merge.

The manual's rule (同一客户名称+联系人+电话重复): the same normalised name + contact +
phone, or the same unified social credit code, is the same customer. The dedup tool
also groups customers sharing a phone number and names that are nearly the same
(a fuzzy score over the name without legal-form suffixes such as 有限公司 / Co., Ltd.).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from rapidfuzz import fuzz
from sqlalchemy import or_, select

from app.extensions import db
from app.models.customers import Customer
from app.services.errors import RuleViolation

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_SUFFIXES = re.compile(
    r"(股份有限公司|有限责任公司|有限公司|集团|公司|分公司|co\.?,?\s*ltd\.?|company|limited|ltd\.?|inc\.?|llc|gmbh|corp\.?)$",
    re.IGNORECASE,
)
CREDIT, PHONE, NAME_CONTACT, FUZZY = "credit_code", "phone", "name_contact", "fuzzy_name"
RULE_LABELS = {
    CREDIT: _l("same credit code"), PHONE: _l("same phone"),
    NAME_CONTACT: _l("same name and contact"), FUZZY: _l("similar name"),
}
FUZZY_THRESHOLD = 90


def name_key(text: str | None) -> str:
    """Name as compared: NFKC (full-width to half-width), case-folded, no spaces or punctuation."""
    return _PUNCT.sub("", unicodedata.normalize("NFKC", text or "").casefold())


def core_name(text: str | None) -> str:
    """Name without its legal form, for fuzzy matching (深圳前海科技有限公司 -> 深圳前海科技)."""
    plain = unicodedata.normalize("NFKC", text or "").casefold().strip()
    for _ in range(2):
        plain = _SUFFIXES.sub("", plain).strip(" ,.")
    return _PUNCT.sub("", plain)


def entry_key(name: str | None, contact: str | None, phone: str | None) -> tuple[str, str, str] | None:
    """The manual's duplicate key; None when a part is missing (no match on blanks)."""
    key = (name_key(name), name_key(contact), (phone or "").strip())
    return key if all(key) else None


@dataclass
class DuplicateIndex:
    """Keys of known customers (and rows seen so far) -> the code that holds them."""

    by_credit: dict[str, str] = field(default_factory=dict)
    by_entry: dict[tuple[str, str, str], str] = field(default_factory=dict)
    _last: tuple = ((), None)  # one-slot cache: match() then add() for the same row

    def _key(self, name: str | None, contact: str | None, phone: str | None) -> tuple[str, str, str] | None:
        args = (name, contact, phone)
        if self._last[0] != args:
            self._last = (args, entry_key(name, contact, phone))
        return self._last[1]

    def add(self, code: str, name: str | None, contact: str | None, phone: str | None,
            credit_code: str | None) -> None:
        if credit_code:
            self.by_credit.setdefault(credit_code, code)
        key = self._key(name, contact, phone)
        if key:
            self.by_entry.setdefault(key, code)

    def match(self, name: str | None, contact: str | None, phone: str | None, credit_code: str | None,
              own_code: str | None = None) -> tuple[str, str] | None:
        """(code, rule) of the first known customer this one duplicates, ignoring itself."""
        if credit_code:
            found = self.by_credit.get(credit_code)
            if found and found != own_code:
                return found, CREDIT
        key = self._key(name, contact, phone)
        found = self.by_entry.get(key) if key else None
        if found and found != own_code:
            return found, NAME_CONTACT
        return None


def matches_for_entry(name: str | None, contact: str | None, phone: str | None,
                      credit_code: str | None, exclude_id: int | None = None) -> list[tuple[Customer, str]]:
    """Existing live customers a form or API save would duplicate, with the rule matched."""
    conditions = []
    if credit_code:
        conditions.append(Customer.credit_code == credit_code)
    key = entry_key(name, contact, phone)
    if key:
        conditions.append(Customer.contact_phone == key[2])
    if not conditions:
        return []
    query = select(Customer).where(Customer.archived_at.is_(None), or_(*conditions))
    if exclude_id is not None:
        query = query.where(Customer.id != exclude_id)
    found = []
    for customer in db.session.scalars(query.limit(50)):
        if credit_code and customer.credit_code == credit_code:
            found.append((customer, CREDIT))
        elif key and entry_key(customer.name, customer.contact_name, customer.contact_phone) == key:
            found.append((customer, NAME_CONTACT))
    return found


# --- the dedup tool --------------------------------------------------------------------


@dataclass
class Cluster:
    ids: list[int]
    rules: set[str]
    score: int  # 100 for exact rules, the best fuzzy score otherwise


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.rules: dict[int, set[str]] = defaultdict(set)
        self.score: dict[int, int] = defaultdict(int)

    def find(self, item: int) -> int:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int, rule: str, score: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.rules[ra] |= self.rules.pop(rb, set())
            self.score[ra] = max(self.score[ra], self.score.pop(rb, 0))
        self.rules[ra].add(rule)
        self.score[ra] = max(self.score[ra], score)


def _group_exact(uf: _UnionFind, keyed: Iterable[tuple[Any, int]], rule: str) -> None:
    first: dict[Any, int] = {}
    for key, cid in keyed:
        if not key:
            continue
        if key in first:
            uf.union(first[key], cid, rule, 100)
        else:
            first[key] = cid


def _group_fuzzy(uf: _UnionFind, names: list[tuple[str, int]], window: int, threshold: int) -> None:
    """Sorted-neighbourhood: compare each core name with the next few in sort order.

    Sorting twice (as written and reversed) catches differences at either end, with
    O(n * window) comparisons instead of O(n^2).
    """
    for ordered in (sorted(names), sorted(names, key=lambda item: item[0][::-1])):
        for i, (name, cid) in enumerate(ordered):
            if len(name) < 2:
                continue
            for other, other_id in ordered[i + 1:i + 1 + window]:
                if other == name:
                    uf.union(cid, other_id, FUZZY, 100)
                    continue
                score = fuzz.ratio(name, other, score_cutoff=threshold)
                if score:
                    uf.union(cid, other_id, FUZZY, int(score))


def _name_contact(name: str | None, contact: str | None) -> tuple[str, str] | None:
    key = (name_key(name), name_key(contact))
    return key if all(key) else None


def scan(owner_ids: set[int] | None, window: int = 4, threshold: int = FUZZY_THRESHOLD) -> list[Cluster]:
    """Clusters of likely duplicates among live customers of the given owners (None = all)."""
    query = select(Customer.id, Customer.name, Customer.contact_name, Customer.contact_phone,
                   Customer.credit_code).where(Customer.archived_at.is_(None))
    if owner_ids is not None:
        query = query.where(Customer.owner_id.in_(sorted(owner_ids) or [-1]))
    rows = db.session.execute(query).all()
    uf = _UnionFind()
    _group_exact(uf, ((r.credit_code, r.id) for r in rows), CREDIT)
    _group_exact(uf, ((r.contact_phone, r.id) for r in rows), PHONE)
    _group_exact(uf, ((_name_contact(r.name, r.contact_name), r.id) for r in rows), NAME_CONTACT)
    _group_fuzzy(uf, [(core_name(r.name), r.id) for r in rows], window, threshold)
    members: dict[int, list[int]] = defaultdict(list)
    for cid in list(uf.parent):
        members[uf.find(cid)].append(cid)
    clusters = [Cluster(sorted(ids), uf.rules[root], uf.score[root])
                for root, ids in members.items() if len(ids) > 1]
    clusters.sort(key=lambda c: (-len(c.rules & {CREDIT, PHONE, NAME_CONTACT}), -c.score, c.ids[0]))
    return clusters


class DuplicateFound(RuleViolation):
    """A save that looks like an existing customer; 409 so API clients can confirm."""

    status = 409

    def __init__(self, matches: list[tuple[Customer, str]], may_confirm: bool, visible: set[int]) -> None:
        shown = [f"{c.code} {c.name} ({RULE_LABELS[rule]})" for c, rule in matches[:5] if c.id in visible]
        if len(shown) < len(matches[:5]):  # colleagues' customers: that one exists, not who or what
            shown.append(str(_l("a customer outside your data scope")))
        #: The matches as the user may see them (codes and names in scope only).
        self.listed = ", ".join(shown)
        message = _l("This looks like an existing customer: %(list)s.", list=self.listed)
        hint = _l("Tick 'Save anyway' if it is a different customer.") if may_confirm \
            else _l("Duplicates are not allowed; open the existing customer instead.")
        errors: dict[str, Any] = {"duplicate": f"{message} {hint}",
                                  "duplicates": [c.code for c, _ in matches if c.id in visible]}
        if may_confirm:  # for API clients only: screens show "duplicate" (the 'Save anyway' box)
            errors["confirm"] = str(_l("Send the request again with ?allow_duplicate=1 if it is a different "
                                       "customer."))
        super().__init__(errors)
        self.matches = matches


def refuse_duplicates(name: str | None, contact: str | None, phone: str | None, credit_code: str | None,
                      user: Any, exclude_id: int | None = None, confirmed: bool = False) -> None:
    """Raise ``DuplicateFound`` unless there is no match or the user confirmed (policy "warn").

    Every customer counts (a rep must not re-enter a colleague's customer), but only the
    ones in the user's scope are named.
    """
    from flask import current_app

    from app.security.data_scope import can_see

    matches = matches_for_entry(name, contact, phone, credit_code, exclude_id)
    if not matches:
        return
    may_confirm = current_app.config.get("CRM_DUPLICATES", "warn") == "warn"
    if not (confirmed and may_confirm):
        raise DuplicateFound(matches, may_confirm, {c.id for c, _ in matches if can_see(user, c)})
