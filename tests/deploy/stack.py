"""A real multi-process deployment on loopback, for the deploy tests and the load test.

``Deployment`` builds a fresh PostgreSQL database on the server ``TEST_DATABASE_URL``
points at (migrated with ``flask db upgrade``, then ``flask crm init`` and ``flask crm demo``),
uses its own Redis database number on the server ``REDIS_URL`` points at (flushed first),
and starts, each in its own process group with its log in the run folder:

* gunicorn with N sync workers serving ``wsgi:app``, with an access log whose lines start
  with the answering worker's pid and the ``X-Probe`` request header (``%(p)s``, ``%({x-probe}i)s``);
* M task workers (``flask crm worker``) and K schedulers (``flask crm scheduler``).

Every setting reaches the processes through the environment, as the README's Production
section says. ``close()`` stops every process group (TERM, then KILL) and drops the database.
No pytest here: ``bench/load`` starts the same layout.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
DEMO_PASSWORD = "Demo-Pass-2024"
#: Redis database number the deployment uses on the given server (flushed at start).
REDIS_DB = 7
#: Access log line: worker pid, probe header, status, time in the worker (microseconds), request line.
ACCESS_FORMAT = '%(p)s %({x-probe}i)s %(s)s %(D)s "%(r)s"'


class StackError(RuntimeError):
    """A process of the deployment did not start or a command failed (with its log's tail)."""


def free_port() -> int:
    """A free TCP port on loopback (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_dsn(sqlalchemy_url: str, database: str) -> str:
    """A libpq URL for ``database`` on the server of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    parts = urlsplit(sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1))
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, "", ""))


def redis_db_url(redis_url: str, number: int = REDIS_DB) -> str:
    """``redis_url`` with its database number replaced by ``number``."""
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{number}", "", ""))


def tail(path: Path, chars: int = 3000) -> str:
    """The end of a log file (for failure messages)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (gunicorn's or Celery's children too)."""
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def group_pids(self) -> set[int]:
        """Every live process in this process's group (the main process and its children)."""
        pids = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.popen.pid:
                        pids.add(int(entry.name))
                except (ProcessLookupError, PermissionError):
                    continue
        return pids


