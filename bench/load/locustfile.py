"""The demo roles at work, for locust (started headless by bench/load/run.py).

Each simulated user signs in as one of the demo accounts and then, with 1-3 s between
clicks: browses the customer list (a random page of what it may see), opens customers
from it, and (sales people) saves a follow-up through the add form and now and then runs
a small import (upload, dry run, commit, progress polls). Request names are the pages
(``customer list``, ``customer show``...), as the figures in BENCHMARKS.md list them.
A page that answers an unexpected status counts as an error. The figures start
``LOAD_SETTLE_SECONDS`` after every user has started (the sign-ins are not the load measured).
"""

from __future__ import annotations

import io
import itertools
import os
import random
import re
import time
from html.parser import HTMLParser
from typing import Any

import gevent
from locust import HttpUser, between, events, task
from openpyxl import Workbook

PASSWORD = "Demo-Pass-2024"
HEADERS = ["客户编号", "客户名称", "所属行业", "联系人姓名", "联系方式", "客户地址", "客户等级", "信息来源", "备注"]
IMPORT_ROWS = 20
_uploads = itertools.count(1)
_run_tag = random.randrange(10_000, 99_999)


@events.init.add_listener
def _settle_then_measure(environment: Any, **_: Any) -> None:
    """Figures start ``LOAD_SETTLE_SECONDS`` after the last user started: every user has
    signed in (a deliberately slow password hash) and the queue of sign-ins has drained."""
    settle = float(os.environ.get("LOAD_SETTLE_SECONDS", "0"))

    def reset(**_: Any) -> None:
        gevent.spawn_later(settle, environment.runner.stats.reset_all)

    if settle:
        environment.events.spawning_complete.add_listener(reset)


class FormFields(HTMLParser):
    """The fields a browser would submit from a page's model form (inputs, checked boxes,
    selected options, text areas)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                self.fields[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
            self.fields.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


def form_of(html: str) -> dict[str, str]:
    parser = FormFields()
    parser.feed(html)
    return parser.fields


def workbook() -> bytes:
    """A small customer workbook with names and phones no other upload of this run has."""
    n = next(_uploads)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("客户信息")
    sheet.append(HEADERS)
    for row in range(IMPORT_ROWS):
        key = (_run_tag * 1000 + n) * 100 + row
        sheet.append(["", f"负载导入{key}有限公司", "软件开发", f"导入联系人{row}", f"135{key % 10**8:08d}", "", "一般",
                      "展会推广", ""])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class Demo(HttpUser):
    abstract = True
    wait_time = between(1, 3)
    usernames: tuple[str, ...] = ()
    writes = False

    def on_start(self) -> None:
        self.customers: list[str] = []
        self.csrf = ""
        self.page("/login/", "login form")
        with self.client.post("/login/", {"username": random.choice(self.usernames), "password": PASSWORD,
                                          "csrf_token": self.csrf}, name="login", allow_redirects=False,
                              catch_response=True) as answer:
            if answer.status_code != 302 or "/login" in answer.headers.get("Location", ""):
                answer.failure(f"login refused: {answer.status_code}")
        self.customer_list()

    def page(self, path: str, name: str) -> Any:
        """GET a page (200 expected); keeps the form's CSRF token."""
        with self.client.get(path, name=name, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code}")
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', answer.text or "")
            if token:
                self.csrf = token.group(1)
            return answer

    @task(8)
    def customer_list(self) -> None:
        page = random.randrange(0, 20)
        answer = self.page(f"/customerview/list/?page_CustomerView={page}", "customer list")
        ids = re.findall(r"/customerview/show/(\d+)", answer.text or "")
        if ids:
            self.customers = sorted(set(ids))

    @task(8)
    def customer_show(self) -> None:
        if self.customers:
            self.page(f"/customerview/show/{random.choice(self.customers)}", "customer show")

    @task(2)
    def follow_up(self) -> None:
        if not self.writes or not self.customers:
            return
        url = f"/followupview/add?_flt_0_customer={random.choice(self.customers)}"
        fields = form_of(self.page(url, "follow-up add form").text or "")
        fields.update({"content": "负载测试: 电话沟通报价", "csrf_token": self.csrf})
        with self.client.post(url, fields, name="follow-up save", allow_redirects=False,
                              catch_response=True) as answer:
            if answer.status_code != 302:
                answer.failure(f"not saved: {answer.status_code}")

    @task(1)
    def run_import(self) -> None:
        if not self.writes or random.random() > 0.3:
            return
        self.page("/imports/", "import page")
        with self.client.post("/imports/upload", {"model": "customer", "csrf_token": self.csrf},
                              files={"file": ("load.xlsx", workbook())}, name="import upload",
                              allow_redirects=False, catch_response=True) as answer:
            found = re.search(r"/imports/(\d+)", answer.headers.get("Location", ""))
            if answer.status_code != 302 or not found:
                answer.failure(f"upload refused: {answer.status_code}")
                return
        job = found.group(1)
        fields = form_of(self.page(f"/imports/{job}/mapping", "import mapping").text or "")
        mapping = {k: v for k, v in fields.items() if k.startswith("map_")}
        self.post_redirect(f"/imports/{job}/mapping", {**mapping, "mode": "create", "key": "code"}, "import dry run")
        if self.wait_for(job, "previewed"):
            self.post_redirect(f"/imports/{job}/commit", {}, "import commit")
            self.wait_for(job, "done")

    def post_redirect(self, path: str, data: dict[str, str], name: str) -> None:
        with self.client.post(path, {**data, "csrf_token": self.csrf}, name=name, allow_redirects=False,
                              catch_response=True) as answer:
            if answer.status_code != 302:
                answer.failure(f"{answer.status_code}")

    def wait_for(self, job: str, status: str, timeout: float = 60) -> bool:
        """Poll the job's progress (1 s apart) until ``status``; a failure after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.client.get(f"/imports/{job}/progress", name="import progress", catch_response=True) as answer:
                state = answer.json().get("status") if answer.status_code == 200 else None
                if state == "failed":
                    answer.failure(f"import {job} failed: {answer.text[:200]}")
                    return False
            if state == status:
                return True
            time.sleep(1)
        self.environment.events.request.fire(request_type="JOB", name=f"import {status}", response_time=timeout * 1000,
                                             response_length=0, exception=TimeoutError(job), context={})
        return False


class SalesRep(Demo):
    weight = 3
    usernames = ("rep1", "rep2", "rep3")
    writes = True


class SalesManager(Demo):
    weight = 1
    usernames = ("manager",)
    writes = True


class CustomerService(Demo):
    weight = 1
    usernames = ("service",)
