#!/usr/bin/env python3
"""Entry point: set up, migrate, (optionally) load demo data, serve, start the scheduler.

    python3 run.py --demo     install into .venv, migrate SQLite, load demo data, serve
    python3 run.py test       install dev deps into .venv and run the whole test suite

Only the standard library is used until the virtual environment is ready, so this works
on a machine that has nothing but Python 3.11.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"


def _requirements_digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
        for line in path.read_text().splitlines():
            if line.startswith("-r "):
                digest.update((ROOT / line[3:].strip()).read_bytes())
    return digest.hexdigest()


def ensure_venv(requirements: str) -> None:
    """Create .venv and install pinned requirements once (again only when they change)."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PYTHON.exists():
        print("Creating virtual environment in .venv ...", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    files = [ROOT / requirements]
    stamp = VENV / f".installed-{requirements}"
    wanted = _requirements_digest(files)
    if not stamp.exists() or stamp.read_text() != wanted:
        print(f"Installing {requirements} ...", flush=True)
        pip = [str(VENV_PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.check_call(pip + ["--upgrade", "pip"])
        subprocess.check_call(pip + ["-r", str(ROOT / requirements)])
        stamp.write_text(wanted)
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(ROOT / "run.py"), *sys.argv[1:]])


def run_tests(pytest_args: list[str]) -> int:
    ensure_venv("requirements-dev.txt")
    os.chdir(ROOT)
    lint = subprocess.call([str(VENV_PYTHON), "-m", "ruff", "check", "."])
    tests = subprocess.call([str(VENV_PYTHON), "-m", "pytest", *pytest_args])
    return tests or lint


def serve(args: argparse.Namespace) -> None:
    ensure_venv("requirements.txt")
    sys.path.insert(0, str(ROOT))
    from flask_migrate import upgrade

    from app import create_app, scheduler
    from app.services.setup import initialise

    app = create_app()
    reloader_child = os.environ.get("WERKZEUG_RUN_MAIN") == "true"
    with app.app_context():
        if not reloader_child:
            upgrade()
            initialise()
            from app.services.importing.jobs import mark_interrupted

            mark_interrupted()  # jobs a previous run left half-way are shown as interrupted
            if args.demo:
                _load_demo()
    if not args.debug or reloader_child:
        scheduler.start_once(app)
    if not reloader_child:
        print(f"\n  CRM running on http://{args.host}:{args.port}/  (Ctrl+C to stop)\n", flush=True)
    app.run(host=args.host, port=args.port, debug=args.debug, use_reloader=args.debug)


def _load_demo() -> None:
    from app.extensions import appbuilder
    from app.services.demo_setup import DEMO_PASSWORD, DEMO_USERS, load_demo

    created = load_demo()
    print("\n  Demo data loaded." if created else "\n  Demo data already present.")
    print(f"  Demo logins (password {DEMO_PASSWORD}):")
    for username, *_rest in DEMO_USERS:
        user = appbuilder.sm.find_user(username=username)
        if user is not None:
            print(f"    {username:<9} {', '.join(r.name for r in user.roles)}")
    print("  The Admin role requires an authenticator app (Google/Microsoft Authenticator, FreeOTP...):")
    print("  admin is asked to enrol one at the first login; the other demo users are not.")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "test":
        return run_tests(sys.argv[2:])
    parser = argparse.ArgumentParser(description="Run the CRM.")
    parser.add_argument("--demo", action="store_true", help="load demo users and ~300 customers")
    parser.add_argument("--host", default=os.environ.get("CRM_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CRM_PORT", 5000)))
    parser.add_argument("--debug", action="store_true", help="Flask debug mode with reloader")
    serve(parser.parse_args())
    return 0


if __name__ == "__main__":
    sys.exit(main())
