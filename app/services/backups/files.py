"""The instance files a backup carries: every regular file under the files roots
(``app.services.files.roots``: sync workbooks, exports, attachments), except the backup
folders themselves and the live database. Stored as ``files/<root index>/<relative path>``."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from app.extensions import db
from app.services import files as file_roots
from app.services.backups import common


def _excluded() -> list[Path]:
    skipped = [common.backup_dir()]
    copy = common.copy_dir()
    if copy is not None:
        skipped.append(copy)
    if db.engine.dialect.name == "sqlite":
        try:
            live = common.sqlite_path()
            skipped += [live, live.with_name(live.name + "-wal"), live.with_name(live.name + "-journal"),
                        live.with_name(live.name + "-shm")]
        except ValueError:
            pass
    return skipped


def walk() -> Iterator[tuple[str, Path]]:
    """(archive name, path) of every regular file to back up; symlinks are not followed."""
    skipped = _excluded()
    for index, root in enumerate(file_roots.roots()):
        if not root.is_dir():
            continue
        for folder, dirs, names in os.walk(root, followlinks=False):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if (here / d) not in skipped and not (here / d).is_symlink())
            for name in sorted(names):
                path = here / name
                if path.is_symlink() or not path.is_file() or path in skipped:
                    continue
                yield f"{common.FILES_PREFIX}{index}/{path.relative_to(root).as_posix()}", path


class _Hashing:
    """A reader that hashes what passes through it (tarfile reads the member's size)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.digest.update(chunk)
        return chunk


def add_files(archive: tarfile.TarFile) -> list[dict[str, Any]]:
    """Stream every file into ``archive``; returns [{"name", "size", "sha256"}] of what was
    written (hashes of the bytes stored, read once). A file that vanished is skipped."""
    listed = []
    for name, path in walk():
        try:
            with open(path, "rb") as handle:
                info = archive.gettarinfo(fileobj=handle, arcname=name)
                reader = _Hashing(handle)
                archive.addfile(info, reader)
        except (FileNotFoundError, OSError):
            continue
        listed.append({"name": name, "size": info.size, "sha256": reader.digest.hexdigest()})
    return listed


def target_of(name: str, roots: list[Path]) -> Path | None:
    """Where an archived file goes back: under root ``index`` (None for a root no longer
    configured or a name leaving its root)."""
    parts = name[len(common.FILES_PREFIX):].split("/", 1)
    if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) >= len(roots):
        return None
    root = roots[int(parts[0])]
    target = (root / parts[1]).resolve()
    return target if target.is_relative_to(root) else None


def extract(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> str:
    """Write one archived file to ``target`` (streamed); returns the sha256 of its bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source = archive.extractfile(member)
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        while source is not None and (chunk := source.read(common.CHUNK)):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def clear_roots(keep: set[Path]) -> None:
    """Remove files under the roots that a restore does not bring back (they are in the
    safety backup), except the backup folders and the live database."""
    keep = keep | set(_excluded())
    for _name, path in list(walk()):
        if path not in keep:
            path.unlink(missing_ok=True)
    for root in file_roots.roots():
        for folder, _dirs, _names in sorted(os.walk(root), reverse=True):
            here = Path(folder)
            if here != root and not any(here.iterdir()) and here not in keep:
                shutil.rmtree(here, ignore_errors=True)