@dataclass
class Deployment:
    """The processes, their shared settings and where they answer. Use ``start()``."""

    workdir: Path
    database_url: str
    redis_url: str
    web_workers: int = 3
    task_workers: int = 2
    schedulers: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    gunicorn_args: list[str] = field(default_factory=list)
    demo: bool = True
    port: int = 0
    processes: dict[str, Process] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    database: str = ""

    # -- setup -------------------------------------------------------------------------------
    def start(self) -> Deployment:
        """Create and migrate the database, then start every process; ``StackError`` if one
        does not come up (the processes started so far are stopped)."""
        try:
            self._create_database()
            self.env = self._environment()
            self._flush_redis()
            self.flask("db", "upgrade", timeout=300)
            self.flask("crm", "init", timeout=300)
            if self.demo:
                self.flask("crm", "demo", timeout=300)
            self.start_web()
            for number in range(1, self.task_workers + 1):
                self.start_worker(number)
            for number in range(1, self.schedulers + 1):
                self.start_scheduler(number)
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _create_database(self) -> None:
        self.database = f"crm_deploy_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(server_dsn(self.database_url, "postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def _environment(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        instance = self.workdir / "instance"
        files = self.workdir / "files"
        instance.mkdir(parents=True, exist_ok=True)
        files.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        sa_url = server_dsn(self.database_url, self.database).replace("postgresql://", "postgresql+psycopg://", 1)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(self.workdir)),
            "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT),
            "FLASK_APP": "app:create_app",
            "DATABASE_URL": sa_url,
            "REDIS_URL": redis_db_url(self.redis_url),
            "CRM_TASK_QUEUE": "celery",
            "SECRET_KEY": secrets.token_hex(32),
            "TOTP_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "CRM_INSTANCE_DIR": str(instance),
            "CRM_FILES_ROOT": str(files),
        }
        env.update(self.extra_env)
        return env

    def _flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.env["REDIS_URL"])
        try:
            client.flushdb()
        finally:
            client.close()

    # -- processes ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    def flask(self, *args: str, timeout: float = 120) -> str:
        """Run ``flask <args>`` with the deployment's settings; its output, or ``StackError``."""
        result = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise StackError(f"flask {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout

    def python(self, code: str, timeout: float = 120) -> str:
        """Run a Python snippet in a fresh process with the deployment's settings (for
        calling a service function on the deployment's database); its stdout."""
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise StackError(f"python snippet failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout

    def spawn(self, name: str, argv: list[str]) -> Process:
        """Start ``argv`` in its own process group, output to ``<workdir>/<name>.log``."""
        log = self.workdir / f"{name}.log"
        handle = open(log, "ab")  # noqa: SIM115 - the child keeps writing to it
        popen = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        handle.close()
        process = Process(name, popen, log)
        self.processes[name] = process
        return process

    def start_web(self) -> Process:
        argv = [sys.executable, "-m", "gunicorn", "--workers", str(self.web_workers),
                "--bind", f"127.0.0.1:{self.port}", "--access-logfile", str(self.access_log),
                "--access-logformat", ACCESS_FORMAT, "--graceful-timeout", "5", *self.gunicorn_args, "wsgi:app"]
        return self.spawn("web", argv)

    def start_worker(self, number: int) -> Process:
        return self.spawn(f"worker{number}", [sys.executable, "-m", "flask", "crm", "worker", "--concurrency", "1",
                                              "--hostname", f"worker{number}@deploy"])

    def start_scheduler(self, number: int) -> Process:
        return self.spawn(f"scheduler{number}", [sys.executable, "-m", "flask", "crm", "scheduler"])

    def logs(self, *names: str, chars: int = 2500) -> str:
        """The tails of the named processes' logs (all when none named), for failure messages."""
        chosen = names or tuple(self.processes)
        return "\n".join(f"--- {name}.log ---\n{tail(self.processes[name].log, chars)}"
                         for name in chosen if name in self.processes)

    def wait_ready(self, timeout: float = 180) -> None:
        """Until ``/health/ready`` answers 200 (``/login/`` when the app has no health
        endpoints yet); ``StackError`` when a process dies or the time is up."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            dead = [p.name for p in self.processes.values() if not p.alive()]
            if dead:
                raise StackError(f"{', '.join(dead)} exited during start-up:\n{self.logs(*dead)}")
            try:
                answer = requests.get(self.base_url + "/health/ready", timeout=5)
                if answer.status_code == 404:
                    answer = requests.get(self.base_url + "/login/", timeout=5)
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text[:300]}"
            except requests.RequestException as exc:
                last = str(exc)
            time.sleep(0.5)
        raise StackError(f"the deployment was not ready in {timeout:.0f} s (last answer: {last})\n{self.logs()}")

    def stop(self, name: str, grace: float = 10) -> None:
        """TERM the process group, KILL it after ``grace`` seconds."""
        process = self.processes.get(name)
        if process is None:
            return
        process.kill_group(signal.SIGTERM)
        try:
            process.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        process.kill_group(signal.SIGKILL)
        try:
            process.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self, grace: float = 10) -> None:
        """Stop every process group (TERM to all at once, KILL what is left after ``grace``
        seconds) and drop the database."""
        for process in self.processes.values():
            process.kill_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            process.kill_group(signal.SIGKILL)  # children a main process left behind, too
            try:
                process.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.database:
            try:
                with psycopg.connect(server_dsn(self.database_url, "postgres"), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            except psycopg.Error:
                pass
            self.database = ""

    # -- looking inside ----------------------------------------------------------------------
    def sql(self, query: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[tuple]:
        """Rows of one query on the deployment's database (its own short connection)."""
        with psycopg.connect(server_dsn(self.database_url, self.database), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def access_pids(self, probe_prefix: str) -> dict[str, int]:
        """probe id -> pid of the gunicorn worker that answered it, for probes starting with
        ``probe_prefix`` (from the access log)."""
        answered = {}
        for line in tail(self.access_log, 10_000_000).splitlines():
            parts = line.split(" ", 2)
            if len(parts) >= 2 and parts[1].startswith(probe_prefix):
                answered[parts[1]] = int(parts[0].strip("<>"))
        return answered

    def web_worker_pids(self) -> set[int]:
        """The gunicorn workers' pids (the master's children)."""
        web = self.processes["web"]
        return {pid for pid in web.group_pids() if pid != web.pid}

    def owner_of_backend(self, backend_pid: int) -> Process | None:
        """Which of our processes holds the PostgreSQL connection served by ``backend_pid``
        (matched through the connection's client port and the process's socket inodes)."""
        rows = self.sql("SELECT client_port FROM pg_stat_activity WHERE pid = %s", [backend_pid])
        if not rows or rows[0][0] is None:
            return None
        inode = _socket_inode(int(rows[0][0]))
        if inode is None:
            return None
        for process in self.processes.values():
            for pid in process.group_pids():
                if inode in _socket_inodes_of(pid):
                    return process
        return None


def _socket_inode(local_port: int) -> str | None:
    """The inode of the loopback TCP socket whose local port is ``local_port``."""
    wanted = f":{local_port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(wanted):
                return fields[9]
    return None


def _socket_inodes_of(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            match = re.fullmatch(r"socket:\[(\d+)\]", target)
            if match:
                inodes.add(match.group(1))
    except OSError:
        pass
    return inodes


class Browser:
    """One user's cookie session over plain HTTP; every request on a new connection
    (``Connection: close``), so any gunicorn worker may answer it. ``probe`` names a request
    in the access log (``Deployment.access_pids``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.csrf = ""

    def clone(self) -> Browser:
        """Another connection pool with the same cookies and CSRF token (for threads)."""
        other = Browser(self.base_url)
        other.session.cookies.update(self.session.cookies)
        other.csrf = self.csrf
        return other

    def request(self, method: str, path: str, probe: str = "-", **kwargs: Any) -> requests.Response:
        headers = {"Connection": "close", "X-Probe": probe, **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, self.base_url + path, headers=headers, **kwargs)

    def get(self, path: str, probe: str = "-", **kwargs: Any) -> requests.Response:
        answer = self.request("GET", path, probe, **kwargs)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', answer.text or "")
        if token:
            self.csrf = token.group(1)
        return answer

    def post(self, path: str, data: dict[str, Any] | None = None, probe: str = "-", **kwargs: Any) -> requests.Response:
        return self.request("POST", path, probe, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)

    def login(self, username: str, password: str = DEMO_PASSWORD, probe: str = "-") -> requests.Response:
        """The login form as a browser sends it (token from the page); the POST's answer."""
        if not self.csrf:
            self.get("/login/")
        return self.post("/login/", {"username": username, "password": password}, probe=probe)
