"""Record types, declared once: what every CRM record type derives its machinery from.

A record type (contact, lead, opportunity, product …) is one ``RecordType`` value in the
module that owns its rules (``app/services/<type>.py``), passed to ``declare``. From it:

- numbering: ``code_prefix`` + date + daily sequence, given on flush to new rows without
  a code (``app.services.numbering``);
- data scope: ``scope`` says whose rows a user sees (``owner``: the record's owner;
  ``customer``: its customer's owner; ``everyone``: reference data such as products; or
  a function of the visible owner ids, ``data_scope.register``);
- audit: every row change is logged field by field, masked columns masked;
- masking: ``Model.masked_columns`` are never shown in full on lists, APIs or exports;
- screens and REST API (``views/declared.py``): list/show/add/edit columns, labels,
  search and order columns, the use case behind add/edit/delete;
- import, export and the sync: ``fields`` (``ImportField``: header aliases in both
  languages, kind, dictionary) make the import template, the mapping and the sheet codec;
- role permissions: ``roles`` (role name -> verbs) joins the default role plan;
- the navbar quick search: ``search`` (text -> SQL condition);
- demo data: ``demo`` builds rows for the demo database.

Adding a type is: a model, a services module with its use cases, one ``declare`` call,
a migration. Nothing is copied from another type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Scope kinds (see module docstring).
OWNER, VIA_CUSTOMER, EVERYONE = "owner", "customer", "everyone"


@dataclass(frozen=True)
class RecordType:
    """One record type's declaration. Labels are lazy strings (flask_babel ``_l``).

    ``save(values, user, *, pk=None, version=None) -> record`` is the add/edit use case;
    ``delete(pk, user) -> None`` the delete (or archive) use case, or None if the type
    cannot be deleted from screens. ``editable`` are the fields a save may set (the form,
    the API and import/sync rows hand exactly these to ``save``).
    """

    name: str                     # import/sync key and API resource ("lead")
    model: type
    label: Any                    # singular ("Lead")
    plural: Any                   # plural, list and menu title ("Leads")
    plural_en: str                # the menu's permission name (FAB names menus by a fixed string)
    permission: str               # FAB permission view name ("Lead")
    scope: Any  # OWNER, VIA_CUSTOMER, EVERYONE or a rule (data_scope.register)
    editable: tuple[str, ...]
    save: Callable[..., Any]
    list_columns: tuple[str, ...]
    show_columns: tuple[str, ...] = ()
    search_columns: tuple[str, ...] = ()
    order_columns: tuple[str, ...] = ("code",)
    labels: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, Any] = field(default_factory=dict)
    code_prefix: str | None = None
    delete: Callable[..., Any] | None = None
    fields: tuple[Any, ...] = ()  # ImportField (app.services.importing.columns)
    import_keys: tuple[str, ...] = ("code",)
    roles: dict[str, str] = field(default_factory=dict)
    menu_category: str = "CRM"
    menu_icon: str = "fa-list"
    base_order: tuple[str, str] = ("id", "desc")
    audit_exclude: tuple[str, ...] = ()
    search: Callable[[str], Any] | None = None
    demo: Callable[..., Any] | None = None

    @property
    def masked(self) -> tuple[str, ...]:
        return tuple(getattr(self.model, "masked_columns", ()))

    @property
    def personal(self) -> tuple[str, ...]:
        """Columns holding people's personal data (names, phones, e-mails, addresses,
        birthdays): ``Model.personal_columns``; what a personal-data erasure clears."""
        return tuple(getattr(self.model, "personal_columns", ()))

    @property
    def shown(self) -> tuple[str, ...]:
        return self.show_columns or self.list_columns


#: name -> declaration, in declaration order (menus and the role plan keep it).
REGISTRY: dict[str, RecordType] = {}
#: Hooks other packages add to run on each declaration (scope, audit, numbering, import).
_HOOKS: list[Callable[[RecordType], None]] = []


def declare(record_type: RecordType) -> RecordType:
    """Register a record type; numbering, scope, audit and import fields derive from it
    at once, later hooks (``on_declare``) too. Re-declaring a name replaces it."""
    REGISTRY[record_type.name] = record_type
    _derive(record_type)
    for hook in _HOOKS:
        hook(record_type)
    return record_type


def on_declare(hook: Callable[[RecordType], None]) -> Callable[[RecordType], None]:
    """Run ``hook`` for every record type declared so far and every later one."""
    _HOOKS.append(hook)
    for record_type in list(REGISTRY.values()):
        hook(record_type)
    return hook


def for_model(model: type) -> RecordType | None:
    """The declaration of ``model``, or None."""
    return next((rt for rt in REGISTRY.values() if rt.model is model), None)


#: Services modules that declare record types; imported once by the app factory.
DECLARING_MODULES = (
    "app.services.products",
    "app.services.contacts",
    "app.services.leads",
    "app.services.opportunities",
    "app.services.activities",
    "app.services.tickets",
    "app.services.demands",
    "app.services.feedback",
    "app.services.orders",
    "app.services.contracts",
    "app.services.campaigns",
)


def load_all() -> None:
    """Import every declaring module (idempotent): the declarations run their hooks."""
    import importlib

    for name in DECLARING_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a missing module *inside* it is a real error
                raise


def _derive(rt: RecordType) -> None:
    """Numbering, data scope, audit and import/sync fields from one declaration."""
    from app.security import data_scope
    from app.services import audit, numbering
    from app.services.importing import columns

    if rt.code_prefix:
        numbering.register(rt.model, rt.code_prefix)
    data_scope.register(rt.model, rt.scope)
    audit.audited(rt.model, masked=set(rt.masked), exclude=set(rt.audit_exclude))
    if rt.fields:
        columns.MODELS[rt.name] = columns.ImportModel(
            rt.name, rt.model, rt.plural, tuple(rt.fields), keys=rt.import_keys, view=rt.permission)


def role_patterns(role: str) -> list[tuple[str, str]]:
    """The default role plan's grants for declared types (``app.services.setup.ROLES``):
    ``(permission regex, view regex)`` pairs, menu entries included."""
    patterns = []
    for rt in REGISTRY.values():
        verbs = rt.roles.get(role)
        if verbs:
            patterns.append((rf"can_({verbs})", rf"{rt.permission}"))
            patterns.append((r"menu_access", _menu_name(rt)))
    return patterns


def _menu_name(rt: RecordType) -> str:
    import re

    return re.escape(str(rt.plural_en))
