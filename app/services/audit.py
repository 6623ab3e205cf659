"""Writing audit entries (the hash chain comes with the security issue)."""

from __future__ import annotations

import json
from typing import Any

from flask import has_request_context, request

from app.extensions import db
from app.models.audit import AuditLog
from app.models.base import current_user_id


def record(action: str, obj: Any = None, detail: dict | None = None) -> AuditLog:
    """Add an audit entry to the current transaction (committed with the change)."""
    entry = AuditLog(
        user_id=current_user_id(),
        ip=request.remote_addr if has_request_context() else None,
        action=action,
        object_type=type(obj).__name__ if obj is not None else None,
        object_id=str(getattr(obj, "id", "")) if obj is not None else None,
        detail=json.dumps(detail, ensure_ascii=False, default=str) if detail else None,
    )
    db.session.add(entry)
    return entry
