"""Every page in Chinese: no English UI text (issue 11, section 6).

Walks every registered screen (``appbuilder.baseviews``: list, show, add and edit of a
real record of each model, each add form posted empty for its error messages, every
custom GET page) as an admin and as a sales rep with the locale set to ``zh``, plus the
login page, the error pages, the step-up page and the texts FAB's scripts show in the
browser, and fails on any visible text that is English UI:

* a text equal to (or, with placeholders, matching) a msgid of our catalogue or of
  Flask-AppBuilder's, shown as is although it has a different Chinese text or none;
* a text with an ASCII word (three letters or more, or a two-letter text such as "OK")
  left after removing data values (people, departments, codes, e-mails, paths, the
  identifiers FAB's role screens list), the words in ``ALLOWED`` and the Chinese
  translations themselves (a translator may keep "Excel" or an API path in a sentence).

Records are seeded with Chinese data, so the second rule stays precise. Visible text is
text nodes (not scripts or styles), the page title and the ``title``, ``placeholder``,
``alt``, ``aria-label`` attributes and button values; ``<code>``/``<kbd>``/``<samp>``/``<pre>``
hold literal identifiers (settings, cron, action names) and are checked against the msgids
only. String literals of inline scripts are checked against the msgids.

The walks fail until the catalogue (app/translations, kept by the lead) has the entries in
/work/notes/zh_missing.txt and the screens named in the report label their values: each
failure line names the text, why, and the pages that show it.
"""

from __future__ import annotations

import gettext
import glob
import json
import os
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import flask_appbuilder
import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po
from flask import g
from flask_appbuilder import ModelRestApi
from flask_appbuilder.baseviews import BaseCRUDView
from flask_appbuilder.security.sqla.models import Permission, Role, ViewMenu
from sqlalchemy import select

from app.extensions import appbuilder, db
from app.models import (
    DICTIONARIES,
    CrmUser,
    CustomerLevel,
    CustomerSource,
    CustomerStatusChange,
    CustomerType,
    Department,
    FollowUpMethod,
    Industry,
    Stage,
    SyncConflict,
    SyncTarget,
    TransferJob,
    TransferSchedule,
)
from app.services.importing import columns as import_columns
from app.services.opportunities import REQUIRABLE
from config import BASE_DIR
from tests.conftest import PASSWORD, user_id

FAB_DIR = Path(os.path.dirname(flask_appbuilder.__file__))
FAB_JS = FAB_DIR / "static" / "appbuilder" / "js"
POT = Path(BASE_DIR) / "app" / "translations" / "messages.pot"
REP = "rep_a"

#: ASCII words a Chinese page may show, and why.
ALLOWED = {
    "Sheets CRM": "the product's name (APP_NAME)",
    "CRM": "the product's kind, used as is in Chinese software",
    "English": "the language menu names each language in that language",
    "TOTP": "the authenticator standard's name (RFC 6238), as the apps show it",
    "API": "technical term, used as is in Chinese software",
    "CSV": "file format name",
    "xlsx": "file format name",
    "Excel": "product name",
    "Google Sheets": "product name",
    "CST": "time zone abbreviation of Asia/Shanghai (China Standard Time), shown with schedule times",
    "ID": "technical term, used as is in Chinese software",
    "IP": "technical term (IP address)",
    "YYYY-MM": "the month field's format, as typed (a placeholder)",
}
#: Texts that are data wherever they appear: e-mails, codes, hashes, browsers' user agents.
DATA_PATTERNS = [
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    re.compile(r"\b[CG]\d{11,}\b"),
    re.compile(r"\b[0-9a-f]{16,}\b"),
    re.compile(r"\S*(?i:werkzeug|python-requests|mozilla)/\S*(?: \([^)]*\))?"),
]
#: Data of FAB's security screens only: they list role, permission and view-menu
#: identifiers as stored ("can read on Customer", PermissionView.__repr__).
SECURITY_SCREENS = ("/roles/", "/permissions/", "/viewmenus/", "/permissionviews/", "/users/")
WORD = re.compile(r"[A-Za-z]{3,}")
TWO_LETTERS = re.compile(r"[A-Za-z]{2}")
CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
PLACEHOLDER = re.compile(r"%\(\w+\)[sdifr]")
#: Attributes whose value a person sees (tooltips, placeholders, image text, option groups).
SHOWN_ATTRIBUTES = {"title", "placeholder", "alt", "aria-label", "data-original-title", "label"}
BUTTON_TYPES = {"submit", "button", "reset"}
LITERAL_TAGS = {"code", "kbd", "samp", "pre"}
JS_LITERAL = re.compile(r"""'((?:[^'\\\n]|\\.)*)'|"((?:[^"\\\n]|\\.)*)\"""")
#: A string literal that is an object key (``{"department": ...}``): an identifier, not text.
JS_KEY = re.compile(r"\s*:")
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")
#: GET routes that are not pages: they end the session, change the language, download
#: files, answer JSON or change data (FAB's GET delete and actions).
SKIP_ENDPOINTS = {"logout", "login", "back", "download", "export", "report", "template", "progress",
                  "action", "delete"}


