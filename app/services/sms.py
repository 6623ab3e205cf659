"""SMS (issue 14): a pluggable backend behind the outbox.

A notification's SMS is an ``OutboxMessage`` with ``channel="sms"`` and the user's phone
(``CrmUser.phone``) as its address; ``mail.send_due`` claims, sends and retries it like an
e-mail, calling ``deliver``. ``CRM_SMS_BACKEND`` names the backend class by its dotted path
(default ``app.services.sms.LoggingBackend``, which only logs: no provider is reachable
here). A provider is a class with ``send(to, text)`` that raises on failure (the outbox
retries) — see README, *Adding an SMS provider*.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

from flask import current_app

from app.security.masking import mask_phone

log = logging.getLogger(__name__)
DEFAULT_BACKEND = "app.services.sms.LoggingBackend"


class SmsBackend(Protocol):
    """What a provider implements: send ``text`` to ``to`` (a phone as stored), or raise."""

    def send(self, to: str, text: str) -> None: ...


class LoggingBackend:
    """Writes the message to the log (logger ``app.services.sms``, INFO) and reports it sent.
    The phone is logged masked: logs are read by more people than the CRM's users."""

    def send(self, to: str, text: str) -> None:
        log.info("SMS to %s: %s", mask_phone(to), text)


_instances: dict[str, Any] = {}


def backend() -> SmsBackend:
    """The configured backend (one instance per dotted path and process).

    Raises ``ValueError`` naming ``CRM_SMS_BACKEND`` when the path names no class."""
    path = current_app.config.get("CRM_SMS_BACKEND") or DEFAULT_BACKEND
    if path not in _instances:
        module, _, name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValueError(f"CRM_SMS_BACKEND={path!r} is not an importable class") from exc
        _instances[path] = cls()
    return _instances[path]


def deliver(to: str, text: str) -> None:
    """Send one SMS through the backend; its exception means "not sent, retry later"."""
    backend().send(to, text)
