"""Shared pieces of the backups package: where archives live, the database's kind and
connection facts, the PostgreSQL tools, streaming sha256, the manifest's reader.

Archives are ``crm-backup-<UTC yyyymmddThhmmssZ>-<kind>.tar.gz`` in ``backup_dir()`` with a
``<name>.sha256`` sidecar (``sha256sum`` format). Inside: ``manifest.json`` (first member),
``database.sqlite3`` or ``database.dump`` (pg_dump custom format), ``files/<root index>/<path>``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy.engine import URL

from app.extensions import db

CHUNK = 1024 * 1024
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.dump"
FILES_PREFIX = "files/"
SUFFIX = ".tar.gz"
#: Longest manifest read back from an archive (bytes): a manifest lists files, not data.
MANIFEST_LIMIT = 64 * 1024 * 1024


def backup_dir() -> Path:
    """``CRM_BACKUP_DIR`` (default ``<instance>/backups``), created on demand, resolved."""
    configured = current_app.config.get("CRM_BACKUP_DIR")
    path = Path(configured) if configured else Path(current_app.instance_path) / "backups"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def copy_dir() -> Path | None:
    """``CRM_BACKUP_COPY_DIR`` (the second location), or None when not configured."""
    configured = current_app.config.get("CRM_BACKUP_COPY_DIR")
    return Path(configured).resolve() if configured else None


def database_kind() -> str:
    """"sqlite" or "postgresql" (the live engine's dialect); ``ValueError`` for others."""
    name = db.engine.dialect.name
    if name not in ("sqlite", "postgresql"):
        raise ValueError(f"Backups support SQLite and PostgreSQL, not {name}")
    return name


def sqlite_path(url: URL | None = None) -> Path:
    """The live SQLite database file (``ValueError`` for an in-memory database)."""
    url = url or db.engine.url
    if not url.database or url.database == ":memory:":
        raise ValueError("An in-memory SQLite database cannot be backed up")
    return Path(url.database).resolve()


def pg_tool(name: str) -> str:
    """``pg_dump``/``pg_restore`` on PATH, else the newest ``/usr/lib/postgresql/*/bin``.
    ``FileNotFoundError`` when neither has it."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if candidates:
        return candidates[-1]
    raise FileNotFoundError(f"{name} was not found (install the PostgreSQL client tools)")


def pg_args(url: URL, database: str | None = None) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for the PostgreSQL tools and their environment: the password
    goes in ``PGPASSWORD`` (never on the command line, where ``ps`` shows it)."""
    args = ["-d", database or url.database or "postgres"]
    if url.host:
        args += ["-h", url.host]
    if url.port:
        args += ["-p", str(url.port)]
    if url.username:
        args += ["-U", url.username]
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return args, env


def sha256_of(path: Path) -> str:
    """The file's sha256 (hex), read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar(path: Path) -> Path:
    """``<archive>.sha256`` next to the archive."""
    return path.with_name(path.name + ".sha256")


def write_sidecar(path: Path, digest: str) -> None:
    """Write ``<digest>  <name>`` (the ``sha256sum -c`` format)."""
    sidecar(path).write_text(f"{digest}  {path.name}\n", encoding="ascii")


def verdict_path(path: Path) -> Path:
    """``<archive>.verified.json``: the latest verification's result next to the archive,
    so a catalogue rebuilt after a restore still knows it."""
    return path.with_name(path.name + ".verified.json")


def write_verdict(path: Path, status: str, at: str) -> None:
    """Record {"status", "at"} (ISO UTC) of the latest verification (best effort)."""
    try:
        verdict_path(path).write_text(json.dumps({"status": status, "at": at}), encoding="utf-8")
    except OSError:
        pass


def read_verdict(path: Path) -> dict[str, Any]:
    """The recorded verdict ({} when none or unreadable)."""
    try:
        found = json.loads(verdict_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def read_manifest(path: Path) -> dict[str, Any]:
    """The ``manifest.json`` of an archive (read from its first member only).
    ``ValueError`` when the archive is unreadable or has none."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            member = archive.next()
            if member is None or member.name != MANIFEST or not member.isfile() or member.size > MANIFEST_LIMIT:
                raise ValueError(f"{path.name} has no manifest")
            handle = archive.extractfile(member)
            return json.loads(handle.read().decode("utf-8")) if handle else {}
    except (tarfile.TarError, OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} cannot be read: {exc}") from None


def free_bytes(path: Path | None) -> int | None:
    """Free space (bytes) of the file system holding ``path`` (None if unknown)."""
    if path is None:
        return None
    try:
        probe = path if path.exists() else path.parent
        return shutil.disk_usage(probe).free
    except OSError:
        return None