# --- the English UI strings -----------------------------------------------------------

def _msgid(message_id: Any) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]


@cache
def english_msgids() -> frozenset[str]:
    """Every msgid a screen may show: our template (messages.pot) and Flask-AppBuilder's
    own (extracted from its code and templates, plus its shipped catalogues)."""
    with POT.open("rb") as handle:
        ids = {_msgid(m.id) for m in read_po(handle) if m.id}
    keywords = {**DEFAULT_KEYWORDS, "lazy_gettext": None, "_l": None}
    method_map = [("**/examples/**", "ignore"), ("**.py", "python"), ("**/templates/**.html", "jinja2")]
    ids |= {_msgid(msg) for _, _, msg, _, _ in extract_from_dir(str(FAB_DIR), method_map, keywords=keywords)}
    for mo in glob.glob(str(FAB_DIR / "translations" / "*" / "LC_MESSAGES" / "messages.mo")):
        with open(mo, "rb") as handle:
            ids |= {_msgid(key) for key in gettext.GNUTranslations(handle)._catalog if key}
    return frozenset(" ".join(i.split()) for i in ids if i.strip())


def _text_pattern(template: str) -> re.Pattern[str]:
    """A catalogue text with placeholders as a pattern of the rendered text (groups = values)."""
    parts = PLACEHOLDER.split(" ".join(template.split()))
    return re.compile("(.+?)".join(re.escape(p) for p in parts), re.S)


@cache
def _msgid_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """msgids with placeholders and English words around them."""
    return tuple((m, _text_pattern(m)) for m in english_msgids()
                 if PLACEHOLDER.search(m) and WORD.search(PLACEHOLDER.sub("", m)))


def zh_catalogue(app: Any) -> dict[str, str]:
    """msgid -> Chinese text as the app translates it (FAB's catalogue merged with ours)."""
    with app.test_request_context("/"):
        from flask import session
        from flask_babel import get_translations, refresh

        session["locale"] = "zh"
        refresh()
        catalogue = get_translations()._catalog
        return {_msgid(key).split("\x04")[-1]: value for key, value in catalogue.items()
                if key and isinstance(value, str)}


# --- what a page shows ----------------------------------------------------------------

