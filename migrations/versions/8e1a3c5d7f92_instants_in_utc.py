"""instants in UTC: timezone-aware date-time columns

Revision ID: 8e1a3c5d7f92
Revises: 7d4f2a9c1b36
Create Date: 2026-11-30 18:00:00.000000

Every date-time column of the CRM (``INSTANTS``; FAB's ``ab_user`` last login, created and
changed included) becomes an instant stored in UTC (``app.models.base.UtcDateTime``):
``timestamp with time zone`` on PostgreSQL, UTC wall time on SQLite (which has no zone type).

Existing rows were written by ``datetime.now()``: the server's local wall time, without a
zone. Which zone that was is read from the environment variable ``CRM_LEGACY_NAIVE_ZONE``
(an IANA name); without it, the zone of the machine running the migration (``tzlocal``:
UTC on servers). PostgreSQL converts with ``col AT TIME ZONE <zone>``; SQLite values are
rewritten only when that zone is not UTC.

The audit hash chain hashes ``created_at`` as naive UTC wall time, which is what entries
written on a UTC server hashed. When the legacy zone is not UTC, the entries so far were
hashed with that zone's wall time: the chain head records the last such entry and the zone
(``audit_chain_head.legacy_seq`` / ``legacy_zone``), so ``audit.verify_chain`` still
verifies them. Left alone: APScheduler's job table (its own float timestamps) and FAB's
``ab_api_key`` / ``ab_register_user``, which FAB compares with its own naive ``now()``.

Downgrade turns the instants back into naive wall time in the same zone.
"""
import os
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '8e1a3c5d7f92'
down_revision = '7d4f2a9c1b36'
branch_labels = None
depends_on = None

#: table -> its date-time columns at this revision
INSTANTS = {
    "ab_user": ("last_login", "created_on", "changed_on", "deactivated_at", "purged_at"),
    "audit_log": ("created_at",),
    "customer": ("archived_at", "created_on", "changed_on"),
    "customer_alias": ("merged_at",),
    "customer_status_change": ("changed_at",),
    "follow_up": ("followed_at", "created_on", "changed_on"),
    "import_mapping": ("changed_on",),
    "step_up_grant": ("expires_at",),
    "sync_conflict": ("created_at", "resolved_at"),
    "sync_row": ("synced_at",),
    "sync_run": ("started_at", "finished_at"),
    "sync_target": ("last_run_at", "running_since"),
    "totp_credential": ("confirmed_at", "locked_until"),
    "totp_recovery_code": ("used_at",),
    "transfer_job": ("created_at", "started_at", "finished_at"),
    "transfer_schedule": ("last_run_at",),
}
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_BATCH = 5000


def legacy_zone_name():
    """The zone the stored naive values were written in (see the module docstring)."""
    name = os.environ.get("CRM_LEGACY_NAIVE_ZONE", "").strip()
    if not name:
        try:
            import tzlocal

            name = tzlocal.get_localzone_name() or "UTC"
        except Exception:  # no zone configured on the machine: the server default
            name = "UTC"
    if not _ZONE_NAME.match(name):
        raise RuntimeError(f"CRM_LEGACY_NAIVE_ZONE={name!r} is not an IANA time zone name")
    ZoneInfo(name)  # unknown names stop the migration before anything changed
    return name


def _is_utc(name):
    """Whether wall time in zone ``name`` always equals UTC (1970-2037, winter and summer)."""
    zone = ZoneInfo(name)
    return all(not zone.utcoffset(datetime(year, month, 1)) for year in range(1970, 2038) for month in (1, 7))


def _postgresql(conn, zone, to_aware):
    kind = "TIMESTAMP WITH TIME ZONE" if to_aware else "TIMESTAMP WITHOUT TIME ZONE"
    for table, columns in INSTANTS.items():
        changes = ", ".join(f'ALTER COLUMN "{c}" TYPE {kind} USING "{c}" AT TIME ZONE \'{zone}\'' for c in columns)
        conn.execute(sa.text(f'ALTER TABLE "{table}" {changes}'))


def _convert(text, zone, to_utc):
    moment = datetime.fromisoformat(text) if isinstance(text, str) else text
    if to_utc:
        moment = moment.replace(tzinfo=zone).astimezone(UTC)
    else:
        moment = moment.replace(tzinfo=UTC).astimezone(zone)
    return moment.replace(tzinfo=None).strftime(_SQLITE_FORMAT)


def _sqlite(conn, zone_name, to_utc):
    """Rewrite stored wall times between ``zone_name`` and UTC, in batches by rowid."""
    if _is_utc(zone_name):
        return
    zone = ZoneInfo(zone_name)
    for table, columns in INSTANTS.items():
        for column in columns:
            last = 0
            while True:
                rows = conn.execute(sa.text(
                    f'SELECT rowid, "{column}" FROM "{table}" WHERE rowid > :last AND "{column}" IS NOT NULL '
                    f'ORDER BY rowid LIMIT {_BATCH}'), {"last": last}).all()
                if not rows:
                    break
                conn.execute(sa.text(f'UPDATE "{table}" SET "{column}" = :value WHERE rowid = :id'),
                             [{"id": rowid, "value": _convert(value, zone, to_utc)} for rowid, value in rows])
                last = rows[-1][0]


def upgrade():
    conn = op.get_bind()
    zone = legacy_zone_name()
    with op.batch_alter_table('audit_chain_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('legacy_seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('legacy_zone', sa.String(length=64), nullable=True))
    if conn.dialect.name == "postgresql":
        _postgresql(conn, zone, to_aware=True)
    else:
        _sqlite(conn, zone, to_utc=True)
    if not _is_utc(zone):  # entries so far were hashed with this zone's wall time
        conn.execute(sa.text("UPDATE audit_chain_head SET legacy_seq = seq, legacy_zone = :zone WHERE seq > 0"),
                     {"zone": zone})


def downgrade():
    conn = op.get_bind()
    zone = legacy_zone_name()
    if conn.dialect.name == "postgresql":
        _postgresql(conn, zone, to_aware=False)
    else:
        _sqlite(conn, zone, to_utc=False)
    with op.batch_alter_table('audit_chain_head', schema=None) as batch_op:
        batch_op.drop_column('legacy_zone')
        batch_op.drop_column('legacy_seq')
