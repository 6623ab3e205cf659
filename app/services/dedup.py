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

import hashlib
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from flask_babel import lazy_gettext as _l
from rapidfuzz import fuzz, process
from sqlalchemy import func, or_, select

from app.extensions import db
from app.models.customers import Customer
from app.models.duplicates import DismissedPair
from app.models.sales import Contact
from app.security.data_scope import scope_clause
from app.security.masking import ERASED
from app.services import audit, bulk, records, validation
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


# --- the dedup tool: one pairwise rule, computed in full or for the customers touched -------

Pair = tuple[int, int]
EXACT = frozenset({CREDIT, PHONE, NAME_CONTACT})
#: Names are cut into this many segments; two names are fuzzy candidates when they agree on
#: all but one segment (a typo, an inserted or a replaced word sits inside one segment).
FUZZY_SEGMENTS = 3
#: Shorter core names only match when identical (at 90, one added character is 4.5+ long).
FUZZY_MIN_LENGTH = 5


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
    #: customer id -> the rules of its own (not dismissed) edges
    member_rules: dict[int, set[str]] = field(default_factory=dict)


@dataclass
class Facts:
    """What the rules read of one live customer."""

    id: int
    name: str
    contact_name: str | None
    credit_code: str | None
    phones: set[str]
    owner_id: int = 0

    @cached_property
    def core(self) -> str:
        return core_name(self.name)

    @cached_property
    def name_contact(self) -> tuple[str, str] | None:
        return _name_contact(self.name, self.contact_name)

    @cached_property
    def fuzzy(self) -> set[str]:
        return fuzzy_keys(self.core)


def fuzzy_keys(core: str, threshold: int = FUZZY_THRESHOLD) -> set[str]:
    """Blocking keys of a core name: for every length ``m`` a partner could have (from the
    shortest that can still score ``threshold`` up to its own), the name without one of
    ``FUZZY_SEGMENTS`` segments of an ``m``-long name (prefix before it + suffix after it).
    Two names whose difference (an inserted, removed or replaced run of characters) lies in
    one segment of the shorter share a key; the score then decides. Pairwise by design, so
    a full scan and an incremental update agree.

    Every key carries the name's numerals (``numerals``): names whose numbers differ are
    never fuzzy duplicates (华腾科技1号店 / 华腾科技2号店, 第一分公司 / 第二分公司 are two
    companies, one character apart), and numbered names (a chain's stores, a fixture's
    华腾科技{n}) no longer fall into one block that compares them all with each other."""
    length = len(core)
    if length < 2:
        return set()
    if length < FUZZY_MIN_LENGTH:
        return {"=" + core}
    ratio = threshold / 100
    shortest = max(FUZZY_MIN_LENGTH, math.floor(ratio * length / (2 - ratio)))
    number = numerals(core)
    keys = set()
    for m in range(shortest, length + 1):
        bounds = [round(i * m / FUZZY_SEGMENTS) for i in range(FUZZY_SEGMENTS + 1)]
        for k in range(FUZZY_SEGMENTS):
            keys.add(f"{m}|{k}|{number}|{core[:bounds[k]]}|{core[length - (m - bounds[k + 1]):]}")
    return keys


def numerals(core: str) -> str:
    """The numerals of a core name in order (digits and Chinese numerals: 1, 一, 二 …)."""
    return "".join(ch for ch in core if ch.isnumeric())