class _Shown(HTMLParser):
    """What a person reads on a page (``texts``; ``literals``: inside <code>/<kbd>/<samp>/<pre>),
    the string literals of its inline scripts (``js``) and its JSON data blocks (``data``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.literals: list[str] = []
        self.js: list[str] = []
        self.data: dict[str, str] = {}
        self._open: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.texts += [v for n, v in values.items() if n in SHOWN_ATTRIBUTES and v.strip()]
        if tag == "input" and values.get("type", "").lower() in BUTTON_TYPES and values.get("value"):
            self.texts.append(values["value"])
        if tag in ("script", "style", *LITERAL_TAGS):
            self._open.append((tag, values))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if not data.strip():
            return
        tag, attrs = self._open[-1] if self._open else ("", {})
        if tag == "script" and attrs.get("type") == "application/json":
            self.data[attrs.get("id", "")] = data
        elif tag == "script":
            self.js.append(data)
        elif tag in LITERAL_TAGS:
            self.literals.append(data)
        elif tag != "style":
            self.texts.append(data)


def parse(html: str) -> _Shown:
    parser = _Shown()
    parser.feed(html)
    parser.close()
    return parser


def js_texts(scripts: Iterable[str]) -> Iterator[str]:
    """The string literals of ``scripts`` that are values (not object keys), unescaped."""
    for code in scripts:
        for match in JS_LITERAL.finditer(code):
            # a lower-case identifier ("queued", "disabled") is a value the code compares or an
            # option name, never text a person reads
            if not JS_KEY.match(code, match.end()) and not IDENTIFIER.fullmatch(match[1] or match[2] or ""):
                text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), match[1] or match[2] or "")
                yield re.sub(r"\\(.)", lambda m: " " if m[1] in "nrt" else m[1], text)


def _collapse(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(" ".join(t.split()) for t in texts if t.strip()))


class Checker:
    """Finds English UI text in pages; ``problems`` has one line per text found."""

    def __init__(self, catalogue: dict[str, str], data: dict[str, set[str]]) -> None:
        english = english_msgids()
        #: msgids that must not be shown as they are: no Chinese text, or a different one.
        self.untranslated = {m for m in english if catalogue.get(m, m) != m or m not in catalogue}
        self.data = {prefix: sorted(values, key=len, reverse=True) for prefix, values in data.items()}
        self.allowed = sorted(ALLOWED, key=len, reverse=True)
        # The translator's own words: the literal parts of Chinese texts that keep ASCII words.
        parts = {p.strip() for text in catalogue.values() if CJK.search(text)
                 for p in PLACEHOLDER.split(" ".join(text.split())) if WORD.search(p) and CJK.search(p)}
        self.translated_parts = sorted(parts, key=len, reverse=True)
        #: text -> (reason, pages it is on)
        self.found: dict[str, tuple[str, list[str]]] = {}
        self.pages = 0

    def _data_for(self, where: str) -> list[str]:
        return [v for prefix, values in self.data.items() if where.startswith(prefix) for v in values]

    def english(self, text: str, data: list[str]) -> str | None:
        """Why ``text`` is English UI, or None."""
        if text in data:
            return None
        if text in self.untranslated:
            return "msgid"
        for msgid, pattern in _msgid_patterns():
            if msgid in self.untranslated and pattern.fullmatch(text):
                return f"msgid {msgid!r}"
        words = WORD.findall(self._strip(text, data))
        if words:
            return f"words {words}"
        short = text.strip(" .:：,，()（）!！?？")
        return "short text" if TWO_LETTERS.fullmatch(short) and short not in ALLOWED else None

    def _strip(self, text: str, data: list[str]) -> str:
        stripped = self._strip_parts(text, data)
        if WORD.search(stripped):
            # "menu access on Service feedback" is one identifier (data), not the translated
            # word "Service" followed by an English "feedback": try the data first, longest first.
            identifiers = text
            for value in sorted({*self.allowed, *data}, key=len, reverse=True):
                if value in identifiers:
                    identifiers = re.sub(rf"(?<![A-Za-z]){re.escape(value)}(?![A-Za-z])", " ", identifiers)
            if not WORD.search(identifiers):
                return identifiers
        return stripped

    def _strip_parts(self, text: str, data: list[str]) -> str:
        for part in self.translated_parts:
            if part in text:
                text = text.replace(part, " ")
        for pattern in DATA_PATTERNS:
            text = pattern.sub(" ", text)
        for value in (*self.allowed, *data):
            if value in text:
                text = re.sub(rf"(?<![A-Za-z]){re.escape(value)}(?![A-Za-z])", " ", text)
        return text

    def check_html(self, where: str, html: str) -> _Shown:
        self.pages += 1
        page, data = parse(html), self._data_for(where)
        for text in _collapse(page.texts):
            reason = self.english(text, data)
            if reason:
                self.add(text, reason, where)
        for text in _collapse(page.literals):
            if text in self.untranslated and text not in data:
                self.add(text, "msgid", where)
        for literal in _collapse(js_texts(page.js)):
            if "<" in literal and ">" in literal:  # markup a script inserts (FAB's search filter widgets)
                for text in _collapse(parse(literal).texts):
                    reason = self.english(text, data)
                    if reason:
                        self.add(text, f"script markup, {reason}", where)
            elif literal in self.untranslated and literal not in data:
                self.add(literal, "script text", where)
        return page

    def add(self, text: str, reason: str, where: str) -> None:
        self.found.setdefault(text, (reason, []))[1].append(where)

    @property
    def problems(self) -> list[str]:
        return [f"{text!r} ({reason}) on {len(pages)} page(s): {', '.join(dict.fromkeys(pages[:4]))}"
                for text, (reason, pages) in sorted(self.found.items())]

    def check(self, client: Any, url: str, method: str = "GET", **kwargs: Any) -> None:
        """Open ``url`` and check the page (error and refusal pages too); a 500 is a problem."""
        where = url if method == "GET" else f"{method} {url}"
        try:  # the test client re-raises a view's exception: record it and walk on
            response = client.open(url, method=method, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self.add(f"{type(exc).__name__}: {str(exc)[:200]}", "error", where)
            return
        if response.status_code >= 500:
            self.add(f"HTTP {response.status_code}", "error", where)
        elif response.mimetype == "text/html" and not 300 <= response.status_code < 400:
            self.check_html(where, response.get_data(as_text=True))


# --- the records every page shows -----------------------------------------------------

def _first(model: type) -> Any:
    return db.session.scalars(select(model).order_by(model.id)).first()


@pytest.fixture
def zh_world(app: Any, make_customer: Any, make_follow_up: Any, tmp_path: Path) -> dict[str, Any]:
    """Customers (one archived, two alike for the duplicates page), a follow-up, a status
    change, a sync target with a conflict, a schedule and an export job: Chinese wherever
    a person types."""
    with app.app_context():
        entries = {"industry_id": _first(Industry).id, "level_id": _first(CustomerLevel).id,
                   "source_id": _first(CustomerSource).id}
        method_id = _first(FollowUpMethod).id
    ids: dict[str, Any] = {"customer": make_customer(
        REP, name="华东精密机械有限公司", contact_name="王伟", contact_phone="13812340001",
        address="上海市浦东新区张江路1号", note="重点客户，季度回访", email="wangwei@example.com", **entries)}
    ids["twin"] = make_customer(REP, name="华东精密机械有限公司", contact_name="王伟", contact_phone="13812340001")
    make_customer(REP, name="已归档贸易公司", contact_name="李娜", contact_phone="13812340002",
                  archived_at=datetime(2026, 1, 5, 2, 0, tzinfo=UTC))
    make_follow_up(ids["customer"], REP, content="电话沟通报价", next_step="发送报价单",
                   next_step_date=date(2026, 1, 8), method_id=method_id)
    with app.app_context():
        types = db.session.scalars(select(CustomerType).order_by(CustomerType.id)).all()
        db.session.add(CustomerStatusChange(customer_id=ids["customer"], from_type_id=types[0].id,
                                            to_type_id=types[1].id, changed_by_id=user_id(REP),
                                            reason="客户确认采购"))
        target = SyncTarget(name="华东团队表格", backend="xlsx", location=str(tmp_path / "团队客户.xlsx"),
                            worksheet="客户", run_as_id=user_id("manager"), enabled=False)
        db.session.add(target)
        db.session.flush()
        db.session.add(SyncConflict(target_id=target.id, record_id=ids["customer"], key="C20260105001",
                                    field="contact_name", base="王伟", app_value="王伟强", sheet_value="王小伟"))
        db.session.add(TransferSchedule(name="每日客户导入", path=str(tmp_path / "导入"),
                                        run_as_id=user_id("manager"), enabled=False))
        db.session.add(TransferJob(kind="export", model="customer", user_id=user_id("admin"),
                                   filename="客户.xlsx", status="done", dry_run=False))
        db.session.commit()
        ids["target"] = target.id
        db.session.remove()
    return ids


def import_dry_run(app: Any, username: str, folder: Path, locale: str | None = None) -> int:
    """An import dry run with a good and a rejected row; returns the job id.

    ``locale`` None runs it as the background pool does, outside any request; else inside
    a request in that language (the test configuration runs jobs in the starting request).
    """
    from app.services.importing import jobs

    path = folder / "客户导入.csv"
    path.write_text("客户名称,联系人姓名,联系方式\n杭州西湖茶业有限公司,周杰,13911112222\n"
                    "坏行公司,周杰,123\n", encoding="utf-8")
    with app.test_request_context("/") if locale else app.app_context():
        if locale:
            from flask import session
            from flask_babel import refresh

            session["locale"] = locale
            refresh()
        user = appbuilder.sm.find_user(username=username)
        job = jobs.create_job(user, "customer", path.name, path.read_bytes())
        _, job.mapping = jobs.propose_mapping(job)
        db.session.commit()
        jobs.start(job, commit=False)
        job_id = job.id
        db.session.remove()
    return job_id


def failed_import(app: Any, username: str) -> int:
    """An import of a file that is no workbook, run outside any request; returns the job id."""
    from app.services.importing import jobs

    with app.app_context():
        user = appbuilder.sm.find_user(username=username)
        job = jobs.create_job(user, "customer", "客户.xlsx", b"not a workbook")
        job.mapping = {}
        db.session.commit()
        jobs.start(job, commit=False)
        job_id = job.id
        db.session.remove()
    return job_id


def scheduled_import(app: Any, folder: Path) -> None:
    """One run of the folder-import schedule (as the scheduler runs it: no request), on a
    CSV with a good and a rejected row: the jobs page then lists its status and result."""
    from app.services import schedules

    folder.mkdir(exist_ok=True)
    (folder / "每日客户.csv").write_text("客户名称,联系人姓名,联系方式\n宁波港通物流有限公司,孙丽,13611112222\n"
                                    "坏行公司,孙丽,123\n", encoding="utf-8")
    with app.app_context():
        schedules.run(db.session.scalars(select(TransferSchedule)).one())
        db.session.remove()


def sync_run(app: Any, target_id: int) -> None:
    """One real run of the target, outside any request (as the scheduler runs it), on a
    workbook with one new Chinese row."""
    from openpyxl import Workbook

    from sync.backends import XlsxBackend
    from sync.runner import run

    with app.app_context():
        target = db.session.get(SyncTarget, target_id)
        book = Workbook()
        book.active.title = "客户"
        book.active.append(["客户编号", "客户名称", "联系人姓名", "联系方式"])
        book.active.append(["", "苏州新材料科技有限公司", "陈静", "13912345678"])
        book.save(target.location)
        run(target, XlsxBackend(Path(target.location), "客户"))
        db.session.remove()


def data_values(app: Any, extra: Iterable[str] = ()) -> dict[str, set[str]]:
    """Texts that are data, never UI, by the URL prefix of the pages that show them ("" =
    every page): people, departments and roles everywhere; file names and paths; on FAB's
    security screens the permission and view-menu identifiers; on a dictionary's screens
    its codes, English labels and aliases."""
    found: set[str] = set(extra)
    data: dict[str, set[str]] = {"": found}
    with app.app_context():
        for user in db.session.scalars(select(CrmUser)):
            found |= {user.username, user.first_name, user.last_name, user.email, f"{user.first_name} {user.last_name}"}
        found |= set(db.session.scalars(select(Department.name))) | set(db.session.scalars(select(Role.name)))
        for model, columns in ((SyncTarget, ("location", "cron")), (TransferSchedule, ("path", "cron")),
                               (TransferJob, ("filename", "stored_path"))):
            for row in db.session.execute(select(*(getattr(model, c) for c in columns))):
                found |= {value for value in row if value}
        security = set(db.session.scalars(select(ViewMenu.name)))
        for name in db.session.scalars(select(Permission.name)):
            security |= {name, name.replace("_", " ")}
        for prefix in SECURITY_SCREENS:
            data[prefix] = security
        # A target's mapping is written "header = field" with the import fields' identifiers.
        data["/synctargetview/"] = {f.name for spec in import_columns.MODELS.values() for f in spec.fields}
        for view in appbuilder.baseviews:
            model = getattr(getattr(view, "datamodel", None), "obj", None)
            if model in (*DICTIONARIES, Stage):
                data[view.route_base + "/"] = {v for e in db.session.scalars(select(model))
                                               for v in (e.code, e.label_en, *e.alias_list,
                                                         *getattr(e, "required_list", ()))}
        # The company page offers the IANA zone names (identifiers, the same in every language).
        from app.services import company

        data["/company/"] = {str(label) for label in company.zone_options().values()} | set(company.zone_options())
        # The stage screen lists the opportunity field names an admin types as required fields.
        for prefix in ("/stageview/", "POST /stageview/"):
            data[prefix] = data.get(prefix, set()) | set(REQUIRABLE)
        db.session.remove()
    return {prefix: {v.strip() for v in values if v and v.strip()} for prefix, values in data.items()}


# --- the walk ------------------------------------------------------------------------

def _first_pk(app: Any, view: Any, username: str) -> Any:
    with app.test_request_context():
        g.user = db.session.get(CrmUser, user_id(username))
        _, items = view.datamodel.query(view._base_filters, page_size=1)
        pk = view.datamodel.get_pk_value(items[0]) if items else None
        db.session.remove()
        return pk


def _job_ids(app: Any, kind: str) -> list[int]:
    with app.app_context():
        ids = list(db.session.scalars(select(TransferJob.id).where(TransferJob.kind == kind)))
        db.session.remove()
        return ids


def _fill(rule: str, name: str, value: Any) -> str:
    return re.sub(rf"<(?:\w+:)?{name}>", str(value), rule)


def page_urls(app: Any, username: str, world: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(method, url) of every page of every registered screen: each GET route with its
    arguments filled from the world, and each add form posted empty (its error messages)."""
    rules = list(app.url_map.iter_rules())
    args = {"job_id": {"ImportView": _job_ids(app, "import"), "ExportView": _job_ids(app, "export")},
            "version": {"SwaggerView": ["v1"]}}
    for view in appbuilder.baseviews:
        if isinstance(view, ModelRestApi):
            continue
        pk = _first_pk(app, view, username) if isinstance(view, BaseCRUDView) else None
        for rule in rules:
            view_name, _, endpoint = rule.endpoint.rpartition(".")
            if view_name != view.endpoint or endpoint in SKIP_ENDPOINTS:
                continue
            if endpoint == "add" and "POST" in rule.methods:
                yield "POST", rule.rule
            if "GET" not in rule.methods:
                continue
            if not rule.arguments:
                yield "GET", rule.rule
            elif rule.arguments == {"pk"} and pk is not None:
                yield "GET", _fill(rule.rule, "pk", pk)
            elif len(rule.arguments) == 1:
                (name,) = rule.arguments
                yield from (("GET", _fill(rule.rule, name, v)) for v in args.get(name, {}).get(view.endpoint, []))
    customer = world["customer"]
    yield from (("GET", f"/customerview/show/{customer}"),
                *(("GET", f"/customerview/show/{customer}?tab={tab}")
                  for tab in ("contacts", "activities", "opportunities", "tickets", "demands", "feedback")),
                ("GET", f"/followupview/add?_flt_0_customer={customer}"),
                ("GET", "/customerview/list/?q=华东"), ("GET", f"/duplicates/review?ids={customer},{world['twin']}"),
                ("POST", f"/customerview/reveal/{customer}"), ("GET", "/no-such-page"))


