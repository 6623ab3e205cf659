"""`flask crm ...` commands: initialise a migrated database, load demo data, expire accounts,
run a task worker or the scheduler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

crm_cli = AppGroup("crm", help="CRM setup and maintenance.")


@crm_cli.command("init")
def init_command() -> None:
    """Sync permissions, create the CRM roles and data scopes, seed the dictionaries."""
    from app.services.setup import initialise

    initialise()
    click.echo("Permissions, roles and dictionaries are in place.")


@crm_cli.command("demo")
def demo_command() -> None:
    """Load demo departments, users and ~300 customers (prints the demo logins)."""
    from app.services.demo_setup import DEMO_PASSWORD, load_demo

    users = load_demo()
    if not users:
        click.echo("Demo data already loaded.")
        return
    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for username, role in users:
        click.echo(f"  {username:<10} {role}")


@crm_cli.command("deactivate-expired")
def deactivate_expired_command() -> None:
    """Deactivate accounts past their expiry date (also a daily scheduled job)."""
    from app.services.accounts import deactivate_expired

    click.echo(f"Deactivated {deactivate_expired()} expired account(s).")


@crm_cli.command("purge-departed")
def purge_departed_command() -> None:
    """Re-assign and purge accounts deactivated long enough ago (also a daily job)."""
    from app.services.accounts import purge_departed

    names = purge_departed()
    click.echo(f"Purged {len(names)} account(s){': ' + ', '.join(names) if names else ''}.")


@crm_cli.command("audit-verify")
def audit_verify_command() -> None:
    """Check the audit log's hash chain; exit status 1 and the first broken link if tampered."""
    from app.extensions import db
    from app.services.audit import verify_chain

    report = verify_chain(db.session)
    if report.ok:
        click.echo(f"Audit log intact: {report.checked} entries verified.")
        return
    click.echo(f"Audit log BROKEN at entry #{report.broken_seq}: {report.problem} "
               f"({report.checked} entries before it verified).", err=True)
    raise SystemExit(1)


@crm_cli.command("totp-reset")
@click.argument("username")
def totp_reset_command(username: str) -> None:
    """Remove a user's authenticator (when the last admin lost their phone)."""
    from app.extensions import appbuilder
    from app.security.totp import reset

    user = appbuilder.sm.find_user(username=username)
    if user is None:
        raise click.ClickException(f"No user {username!r}.")
    reset(user, reason="reset from the command line")
    click.echo(f"Authenticator removed for {username}; they enrol again at next login if their role requires it.")


@crm_cli.command("worker")
@click.option("--concurrency", type=int, default=None, help="Jobs run at once (default: the CPU count).")
@click.option("--hostname", default=None, help="Worker name, e.g. crm1@%h (default: celery@<host>).")
@click.option("--pool", default=None, help="prefork (default), threads or solo.")
@click.option("--loglevel", default="INFO")
def worker_command(concurrency: int | None, hostname: str | None, pool: str | None, loglevel: str) -> None:
    """Run background jobs from the queue (CRM_TASK_QUEUE=celery, broker at CELERY_BROKER_URL
    or REDIS_URL); start as many as needed, on any machine sharing the database."""
    from app.celery_app import worker

    app = current_app._get_current_object()
    if app.config.get("CRM_TASK_QUEUE") != "celery":
        raise click.ClickException("Set CRM_TASK_QUEUE=celery (and REDIS_URL) to run task workers; "
                                   "the embedded mode runs jobs in the web process.")
    try:
        celery = worker(app)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    argv = ["worker", f"--loglevel={loglevel}"]
    argv += [f"--concurrency={concurrency}"] if concurrency else []
    argv += [f"--hostname={hostname}"] if hostname else []
    argv += [f"--pool={pool}"] if pool else []
    celery.worker_main(argv)


@crm_cli.command("scheduler")
def scheduler_command() -> None:
    """Run the scheduler in this process (blocks): one active per deployment, others wait as
    standbys and take over when it stops."""
    from app import scheduler

    run_forever = getattr(scheduler, "run_forever", None)
    if run_forever is None:
        raise click.ClickException("This version has no standalone scheduler; run.py starts it.")
    run_forever(current_app._get_current_object())


# --- Backups (issue 19) ---------------------------------------------------------------------------


@crm_cli.command("backup")
def backup_command() -> None:
    """Take a backup now, verify it and apply retention; exit status 1 if it failed."""
    from app.services.backups import schedule
    from app.services.backups.archive import create
    from app.services.errors import RuleViolation

    try:
        run = create("manual")
    except RuleViolation as exc:
        raise click.ClickException(exc.errors.get("backup", str(exc))) from None
    if run.status != "ok":
        raise click.ClickException(f"Backup failed: {run.error}")
    schedule.after_backup(run)
    click.echo(f"Backup {run.file_name}: {run.size_bytes} bytes, sha256 {run.sha256}, "
               f"verification {run.verify_status}.")
    if run.error:
        click.echo(run.error, err=True)
    if run.verify_status != "passed":
        raise SystemExit(1)


