"""Import jobs: upload, mapping, dry run and commit in the background, history, reports.

A job runs in the background (app.services.background: threads, or a Celery worker), so
the request that starts it returns at once. A delivery first claims the job
(``tasks.claim``); a committing import writes ``processed_rows`` and its counts with every
committed chunk, under that claim, so a second delivery (its worker died) resumes after
the last committed chunk: no row lost, none imported twice. Runs that cannot commit
mid-way (dry run, all-or-nothing) report progress through ``tasks.heartbeat`` and start
again from the first row. Between chunks the job stops if its owner or an admin asked
(``tasks.request_cancel``): it ends ``cancelled`` keeping the chunks it had committed.

Its messages are read later by anyone, in their language (a scheduled job has no request
language at all), so they are stored as ``messages.Message`` (ids + parameters) and
rendered when shown: the failure in ``options["error"]`` (``error_message``), each
sample row's errors in ``preview[outcome][i]["message"]``, and the error report is
written once per language (``report_file``). The text columns keep the same messages
rendered in the default language (``job.error``, ``preview[...]["errors"]``, the
``report_path`` workbook) for readers that do not render them (the scheduled jobs page,
a schedule's last result, the report copied next to a scheduled file).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from app.extensions import db
from app.models.base import acting_user_id, now
from app.models.org import CrmUser
from app.models.transfers import (
    CANCELLED,
    DONE,
    FAILED,
    IMPORT,
    PREVIEWED,
    QUEUED,
    RUNNING,
    UPLOADED,
    ImportMapping,
    TransferJob,
)
from app.security.rights import user_may
from app.services import audit, background, messages, notify_hooks, search, tasks
from app.services.background import folder
from app.services.importing import columns, engine, reading, values
from app.services.importing.report import write_error_report

#: What the screens and the dashboards show for a job's stored status (never the code).
STATUS_LABELS = {"uploaded": _l("Uploaded"), "previewed": _l("Dry run"), "queued": _l("Queued"),
                 "running": _l("Running"), "done": _l("Done"), "failed": _l("Failed"),
                 "cancelled": _l("Cancelled")}

log = logging.getLogger(__name__)
#: ``TransferJob.options`` keys: the failure as a message, the error report per language.
ERROR_KEY, REPORTS_KEY = "error", "reports"


class JobFailed(Exception):
    """The job cannot run; ``message`` (a ``messages.Message``) says why."""

    def __init__(self, message: messages.Message) -> None:
        super().__init__(messages.render(message))
        self.message = message


def create_job(user: Any, model: str, filename: str, data: bytes, **fields: Any) -> TransferJob:
    """Keep the upload under the instance folder and open a job for it."""
    if model not in columns.MODELS:
        raise reading.UnreadableFile(_l("Nothing can be imported into %(model)s.", model=model))
    suffix = reading.check_suffix(filename)
    limit = current_app.config["CRM_IMPORT_MAX_BYTES"]
    if len(data) > limit:
        raise reading.UnreadableFile(_l("The file is %(size)s MB; the limit is %(limit)s MB.",
                                        size=f"{len(data) / 1e6:.1f}", limit=f"{limit / 1e6:.0f}"))
    stored = folder() / f"{uuid.uuid4().hex}{suffix}"
    stored.write_bytes(data)
    job = TransferJob(kind=IMPORT, model=model, user_id=user.id, filename=os.path.basename(filename)[:255],
                      stored_path=str(stored), **fields)
    db.session.add(job)
    db.session.flush()
    return job


def remembered_mapping(user_id: int, model: str) -> dict[str, str]:
    saved = db.session.get(ImportMapping, (user_id, model))
    return dict(saved.mapping) if saved else {}


def remember_mapping(user_id: int, model: str, mapping: dict[str, str]) -> None:
    saved = db.session.get(ImportMapping, (user_id, model))
    if saved is None:
        db.session.add(ImportMapping(user_id=user_id, model=model, mapping=mapping))
    else:
        saved.mapping = {**saved.mapping, **mapping}


def read_job_table(job: TransferJob) -> reading.Table:
    """The job's sheet read from the header row the user picked (``options["header_line"]``,
    1-based), else the detected one; ``UnreadableFile`` as ``reading.read_table``."""
    return reading.read_table(job.stored_path, job.sheet, header_line=header_line(job))


def header_line(job: TransferJob) -> int | None:
    """The header row the user picked on the mapping page (1-based), None when detected."""
    value = (job.options or {}).get("header_line")
    return value if isinstance(value, int) else None


def choose_source(job: TransferJob, sheet: str | None = None, line: int | None = None) -> None:
    """Read another sheet (its header detected again) or another header row of this one.

    The headers change, so the mapping is proposed afresh and an earlier dry run no longer
    stands: the job goes back to ``UPLOADED`` (a commit needs a dry run of what it imports).
    """
    options = dict(job.options or {})
    options.pop("header_line", None)
    if sheet is not None:
        job.sheet = sheet
    if line is not None:
        options["header_line"] = line
    job.options, job.mapping, job.preview = options, None, None
    if job.status == PREVIEWED:
        job.status = UPLOADED


def parse_header_line(raw: str, table: reading.Table) -> int:
    """The header row a form names: one of ``table.header_choices`` (a filled row among the
    first ``reading.HEADER_SEARCH_ROWS``); ``ValueError`` with a message otherwise."""
    text = (raw or "").strip()
    line = int(text) if text.isascii() and text.isdigit() and len(text) < 6 else None
    if line not in {choice for choice, _ in table.header_choices}:
        raise ValueError(str(_l("Row %(line)s cannot be the header row.", line=text[:20])))
    return line


def propose_mapping(job: TransferJob) -> tuple[reading.Table, dict[str, str]]:
    """The file's headers with the user's remembered choices, else the aliases."""
    table = read_job_table(job)
    spec = columns.MODELS[job.model]
    return table, columns.auto_map(spec, table.headers, remembered_mapping(job.user_id, job.model))


def start(job: TransferJob, commit: bool) -> bool:
    """Queue a dry run or the real import; returns at once unless ``CRM_IMPORT_INLINE``.

    The job is claimed with one conditional UPDATE, so a double click (two requests at
    once) starts it once; ``False`` when it was not in a state to start.
    """
    allowed = [PREVIEWED] if commit else [UPLOADED, PREVIEWED, FAILED, CANCELLED]
    job_id = job.id
    db.session.flush()  # the mapping and options chosen with this request
    claimed = db.session.execute(
        update(TransferJob).where(TransferJob.id == job_id, TransferJob.status.in_(allowed)).values(
            status=QUEUED, dry_run=not commit, error=None, processed_rows=0, created=0, updated=0, unchanged=0,
            rejected=0, duplicates=0, cancel_requested=False, claimed_by=None, attempts=0,
            lease_until=tasks.queued_until())).rowcount
    db.session.commit()
    if claimed:
        background.submit(execute, job_id, commit)
    return bool(claimed)


def execute(job_id: int, commit: bool) -> TransferJob:
    """Run one job to the end, storing counts, samples, the error report and the outcome.

    A delivery that cannot claim the job (another one runs it, or it ended) does nothing
    and returns the job as it is; see the module doc for resuming and cancelling. A job
    still ``UPLOADED`` is run by a caller that does not queue it (a scheduled folder import)."""
    return tasks.run_claimed(job_id, lambda token: _execute(job_id, commit, token), also=(UPLOADED,))


def _execute(job_id: int, commit: bool, token: str) -> TransferJob:
    job = db.session.get(TransferJob, job_id)
    user = db.session.get(CrmUser, job.user_id)
    job.started_at = now()
    if not _resumable(job, commit):  # a dry run or all-or-nothing starts again from the first row
        job.processed_rows = job.created = job.updated = job.unchanged = job.rejected = job.duplicates = 0
    db.session.commit()
    if not user_may(user, "can_write", columns.MODELS[job.model].view):  # schedules run as someone
        return _fail(job_id, messages.stored(_l("%(user)s may not change these records.", user=user.username)))
    token_user = acting_user_id.set(user.id)
    try:
        tasks.check_cancel(job_id)  # cancelled while it waited in the queue
        result, table, resumed = _run(job, user, commit, token)
    except tasks.Cancelled:
        return _cancelled(job_id, commit)
    except tasks.LeaseLost:
        db.session.rollback()
        log.warning("Import job %s was taken over by another delivery; this one stops", job_id)
        return db.session.get(TransferJob, job_id)
    except JobFailed as exc:
        return _fail(job_id, exc.message)
    except ValueError as exc:
        return _fail(job_id, messages.stored(exc))
    except Exception as exc:
        log.exception("Import job %s crashed", job_id)
        return _fail(job_id, messages.stored(_l("The import stopped unexpectedly (%(error)s); nothing after the "
                                                "last committed chunk was saved.", error=type(exc).__name__)))
    finally:
        acting_user_id.reset(token_user)
    try:
        return _finish(job_id, result, table, commit, resumed)
    except Exception as exc:  # e.g. the report cannot be written: the job must not stay "running"
        log.exception("Import job %s could not be finished", job_id)
        return _fail(job_id, messages.stored(_l("The import finished but its report could not be stored "
                                                "(%(error)s).", error=type(exc).__name__)))


def _resumable(job: TransferJob, commit: bool) -> bool:
    """Does each chunk commit on its own (so a second delivery resumes after the last one)?"""
    return commit and not job.all_or_nothing


def _cancelled(job_id: int, commit: bool) -> TransferJob:
    """End a job its owner or an admin stopped: what it had committed stays, and says so."""
    db.session.rollback()
    job = db.session.get(TransferJob, job_id)
    job.status, job.finished_at, job.lease_until = CANCELLED, now(), None
    if commit and not job.all_or_nothing and job.processed_rows:
        message = _l("Cancelled after %(n)d rows; those rows were imported and are kept (%(c)d created, "
                     "%(u)d updated). The rows after them were not imported.", n=job.processed_rows,
                     c=job.created, u=job.updated)
    else:
        message = _l("Cancelled; nothing was saved.")
    store_error(job, messages.stored(message))  # the request to cancel was audited (tasks.request_cancel)
    notify_hooks.import_finished(job)
    db.session.commit()
    return job


def _read(job: TransferJob) -> reading.Table:
    """The job's table; ``JobFailed`` with the reader's message (ids kept, the reason too)."""
    with messages.capturing() as capture:
        try:
            return read_job_table(job)
        except reading.UnreadableFile as exc:
            raise JobFailed(capture.stored(exc)) from None


#: The counts a resumed run adds to (``Resumed.counts``), as ``engine.Result.summary`` names them.
COUNTS = ("created", "updated", "unchanged", "rejected", "duplicates")


class Resumed:
    """Where a delivery starts: rows a previous delivery committed, and their counts."""

    def __init__(self, job: TransferJob, commit: bool) -> None:
        self.rows = job.processed_rows if _resumable(job, commit) else 0
        self.counts = {name: getattr(job, name) for name in COUNTS} if self.rows else dict.fromkeys(COUNTS, 0)

    def totals(self, result: engine.Result) -> dict[str, int]:
        """The job's counts: the earlier deliveries' plus this one's."""
        summary = result.summary()
        return {"processed_rows": self.rows + result.rows,
                **{name: self.counts[name] + summary[name] for name in COUNTS}}


