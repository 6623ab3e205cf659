"""The report builder (自定义报表, issue 17): pick a source (record type), up to two
dimensions, one measure, filters and a chart; run it in the viewer's data scope; save it
(private or shared with roles); e-mail it on a schedule, each recipient in their own scope.

Rules: 001 §四 (自定义报表 by level, industry, follow-up owner, period; export Excel/PDF),
003 第三步 4 (only managers export reports that contain contact data).

CONTRACT (the report screens and the exports rely on these names and shapes):

- ``SOURCES``: key -> ``Source(key, label, model, dimensions, measures, filters)``; ``Dimension(key,
  label, sensitive)`` (sensitive: contact data — names of people, phones, e-mails);
  ``Measure(key, label)`` with keys ``count``, ``sum:<field>``, ``avg:<field>``;
  ``Filter(key, label, choices)``: the per-source filters a user picks from, ``choices``
  ``[(value, label)]`` read when accessed (dictionary entries in the reader's language).
- ``share_roles(user)``: roles a report may be shared with (all but "Admin"; admins: all);
  ``may_open(report, user)``: owner, admin or holder of a shared role.
- ``sources(user)`` -> the sources this user may report on (by read permission).
- ``parse_spec(data)`` -> ``ReportSpec(source, dimensions, measure, filters, chart)`` or
  ``RuleViolation({field: message})``. ``data`` is a form/JSON mapping: ``source``,
  ``dimensions`` (list, at most 2), ``measure``, ``chart``, filter keys ``period_start``,
  ``period_end`` (ISO dates, CRM zone), ``owner``, ``department`` and per-source ones.
- ``run(spec, user)`` -> ``ReportResult``: ``rows`` (list of (dim1 label, dim2 label or None,
  value)), ``pivot`` (pandas DataFrame: dim1 × dim2 with totals), ``figure``
  (``metrics.Figure`` for the chart and its table), ``contact_data`` (bool), ``title``.
- ``save(user, name, spec, *, roles=(), schedule=None, weekday=None, recipients=(), pk=None,
  version=None)`` -> SavedReport; ``delete(pk, user)``; ``visible(user)`` -> saved reports
  the user may open (own + shared with one of their roles); ``load(pk, user)`` (NotFound);
  ``spec_of(report)`` -> ReportSpec.
- ``send_scheduled(now=None)`` -> number of e-mails queued (the scheduler's weekly job).

How a report runs: ONE ``SELECT dim1, dim2, SUM(..), COUNT(..) ... GROUP BY dim1, dim2``
over the source's table in the viewer's data scope (``scope_clause``) with the filters;
averages are computed from the sum and count of each group (so the totals and an "Other"
group stay exact); money is summed in whole fen (exact on every database). Dates are
bucketed by month / quarter / year in the CRM's zone. Dictionary values are labelled in
the reader's language (``flask_babel.get_locale``: the request's, or ``force_locale``).
"""

from __future__ import annotations

from app.services.reports.base import CHARTS as CHARTS
from app.services.reports.base import GRAINS as GRAINS
from app.services.reports.base import JOB_ID as JOB_ID
from app.services.reports.base import MAX_DIMENSIONS as MAX_DIMENSIONS
from app.services.reports.base import MAX_GROUPS as MAX_GROUPS
from app.services.reports.base import MAX_ROWS as MAX_ROWS
from app.services.reports.base import OTHER as OTHER
from app.services.reports.base import SCHEDULES as SCHEDULES
from app.services.reports.base import SOURCES as SOURCES
from app.services.reports.base import Dimension as Dimension
from app.services.reports.base import Filter as Filter
from app.services.reports.base import Measure as Measure
from app.services.reports.base import ReportResult as ReportResult
from app.services.reports.base import ReportSpec as ReportSpec
from app.services.reports.base import Source as Source
from app.services.reports.declarations import _build
from app.services.reports.declarations import customer_owner as customer_owner
from app.services.reports.declarations import sources as sources
from app.services.reports.running import mask_name as mask_name
from app.services.reports.running import may_reveal_contact as may_reveal_contact
from app.services.reports.running import run as run
from app.services.reports.saved import delete as delete
from app.services.reports.saved import load as load
from app.services.reports.saved import may_open as may_open
from app.services.reports.saved import save as save
from app.services.reports.saved import share_roles as share_roles
from app.services.reports.saved import spec_of as spec_of
from app.services.reports.saved import visible as visible
from app.services.reports.schedule import XLSX_TYPE as XLSX_TYPE
from app.services.reports.schedule import may_export_contacts as may_export_contacts
from app.services.reports.schedule import send_scheduled as send_scheduled
from app.services.reports.spec import parse_spec as parse_spec

# The job's function stays in this module: the task queue finds it by its dotted name,
# ``app.services.reports.send_scheduled_job`` (``tasks.dotted``), as before the split.


def register_job() -> None:
    """Daily at 07:00 (CRM time) send the weekly reports due that day."""
    from app import scheduler

    scheduler.register(JOB_ID, "Scheduled reports (weekly e-mail)", send_scheduled_job, {"hour": 7, "minute": 0})


def send_scheduled_job() -> int:
    """The scheduler's entry point (no arguments)."""
    return send_scheduled()


_build()
register_job()

__all__ = ["Dimension", "Measure", "Filter", "Source", "share_roles", "may_open", "ReportSpec", "ReportResult", "SOURCES", "MAX_DIMENSIONS",
           "sources", "parse_spec", "run", "visible", "load", "spec_of", "save", "delete", "send_scheduled",
           ]