def walk(app: Any, client: Any, auth: Any, username: str, world: dict[str, Any], tmp_path: Path) -> Checker:
    auth.login(username)
    client.get("/lang/zh")
    checker = Checker(zh_catalogue(app), data_values(app, [str(tmp_path)]))
    for method, url in dict.fromkeys(page_urls(app, username, world)):
        checker.check(client, url, method, data={} if method == "POST" else None)
    return checker


def test_every_admin_page_in_chinese_shows_no_english(app: Any, client: Any, auth: Any, zh_world: Any,
                                                      tmp_path: Path) -> None:
    import_dry_run(app, "admin", tmp_path)
    failed_import(app, "admin")
    sync_run(app, zh_world["target"])
    scheduled_import(app, tmp_path / "导入")
    checker = walk(app, client, auth, "admin", zh_world, tmp_path)
    assert checker.pages > 120
    assert checker.problems == [], "\n".join(checker.problems)


def test_every_rep_page_in_chinese_shows_no_english(app: Any, client: Any, auth: Any, zh_world: Any,
                                                    tmp_path: Path) -> None:
    import_dry_run(app, REP, tmp_path)
    checker = walk(app, client, auth, REP, zh_world, tmp_path)
    assert checker.pages > 30
    assert checker.problems == [], "\n".join(checker.problems)