def _run(job: TransferJob, user: Any, commit: bool,
         token: str) -> tuple[engine.Result, reading.Table, Resumed]:
    table = _read(job)
    job_id, total = job.id, len(table.rows)
    job.total_rows, job.sheet = total, table.sheet
    options = dict(job.options or {})
    options["blank_rows"] = table.blank_rows
    resumed = Resumed(job, commit)
    if resumed.rows:
        options["resumed_after"] = resumed.rows
    job.options = options
    db.session.commit()
    settings = engine.Settings(job.model, job.mode, job.key, job.all_or_nothing,
                               current_app.config["CRM_IMPORT_CHUNK_ROWS"], values.chosen_for(job))
    resumable = _resumable(job, commit)

    def progress(result: engine.Result) -> None:
        tasks.check_cancel(job_id)  # before the chunk commits: it is rolled back, the earlier ones stay
        if resumable:  # with the chunk, under this delivery's claim
            tasks.checkpoint(job_id, token, **resumed.totals(result))
        else:
            tasks.heartbeat(job_id, token, result.rows, total)
            if commit and result.rows == total:  # all-or-nothing: its one commit carries the claim
                tasks.checkpoint(job_id, token, processed_rows=result.rows)

    label = _l("import #%(job)d %(file)s", job=job_id, file=job.filename)  # the reader's language (audit)
    rest = _rows_after(table, resumed.rows)
    result = engine.run_import(rest, dict(job.mapping or {}), settings, user, commit, progress, label)
    return result, table, resumed


