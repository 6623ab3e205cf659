"""Metrics defined once (issue 17): what counts, which date, which status — in the CRM's
time zone, from the records in the viewer's data scope. Dashboards, the drill-down lists,
exports and the scheduled e-mail all read them from here.

Rules: 000 (管理层: 销售漏斗, 客户转化率; 报表数据准确性), 001 §四 (KPIs 新增客户数,
成交客户数, 平均跟进周期, 客户流失率), 002 §七 and §十(二) (sales performance, target
attainment, service quality), 003 第三步 4 (月度销售业绩报表 by rep, region, product;
客户转化率分析 from lead to each stage).

CONTRACT (the dashboards and reports builders rely on these names and shapes):

- ``Period(start, end)``: days in the CRM's zone, ``end`` exclusive; ``Period.month_of(day)``,
  ``.previous()``, ``.instants()`` -> (UTC start, UTC end) for instant columns.
- ``Filters(period, department_id=None, owner_id=None)``; ``parse_filters(args, user)`` reads
  ``period`` (``YYYY-MM``, default this month), ``department``, ``owner`` from request args
  and refuses (``RuleViolation``) a department or owner outside the viewer's scope.
- ``Figure``: one chart and its table (``as_dict()`` is the JSON ``views/static/crm/charts.js``
  draws). ``categories[i]`` is labelled, ``keys[i]`` is what a drill-down passes back.
- ``Metric(key, title, help, unit, chart, compute, records)``: ``compute(user, filters)`` ->
  ``Figure``; ``records(user, filters, category_key)`` -> a ``Select`` of the rows behind a
  number (the SAME conditions the number counts), or None when the metric has no list.
- ``METRICS``: key -> Metric; ``metric(key)`` (NotFound), ``figure(key, user, filters)``,
  ``drill(key, user, filters, category_key)``.
"""

from __future__ import annotations

from app.services.metrics.base import CHARTS as CHARTS
from app.services.metrics.base import CONFIRMED as CONFIRMED
from app.services.metrics.base import DASHBOARDS as DASHBOARDS
from app.services.metrics.base import LOST as LOST
from app.services.metrics.base import METRICS as METRICS
from app.services.metrics.base import UNITS as UNITS
from app.services.metrics.base import WON as WON
from app.services.metrics.base import Figure as Figure
from app.services.metrics.base import FigureSeries as FigureSeries
from app.services.metrics.base import Filters as Filters
from app.services.metrics.base import Metric as Metric
from app.services.metrics.base import Period as Period
from app.services.metrics.base import add_months as add_months
from app.services.metrics.base import department_choices as department_choices
from app.services.metrics.base import drill as drill
from app.services.metrics.base import figure as figure
from app.services.metrics.base import metric as metric
from app.services.metrics.base import owner_choices as owner_choices
from app.services.metrics.base import parse_filters as parse_filters

# The metric modules register their metrics on import (``_define``), in this order: the order
# of METRICS (the dashboards' and the drill-down checks' order) is the order of definition.
# isort: off
from app.services.metrics import sales  # noqa: F401
from app.services.metrics import manager  # noqa: F401
from app.services.metrics import performance  # noqa: F401
from app.services.metrics import service  # noqa: F401
from app.services.metrics import admin  # noqa: F401
# isort: on
from app.services.metrics.admin import ONLINE_MINUTES as ONLINE_MINUTES
