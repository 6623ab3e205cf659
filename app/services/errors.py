"""Rule violations that forms, the REST API, the importer and the sync all report."""

from __future__ import annotations


class RuleViolation(Exception):
    """A business rule refused a change. ``errors`` maps field name -> message.

    ``status`` is the HTTP status the REST API answers with (422 invalid, 409 stale,
    403 forbidden by a rule).
    """

    status = 422

    def __init__(self, errors: dict[str, str] | str, status: int | None = None):
        self.errors = errors if isinstance(errors, dict) else {"_": errors}
        if status is not None:
            self.status = status
        super().__init__("; ".join(str(m) for m in self.errors.values()))


class StaleRecord(RuleViolation):
    status = 409


class RuleForbidden(RuleViolation):
    status = 403


class NotFound(RuleViolation):
    """The record does not exist *or* is outside the caller's data scope: one answer for
    both, so no entry point can be used to learn that someone else's record exists."""

    status = 404
