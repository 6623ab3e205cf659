"""Mentions: "@username" or "@full name" in a follow-up's content or an activity's note
tells the person mentioned (issue 14, event ``mention``).

Only active users who may see the record are told: a mention of someone outside the
record's scope is dropped silently for them (telling them would reveal the record), and
the writer is never told of their own mention. One notification per record and person
(``occasion``): editing the text again does not repeat it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, or_, select

from app.extensions import db
from app.models.org import CrmUser
from app.services import notifications

#: "@" at the start or after a space/punctuation, then the first word of the name.
_MENTION = re.compile(r"(?:^|(?<=[\s(（,，;；:：]))@([\w.\-]+)", re.UNICODE)
#: Words looked up per text (a pasted mailing list must not cost a query per word).
MAX_MENTIONS = 20


def mentioned_users(text: str | None) -> list[CrmUser]:
    """Active users that ``text`` mentions, in the order first mentioned.

    ``@rep_a`` names a user by user name (case-insensitive); ``@Rep_a Test`` or ``@张三``
    by full name (first name, a space, last name; or last name then first name without a
    space, as Chinese names are written). At most ``MAX_MENTIONS`` words are looked up.
    """
    if not text or "@" not in text:
        return []
    words = list(dict.fromkeys(m.group(1) for m in _MENTION.finditer(text)))[:MAX_MENTIONS]
    if not words:
        return []
    lowered = [word.casefold() for word in words]
    candidates = db.session.scalars(select(CrmUser).where(CrmUser.active.is_(True), or_(
        func.lower(CrmUser.username).in_(lowered), CrmUser.first_name.in_(words), CrmUser.last_name.in_(words),
        func.lower(CrmUser.first_name).in_(lowered)))).all()
    found = [user for user in candidates if _named(text, user)]
    order = {user.id: _first_at(text, user) for user in found}
    return sorted(found, key=lambda user: order[user.id])


def _names(user: CrmUser) -> list[str]:
    first, last = (user.first_name or "").strip(), (user.last_name or "").strip()
    return [name for name in (user.username, f"{first} {last}".strip(), f"{last}{first}") if name]


def _named(text: str, user: CrmUser) -> bool:
    return _first_at(text, user) is not None


def _first_at(text: str, user: CrmUser) -> int | None:
    folded = text.casefold()
    positions = []
    for name in _names(user):
        for match in re.finditer("@" + re.escape(name.casefold()) + r"(?![\w.\-])", folded):
            if match.start() == 0 or not re.match(r"[\w@]", folded[match.start() - 1]):
                positions.append(match.start())
                break
    return min(positions) if positions else None


def notify_mentions(text: str | None, record: Any, writer: Any, may_see: Callable[[CrmUser], bool],
                    label: str) -> list[int]:
    """Tell the users ``text`` mentions about ``record`` (event ``mention``).

    ``may_see(user)``: whether that user may see the record (the record's scope rule);
    ``label``: how the notification names it (its code). Returns the ids told now. The
    caller commits with the change that carries the text.
    """
    told = []
    for person in mentioned_users(text):
        if person.id == getattr(writer, "id", None) or not may_see(person):
            continue
        key = notifications.record_key(record)
        written = notifications.notify("mention", [person.id], record=record, occasion=(
            f"mention:{key[0]}:{key[1]}:{person.id}"), params={"by": _full_name(writer), "record": label})
        told.extend(item.user_id for item in written)
    return told


def _full_name(user: Any) -> str:
    getter = getattr(user, "get_full_name", None)
    return getter() if getter else str(getattr(user, "username", "") or "")
