"""`flask crm ...` commands: initialise a migrated database, load demo data, expire accounts,
run a task worker or the scheduler."""

from __future__ import annotations

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