def _hash(key: str) -> int:
    """A blocking key as a signed 64-bit integer (the ``duplicate_key.key`` column)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def blocking_keys(facts: Facts) -> set[int]:
    """Hashed keys stored for a customer: name + contact, and its fuzzy-name keys (credit
    codes and phones are looked up on their own indexed columns)."""
    keys = {_hash("f" + key) for key in facts.fuzzy}
    if facts.name_contact:
        keys.add(_hash("n{}\x00{}".format(*facts.name_contact)))
    return keys


def _load_facts(session: Any, ids: Iterable[int] | None, owner_ids: set[int] | None = None) -> dict[int, Facts]:
    """Facts of the live customers among ``ids`` (None: all, or those of ``owner_ids``)."""
    found: dict[int, Facts] = {}
    chunks = [None] if ids is None else bulk.id_chunks(ids, _CHUNK)
    for chunk in chunks:
        query = select(Customer.id, Customer.name, Customer.contact_name, Customer.contact_phone,
                       Customer.credit_code, Customer.owner_id).where(Customer.archived_at.is_(None))
        phones = (select(Contact.customer_id, Contact.phone).join(Customer, Customer.id == Contact.customer_id)
                  .where(Customer.archived_at.is_(None), Contact.is_primary.is_(False), Contact.phone.is_not(None)))
        if chunk is not None:
            query, phones = query.where(Customer.id.in_(chunk)), phones.where(Contact.customer_id.in_(chunk))
        if owner_ids is not None:
            owners = sorted(owner_ids) or [-1]
            query, phones = query.where(Customer.owner_id.in_(owners)), phones.where(Customer.owner_id.in_(owners))
        for cid, name, contact, phone, credit, owner in session.execute(query):
            # an erased value (the "(erased)" marker) is no fact: erased people are nobody's duplicates
            name, contact, phone = (None if v == ERASED else v for v in (name, contact, phone))
            found[cid] = Facts(cid, name or "", contact, credit or None,
                               {phone.strip()} if phone and phone.strip() else set(), owner)
        for cid, phone in session.execute(phones):
            if cid in found and phone.strip() and phone != ERASED:
                found[cid].phones.add(phone.strip())
    return found


#: Ids per IN list (bounded statements on every database).
_CHUNK = 500


def _exact_groups(facts: dict[int, Facts]) -> list[tuple[str, list[int]]]:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for f in facts.values():
        if f.credit_code:
            groups[(CREDIT, f.credit_code)].append(f.id)
        for phone in f.phones:
            groups[(PHONE, phone)].append(f.id)
        if f.name_contact:
            groups[(NAME_CONTACT, f.name_contact)].append(f.id)
    return [(key[0], sorted(ids)) for key, ids in groups.items() if len(ids) > 1]


def _fuzzy_edges(facts: dict[int, Facts], threshold: int) -> dict[Pair, int]:
    """(low, high) -> score of every pair sharing a fuzzy key and scoring ``threshold``+."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for f in facts.values():
        for key in (f.fuzzy if threshold == FUZZY_THRESHOLD else fuzzy_keys(f.core, threshold)):
            blocks[key].append(f.id)
    edges: dict[Pair, int] = {}
    for key, ids in blocks.items():
        if len(ids) < 2:
            continue
        # a pair is keyed at the shorter one's length: one member must be exactly that long
        length = None if key.startswith("=") else int(key.split("|", 1)[0])
        exact = [cid for cid in ids if length is None or len(facts[cid].core) == length]
        if not exact:
            continue
        longer = [cid for cid in ids if length is not None and len(facts[cid].core) != length]
        others = exact + longer
        names = [facts[cid].core for cid in others]
        for i, cid in enumerate(exact):
            if len(others) - i > _BIG_BLOCK:  # one C loop over the rest (costly to start, fast to run)
                found = [(score, j) for _, score, j in process.extract(
                    names[i], names[i + 1:], scorer=fuzz.ratio, score_cutoff=threshold, limit=None)]
            else:
                found = [(score, j) for j, other in enumerate(names[i + 1:])
                         if (score := fuzz.ratio(names[i], other, score_cutoff=threshold))]
            for score, j in found:
                edges[ordered(cid, others[i + 1 + j])] = int(score)
    return edges


#: Block members past which one ``process.extract`` call beats a loop of ``fuzz.ratio``.
_BIG_BLOCK = 200


def _components(facts: dict[int, Facts], dismissed: set[Pair], threshold: int = FUZZY_THRESHOLD) -> list[Cluster]:
    """Clusters of ``facts``: connected groups over the edges (same credit code, a shared
    phone, same name + contact, fuzzy name), a dismissed pair being no edge."""
    uf = _UnionFind(dismissed)
    constrained = {cid for pair in dismissed for cid in pair}
    member_rules: dict[int, set[str]] = defaultdict(set)
    for rule, ids in _exact_groups(facts):
        _join_group(uf, ids, rule, constrained)
        free = sum(1 for cid in ids if cid not in constrained)
        tied = [cid for cid in ids if cid in constrained]
        for cid in ids:  # a member counts the rule when it pairs with one it was not dismissed from
            if free - (cid not in constrained) > 0 or any(o != cid and ordered(cid, o) not in dismissed for o in tied):
                member_rules[cid].add(rule)
    for (a, b), score in _fuzzy_edges(facts, threshold).items():
        if (a, b) not in dismissed:
            uf.union(a, b, FUZZY, score)
            member_rules[a].add(FUZZY)
            member_rules[b].add(FUZZY)
    members: dict[int, list[int]] = defaultdict(list)
    for cid in list(uf.parent):
        members[uf.find(cid)].append(cid)
    inside: dict[int, list[Pair]] = defaultdict(list)
    for low, high in sorted(dismissed):
        if low in uf.parent and high in uf.parent and uf.find(low) == uf.find(high):
            inside[uf.find(low)].append((low, high))
    clusters = []
    for root, ids in members.items():
        if len(ids) > 1:
            rules = {cid: member_rules[cid] for cid in sorted(ids)}
            clusters.append(Cluster(sorted(ids), set().union(*rules.values()), uf.score[root], inside.get(root, []),
                                    rules))
    clusters.sort(key=_order)
    return clusters


def _order(cluster: Cluster) -> tuple[int, int, int]:
    """The list's order: more exact rules first, then the best score, then the lowest id."""
    return -len(cluster.rules & EXACT), -cluster.score, cluster.ids[0]


class _UnionFind:
    def __init__(self, blocked: set[Pair] | None = None) -> None:
        self.parent: dict[int, int] = {}
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
            self.score[ra] = max(self.score[ra], self.score.pop(rb, 0))
        self.score[ra] = max(self.score[ra], score)


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


def scan(owner_ids: set[int] | None, threshold: int = FUZZY_THRESHOLD,
         dismissed: set[Pair] | None = None) -> list[Cluster]:
    """Clusters of likely duplicates among live customers of the given owners (None = all),
    computed now in memory (the stored clusters come from ``run_scan`` over all customers).

    ``dismissed`` (default: ``dismissed_pairs()``) are pairs that never join by themselves:
    a cluster of two whose pair is dismissed disappears, a larger one holds as long as
    other pairs link its members (``Cluster.dismissed`` names the dismissed ones inside).
    """
    facts = _load_facts(db.session, None, owner_ids)
    return _components(facts, dismissed_pairs() if dismissed is None else dismissed, threshold)


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