def test_login_and_error_pages_in_chinese_show_no_english(app: Any, client: Any) -> None:
    from flask import session
    from werkzeug.exceptions import Forbidden, NotFound, TooManyRequests

    from views import errors

    checker = Checker(zh_catalogue(app), data_values(app))
    client.get("/lang/zh")
    checker.check(client, "/login/")
    checker.check(client, "/login/", "POST", data={"username": "admin", "password": "wrong"},
                  follow_redirects=True)
    for exc in (Forbidden(), NotFound(), TooManyRequests(retry_after=30)):
        with app.test_request_context("/customerview/list/"):
            session["locale"] = "zh"
            app.preprocess_request()
            checker.check_html(f"error {exc.code}", errors.error_page(exc).get_data(as_text=True))
    assert checker.pages == 5
    assert checker.problems == [], "\n".join(checker.problems)


def test_authenticator_pages_in_chinese_show_no_english(app: Any, client: Any, auth: Any, totp: Any,
                                                         monkeypatch: pytest.MonkeyPatch, make_customer: Any) -> None:
    """Enrolment (password, QR code, wrong code, recovery codes), the authenticator page,
    the step-up page of a sensitive action and the code page after the password."""
    import pyotp

    from views.security import ENROL_SECRET

    pk = make_customer(REP, name="华东精密机械有限公司", contact_name="王伟")
    checker = Checker(zh_catalogue(app), data_values(app))
    auth.login("admin")
    client.get("/lang/zh")
    checker.check(client, "/totp/enrol")
    checker.check(client, "/totp/enrol", "POST", data={"password": "wrong"})
    checker.check(client, "/totp/enrol", "POST", data={"password": PASSWORD}, follow_redirects=True)
    checker.check(client, "/totp/enrol", "POST", data={"code": "000000"})
    with client.session_transaction() as session:
        secret = session[ENROL_SECRET]
    totp.advance()
    checker.check(client, "/totp/enrol", "POST", data={"code": pyotp.TOTP(secret).at(totp.now)})
    checker.check(client, "/totp/")
    checker.check(client, f"/customerview/reveal/{pk}", "POST")
    auth.logout()
    monkeypatch.setitem(app.config, "TOTP_AT_LOGIN", "enrolled")
    client.get("/lang/zh")
    auth.login("admin")
    checker.check(client, "/totp/login")
    checker.check(client, "/totp/login", "POST", data={"code": "000000"})
    assert checker.pages == 9
    assert checker.problems == [], "\n".join(checker.problems)


