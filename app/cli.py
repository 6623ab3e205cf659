"""`flask crm ...` commands: initialise a migrated database, load demo data, expire accounts."""

from __future__ import annotations

import click
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
