"""Duplicate customers: one matching rule for entry, import, the dedup tool and merge.

The manual's rule (同一客户名称+联系人+电话重复): the same normalised name + contact +
phone, or the same unified social credit code, is the same customer. The contact and
phone may be any of the customer's contacts (issue 13), not only the primary one that
mirrors 联系人姓名/联系方式. The dedup tool also groups customers sharing a phone number
(any contact's, looked up through ``ix_contact_phone``) and names that are nearly the same
(a fuzzy score over the name without legal-form suffixes such as 有限公司 / Co., Ltd.).

A pair a person reviewed and found to be two different customers is *dismissed*
(``dismiss_pair``; ``app.models.duplicates.DismissedPair``): the scan drops the edge
between the two (the other pairs of a cluster still group), and the save check no longer
names one when the other is edited. The dismissal is keyed by customer ids, so a rescan,
an edit, or an import that updates either customer keeps it; merging one of the two away
removes it (the model's flush hook), and ``restore_pair`` undoes it.
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
from sqlalchemy import func, or_, select

from app.extensions import db
from app.models.customers import Customer
from app.models.duplicates import DismissedPair
from app.models.sales import Contact
from app.security.data_scope import scope_clause
from app.services import audit, records, validation
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
    """Existing live customers a form or API save would duplicate, with the rule matched.

    ``exclude_id`` is the customer being edited: it never matches itself, nor a customer
    a person dismissed as a false match of it (``dismiss_pair``).
    """
    conditions = []
    if credit_code:
        conditions.append(Customer.credit_code == credit_code)
    key = entry_key(name, contact, phone)
    if key:
        conditions.append(Customer.contact_phone == key[2])
    if not conditions:
        return []
    contacts = _contacts_with_phone(key[2]) if key else {}
    if contacts:
        conditions.append(Customer.id.in_(sorted(contacts)))
    query = select(Customer).where(Customer.archived_at.is_(None), or_(*conditions))
    if exclude_id is not None:
        query = query.where(Customer.id != exclude_id)
    found = []
    dismissed = dismissed_partners(exclude_id) if exclude_id is not None else set()
    for customer in db.session.scalars(query.limit(50)):
        if customer.id in dismissed:  # reviewed: a different customer
            continue
        if credit_code and customer.credit_code == credit_code:
            found.append((customer, CREDIT))
        elif key and any(entry_key(customer.name, contact, phone) == key for contact, phone in
                         [(customer.contact_name, customer.contact_phone),
                          *((name, key[2]) for name in contacts.get(customer.id, ()))]):
            found.append((customer, NAME_CONTACT))
    return found


#: Most contacts one phone lookup reads (a phone shared by more is a switchboard, not a person).
_PHONE_LOOKUP_LIMIT = 200


def _contacts_with_phone(phone: str) -> dict[int, list[str]]:
    """customer id -> names of its other (non-primary) contacts with this phone (the
    primary one is the customer's own contact_phone); one indexed query (ix_contact_phone)."""
    found: dict[int, list[str]] = defaultdict(list)
    rows = db.session.execute(select(Contact.customer_id, Contact.name).where(
        Contact.phone == phone, Contact.is_primary.is_(False)).limit(_PHONE_LOOKUP_LIMIT))
    for customer_id, name in rows:
        found[customer_id].append(name)
    return found


def _contact_phones(owner_ids: set[int] | None) -> list[tuple[str, int]]:
    """(phone, customer id) of the non-primary contacts of live customers of these owners."""
    query = (select(Contact.phone, Contact.customer_id).join(Customer, Customer.id == Contact.customer_id)
             .where(Customer.archived_at.is_(None), Contact.is_primary.is_(False), Contact.phone.is_not(None)))
    if owner_ids is not None:
        query = query.where(Customer.owner_id.in_(sorted(owner_ids) or [-1]))
    return [(phone, cid) for phone, cid in db.session.execute(query)]


# --- the dedup tool --------------------------------------------------------------------

Pair = tuple[int, int]


def ordered(a: int, b: int) -> Pair:
    """A pair of customer ids as stored: low id first."""
    return (a, b) if a < b else (b, a)


@dataclass
class Cluster:
    ids: list[int]
    rules: set[str]
    score: int  # 100 for exact rules, the best fuzzy score otherwise
    #: Pairs inside the cluster a person dismissed (the cluster holds through other pairs).
    dismissed: list[Pair] = field(default_factory=list)


class _UnionFind:
    def __init__(self, blocked: set[Pair] | None = None) -> None:
        self.parent: dict[int, int] = {}
        self.rules: dict[int, set[str]] = defaultdict(set)
        self.score: dict[int, int] = defaultdict(int)
        self.blocked = blocked or set()

    def find(self, item: int) -> int:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int, rule: str, score: int) -> None:
        if ordered(a, b) in self.blocked:  # a dismissed pair is no edge
            return
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.rules[ra] |= self.rules.pop(rb, set())
            self.score[ra] = max(self.score[ra], self.score.pop(rb, 0))
        self.rules[ra].add(rule)
        self.score[ra] = max(self.score[ra], score)


