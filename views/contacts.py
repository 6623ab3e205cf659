"""Contact screens and REST API (联系人): the declared ones (``app.services.contacts.CONTACT``)
plus the explicit, recorded reveal of a contact's phone — the customers' reveal rule
(``contacts.reveal_contact_phone``: *reveal contact* permission, step-up, audit).

Importing this module fills ``OWN_VIEWS`` / ``OWN_APIS``; ``views.customers`` imports
``ContactView`` for the customer page's related list, so the registration follows.
"""

from __future__ import annotations

from typing import Any

from flask import abort, g, request
from flask_appbuilder import expose, has_access
from flask_appbuilder.api import protect, safe

from app.extensions import db
from app.security import masking, step_up
from app.services import contacts
from app.services.errors import NotFound, RuleForbidden
from views.base import READ_WRITE_PERMISSIONS
from views.declared import OWN_APIS, OWN_VIEWS, declared_api, declared_view


class ContactRevealMixin:
    """``/contactview/reveal/<pk>``: GET asks, POST reveals (read access to contacts; the
    use case checks the reveal permission and asks for the step-up)."""

    @expose("/reveal/<int:pk>", methods=["GET", "POST"])
    @has_access
    def reveal(self, pk: int) -> Any:
        item = self.scoped_get(pk)
        if item is None:
            abort(404)
        phone = None
        if request.method == "POST":
            try:
                phone = contacts.reveal_contact_phone(pk, g.user)
            except step_up.StepUpRequired as exc:
                db.session.rollback()
                return step_up.refusal(exc)
            except RuleForbidden:
                db.session.rollback()
                abort(403)
            except NotFound:
                db.session.rollback()
                abort(404)
            db.session.commit()
        return self.render_template("crm/contact_reveal.html", item=item, phone=phone,
                                    masked=masking.mask_phone(item.phone))


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


ContactView = declared_view(contacts.CONTACT, ContactRevealMixin,
                            method_permission_name={**READ_WRITE_PERMISSIONS, "reveal": "read"})
ContactApi = declared_api(contacts.CONTACT, ContactApiRevealMixin,
                          method_permission_name={**READ_WRITE_PERMISSIONS, "reveal_phone": "read"})

OWN_VIEWS[contacts.CONTACT.name] = ContactView
OWN_APIS[contacts.CONTACT.name] = ContactApi