def _rows_after(table: reading.Table, done: int) -> reading.Table:
    """The table without its first ``done`` rows (committed by an earlier delivery)."""
    if not done:
        return table
    lines = table.lines or list(range(2, len(table.rows) + 2))
    return replace(table, rows=table.rows[done:], lines=lines[done:])


def _store_counts(job: TransferJob, totals: dict[str, int]) -> None:
    for name, value in totals.items():
        setattr(job, name, value)


def _finish(job_id: int, result: engine.Result, table: reading.Table, commit: bool,
            resumed: Resumed) -> TransferJob:
    job = db.session.get(TransferJob, job_id)
    totals = resumed.totals(result)
    _store_counts(job, totals)
    if result.rolled_back:
        job.created = job.updated = job.unchanged = 0
        job.rejected = result.rows
    job.preview = {**_with_text(result.preview), values.PREVIEW_KEY: result.unknown.summary()}
    job.report_path = None
    options = {key: value for key, value in (job.options or {}).items() if key != REPORTS_KEY}
    if result.rejected_rows:
        options[REPORTS_KEY] = _write_reports(job.id, table, result)
        job.report_path = options[REPORTS_KEY][messages.default_locale()]
    job.options = options
    job.status, job.finished_at, job.lease_until = (DONE if commit else PREVIEWED), now(), None
    if commit:
        summary = {"rows": totals["processed_rows"], **{name: totals[name] for name in COUNTS}}
        audit.record("import", job, {"file": job.filename, "model": job.model, "mode": job.mode,
                                     **summary, "rolled_back": result.rolled_back,
                                     "seconds": round(result.seconds, 2)})
        notify_hooks.import_finished(job)
        search.defer_indexing(db.session.connection())  # SQLite: the run asked for it in the background
    db.session.commit()
    return job