def _group_exact(uf: _UnionFind, keyed: Iterable[tuple[Any, int]], rule: str) -> None:
    groups: dict[Any, list[int]] = defaultdict(list)
    for key, cid in keyed:
        if key:
            groups[key].append(cid)
    constrained = {cid for pair in uf.blocked for cid in pair}
    for ids in groups.values():
        if len(ids) > 1:
            _join_group(uf, ids, rule, constrained)


def _join_group(uf: _UnionFind, ids: list[int], rule: str, constrained: set[int]) -> None:
    """Join customers sharing one key as the complete graph over them minus the dismissed
    pairs would: in O(n + k²) for k members that have a dismissal, not O(n²).

    Members without any dismissal ("free") all pair with each other, so a star over them
    is enough, and each constrained member pairs with the first free one; only the pairs
    between constrained members need checking one by one (``union`` skips dismissed ones).
    """
    free = [cid for cid in ids if cid not in constrained]
    tied = [cid for cid in ids if cid in constrained]
    for other in free[1:]:
        uf.union(free[0], other, rule, 100)
    for i, cid in enumerate(tied):
        if free:
            uf.union(free[0], cid, rule, 100)
        for other in tied[i + 1:]:
            uf.union(cid, other, rule, 100)


def _group_fuzzy(uf: _UnionFind, names: list[tuple[str, int]], window: int, threshold: int) -> None:
    """Sorted-neighbourhood: compare each core name with the next few in sort order.

    Sorting twice (as written and reversed) catches differences at either end, with
    O(n * window) comparisons instead of O(n^2).
    """
    for ordered_names in (sorted(names), sorted(names, key=lambda item: item[0][::-1])):
        for i, (name, cid) in enumerate(ordered_names):
            if len(name) < 2:
                continue
            for other, other_id in ordered_names[i + 1:i + 1 + window]:
                if other == name:
                    uf.union(cid, other_id, FUZZY, 100)
                    continue
                score = fuzz.ratio(name, other, score_cutoff=threshold)
                if score:
                    uf.union(cid, other_id, FUZZY, int(score))


def _name_contact(name: str | None, contact: str | None) -> tuple[str, str] | None:
    key = (name_key(name), name_key(contact))
    return key if all(key) else None


def dismissed_pairs() -> set[Pair]:
    """Every dismissed pair (low, high). Pairs are made by hand, one review at a time, so
    the table stays small next to the customers the scan reads anyway."""
    return {(low, high) for low, high in db.session.execute(
        select(DismissedPair.customer_low_id, DismissedPair.customer_high_id))}


def dismissed_partners(customer_id: int) -> set[int]:
    """Ids of the customers dismissed as false matches of ``customer_id`` (indexed both ways)."""
    rows = db.session.execute(select(DismissedPair.customer_low_id, DismissedPair.customer_high_id).where(
        or_(DismissedPair.customer_low_id == customer_id, DismissedPair.customer_high_id == customer_id)))
    return {low if high == customer_id else high for low, high in rows}


def scan(owner_ids: set[int] | None, window: int = 4, threshold: int = FUZZY_THRESHOLD,
         dismissed: set[Pair] | None = None) -> list[Cluster]:
    """Clusters of likely duplicates among live customers of the given owners (None = all).

    ``dismissed`` (default: ``dismissed_pairs()``) are pairs that never join by themselves:
    a cluster of two whose pair is dismissed disappears, a larger one holds as long as
    other pairs link its members (``Cluster.dismissed`` names the dismissed ones inside).
    """
    query = select(Customer.id, Customer.name, Customer.contact_name, Customer.contact_phone,
                   Customer.credit_code).where(Customer.archived_at.is_(None))
    if owner_ids is not None:
        query = query.where(Customer.owner_id.in_(sorted(owner_ids) or [-1]))
    rows = db.session.execute(query).all()
    uf = _UnionFind(dismissed_pairs() if dismissed is None else dismissed)
    _group_exact(uf, ((r.credit_code, r.id) for r in rows), CREDIT)
    # every contact's phone, once per customer (a customer sharing a phone with itself is no edge)
    phones = {(r.contact_phone, r.id) for r in rows} | set(_contact_phones(owner_ids))
    _group_exact(uf, sorted(phones, key=lambda item: (item[0], item[1])), PHONE)
    _group_exact(uf, ((_name_contact(r.name, r.contact_name), r.id) for r in rows), NAME_CONTACT)
    _group_fuzzy(uf, [(core_name(r.name), r.id) for r in rows], window, threshold)
    members: dict[int, list[int]] = defaultdict(list)
    for cid in list(uf.parent):
        members[uf.find(cid)].append(cid)
    inside: dict[int, list[Pair]] = defaultdict(list)
    for low, high in sorted(uf.blocked):
        if low in uf.parent and high in uf.parent and uf.find(low) == uf.find(high):
            inside[uf.find(low)].append((low, high))
    clusters = [Cluster(sorted(ids), uf.rules[root], uf.score[root], inside.get(root, []))
                for root, ids in members.items() if len(ids) > 1]
    clusters.sort(key=lambda c: (-len(c.rules & {CREDIT, PHONE, NAME_CONTACT}), -c.score, c.ids[0]))
    return clusters