# --- stored messages are shown in the reader's language ------------------------------

@pytest.mark.parametrize("written_in, read_in", [(None, "zh"), ("zh", "en")])
def test_import_messages_are_shown_in_the_readers_language(app: Any, client: Any, auth: Any, tmp_path: Path,
                                                            written_in: str | None, read_in: str) -> None:
    """A job's row errors, outcome headings and failure are read later, by anyone: they
    must read in the reader's language, whoever ran the job and in whatever language.
    ``written_in`` None: the background pool (no request: the default locale)."""
    previewed = import_dry_run(app, "admin", tmp_path, written_in)
    failed = failed_import(app, "admin")
    auth.login("admin")
    client.get(f"/lang/{read_in}")
    pages = {url: client.get(url).get_data(as_text=True) for url in (f"/imports/{previewed}", f"/imports/{failed}")}
    if read_in == "zh":
        checker = Checker(zh_catalogue(app), data_values(app, [str(tmp_path)]))
        for url, html in pages.items():
            checker.check_html(url, html)
        assert checker.problems == [], "\n".join(checker.problems)
    else:
        shown = [t for html in pages.values() for t in parse(html).texts]
        names = {language["name"] for language in app.config["LANGUAGES"].values()}
        chinese = [t for t in _collapse(shown) if CJK.search(t) and t.strip("- ") not in names
                   and not re.search("客户|杭州|坏行|周杰", t)]
        assert chinese == []


