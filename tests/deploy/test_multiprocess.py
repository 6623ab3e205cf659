"""The product as a multi-process deployment (issue 20): gunicorn with 3 workers, 2 task
workers (``flask crm worker``) and 2 schedulers (``flask crm scheduler``) on loopback, a
fresh PostgreSQL database and a real Redis (fixture ``deployment``, tests/deploy/conftest.py).

The tests share one deployment and run in file order (the scheduled jobs are switched on
first and counted near the end, so the waiting for minute ticks overlaps the other tests):

0. the health endpoints a load balancer asks;
1. an import over HTTP: progress polled through every web worker, rows in == rows out,
   the job ran once;
2. the login budget holds across web workers (Redis counters);
3. a task worker killed mid-import: the job is taken up again, no row lost, none twice;
4. a sync target and a transfer schedule due every minute run once a minute with two
   schedulers up;
5. killing the active scheduler hands over to the stand-by, which runs the next tick.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from tests.deploy.conftest import LEASE_SECONDS, STANDBY_SECONDS
from tests.deploy.stack import Browser, Deployment, Process

HEADERS = ["客户编号", "客户名称", "所属行业", "联系人姓名", "联系方式", "客户地址", "客户等级", "信息来源", "备注"]
SYNC_TARGET = "团队客户表 Team sheet (demo)"
SCHEDULE = "deploy drop folder"


# -- helpers ----------------------------------------------------------------------------------
def write_workbook(path: Path, tag: str, rows: int) -> Path:
    """``rows`` customers in the manual's template shape, names and phones unique per ``tag`` (one digit)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("客户信息")
    sheet.append(HEADERS)
    for n in range(rows):
        sheet.append(["", f"部署{tag}科技有限公司{n:06d}", "软件开发", f"联系人{n % 500}", f"13{tag}{n:08d}",
                      f"上海市浦东新区{n}号", "一般", "展会推广", ""])
    workbook.save(path)
    return path


def login(stack: Deployment, username: str) -> Browser:
    browser = Browser(stack.base_url)
    answer = browser.login(username)
    assert answer.status_code == 302 and "/login" not in answer.headers.get("Location", ""), \
        f"{username} could not log in: {answer.status_code} {answer.text[:300]}"
    return browser


def upload(browser: Browser, path: Path) -> int:
    """Upload a workbook on the import page; the new job's id."""
    browser.get("/imports/")
    with path.open("rb") as handle:
        answer = browser.post("/imports/upload", {"model": "customer"}, files={"file": (path.name, handle)})
    match = re.search(r"/imports/(\d+)", answer.headers.get("Location", ""))
    assert answer.status_code == 302 and match, f"upload refused: {answer.status_code} {answer.text[:500]}"
    return int(match.group(1))


