"""Files admins name on the server (scheduled imports and exports, sync workbooks) live under
configured roots — one rule, ``checked_path``, used when a setting is saved and again every
time it is used.

``CRM_FILES_ROOT`` lists the roots, separated by ``os.pathsep`` (``:`` on Linux); relative
roots are taken in the instance folder. Unset, the root is the instance folder's ``files/``,
created on demand. A path is resolved with its symlinks followed before it is compared, so
``/etc``, ``../`` and a link pointing out of a root are all refused; the check at use time
means a value stored before the rule existed (or a link changed since) fails with a message
instead of being used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l

FOLDER, FILE = "folder", "file"


def roots() -> list[Path]:
    """The configured roots, resolved (the default one is created if missing)."""
    instance = Path(current_app.instance_path)
    configured = current_app.config.get("CRM_FILES_ROOT") or ""
    values = configured if isinstance(configured, (list, tuple)) else str(configured).split(os.pathsep)
    found = [instance / value.strip() for value in values if value.strip()]  # absolute values stay as they are
    if not found:
        default = instance / "files"
        default.mkdir(parents=True, exist_ok=True)
        found = [default]
    return [root.resolve() for root in found]


def checked_path(raw: str, *, kind: str, suffixes: tuple[str, ...] = ()) -> Path:
    """The resolved path an admin setting names, if it lies under a root.

    ``raw``: absolute, or relative to the first root. ``kind``: ``"folder"`` (must exist) or
    ``"file"`` (its folder must exist; if the file exists it must be a regular file; its
    suffix, compared in lower case, must be one of ``suffixes`` when given). Symlinks are
    followed, so the result is where the data really is. Raises ``ValueError`` with a
    translated message naming the problem (and the roots, when the path is outside them).
    """
    if kind not in (FOLDER, FILE):
        raise ValueError(f"kind must be {FOLDER!r} or {FILE!r}")
    text = (raw or "").strip()
    if not text or "\x00" in text:
        raise ValueError(str(_l("Give a path on the server.")))
    bases = roots()
    try:
        path = (bases[0] / text).resolve()  # an absolute text replaces the root
    except (OSError, RuntimeError):  # a symlink loop
        raise ValueError(str(_l("%(path)s cannot be resolved (a link loop?).", path=text))) from None
    if not _inside(path, bases):
        raise ValueError(str(_l("%(path)s is outside the folders this server may use (CRM_FILES_ROOT: %(roots)s).",
                                path=text, roots=os.pathsep.join(map(str, bases)))))
    if kind == FOLDER:
        if not path.is_dir():
            raise ValueError(str(_l("The folder %(path)s does not exist on the server.", path=text)))
        return path
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(str(_l("Give a file ending in %(suffixes)s.", suffixes=" / ".join(suffixes))))
    if not path.parent.is_dir():
        raise ValueError(str(_l("The folder of %(path)s does not exist on the server.", path=text)))
    if path.exists() and not path.is_file():
        raise ValueError(str(_l("%(path)s is not a file.", path=text)))
    return path


def _inside(path: Path, bases: Iterable[Path]) -> bool:
    return any(path == base or path.is_relative_to(base) for base in bases)