def test_sync_run_message_is_shown_in_the_readers_language(app: Any, client: Any, auth: Any,
                                                           zh_world: Any, tmp_path: Path) -> None:
    """The run log and the target's last result are written by the scheduler (no request)."""
    sync_run(app, zh_world["target"])
    auth.login("admin")
    client.get("/lang/zh")
    checker = Checker(zh_catalogue(app), data_values(app, [str(tmp_path)]))
    for url in ("/syncrunview/list/", f"/synctargetview/show/{zh_world['target']}"):
        checker.check(client, url)
    assert checker.problems == [], "\n".join(checker.problems)


# --- the audit log and the customer history name their own time and source -----------

def test_audit_log_and_history_say_time_and_source_not_follow_up_time_or_lead_source(
        app: Any, client: Any, auth: Any, zh_world: Any) -> None:
    """An audit entry's time is 时间 and its origin 来源: the follow-up's time (跟进时间) and
    the customer's lead source (信息来源) are other things with their own msgids."""
    auth.login("admin")
    client.get("/lang/zh")
    with app.app_context():
        from app.models import AuditLog

        entry = db.session.scalars(select(AuditLog.id).where(AuditLog.object_type == "Customer")).first()
    for url, part in (("/auditlogview/list/", None), (f"/auditlogview/show/{entry}", None),
                      (f"/customerview/show/{zh_world['customer']}?tab=history", 'id="record-history"')):
        html = client.get(url).get_data(as_text=True)
        if part:  # the customer page: its history table (the follow-up list has a 跟进时间 column)
            html = html[html.index(part):]
            html = html[:html.index("</table>")]
        headings = _collapse(re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<th\b[^>]*>(.*?)</th>", html, re.S))
        assert "时间" in headings and "来源" in headings, (url, headings)
        assert "跟进时间" not in headings and "信息来源" not in headings, (url, headings)


# --- texts FAB's scripts show in the browser -----------------------------------------

def _fab_script_texts() -> set[str]:
    """English texts FAB's own scripts show (ab_alert messages, select2 placeholders):
    capitalised words and spaces, as written in ab.js and ab_actions.js."""
    found = set()
    for path in FAB_JS.glob("ab*.js"):
        found |= {t for t in js_texts([path.read_text(encoding="utf-8")]) if re.fullmatch(r"[A-Z][a-z]+(?: [A-Za-z]+)*", t)}
    return found


def _select2_messages() -> list[str]:
    """The message names of select2's English language (the ones it may show)."""
    source = (FAB_JS / "select2" / "select2.min.js").read_text(encoding="utf-8")
    start = source.index('define("select2/i18n/en"')
    return re.findall(r"(\w+):function", source[start:source.index("define(", start + 10)])


def test_browser_texts_cover_fab_scripts_and_widgets_in_chinese(app: Any, client: Any, auth: Any,
                                                                 make_customer: Any) -> None:
    """The confirmation and alert dialogs' buttons, ab_alert's messages, select2's
    placeholder and messages, the date picker's words and the progress bar's estimate are
    Chinese on a zh page (tests/browser/test_zh_dialogs.py shows them in a browser)."""
    pk = make_customer(REP, name="华东精密机械有限公司", contact_name="王伟")
    auth.login("admin")
    client.get("/lang/zh")
    html = client.get(f"/customerview/show/{pk}").get_data(as_text=True)  # FAB's show widget includes the dialogs again
    page = parse(html)
    texts = json.loads(page.data["crm-browser-texts"])
    assert texts["locale"] == "zh" and 'src="/static/crm/i18n.js"' in html
    assert client.get("/static/crm/i18n.js").status_code == 200
    fab = _fab_script_texts()
    assert {"No row selected", "Select a State"} <= fab  # the scan still finds FAB's texts
    assert fab <= set(texts["alerts"]) | set(texts["placeholders"])
    assert set(_select2_messages()) <= set(texts["select2"])
    assert {"today", "clear", "titleFormat"} <= set(texts["datepicker"])
    checker = Checker(zh_catalogue(app), {"": set()})
    for group in ("alerts", "placeholders", "select2", "datepicker"):
        for key, text in texts[group].items():
            reason = checker.english(text.replace("{n}", "3"), []) if key != "titleFormat" else None
            if reason or not CJK.search(text):
                checker.add(text, reason or "not Chinese", f"browser texts {group}.{key}")
    dialogs = _collapse(parse(html[html.index('<div class="modal fade" id="modal-confirm"'):
                                   html.index("<header")]).texts)
    assert "取消" in dialogs and "确定" in dialogs and "Cancel" not in dialogs and "OK" not in dialogs
    assert html.count('id="crm-browser-texts"') == 1
    with app.app_context():  # the progress bar's time estimate (crm/progress_script.html)
        job = TransferJob(kind="export", model="customer", user_id=user_id("admin"), filename="客户.xlsx",
                          status="running", total_rows=50000)
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    estimate = [lit for code in parse(client.get(f"/exports/{job_id}").get_data(as_text=True)).js
                for lit in re.findall(r'var left = ("[^"]*")', code)]
    assert len(estimate) == 1 and CJK.search(json.loads(estimate[0])), estimate
    assert checker.problems == [], "\n".join(checker.problems)


def test_every_catalogue_string_is_closed_and_compiled_as_written() -> None:
    """A ``.po`` string left without its closing quote is read by pybabel without a word, with
    its last character lost: the screen's text then misses the catalogue and shows in English
    (found: "Invalid page or page size ... rows." lost its "."). Every string line is closed, and
    the committed ``.mo`` holds each msgid exactly as the ``.po`` writes it."""
    from babel.messages.mofile import read_mo

    for po in (Path(BASE_DIR) / "app" / "translations").glob("*/LC_MESSAGES/messages.po"):
        lines = po.read_text(encoding="utf-8").splitlines()
        unclosed = [(n, line) for n, line in enumerate(lines, 1)
                    if re.match(r'(msgctxt|msgid|msgid_plural|msgstr(\[\d+\])?)? ?"', line) and not line.endswith('"')]
        assert unclosed == [], po
        with po.with_suffix(".mo").open("rb") as handle:
            compiled = {m.id for m in read_mo(handle) if m.id and m.string}
        with po.open("rb") as handle:
            written = {m.id for m in read_po(handle) if m.id and m.string and not m.fuzzy}
        assert written == compiled, sorted(map(str, written ^ compiled))[:5]
