"""Contact screens and REST API (联系人): the declared ones (``app.services.contacts.CONTACT``)
plus the explicit, recorded reveal of a contact's phone — the customers' reveal rule
(``contacts.reveal_contact_phone``: *reveal contact* permission, step-up, audit).

Importing this module fills ``OWN_VIEWS`` / ``OWN_APIS``; ``views.customers`` imports
``ContactView`` for the customer page's related list, so the registration follows.
"""

from __future__ import annotations

from typing import Any

from flask import g, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.api import protect, safe
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.services import contacts
from views.base import READ_WRITE_PERMISSIONS
from views.declared import OWN_APIS, OWN_VIEWS, declared_api, declared_view
from views.writes import reveal_page


class ContactRevealMixin:
    """``/contactview/reveal/<pk>``: GET asks, POST reveals (read access to contacts; the
    use case checks the reveal permission and asks for the step-up)."""

    @expose("/reveal/<int:pk>", methods=["GET", "POST"])
    @has_access
    def reveal(self, pk: int) -> Any:
        return reveal_page(self, pk, lambda key: contacts.reveal_contact_phone(key, g.user), lambda c: c.phone,
                           context=lambda contact: contact.customer,
                           phone_label=_l("Phone"), back_url=url_for("ContactView.show", pk=pk),
                           back_label=_l("Back to the contact"))


class ContactApiRevealMixin:
    """``POST /api/v1/contact/<pk>/phone``: the full phone (401 step-up, 403, 404)."""

    @expose("/<int:pk>/phone", methods=["POST"])
    @protect()
    @safe
    def reveal_phone(self, pk: int) -> Any:
        """Reveal the full phone of one contact (recorded in the audit log).
        ---
        post:
          parameters:
          - in: path
            name: pk
            schema:
              type: integer
          - in: header
            name: X-TOTP-Code
            schema:
              type: string
            description: A fresh TOTP code (sensitive action), unless a step-up is still fresh
          responses:
            200:
              description: The unmasked phone number
            401:
              description: Step-up required (send X-TOTP-Code)
            403:
              description: Not allowed to reveal phone numbers
            404:
              $ref: '#/components/responses/404'
        """
        phone, refusal = self.call_use_case(lambda: contacts.reveal_contact_phone(pk, g.user, via="api"))
        if refusal is not None:
            return refusal
        db.session.commit()
        return self.response(200, phone=phone)


ContactView = declared_view(contacts.CONTACT, ContactRevealMixin, show_template="crm/contact_show.html",
                            method_permission_name={**READ_WRITE_PERMISSIONS, "reveal": "read"})
ContactApi = declared_api(contacts.CONTACT, ContactApiRevealMixin,
                          method_permission_name={**READ_WRITE_PERMISSIONS, "reveal_phone": "read"})

OWN_VIEWS[contacts.CONTACT.name] = ContactView
OWN_APIS[contacts.CONTACT.name] = ContactApi