# --- dismissing a reviewed false match -----------------------------------------------------

#: Longest reason kept with a dismissal (the column's length).
REASON_LENGTH = 255


def _pair_in_scope(user: Any, a_id: Any, b_id: Any) -> tuple[Customer, Customer]:
    """Both customers, live and in ``user``'s scope (``records.load``: a colleague's customer
    and a missing one are the same ``NotFound``), low id first."""
    first, second = records.load(Customer, a_id, user), records.load(Customer, b_id, user)
    if first.id == second.id:
        raise RuleViolation({"ids": str(_l("Pick two different customers."))})
    return (first, second) if first.id < second.id else (second, first)


def _stored(low: Customer, high: Customer) -> DismissedPair | None:
    return db.session.scalar(select(DismissedPair).where(
        DismissedPair.customer_low_id == low.id, DismissedPair.customer_high_id == high.id))


def _audit(action: str, user: Any, low: Customer, high: Customer, reason: str | None) -> None:
    """One entry on each customer, so either one's history shows it."""
    for customer, other in ((low, high), (high, low)):
        audit.record(action, customer, {"other": other.code, "pair": [low.code, high.code]}, reason=reason,
                     user=user)


def dismiss_pair(user: Any, a_id: Any, b_id: Any, reason: str | None = None) -> DismissedPair:
    """Mark two customers as a reviewed false match ("not duplicates"): the use case behind
    *Duplicates → Not duplicates*. Who may: as for merging (``can_merge`` on Duplicates,
    checked by the screen); no authenticator code (nothing changes on either customer, and
    ``restore_pair`` undoes it).

    ``reason`` is optional free text (one line, at most ``REASON_LENGTH`` characters).
    Dismissing a pair already dismissed returns the stored row unchanged (a second click).
    Raises ``NotFound`` (either customer missing, archived or out of scope) and
    ``RuleViolation`` (the same customer twice, a reason too long). Audited on both customers.
    """
    low, high = _pair_in_scope(user, a_id, b_id)
    text = validation.clean_line(reason) or None
    if text is not None and len(text) > REASON_LENGTH:
        raise RuleViolation({"reason": str(_l("At most %(n)d characters.", n=REASON_LENGTH))})
    stored = _stored(low, high)
    if stored is not None:
        return stored
    pair = DismissedPair(customer_low_id=low.id, customer_high_id=high.id, dismissed_by_id=user.id, reason=text)
    db.session.add(pair)
    db.session.flush()
    _audit("dismiss_duplicate", user, low, high, text)
    return pair


def restore_pair(user: Any, a_id: Any, b_id: Any) -> None:
    """Undo ``dismiss_pair``: the pair may group again at the next scan. Same loading and
    permission as ``dismiss_pair``; raises ``NotFound`` also when the pair is not dismissed.
    Audited on both customers."""
    low, high = _pair_in_scope(user, a_id, b_id)
    stored = _stored(low, high)
    if stored is None:
        raise records.not_found()
    db.session.delete(stored)
    db.session.flush()
    _audit("restore_duplicate", user, low, high, None)


def _in_scope(user: Any, column: Any) -> Any:
    return column.in_(select(Customer.id).where(Customer.archived_at.is_(None), scope_clause(user, Customer)))


def dismissed_in_scope(user: Any, offset: int = 0, limit: int = 100) -> tuple[list[DismissedPair], int]:
    """Dismissed pairs whose two customers are both live and in ``user``'s scope, newest
    first: (one page of rows, total). A pair with a customer out of scope is not listed."""
    where = (_in_scope(user, DismissedPair.customer_low_id), _in_scope(user, DismissedPair.customer_high_id))
    total = db.session.scalar(select(func.count(DismissedPair.id)).where(*where)) or 0
    rows = db.session.scalars(select(DismissedPair).where(*where)
                              .order_by(DismissedPair.dismissed_at.desc(), DismissedPair.id.desc())
                              .offset(offset).limit(limit)).all()
    return list(rows), total


def dismissed_among(ids: Iterable[int]) -> list[DismissedPair]:
    """The dismissed pairs between the given customers (a review page's members)."""
    wanted = sorted(set(ids))
    if len(wanted) < 2:
        return []
    return list(db.session.scalars(select(DismissedPair).where(
        DismissedPair.customer_low_id.in_(wanted), DismissedPair.customer_high_id.in_(wanted))
        .order_by(DismissedPair.customer_low_id, DismissedPair.customer_high_id)))


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
