"""Response-time figures read back from ``endpoint_timing`` and ``slow_request``.

p50/p95 come from the bucket counts: the upper bound of the bucket holding that rank (so
the page says "≤ 500 ms"); the open last bucket answers the maximum seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models.operations import EndpointTiming, SlowRequest
from app.services.monitoring.timer import BOUNDS, INF


@dataclass
class EndpointFigures:
    """One endpoint over a period: ``count`` requests, ``max_ms``, ``mean_ms``, ``p50``/``p95``
    (ms, bucket upper bounds), ``buckets`` key -> count."""

    endpoint: str
    count: int = 0
    total_ms: int = 0
    max_ms: int = 0
    buckets: dict[str, int] = field(default_factory=dict)

    @property
    def mean_ms(self) -> int:
        return round(self.total_ms / self.count) if self.count else 0

    def percentile(self, share: float) -> int:
        """The bucket bound (ms) below which ``share`` (0..1) of the requests fell."""
        if not self.count:
            return 0
        rank, seen = share * self.count, 0
        for bound in BOUNDS:
            seen += self.buckets.get(str(bound), 0)
            if seen >= rank:
                return min(bound, self.max_ms)
        return self.max_ms

    @property
    def p50(self) -> int:
        return self.percentile(0.5)

    @property
    def p95(self) -> int:
        return self.percentile(0.95)


def endpoint_figures(since: datetime, until: datetime | None = None) -> list[EndpointFigures]:
    """Every endpoint timed in [``since``, ``until``) (UTC minutes), slowest p95 first."""
    query = select(EndpointTiming).where(EndpointTiming.minute >= since)
    if until is not None:
        query = query.where(EndpointTiming.minute < until)
    found: dict[str, EndpointFigures] = {}
    for row in db.session.scalars(query):
        figures = found.setdefault(row.endpoint, EndpointFigures(row.endpoint))
        figures.count += row.count
        figures.total_ms += row.total_ms
        figures.max_ms = max(figures.max_ms, row.max_ms)
        for key, n in json.loads(row.buckets or "{}").items():
            figures.buckets[key] = figures.buckets.get(key, 0) + int(n)
    return sorted(found.values(), key=lambda f: (-f.p95, -f.max_ms, f.endpoint))


def slow_requests(since: datetime, until: datetime | None = None, limit: int = 100) -> list[SlowRequest]:
    """Pages over the slow threshold in the period, newest first (at most ``limit``)."""
    query = select(SlowRequest).where(SlowRequest.at >= since)
    if until is not None:
        query = query.where(SlowRequest.at < until)
    return list(db.session.scalars(query.order_by(SlowRequest.at.desc()).limit(limit)))


__all__ = ["INF", "EndpointFigures", "endpoint_figures", "slow_requests"]