@crm_cli.command("backup-verify")
@click.argument("backup", required=False)
@click.option("--full", is_flag=True, help="Also restore the files and check them against the manifest.")
def backup_verify_command(backup: str | None, full: bool) -> None:
    """Restore a backup (a backup id or an archive path; default: the newest) into a
    scratch database and check it."""
    from app.services.backups import verifying

    run, path = _backup_target(backup)
    if run is not None:
        result = verifying.verify(run, full=full)
        checks, status = json.loads(result.checks or "[]"), result.status
    else:
        checks = _checks_of_path(path, full)
        status = "failed" if verifying.first_failure(checks) else "passed"
    for check in checks:
        click.echo(f"  {'ok ' if check['ok'] else 'BAD'} {check['key']}: {verifying.shown(check)}")
    click.echo(f"Verification of {run.file_name if run is not None else path.name}: {status}.")
    if status != "passed":
        raise SystemExit(1)


def _readable_archive(path: Path) -> None:
    """``ClickException`` unless ``path`` is a readable backup archive (it has a manifest)."""
    from app.services.backups import common

    try:
        common.read_manifest(path)
    except ValueError:
        raise click.ClickException(f"{path} is not a readable backup archive (a crm-backup-*.tar.gz "
                                   "file written by `flask crm backup`).") from None


def _backup_target(backup: str | None) -> tuple[Any, Path | None]:
    """(catalogue row, None) for an id or the newest backup; (row or None, path) for an
    archive path. ``ClickException`` for an unknown id, a missing file or a non-archive."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.operations import BackupRun
    from app.services.backups import catalogue, common

    if backup is None or backup.isdigit():
        run = db.session.get(BackupRun, int(backup)) if backup else db.session.scalars(
            select(BackupRun).where(BackupRun.status == "ok", BackupRun.removed_at.is_(None))
            .order_by(BackupRun.started_at.desc()).limit(1)).first()
        if run is None:
            raise click.ClickException("No such backup.")
        return run, None
    path = Path(backup).resolve()
    if not path.is_file():
        raise click.ClickException(f"No backup {backup!r} (give an archive path or a backup id).")
    _readable_archive(path)
    run = catalogue.find(path.name) if path.parent == common.backup_dir() else None
    return run, (None if run is not None else path)


def _checks_of_path(path: Path, full: bool) -> list[dict[str, Any]]:
    """The checks of an archive outside the catalogue (its sidecar's checksum, if any)."""
    from app.services.backups import catalogue, verifying

    sha256 = catalogue.sidecar_sha(path)
    try:
        return verifying.checks_of(path, sha256, full=full or sha256 is None, unrecorded_ok=True)
    except verifying.VerifyFailed as exc:
        return [{"key": exc.key, "ok": False, "detail": exc.detail}]


@crm_cli.command("restore")
@click.argument("file_or_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def restore_command(file_or_id: str, yes: bool) -> None:
    """Restore a backup (an archive path, or a backup id) into this instance: checks and
    verifies it, takes a safety backup, replaces the database and files, applies again the
    personal-data erasures made after the backup (audited, source cli)."""
    from app.extensions import db
    from app.models.operations import BackupRun
    from app.services.backups import common, migrate, restoring, verifying
    from app.services.errors import RuleViolation

    if migrate.current(db.engine) is None:  # a dead instance: an empty schema to restore over
        click.echo("The database is empty: creating the schema first.")
        migrate.upgrade(db.engine)
    target: BackupRun | Path | None
    if file_or_id.isdigit():
        target = db.session.get(BackupRun, int(file_or_id))
    else:
        target = Path(file_or_id)
        target = target if target.is_file() else None
    if target is None:
        raise click.ClickException(f"No backup {file_or_id!r} (give an archive path or a backup id).")
    path = verifying.archive_path(target) if isinstance(target, BackupRun) else target.resolve()
    name = path.name
    known = target if isinstance(target, BackupRun) else restoring.catalogue.find(name)
    sha256 = restoring.recorded_sha(known, path)
    if sha256 is None and path.is_file():  # with a recorded checksum, the restore's own check speaks first
        _readable_archive(path)
    try:
        manifest = common.read_manifest(path)
    except ValueError:
        manifest = {}
    later = restoring.erasures_after(restoring.created_at(manifest))
    if not yes:
        click.confirm(f"Replace ALL data and files of this instance with {name}? "
                      f"{len(later)} personal-data erasures made after this backup will be applied again "
                      "after the restore.", abort=True)
    try:
        row = restoring.restore(target, None, source="cli")
    except RuleViolation as exc:
        raise click.ClickException(exc.errors.get("backup", str(exc))) from None
    click.echo("checksum ok" if sha256 else "no recorded checksum; checked by a full restore test")
    click.echo(f"Restored {name} (restore #{row.id}); safety backup #{row.safety_backup_id} holds the data "
               f"from before. Personal-data erasures applied again: {getattr(row, 'erasures_reapplied', 0)}.")
