"""Import screens: template download, upload, column mapping, dry run preview with the
value-mapping step (dictionary values that name no entry), commit, progress and history
(the work happens in app/services/importing).

A job's stored messages (its failure, its rows' errors, the error report) are shown in the
reader's language, whoever ran the job (``app.services.messages``)."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, g, jsonify, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.models.transfers import DONE, PREVIEWED, QUEUED, RUNNING, TransferJob
from app.security.data_scope import visible_owner_ids
from app.services import background, dictionaries, messages, tasks
from app.services.errors import RuleViolation
from app.services.importing import columns, engine, jobs, reading, values
from app.services.importing.template import build_template

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Characters of a header or sample value shown on the mapping page (a cell may hold 32,767).
SHOWN_CHARS = 60
SAMPLE_ROWS = 3
#: What the screens show for a job's stored codes (never the code itself).
MODE_LABELS = {"create": _l("Create new records only"), "update": _l("Update existing records only"),
               "upsert": _l("Update existing, create the rest")}
STATUS_LABELS = jobs.STATUS_LABELS
#: Headings of the sample rows per outcome: (dry run, import).
OUTCOME_LABELS = {"create": (_l("To create"), _l("Created")), "update": (_l("To update"), _l("Updated")),
                  "unchanged": (_l("Unchanged"), _l("Unchanged")), "error": (_l("Rejected"), _l("Rejected")),
                  "duplicate": (_l("Duplicates"), _l("Duplicates"))}


def row_problem(row: dict[str, Any]) -> str:
    """A sample row's errors in the reader's language (text stored before messages were kept
    as ids is shown as stored)."""
    return messages.render(row["message"]) if "message" in row else str(row.get("errors") or "")


def _language() -> str:
    return str(get_locale() or messages.default_locale())


def _shown(value: Any) -> str:
    text = reading.cell_text(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def mapping_columns(table: reading.Table) -> list[tuple[int, str, str, str]]:
    """(index, header, header as shown, first values as shown) per column: the mapping page
    stays small whatever the cells hold (the reader bounds the number of columns)."""
    sample = table.rows[:SAMPLE_ROWS]
    return [(index, header, _shown(header), " · ".join(_shown(row[index]) for row in sample))
            for index, header in enumerate(table.headers)]


class ImportView(BaseView):
    route_base = "/imports"
    class_permission_name = "Import"
    method_permission_name = {
        "index": "read", "template": "read", "job": "read", "progress": "read", "report": "read",
        "upload": "write", "mapping": "write", "commit": "write", "map_values": "write", "cancel": "write",
    }
    base_permissions = ["can_read", "can_write"]
    default_view = "index"

    def _models(self) -> list[columns.ImportModel]:
        sm = self.appbuilder.sm
        return [spec for spec in columns.MODELS.values()
                if sm.has_access("can_write", spec.view)]

    def _spec(self, model: str) -> columns.ImportModel:
        if model not in [spec.name for spec in self._models()]:
            abort(404)
        return columns.MODELS[model]

    def _job(self, job_id: int) -> TransferJob:
        """A user sees their own jobs; admins (all-data scope on imports) see everyone's."""
        job = db.session.get(TransferJob, job_id)
        if job is None or job.kind != "import" or (job.user_id != g.user.id and not self._everyone()):
            abort(404)
        return job

    def _everyone(self) -> bool:
        return visible_owner_ids(g.user) is None

    @expose("/")
    @has_access
    def index(self) -> Any:
        return self.render_template("crm/import_index.html", models=self._models(),
                                    history=jobs.history(g.user, self._everyone()), title=_l("Import"),
                                    model_labels={name: spec.label for name, spec in columns.MODELS.items()},
                                    status_labels=STATUS_LABELS)

    @expose("/template/<string:model>")
    @has_access
    def template(self, model: str) -> Any:
        spec = self._spec(model)
        body = build_template(spec, _language())
        name = f"{spec.name}-import-template.xlsx"
        return Response(body, mimetype=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @expose("/upload", methods=["POST"])
    @has_access
    def upload(self) -> Any:
        model = request.form.get("model", "customer")
        self._spec(model)
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            flash(str(_l("Choose a file to upload.")), "danger")
            return redirect(url_for("ImportView.index"))
        try:
            job = jobs.create_job(g.user, model, upload.filename, upload.read())
            names = reading.sheet_names(job.stored_path)
            job.sheet = names[0] if names else None
            db.session.commit()
        except reading.UnreadableFile as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(url_for("ImportView.index"))
        return redirect(url_for("ImportView.mapping", job_id=job.id))

    @expose("/<int:job_id>/mapping", methods=["GET", "POST"])
    @has_access
    def mapping(self, job_id: int) -> Any:
        job = self._job(job_id)
        if job.status in (QUEUED, RUNNING, DONE):
            return redirect(url_for("ImportView.job", job_id=job.id))
        spec = columns.MODELS[job.model]
        form = request.form if request.method == "POST" else {}
        try:
            if form.get("sheet") and (form["sheet"] != job.sheet or form.get("switch_sheet")):
                return self._switch_sheet(job, form["sheet"])
            table, proposed = jobs.propose_mapping(job)
        except reading.UnreadableFile as exc:
            flash(str(exc), "danger")
            return redirect(url_for("ImportView.index"))
        if "header_line" in form and (form["header_line"] != str(table.header_line) or form.get("switch_header")):
            return self._switch_header(job, table, form["header_line"])
        if request.method == "POST":
            return self._start_dry_run(job, spec, table)
        return self.render_template(
            "crm/import_map.html", job=job, spec=spec, table=table, proposed=job.mapping or proposed,
            sheets=table.sheets, modes=engine.MODES, columns=mapping_columns(table), title=_l("Map columns"),
        )

    def _switch_sheet(self, job: TransferJob, sheet: str) -> Any:
        """Another sheet: map its headers first (only a sheet the workbook has)."""
        if sheet not in reading.sheet_names(job.stored_path):
            flash(str(_l("The workbook has no sheet named %(sheet)s.", sheet=sheet[:100])), "danger")
        elif sheet != job.sheet:
            jobs.choose_source(job, sheet=sheet)
            db.session.commit()
        return redirect(url_for("ImportView.mapping", job_id=job.id))

    def _switch_header(self, job: TransferJob, table: reading.Table, raw: str) -> Any:
        """Another header row (one the page offered): map its headers first."""
        try:
            line = jobs.parse_header_line(raw, table)
        except ValueError as exc:
            flash(str(exc), "danger")
        else:
            jobs.choose_source(job, line=line)
            db.session.commit()
        return redirect(url_for("ImportView.mapping", job_id=job.id))

    def _start_dry_run(self, job: TransferJob, spec: columns.ImportModel, table: reading.Table) -> Any:
        form = request.form
        names = {f.name for f in spec.fields}
        mapping = {header: form.get(f"map_{index}") for index, header in enumerate(table.headers)
                   if form.get(f"map_{index}") in names}
        chosen = list(mapping.values())
        doubled = {name for name in chosen if chosen.count(name) > 1}
        missing = columns.missing_required(spec, mapping)
        mode, key = form.get("mode", engine.CREATE), form.get("key", "code")
        problems = [str(_l("%(field)s is mapped to more than one column.", field=spec.field(n).label)) for n in doubled]
        problems += [str(_l("Map a column to %(field)s (required).", field=f.label)) for f in missing]
        if mode != engine.CREATE and key not in mapping.values():
            problems.append(str(_l("Updating needs the key column (%(field)s) mapped.", field=spec.field(key).label)))
        if mode not in engine.MODES or key not in spec.keys:
            abort(400)
        if problems:
            for problem in problems:
                flash(problem, "danger")
            job.mapping = mapping
            db.session.commit()
            return redirect(url_for("ImportView.mapping", job_id=job.id))
        job.mapping, job.mode, job.key = mapping, mode, key
        job.all_or_nothing = bool(form.get("all_or_nothing"))
        jobs.remember_mapping(g.user.id, job.model, mapping)
        jobs.start(job, commit=False)
        return redirect(url_for("ImportView.job", job_id=job.id))

    @expose("/<int:job_id>")
    @has_access
    def job(self, job_id: int) -> Any:
        job = self._job(job_id)
        spec = columns.MODELS[job.model]
        value_groups = values.groups(job) if job.status == PREVIEWED else []
        return self.render_template("crm/import_job.html", job=job, spec=spec, progress=background.progress(job),
                                    error=messages.render(jobs.error_message(job)), row_problem=row_problem,
                                    outcomes=engine.OUTCOMES, title=_l("Import %(file)s", file=job.filename),
                                    value_groups=value_groups, values_digest=values.digest(job),
                                    may_alias=bool(value_groups) and dictionaries.may_edit(g.user),
                                    mode_label=MODE_LABELS.get(job.mode, job.mode),
                                    outcome_labels={k: v[0 if job.dry_run else 1] for k, v in OUTCOME_LABELS.items()})

    @expose("/<int:job_id>/progress")
    @has_access
    def progress(self, job_id: int) -> Any:
        job = self._job(job_id)
        return jsonify({**background.progress(job), "error": messages.render(jobs.error_message(job)) or None})

    @expose("/<int:job_id>/commit", methods=["POST"])
    @has_access
    def commit(self, job_id: int) -> Any:
        job = self._job(job_id)
        if job.status != PREVIEWED or not jobs.start(job, commit=True):
            flash(str(_l("Run the dry run first (or wait for it to finish).")), "warning")
        return redirect(url_for("ImportView.job", job_id=job.id))

    @expose("/<int:job_id>/cancel", methods=["POST"])
    @has_access
    def cancel(self, job_id: int) -> Any:
        """Stop the dry run or import from any web worker; it keeps what it had committed."""
        job = self._job(job_id)
        try:
            asked = tasks.request_cancel(job.id, g.user)
        except PermissionError as exc:
            flash(str(exc), "danger")
            return redirect(url_for("ImportView.job", job_id=job.id))
        if asked:
            flash(str(_l("Cancel requested: the import stops after the chunk in progress; "
                         "rows already imported are kept.")), "info")
        else:
            flash(str(_l("The import has already ended.")), "warning")
        return redirect(url_for("ImportView.job", job_id=job.id))

    @expose("/<int:job_id>/values", methods=["POST"])
    @has_access
    def map_values(self, job_id: int) -> Any:
        """The value-mapping step: remember the chosen entries, then run the dry run again."""
        job = self._job(job_id)
        form = request.form
        choices = {(name, position): form.get(f"value-{name}-{position}", "") for name, position in values.listed(job)}
        try:
            mapped, refused = values.apply_choices(job, g.user, choices, bool(form.get("as_alias")),
                                                   form.get("digest", ""))
        except RuleViolation as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(url_for("ImportView.job", job_id=job.id))
        for message in refused:
            flash(message, "danger")
        db.session.commit()
        if mapped:
            flash(str(_l("%(n)d values mapped; the dry run runs again with them.", n=mapped)), "info")
            jobs.start(job, commit=False)
        return redirect(url_for("ImportView.job", job_id=job.id))

    @expose("/<int:job_id>/report")
    @has_access
    def report(self, job_id: int) -> Any:
        job = self._job(job_id)
        path = jobs.report_file(job, _language())  # the rows' errors in the reader's language
        if not path:
            abort(404)
        stem = job.filename.rsplit(".", 1)[0]
        return send_file(path, mimetype=XLSX, as_attachment=True, download_name=f"{stem}-errors.xlsx")


def upload_too_large(error: Any) -> Any:
    """Uploads over MAX_CONTENT_LENGTH: a message on the import page, not a bare 413."""
    if request.path.startswith("/imports"):
        limit = (request.max_content_length or 0) / 1e6
        flash(str(_l("The file is larger than the %(limit)s MB upload limit.", limit=f"{limit:.0f}")), "danger")
        return redirect(url_for("ImportView.index"))
    return error