def start_dry_run(browser: Browser, job_id: int) -> None:
    """Confirm the proposed mapping (as the browser submits the page's selected options)."""
    page = browser.get(f"/imports/{job_id}/mapping").text
    form = {}
    for name, body in re.findall(r'<select name="(map_\d+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        form[name] = chosen.group(1) if chosen else ""
    assert "name" in form.values() and "contact_phone" in form.values(), f"mapping not proposed: {form}"
    answer = browser.post(f"/imports/{job_id}/mapping", {**form, "mode": "create", "key": "code"})
    assert answer.status_code == 302, f"dry run not started: {answer.status_code} {answer.text[:500]}"


def commit(browser: Browser, job_id: int) -> None:
    browser.get(f"/imports/{job_id}")
    answer = browser.post(f"/imports/{job_id}/commit")
    assert answer.status_code == 302, f"commit refused: {answer.status_code}"


class Poller:
    """Polls ``/imports/<id>/progress`` from several threads at once (a sync gunicorn worker
    answers one request at a time, so concurrent polls reach different workers); every
    answer is kept with its probe id, which the access log ties to the worker's pid."""

    def __init__(self, stack: Deployment, browser: Browser, job_id: int, prefix: str, threads: int = 4) -> None:
        self.stack, self.browser, self.job_id, self.prefix = stack, browser, job_id, prefix
        self.threads = threads
        self.samples: list[tuple[float, str, dict[str, Any]]] = []
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _poll(self, number: int) -> None:
        browser = self.browser.clone()
        count = 0
        while not self._stop.is_set():
            probe = f"{self.prefix}-{number}-{count}"
            count += 1
            try:
                answer = browser.get(f"/imports/{self.job_id}/progress", probe=probe)
                data = answer.json() if answer.status_code == 200 else None
            except (ValueError, OSError) as exc:
                data, answer = None, exc
            with self._lock:
                if data is None:
                    self.problems.append(f"{probe}: {getattr(answer, 'status_code', answer)}")
                else:
                    self.samples.append((time.monotonic(), probe, data))
            time.sleep(0.05)

    def run_until(self, statuses: set[str], timeout: float) -> dict[str, Any]:
        """Poll until the job reaches one of ``statuses`` (the last answer), or fail after ``timeout`` s."""
        workers = [threading.Thread(target=self._poll, args=(n,), daemon=True) for n in range(self.threads)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        try:
            while time.monotonic() < deadline:
                with self._lock:
                    if self.samples:
                        last = max(self.samples, key=lambda s: s[0])[2]
                if last.get("status") in statuses:
                    return last
                if last.get("status") == "failed":
                    break
                time.sleep(0.2)
        finally:
            self._stop.set()
            for worker in workers:
                worker.join(timeout=70)
        pytest.fail(f"job {self.job_id} did not reach {statuses} in {timeout:.0f} s; last progress {last}; "
                    f"poll problems {self.problems[:5]}\n{self.stack.logs('worker1', 'worker2')}")

    def by_worker(self) -> dict[int, list[dict[str, Any]]]:
        """Answers grouped by the pid of the gunicorn worker that gave them."""
        time.sleep(0.3)  # the access log line is written after the answer
        pids = self.stack.access_pids(self.prefix + "-")
        grouped: dict[int, list[dict[str, Any]]] = {}
        for _at, probe, data in sorted(self.samples):
            if probe in pids:
                grouped.setdefault(pids[probe], []).append(data)
        return grouped


def count(stack: Deployment, query: str, *params: Any) -> int:
    return int(stack.sql(query, params)[0][0])


def imported(stack: Deployment, tag: str) -> tuple[int, int]:
    """(customers, distinct names) from the workbook written with ``tag``."""
    rows = stack.sql("SELECT count(*), count(DISTINCT name) FROM customer WHERE name LIKE %s", [f"部署{tag}科技%"])
    return int(rows[0][0]), int(rows[0][1])


def job_row(stack: Deployment, job_id: int) -> dict[str, Any]:
    rows = stack.sql("SELECT status, total_rows, processed_rows, created, rejected, error, attempts "
                     "FROM transfer_job WHERE id = %s", [job_id])
    return dict(zip(("status", "total", "processed", "created", "rejected", "error", "attempts"), rows[0],
                    strict=True))


def scheduler_holding_lock(stack: Deployment) -> Process | None:
    """The scheduler process whose database connection holds an advisory lock (the active one)."""
    key = int.from_bytes(b"crmsched", "big")  # app.scheduler.ADVISORY_KEY, split as pg_locks shows it
    backends = stack.sql("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = %s "
                         "AND objid::bigint = %s AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                         [key >> 32, key & 0xFFFFFFFF])
    for (backend,) in backends:
        owner = stack.owner_of_backend(backend)
        if owner is not None and owner.name.startswith("scheduler"):
            return owner
    return None


def wait_for(what: str, check: Any, timeout: float, stack: Deployment, *logs: str, every: float = 0.5) -> Any:
    """``check()``'s first true value within ``timeout`` s (tried ``every`` s), else a failure naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{stack.logs(*logs)}")


def scheduled_sync_runs(stack: Deployment) -> list[datetime]:
    rows = stack.sql("SELECT r.started_at FROM sync_run r JOIN sync_target t ON t.id = r.target_id "
                     "WHERE t.name = %s AND r.trigger = 'schedule' ORDER BY r.started_at", [SYNC_TARGET])
    return [row[0] for row in rows]


# -- the scheduled jobs: switched on at once, counted in tests 4 and 5 --------------------------
@pytest.fixture(scope="module")
def scheduled(deployment: Deployment) -> dict[str, Any]:
    """The demo's sync target enabled every minute, and a folder import every minute with one
    workbook dropped in its folder; returns when they were switched on and the folder."""
    folder = Path(deployment.env["CRM_FILES_ROOT"]) / "drop"
    folder.mkdir()
    write_workbook(folder / "dropped.xlsx", "7", 50)
    deployment.sql("UPDATE sync_target SET enabled = true, cron = '* * * * *' WHERE name = %s", [SYNC_TARGET])
    deployment.sql("INSERT INTO transfer_schedule (name, kind, model, cron, path, mode, run_as_id, enabled) "
                   "SELECT %s, 'folder_import', 'customer', '* * * * *', %s, 'upsert', id, true "
                   "FROM ab_user WHERE username = 'manager'", [SCHEDULE, str(folder)])
    return {"since": datetime.now(UTC), "folder": folder}


# -- 0. what the load balancer asks ------------------------------------------------------------
def test_health_endpoints_answer_for_the_load_balancer(deployment: Deployment) -> None:
    live = Browser(deployment.base_url).get("/health/live")
    assert live.status_code == 200 and "Set-Cookie" not in live.headers, f"/health/live: {live.status_code}"
    ready = Browser(deployment.base_url).get("/health/ready")
    assert ready.status_code == 200, f"/health/ready: {ready.status_code} {ready.text[:300]}"
    checks = ready.json()["checks"]
    assert {"database", "redis"} <= set(checks) and set(checks.values()) == {"ok"}, checks


# -- 1. import with progress from every worker ------------------------------------------------
def test_import_progress_is_seen_from_every_web_worker_and_the_job_runs_once(
        deployment: Deployment, scheduled: dict[str, Any], tmp_path: Path) -> None:
    rows = 4000
    browser = login(deployment, "rep1")
    job_id = upload(browser, write_workbook(tmp_path / "customers-1.xlsx", "1", rows))
    start_dry_run(browser, job_id)
    dry_run = Poller(deployment, browser, job_id, "dry")
    assert dry_run.run_until({"previewed"}, timeout=120)["processed"] == rows
    commit(browser, job_id)
    poller = Poller(deployment, browser, job_id, "imp")
    final = poller.run_until({"done"}, timeout=180)

    assert final["processed"] == final["total"] == rows and final["created"] == rows, f"final progress {final}"
    assert not poller.problems and not dry_run.problems, f"failed polls: {poller.problems + dry_run.problems}"
    # Every web worker answered polls and saw the job's progress as it went, in the dry run
    # (which commits nothing until it ends) and in the import: a worker that knew only its
    # own memory would have shown 0 for a job run elsewhere.
    workers = deployment.web_worker_pids()
    for phase, answers in (("dry run", dry_run.by_worker()), ("import", poller.by_worker())):
        assert set(answers) == workers, \
            f"{phase}: polls answered by workers {sorted(answers)}, the web workers are {sorted(workers)}"
        for worker, seen in answers.items():
            midway = [a["processed"] for a in seen if a["status"] == "running" and 0 < a["processed"] < rows]
            assert midway, f"{phase}: worker {worker} never showed progress mid-way: " \
                           f"{[(a['status'], a['processed']) for a in seen]}"

    # Rows in the database == rows in the file, each once; the job ran once.
    assert imported(deployment, "1") == (rows, rows), "customers stored (all, distinct names) != rows in the file"
    assert job_row(deployment, job_id)["status"] == "done"
    assert count(deployment, "SELECT count(*) FROM audit_log WHERE action = 'import' AND object_id = %s",
                 str(job_id)) == 1, "the import's audit entry was written more than once (the job ran twice?)"
    assert count(deployment, "SELECT count(*) FROM audit_log a JOIN customer c ON a.object_id = c.id::text "
                 "AND a.object_type = 'Customer' WHERE a.action = 'create' AND c.name LIKE %s",
                 "部署1科技%") == rows, "each imported customer should be audited once"


# -- 2. the login limit across workers ---------------------------------------------------------
def test_wrong_passwords_spread_over_the_workers_share_one_budget(deployment: Deployment) -> None:
    browser = Browser(deployment.base_url)
    browser.get("/login/")
    answers: dict[str, int] = {}

    def wrong(number: int) -> None:
        own = browser.clone()
        answers[f"bad-{number}"] = own.post("/login/", {"username": "rep2", "password": f"guess-{number}"},
                                            probe=f"bad-{number}").status_code

    attempts = [threading.Thread(target=wrong, args=(n,)) for n in range(5)]  # at once: several workers answer
    for attempt in attempts:
        attempt.start()
    for attempt in attempts:
        attempt.join(timeout=60)
    assert sorted(answers.values()) == [302] * 5, f"wrong passwords were not simply refused: {answers}"
    time.sleep(0.3)
    workers = set(deployment.access_pids("bad-").values())
    assert len(workers) >= 2, f"the 5 attempts all reached worker(s) {workers}; the test needs them spread"

    # The budget (5 per 15 minutes per account and address) is spent: the right password is
    # refused too, whichever worker answers, as it is with a single worker.
    for number in range(3):
        right = Browser(deployment.base_url)
        right.get("/login/")
        answer = right.post("/login/", {"username": "rep2", "password": "Demo-Pass-2024"}, probe=f"right-{number}")
        assert answer.status_code == 429 and "Too many wrong passwords" in answer.text, \
            f"attempt {number} after the budget was spent: {answer.status_code}"


# -- 3. a task worker killed mid-import --------------------------------------------------------
def claiming_worker(stack: Deployment, job_id: int) -> Process | None:
    """The task worker whose process claimed the job (``claimed_by`` is ``host:pid/token``)."""
    claimed = stack.sql("SELECT claimed_by FROM transfer_job WHERE id = %s", [job_id])[0][0] or ""
    match = re.match(r"[^/]*:(\d+)/", claimed)
    if not match:
        return None
    pid = int(match.group(1))
    return next((p for name, p in stack.processes.items() if name.startswith("worker") and pid in p.group_pids()),
                None)


def sweep(stack: Deployment) -> list[int]:
    """Run the re-queue sweep once, as the scheduler's minute tick would (in a fresh process)."""
    out = stack.python("from app import create_app\n"
                       "from app.services.tasks import requeue_stalled\n"
                       "with create_app().app_context(): print(requeue_stalled())")
    return [int(n) for n in re.findall(r"\d+", out.strip().splitlines()[-1])]


def test_a_task_worker_killed_mid_import_loses_no_row_and_imports_none_twice(
        deployment: Deployment, tmp_path: Path) -> None:
    rows = 6000
    browser = login(deployment, "rep1")
    job_id = upload(browser, write_workbook(tmp_path / "customers-2.xlsx", "2", rows))
    start_dry_run(browser, job_id)
    Poller(deployment, browser, job_id, "dry2").run_until({"previewed"}, timeout=150)
    commit(browser, job_id)
    wait_for("the import running with a chunk or more done",
             lambda: (lambda j: j["status"] == "running" and 0 < j["processed"] < rows * 0.6)(job_row(deployment, job_id)),
             60, deployment, "worker1", "worker2", every=0.1)
    victim = claiming_worker(deployment, job_id)
    assert victim is not None, f"no task worker of ours claimed job {job_id}: " \
        f"{deployment.sql('SELECT claimed_by FROM transfer_job WHERE id = %s', [job_id])}"
    before = job_row(deployment, job_id)
    victim.kill_group()
    victim.popen.wait(timeout=10)

    # Its lease (CRM_JOB_LEASE_SECONDS) runs out; the sweep queues the job again (the one we
    # run here, or the scheduler's minute tick if it came first).
    def taken_again() -> bool:
        status, attempts, expired = deployment.sql(
            "SELECT status, attempts, lease_until < now() FROM transfer_job WHERE id = %s", [job_id])[0]
        if status != "running" or attempts > before["attempts"]:
            return True
        return bool(expired) and job_id in sweep(deployment)

    wait_for("the sweep queuing the job again", taken_again, LEASE_SECONDS * 5, deployment, "worker1", "worker2")
    final = Poller(deployment, browser, job_id, "re").run_until({"done"}, timeout=240)
    assert before["processed"] < rows, f"the worker was killed after the import finished: {before}"
    assert final["processed"] == rows and final["created"] == rows, f"after the kill: {final}"
    assert imported(deployment, "2") == (rows, rows), "rows lost or imported twice after the worker was killed"
    assert count(deployment, "SELECT count(*) FROM audit_log WHERE action = 'import' AND object_id = %s",
                 str(job_id)) == 1
    deployment.start_worker(int(victim.name.removeprefix("worker")))  # back to two for the next tests


# -- 4. scheduled jobs once a minute -----------------------------------------------------------
def test_scheduled_sync_and_transfer_run_once_a_minute_with_two_schedulers(
        deployment: Deployment, scheduled: dict[str, Any]) -> None:
    wait_for("two scheduled sync runs", lambda: len(scheduled_sync_runs(deployment)) >= 2,
             150, deployment, "scheduler1", "scheduler2", "worker1", "worker2")
    runs = scheduled_sync_runs(deployment)
    per_minute = Counter(run.replace(second=0, microsecond=0) for run in runs)
    assert max(per_minute.values()) == 1, f"the sync target ran more than once in a minute: {per_minute}"
    ended = datetime.now(UTC)
    minutes = int((ended - scheduled["since"]).total_seconds() // 60)
    assert len(runs) >= minutes - 1, f"{len(runs)} runs in {minutes} minutes"

    folder = scheduled["folder"]
    assert (folder / "done" / "dropped.xlsx").exists(), f"the dropped file was not imported: {list(folder.rglob('*'))}"
    assert count(deployment, "SELECT count(*) FROM transfer_job j JOIN transfer_schedule s ON s.id = j.schedule_id "
                 "WHERE s.name = %s", SCHEDULE) == 1, "the dropped file was imported more than once"
    assert imported(deployment, "7") == (50, 50)
    last_run = deployment.sql("SELECT last_run_at FROM transfer_schedule WHERE name = %s", [SCHEDULE])[0][0]
    assert last_run is not None and (ended - last_run).total_seconds() < 120, f"the schedule last ran at {last_run}"


# -- 5. scheduler hand-over -------------------------------------------------------------------
def test_killing_the_active_scheduler_hands_over_to_the_standby(
        deployment: Deployment, scheduled: dict[str, Any]) -> None:
    active = wait_for("a scheduler holding the lock", lambda: scheduler_holding_lock(deployment), 30,
                      deployment, "scheduler1", "scheduler2")
    standby = next(p for name, p in deployment.processes.items() if name.startswith("scheduler") and p is not active)
    assert standby.alive(), f"the stand-by scheduler died:\n{deployment.logs(standby.name)}"
    active.kill_group()
    active.popen.wait(timeout=10)
    killed_at = datetime.now(UTC)

    taken = wait_for(f"the stand-by taking the lock (CRM_SCHEDULER_STANDBY_SECONDS={STANDBY_SECONDS})",
                     lambda: scheduler_holding_lock(deployment), STANDBY_SECONDS + 10, deployment, standby.name)
    assert taken.name == standby.name
    wait_for("a scheduled sync run after the hand-over",
             lambda: any(run > killed_at for run in scheduled_sync_runs(deployment)), 75, deployment,
             standby.name, "worker1", "worker2")
    per_minute = Counter(run.replace(second=0, microsecond=0) for run in scheduled_sync_runs(deployment))
    assert max(per_minute.values()) == 1, f"a tick ran twice around the hand-over: {per_minute}"
