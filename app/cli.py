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
