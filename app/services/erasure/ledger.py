"""The erasure ledger: every personal-data erasure, recorded outside the database so a
restore of an older backup cannot bring the person's data back (001 隐私与合规: the
request is carried out and the operation recorded; a restore must not undo it).

One JSON line per erasure in ``erasures.jsonl`` in the backup folder (``CRM_BACKUP_DIR``)
and in the second location when configured: when, which record (type, id, code), the
extra fields ticked and the erasure entry's seq — never a value, never the reason (it
may name the person). A restore calls ``reapply_since`` with the backup's creation time.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from flask_babel import gettext as _

from app.clock import as_utc, utc_now
from app.extensions import db

log = logging.getLogger(__name__)
LEDGER_NAME = "erasures.jsonl"


def paths() -> list[Path]:
    """The ledger files: in the backup folder, and in the second location when configured."""
    from app.services.backups import common

    found = [common.backup_dir() / LEDGER_NAME]
    second = common.copy_dir()
    if second is not None:
        found.append(second / LEDGER_NAME)
    return found


def record(summary: Any, extra_fields: tuple[str, ...], record_id: int, at: datetime | None = None) -> None:
    """Append one erasure (``erasure.Summary``) to every ledger file. Never raises: a ledger
    that cannot be written is logged as an error (the erasure itself is done)."""
    line = json.dumps({"at": (as_utc(at) or utc_now()).isoformat(), "record_type": summary.record_type,
                       "record_id": int(record_id), "code": summary.code, "extra_fields": sorted(extra_fields),
                       "seq": summary.audit_seq}, ensure_ascii=False) + "\n"
    for path in paths():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            log.error("Erasure ledger %s not written: a restore of an older backup would not re-apply "
                      "the erasure of %s", path, summary.code, exc_info=True)


def entries() -> list[dict[str, Any]]:
    """Every recorded erasure (both files merged, each once), oldest first; unreadable lines
    are skipped with a warning."""
    found: dict[tuple[str, int, str], dict[str, Any]] = {}
    for path in paths():
        if not path.exists():
            continue
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                item = json.loads(text)
                at = datetime.fromisoformat(item["at"])
                found[(item["record_type"], int(item["record_id"]), item["at"])] = {**item, "at": at}
            except (ValueError, KeyError, TypeError):
                log.warning("Erasure ledger %s line %d unreadable", path, number)
    return sorted(found.values(), key=lambda item: item["at"])


def since(instant: datetime) -> list[dict[str, Any]]:
    """Erasures recorded after ``instant`` (aware; naive is UTC): what a restore of a backup
    taken at ``instant`` would undo."""
    start = as_utc(instant)
    return [item for item in entries() if item["at"] > start]


def reapply_since(instant: datetime, user: Any = None) -> list[str]:
    """Erase again, in the (restored) database, every record erased after ``instant``; one
    commit per record. Records that no longer exist or hold nothing to erase are skipped.
    Returns the codes erased again. Runs as the restoring admin (``user``) or the system."""
    from app.services import erasure

    done = []
    for item in since(instant):
        subject = erasure.SUBJECTS.get(item["record_type"])
        record = db.session.get(subject.model, item["record_id"]) if subject else None
        if record is None:
            continue
        reason = _("Re-applied after a restore: erasure #%(seq)s of %(at)s",
                   seq=item.get("seq") or "?", at=item["at"].strftime("%Y-%m-%d %H:%M UTC"))
        erasure.erase_again(subject, record, tuple(item.get("extra_fields") or ()), reason, user)
        done.append(item.get("code") or str(item["record_id"]))
    return done