def _with_text(preview: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The samples with their errors also as text in the default language (``"errors"``;
    columns named with the file's headers too, as that text always did)."""
    with force_locale(messages.default_locale()):
        return {outcome: [{**row, "errors": messages.render(row.get("message"), file_headers=True)} for row in rows]
                for outcome, rows in preview.items()}


def _write_reports(job_id: int, table: reading.Table, result: engine.Result) -> dict[str, str]:
    """The error report in every language (language -> path), each row's errors rendered
    in it: the one downloaded is the reader's (``report_file``)."""
    paths = {}
    for language in messages.languages():
        suffix = "" if language == messages.default_locale() else f".{language}"
        path = folder() / f"job-{job_id}-errors{suffix}.xlsx"
        with force_locale(language):  # the rows' errors, its header and "[row n]" in it
            rendered = [(line, raw, messages.render(message, file_headers=True))
                        for line, raw, message in result.rejected_rows]
            write_error_report(path, table, replace(result, rejected_rows=rendered), every_row=result.rolled_back)
        paths[language] = str(path)
    return paths


def report_file(job: TransferJob, language: str) -> str | None:
    """The job's error report in ``language`` (e.g. "zh"), else the default-language one
    (reports written before they were kept per language); None without a report."""
    if not job.report_path:
        return None
    reports = (job.options or {}).get(REPORTS_KEY) or {}
    for code in (language, language.split("_")[0]):
        path = reports.get(code)
        if isinstance(path, str) and Path(path).parent == folder() and Path(path).is_file():
            return path
    return job.report_path


def error_message(job: TransferJob) -> messages.Message:
    """Why the job failed, as a message to render for the reader; the stored text for jobs
    whose failure was stored as text only (before messages were kept, or by another writer);
    None when it did not fail."""
    if not job.error:
        return None
    kept = (job.options or {}).get(ERROR_KEY)
    if isinstance(kept, dict) and kept.get("text") == job.error:
        return kept.get("message")
    return job.error


def _fail(job_id: int, message: messages.Message) -> TransferJob:
    db.session.rollback()
    job = db.session.get(TransferJob, job_id)
    job.status, job.finished_at, job.lease_until = FAILED, now(), None
    store_error(job, message)
    notify_hooks.import_finished(job)
    db.session.commit()
    return job


def store_error(job: TransferJob, message: messages.Message) -> None:
    """Store ``job``'s failure: the message (``options["error"]``, with the text it pairs
    with) and, for readers that do not render it, that text in the default language
    (``job.error``, at most 2,000 characters); ``error_message`` reads it back. The caller
    sets the status and commits."""
    text = messages.render(message, messages.default_locale())[:2000]
    job.error = text
    job.options = {**(job.options or {}), ERROR_KEY: {"text": text, "message": message}}


def history(user: Any, everyone: bool, limit: int = 50) -> list[TransferJob]:
    query = select(TransferJob).where(TransferJob.kind == IMPORT).order_by(TransferJob.id.desc()).limit(limit)
    if not everyone:
        query = query.where(TransferJob.user_id == user.id)
    return db.session.scalars(query).all()


def _resume(job: TransferJob) -> tuple[Any, tuple]:
    """How the sweep runs a stalled import again (``tasks.requeue_stalled``)."""
    return execute, (job.id, not job.dry_run)


tasks.register_resumer(IMPORT, _resume)


def mark_interrupted() -> int:
    """Jobs left queued/running by a stopped process are failed with how far they got."""
    stuck = db.session.scalars(select(TransferJob).where(TransferJob.status.in_([QUEUED, RUNNING]))).all()
    for job in stuck:
        job.status, job.finished_at = FAILED, now()
        store_error(job, messages.stored(_l("Interrupted by a restart after %(n)d rows; committed rows are kept. "
                                             "Upload the error report or the file again in update/upsert mode.",
                                             n=job.processed_rows)))
    db.session.commit()
    return len(stuck)
