"""Everything an import resolves once per run, not once per row.

Dictionary entries, the users the importer may assign, existing records by key (codes,
merge aliases, credit codes) and the duplicate index.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models.customers import Customer, CustomerAlias, FollowUp
from app.models.org import CrmUser
from app.security.data_scope import scope_clause, visible_owner_ids
from app.services import dedup, records
from app.services.dictionaries import lookup_key, lookups_for
from app.services.importing.columns import ImportModel


class Existing:
    """key value -> (id, owner id, archived) of the records an import may update; for
    customers also the duplicate keys of every live one (one pass over the table)."""

    def __init__(self, spec: ImportModel) -> None:
        self.by_code: dict[str, tuple[int, int, bool]] = {}
        self.by_credit: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
        self.duplicates = dedup.DuplicateIndex()
        if spec.model is Customer:
            rows = db.session.execute(select(
                Customer.id, Customer.owner_id, Customer.archived_at.isnot(None), Customer.code, Customer.credit_code,
                Customer.name, Customer.contact_name, Customer.contact_phone,
            ).execution_options(yield_per=10000))
            for cid, owner, archived, code, credit, name, contact, phone in rows:
                self.by_code[code] = (cid, owner, archived)
                if credit:
                    self.by_credit[credit].append((cid, owner, archived))
                if not archived:  # every live customer, whoever owns it: no re-entering a colleague's
                    self.duplicates.add(code, name, contact, phone, credit)
            live = {cid: (cid, owner, archived) for cid, owner, archived in self.by_code.values()}
            for code, target in db.session.execute(select(CustomerAlias.code, CustomerAlias.customer_id)):
                own = self.by_code.get(code)
                if target in live and (own is None or own[2]):  # a live customer keeps its own code
                    self.by_code[code] = live[target]
        elif spec.model is FollowUp:
            rows = db.session.execute(
                select(FollowUp.id, Customer.owner_id, Customer.archived_at.isnot(None), FollowUp.code)
                .join(Customer, FollowUp.customer_id == Customer.id)
            )
            for fid, owner, archived, code in rows:
                self.by_code[code] = (fid, owner, archived)


class Lookups:
    """Per-run caches shared by every row."""

    def __init__(self, spec: ImportModel, user: Any) -> None:
        self.spec = spec
        self.user = user
        self.owner_ids = visible_owner_ids(user)
        self.dictionaries = lookups_for(spec.fields)
        self.users = self._users(user)
        #: name as typed -> the user ``records.owner_named`` found, or its refusal's message (once per name)
        self.named: dict[str, Any] = {}
        self.existing = Existing(spec)
        self.customers = Existing(CUSTOMER_REF) if spec.model is FollowUp else self.existing
        self.duplicates = self.existing.duplicates if spec.model is Customer else None

    @staticmethod
    def _users(user: Any) -> dict[str, Any]:
        index: dict[str, Any] = {}
        users = db.session.scalars(select(CrmUser).where(CrmUser.active.is_(True), scope_clause(user, CrmUser)))
        for person in users:
            full = f"{person.first_name or ''}{person.last_name or ''}"
            for name in (person.username, full, f"{person.first_name} {person.last_name}", person.email):
                if name:
                    index.setdefault(lookup_key(name), person)
        return index

    def find_user(self, text: str) -> Any:
        """The active user in scope named ``text``, else the one with that user name in scope
        (deactivated: the owner rule of the save refuses them as a new owner with its own
        message, and lets a record keep them, as forms, the API and the sync do); anyone
        else is unknown."""
        person = self.users.get(lookup_key(text))
        if person is not None:
            return person
        key = text.strip()  # owner_named matches the user name as typed
        if key not in self.named:  # one query per name, not per row that names it
            try:
                self.named[key] = records.owner_named(text, self.user, check=False)
            except ValueError as exc:
                self.named[key] = _Refused(exc.args[0])
        found = self.named[key]
        if isinstance(found, _Refused):
            raise ValueError(found.message)
        return found

    def in_scope(self, owner_id: int) -> bool:
        return self.owner_ids is None or owner_id in self.owner_ids


class _Refused:
    """``records.owner_named``'s refusal of a name, kept for the run (its lazy message)."""

    def __init__(self, message: Any) -> None:
        self.message = message


# Customer references from follow-up rows use the customer key table.
CUSTOMER_REF = ImportModel("customer", Customer, "", (), with_custom=False)
