"""Load test of the console under gunicorn on PostgreSQL, with deployments running meanwhile.

Builds the large data set of bench/grid.py (APPS applications x 4 environments x
MODULES modules) in a database of its own, starts gunicorn on a free port of
127.0.0.1, logs in once through the login form and drives the pipeline grid (the
full page and its htmx self-refresh fragment), the application page and the
compare dialog with CONNECTIONS concurrent keep-alive clients for DURATION
seconds. Meanwhile a thread of its own performs real Tag & Deploy runs
Development -> Test through the deploy dialog, every DEPLOY_EVERY seconds, and
follows each deployment's log until it has ended. It prints the requests/s,
p50/p99/max latency and errors per kind of page, and exits 1 on any error.

    .venv/bin/python bench/load.py                               # 500 apps, 30 s, 12 connections
    .venv/bin/python bench/load.py --duration 60 --connections 16
    .venv/bin/python bench/load.py --workers 2 --threads 2       # the gunicorn configuration
    .venv/bin/python bench/load.py --apps 50 --duration 10       # a quick check

Every request goes to 127.0.0.1 only; the run is bounded in time and stops by
itself. See bench/README.md.
"""

from __future__ import annotations

import argparse
import html
import http.client
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grid import (  # noqa: E402  (the shared database helpers and data builder of the grid benchmark)
    DEFAULT_DATABASE_URL,
    _create_database,
    _drop_database,
    _split_database_url,
    build_data,
    configure_django,
    data_set_size,
)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # the only address this script ever sends a request to
USERNAME, PASSWORD = "load", "load-bench-password"
SECRET_KEY = "load-bench-secret-key-not-for-production-0123456789"

KINDS = {  # kind -> label in the report
    "grid": "grid      GET /",
    "fragment": "fragment  GET / (HX-Request)",
    "app": "app page  GET /applications/<id>/",
    "compare": "compare   GET /compare/?… (HX-Request)",
}
COUNTERS_LOCK = threading.Lock()
DEPLOY_KINDS = {
    "dialog": "deploy dialog  GET /deploy/?… (HX)",
    "run": "deploy run     POST /deploy/run (HX)",
    "log": "deployment log GET /deployments/<id>/ (HX)",
}


# --------------------------------------------------------------------------- HTTP


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank."""
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


@dataclass
class Sample:
    kind: str
    started: float  # time.monotonic() when the request was sent
    ms: float
    status: int  # 0 when no response (socket error or timeout)
    size: int
    problem: str = ""  # why this sample is an error ("" when it is not)
    refused: bool = False  # a 409 that is an expected outcome: another deployment into the target runs


@dataclass
class Session:
    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    keep_alive: bool = True  # False: every request on a new connection ("Connection: close")

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())


class Client:
    """One keep-alive connection to the console, reopened when the server closes it."""

    def __init__(self, session: Session, timeout: float):
        self.session, self.timeout = session, timeout
        self.connection: http.client.HTTPConnection | None = None
        self.reused_failures = 0  # a kept-alive connection the server had closed: reopened and retried

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def request(self, method: str, path: str, *, headers=None, body: bytes | None = None):
        """(status, response, body); a GET is retried once if its kept-alive connection was closed."""
        all_headers = {"Cookie": self.session.cookie_header(), **(headers or {})}
        if not self.session.keep_alive:
            all_headers["Connection"] = "close"
        if body is not None:
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        for attempt in (1, 2):
            reused = self.connection is not None
            if self.connection is None:
                self.connection = http.client.HTTPConnection(HOST, self.session.port, timeout=self.timeout)
            try:
                self.connection.request(method, path, body=body, headers=all_headers)
                response = self.connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                # What browsers do too: a GET on a kept-alive connection the server has just closed
                # is sent again once on a new one. Only then; any other failure is an error.
                if reused and attempt == 1 and method == "GET":
                    self.reused_failures += 1
                    continue
                raise
            except Exception:
                self.close()
                raise
            if response.getheader("Connection", "").lower() == "close" or response.will_close:
                self.close()
            return response.status, response, data
        raise AssertionError("unreachable")


def log_in(port: int, timeout: float) -> Session:
    """A real login through the form: the CSRF cookie and token of the login page, then the POST."""
    session = Session(port)
    client = Client(session, timeout)

    def remember(response) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                session.cookies[name] = morsel.value

    status, response, body = client.request("GET", "/login/")
    if status != 200:
        sys.exit(f"GET /login/ answered {status}")
    remember(response)
    token = _hidden_input(body, "csrfmiddlewaretoken")
    if not token or "csrftoken" not in session.cookies:
        sys.exit("The login page gave no CSRF cookie or token.")
    form = urlencode(
        {"csrfmiddlewaretoken": token, "username": USERNAME, "password": PASSWORD, "next": ""}
    ).encode()
    status, response, body = client.request("POST", "/login/", body=form)
    remember(response)
    if status != 302 or "sessionid" not in session.cookies:
        sys.exit(
            f"Logging in failed: POST /login/ answered {status}:\n{body[:2000].decode(errors='replace')}"
        )
    client.close()
    return session


def _hidden_input(body: bytes, name: str) -> str | None:
    match = re.search(rb'name="' + re.escape(name.encode()) + rb'" value="([^"]*)"', body)
    if match is None:
        match = re.search(rb'value="([^"]*)" name="' + re.escape(name.encode()) + rb'"', body)
    return html.unescape(match.group(1).decode()) if match else None


# --------------------------------------------------------------------------- the load


@dataclass
class Plan:
    """What the clients ask for: the ids to put in URLs, and what a good answer contains."""

    app_ids: list[int]
    app_names: dict[int, str]
    compare_pairs: list[tuple[int, int, int]]  # application, source, target that differ
    last_app_name: str


def expected(kind: str, plan: Plan, body: bytes, app_id: int | None) -> str:
    """'' if the body is the page asked for, else what is wrong with it."""
    if kind in {"grid", "fragment"}:
        if plan.last_app_name.encode() not in body:
            return f"no {plan.last_app_name} in the grid"
        is_page = b"</html>" in body
        if kind == "grid" and not is_page:
            return "not a full page"
        if kind == "fragment" and (is_page or b'id="grid"' not in body):
            return "not the grid fragment"
        return ""
    name = plan.app_names[app_id].encode()
    if kind == "app" and b"<h1>" + name + b"</h1>" not in body:
        return "not the application page"
    if kind == "compare" and (b"Compare " + name + b":" not in body or b"</html>" in body):
        return "not the compare dialog"
    return ""


def load_client(
    index: int,
    session: Session,
    plan: Plan,
    kinds: list[str],
    start_at: float,
    stop_at: float,
    timeout: float,
    seed: int,
    samples: list[Sample],
    counters: dict,
) -> None:
    """A closed loop: one request after the other on one connection, rotating over `kinds`."""
    rng = random.Random(seed * 1000 + index)
    client = Client(session, timeout)
    turn, warmup_errors = index, 0
    try:
        while (now := time.monotonic()) < stop_at:
            kind = kinds[turn % len(kinds)]
            turn += 1
            headers, app_id = {}, None
            if kind == "grid":
                path = "/"
            elif kind == "fragment":
                path, headers = "/", {"HX-Request": "true", "HX-Target": "grid", "HX-Trigger": "grid"}
            elif kind == "app":
                app_id = rng.choice(plan.app_ids)
                path = f"/applications/{app_id}/"
            else:
                app_id, source, target = rng.choice(plan.compare_pairs)
                path = "/compare/?" + urlencode({"application": app_id, "source": source, "target": target})
                headers = {"HX-Request": "true", "HX-Target": "dialog-body"}
            began = time.perf_counter()
            try:
                status, _response, body = client.request("GET", path, headers=headers)
            except (OSError, http.client.HTTPException) as error:
                elapsed = (time.perf_counter() - began) * 1000
                kind_of = "timeout" if isinstance(error, TimeoutError | socket.timeout) else "socket"
                if now >= start_at:
                    samples.append(Sample(kind, now, elapsed, 0, 0, f"{kind_of}: {error!r}"))
                else:
                    warmup_errors += 1
                time.sleep(0.1)  # a dead server must not make this spin
                continue
            elapsed = (time.perf_counter() - began) * 1000
            problem = f"HTTP {status}" if status != 200 else expected(kind, plan, body, app_id)
            if now < start_at:  # warm-up: not measured, but an error is still an error
                warmup_errors += bool(problem)
                continue
            samples.append(Sample(kind, now, elapsed, status, len(body), problem))
    finally:
        with COUNTERS_LOCK:
            counters["reopened"] += client.reused_failures
            counters["warm-up errors"] += warmup_errors
        client.close()


# --------------------------------------------------------------------------- deployments


@dataclass
class Deployer:
    """Tag & Deploy through the deploy dialog every `every` seconds, on a new application each time.

    Each deployment is a user of its own, in a thread of its own (at most `users` at once): it opens
    the deploy dialog, posts it, then follows the deployment's log every `poll_every` seconds until it
    has ended, as the log page does. So a deployment starts on schedule even when the one before is
    still running or the server is slow to answer, and two may meet on the target's lock.
    """

    session: Session
    candidates: list[int]  # applications that differ between source and target
    source: int
    target: int
    every: float
    timeout: float
    users: int = 8
    poll_every: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    started: list[int] = field(default_factory=list)  # deployment ids
    outcomes: dict[int, str] = field(default_factory=dict)  # deployment id -> final status
    refused_running: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    attempts: int = 0
    late: list[float] = field(default_factory=list)  # seconds each attempt started after its schedule
    retried: int = 0
    ran_out: bool = False

    def __post_init__(self):
        self.lock = threading.Lock()

    def run(self, start_at: float, stop_at: float, drain_until: float) -> None:
        """Schedule the deployments from start_at to stop_at; wait for them until drain_until."""
        from concurrent.futures import ThreadPoolExecutor

        self.queue = list(self.candidates)
        with ThreadPoolExecutor(self.users, thread_name_prefix="deployment") as pool:
            tick = start_at
            while tick < stop_at:
                time.sleep(max(tick - time.monotonic(), 0))
                with self.lock:
                    application = self.queue.pop(0) if self.queue else None
                if application is None:
                    self.ran_out = True  # every application with differences is deployed: nothing left
                    break
                pool.submit(self.attempt, application, tick, drain_until)
                tick += self.every

    def attempt(self, application: int, scheduled: float, drain_until: float) -> None:
        with self.lock:
            self.attempts += 1
            self.late.append(time.monotonic() - scheduled)
        client = Client(self.session, self.timeout)
        try:
            deployment = self.start_one(client, application)
            if deployment is None:
                return
            while time.monotonic() < drain_until:
                status = self.poll(client, deployment)
                if status is None:
                    return
                if status != "running":
                    self.outcomes[deployment] = status
                    return
                time.sleep(self.poll_every)
            self.problems.append(f"deployment {deployment} still running at the end")
        except Exception as error:  # noqa: BLE001 - reported, never lost in a thread
            self.problems.append(f"deployment of application {application}: {error!r}")
        finally:
            with self.lock:
                self.retried += client.reused_failures
            client.close()

    def _call(self, client, kind, method, path, **kwargs):
        now, began = time.monotonic(), time.perf_counter()
        try:
            status, response, body = client.request(method, path, **kwargs)
        except (OSError, http.client.HTTPException) as error:
            sample = Sample(kind, now, (time.perf_counter() - began) * 1000, 0, 0, repr(error))
            self.samples.append(sample)
            self.problems.append(f"{method} {path}: {error!r}")
            return None, None, b"", sample
        sample = Sample(kind, now, (time.perf_counter() - began) * 1000, status, len(body))
        self.samples.append(sample)
        return status, response, body, sample

    def start_one(self, client: Client, application: int) -> int | None:
        query = urlencode({"source": self.source, "target": self.target, "application": application})
        status, _, body, sample = self._call(
            client,
            "dialog",
            "GET",
            f"/deploy/?{query}",
            headers={"HX-Request": "true", "HX-Target": "dialog-body"},
        )
        if status is None:
            return None
        if status != 200:
            self._fail(sample, f"GET /deploy/?{query} answered {status}", body)
            return None
        token, fingerprint = _hidden_input(body, "csrfmiddlewaretoken"), _hidden_input(body, "fingerprint")
        number = _hidden_input(body, f"number-{application}")
        if not token or not fingerprint or b'id="deploy-button"' not in body:
            self._fail(sample, f"the deploy dialog of application {application} offers no deployment", body)
            return None
        form = {
            "csrfmiddlewaretoken": token,
            "source": self.source,
            "target": self.target,
            "fingerprint": fingerprint,
            "application": application,
            "notes": "bench/load.py",
        }
        if number is not None:
            form[f"number-{application}"] = number
        status, response, body, sample = self._call(
            client,
            "run",
            "POST",
            "/deploy/run",
            body=urlencode(form).encode(),
            headers={"HX-Request": "true", "HX-Target": "plan"},
        )
        if status is None:
            return None
        if status == 409:
            match = re.search(rb'class="form-errors" role="alert"><p>(.*?)</p>', body, re.S)
            message = html.unescape(match.group(1).decode()) if match else "(no message)"
            if "is running since" in message:
                sample.refused = True
                with self.lock:
                    self.refused_running.append(message)
                    self.queue.append(application)  # to try again later, as its user would
            else:
                self._fail(sample, f"deployment of application {application} refused: {message}", body)
            return None
        location = response.getheader("HX-Redirect") or response.getheader("Location")
        match = re.fullmatch(r"/deployments/(\d+)/", location or "")
        if status not in {200, 302} or match is None:
            self._fail(sample, f"POST /deploy/run for application {application} answered {status}", body)
            return None
        deployment = int(match.group(1))
        self.started.append(deployment)
        return deployment

    def poll(self, client: Client, deployment: int) -> str | None:
        status, _, body, sample = self._call(
            client,
            "log",
            "GET",
            f"/deployments/{deployment}/",
            headers={"HX-Request": "true", "HX-Target": "log"},
        )
        if status is None:
            return None
        if status not in {200, 286}:  # 286: htmx's "stop polling", the answer once it has ended
            self._fail(sample, f"GET /deployments/{deployment}/ answered {status}", body)
            return None
        match = re.search(rb'class="deploy-status deploy-status-(\w+)"', body)
        if match is None:
            self._fail(sample, f"no status badge on /deployments/{deployment}/", body)
            return None
        return match.group(1).decode()

    def _fail(self, sample: Sample, what: str, body: bytes) -> None:
        sample.problem = what
        with self.lock:
            self.problems.append(what)
            if len(self.problems) <= 3:
                print(f"  deployer: {what}\n{body[:1500].decode(errors='replace')}", file=sys.stderr)


# --------------------------------------------------------------------------- gunicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_gunicorn(
    database_url: str, port: int, workers: int, threads: int, log_path: Path, access_log: bool
):
    env = {key: value for key, value in os.environ.items() if key not in {"GUNICORN_CMD_ARGS"}}
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        HTTPS="false",
        STATIC_MANIFEST="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # Deployments run in a worker process, as in production (docs/deployment.md).
        TASKS_BACKEND="django_tasks_db.DatabaseBackend",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
    )
    command = [
        str(ROOT / ".venv/bin/gunicorn"),
        "config.wsgi",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
        "--config",
        "/dev/null",  # no gunicorn.conf.py from the working directory
    ]
    if access_log:
        command += ["--access-logfile", "-"]
    log = open(log_path, "wb")  # noqa: SIM115 - closed in stop_gunicorn
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    process.log_file = log
    # One `manage.py db_worker` runs the deployments the load starts; its output goes to the same log.
    process.worker = subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, command


def wait_until_answering(process, port: int, log_path: Path, seconds: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if process.poll() is not None:
            sys.exit(
                f"gunicorn exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}"
            )
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=5)
            connection.request("GET", "/login/")
            if connection.getresponse().status == 200:
                connection.close()
                return time.monotonic() - started
            connection.close()
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(
        f"gunicorn did not answer within {seconds:.0f} s:\n{log_path.read_text(errors='replace')[-4000:]}"
    )


def stop_gunicorn(process) -> int | None:
    # SIGTERM is graceful for both: gunicorn finishes the requests in flight, the worker its task.
    for stopping in (process, process.worker):
        if stopping.poll() is None:
            stopping.send_signal(signal.SIGTERM)
    for stopping in (process, process.worker):
        try:
            stopping.wait(20)
        except subprocess.TimeoutExpired:
            stopping.kill()
            stopping.wait(10)
    process.log_file.close()
    return process.returncode


def worker_pids(master: int) -> list[int]:
    try:
        return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:
        return []


def cpu_snapshot() -> dict[int, tuple[str, float, float]]:
    """pid -> (name, CPU-s of its own, CPU-s of its reaped children) for every process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    snapshot = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / tick
        children = (int(fields[13]) + int(fields[14])) / tick
        snapshot[int(entry.name)] = (name, own, children)
    return snapshot


def cpu_by_group(before: dict, after: dict, gunicorn: set[int]) -> dict[str, float]:
    """CPU-s spent during the window by gunicorn, this process, PostgreSQL and everything else.

    Processes that ended within the window count through their parent's reaped-children time
    (PostgreSQL's backends through the postmaster's), those that began in it with all their time.
    """
    groups = dict.fromkeys(["gunicorn", "client", "postgres", "others"], 0.0)
    for pid, (name, own, children) in after.items():
        _, own_before, children_before = before.get(pid, (name, 0.0, 0.0))
        spent = (own - own_before) + (children - children_before)
        if pid in gunicorn:
            groups["gunicorn"] += spent
        elif pid == os.getpid():
            groups["client"] += spent
        elif name == "postgres":
            groups["postgres"] += spent
        else:
            groups["others"] += spent
    return groups


def connections_per_worker(port: int, workers: list[int]) -> list[int]:
    """How many established connections to `port` each worker holds (gthread keeps a connection
    in the worker that accepted it), from /proc/net/tcp and the workers' file descriptors."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # 01: established
            inodes.add(fields[9])
    counts = []
    for pid in workers:
        count = 0
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    count += 1
        except OSError:
            pass
        counts.append(count)
    return counts


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) seconds of all CPUs since boot."""
    tick = os.sysconf("SC_CLK_TCK")
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / tick, sum(values) / tick


# --------------------------------------------------------------------------- data


def prepare(apps: int, modules: int) -> tuple[dict, Plan, dict]:
    """Migrate, build the data set, create the user; return its size, what to ask for, environment ids."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from lifecycle.models import Application, Environment
    from lifecycle.pipeline import build_rows

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_superuser(USERNAME, "load@example.com", PASSWORD)
    build_data(apps, modules, user)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    size = data_set_size()
    environments = list(Environment.objects.order_by("position"))
    rows = build_rows(Application.objects.all(), environments)
    pairs = [
        (row.application.pk, gap.source.environment.pk, gap.target.environment.pk)
        for row in rows
        for gap in row.gaps
        if gap.differs
    ]
    names = {row.application.pk: row.application.name for row in rows}
    plan = Plan(
        app_ids=sorted(names),
        app_names=names,
        compare_pairs=pairs,
        last_app_name=max(names.values()),
    )
    ids = {environment.name: environment.pk for environment in environments}
    deployable = [row.application.pk for row in rows if row.gaps and row.gaps[0].differs]
    return size, plan, {"ids": ids, "deployable": deployable, "rows": rows}


def check_deployments(started: list[int], source: int, target: int) -> tuple[dict, list[str]]:
    """From the database: outcome and duration of each deployment, and the target now matching the source."""
    from lifecycle.models import CurrentVersion, Deployment

    problems, durations, statuses = [], [], {}
    for deployment in Deployment.objects.filter(pk__in=started).prefetch_related("items"):
        statuses[deployment.status] = statuses.get(deployment.status, 0) + 1
        if deployment.finished_at:
            durations.append((deployment.finished_at - deployment.started_at).total_seconds() * 1000)
        if deployment.status != Deployment.Status.FINISHED:
            lines = " / ".join(deployment.log_lines.values_list("message", flat=True))
            problems.append(f"deployment {deployment.pk} ended {deployment.status}: {lines}")
            continue
        for item in deployment.items.all():
            running = {
                (row.environment_id, row.module_id): row.version_id
                for row in CurrentVersion.objects.filter(
                    environment_id__in=[source, target], module__application=item.application_id
                )
            }
            modules = {module for _, module in running}
            different = [m for m in modules if running.get((source, m)) != running.get((target, m))]
            if different:
                problems.append(
                    f"deployment {deployment.pk} finished but {len(different)} modules of application "
                    f"{item.application_id} still differ"
                )
    durations.sort()
    summary = {"statuses": statuses, "durations": durations}
    return summary, problems


# --------------------------------------------------------------------------- report


def table(samples: list[Sample], kinds: dict[str, str], seconds: float | None) -> tuple[list[str], int]:
    """Lines of the table and the number of erroneous samples."""
    lines = [
        f"{'':41} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'HTTP err':>8} {'bad body':>8} {'socket':>6} {'KB/resp':>8}",
    ]
    lines.append("-" * len(lines[0]))
    errors = 0

    def line(label: str, group: list[Sample]) -> str:
        nonlocal errors
        if not group:
            return f"{label:41} {0:>8}"
        ordered = sorted(s.ms for s in group)
        http_errors = sum(1 for s in group if s.status and not 200 <= s.status < 400 and not s.refused)
        socket_errors = sum(1 for s in group if s.status == 0)
        bad = sum(1 for s in group if s.problem) - http_errors - socket_errors
        errors += http_errors + socket_errors + bad
        rate = f"{len(group) / seconds:>7.1f}" if seconds else f"{'':>7}"
        answered = [s.size for s in group if s.status]
        kilobytes = sum(answered) / len(answered) / 1024 if answered else 0
        return (
            f"{label:41} {len(group):>8} {rate} {_percentile(ordered, 0.5):>8.1f} "
            f"{_percentile(ordered, 0.99):>8.1f} {ordered[-1]:>8.1f} {http_errors:>8} {bad:>8} "
            f"{socket_errors:>6} {kilobytes:>8.1f}"
        )

    for kind, label in kinds.items():
        lines.append(line(label, [s for s in samples if s.kind == kind]))
    if seconds:
        lines.append(line("all", samples))
    return lines, errors


def log_findings(log_path: Path) -> dict[str, list[str]]:
    """Notable lines of gunicorn's and Django's output."""
    text = log_path.read_text(errors="replace")
    patterns = {
        "tracebacks": r"^Traceback",
        "server errors (django.request)": r"^(Internal Server Error|Service Unavailable|Bad Gateway).*",
        "worker timeouts": r"WORKER TIMEOUT.*",
        "workers booted (expected: --workers)": r"Booting worker.*",
        "workers killed or exited early": r"(Worker \(pid:\d+\) was sent|Worker exited).*",
        "gunicorn errors": r"\[(ERROR|CRITICAL)\].*",
        "conflicts (409, refused deployments)": r"^Conflict: .*",
        "other 4xx warnings": r"^(Not Found|Forbidden|Bad Request|Unauthorized|Method Not Allowed): .*",
    }
    return {
        name: [match.group(0) for match in re.finditer(pattern, text, re.M)]
        for name, pattern in patterns.items()
    }


# --------------------------------------------------------------------------- main


def parse_mix(text: str) -> list[str]:
    kinds = []
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in KINDS or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(f"--mix wants kind=weight,… with kinds {', '.join(KINDS)}")
        kinds += [name] * int(weight)
    if not kinds:
        raise argparse.ArgumentTypeError("--mix gives every kind a weight of 0")
    return kinds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", type=int, default=500, help="applications (default 500)")
    parser.add_argument("--modules", type=int, default=10, help="modules per application (default 10)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of measured load (default 30)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load not measured (default 5)")
    parser.add_argument("--connections", type=int, default=12, help="concurrent clients (default 12)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker (default 2)")
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=parse_mix("grid=1,fragment=1,app=1,compare=1"),
        help="the kinds of page each client rotates over, with weights (default "
        "grid=1,fragment=1,app=1,compare=1)",
    )
    parser.add_argument(
        "--deploy-every", type=float, default=2.0, help="seconds between deployments, 0 for none (default 2)"
    )
    parser.add_argument(
        "--request-timeout", type=float, default=30, help="seconds before a request counts as timed out"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the URLs (default 7)")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL.replace("stageboard_bench", "stageboard_bench_load"),
        help="PostgreSQL database to use: dropped and re-created, dropped at the end (default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the gunicorn log")
    parser.add_argument("--access-log", action="store_true", help="also write gunicorn's access log")
    parser.add_argument(
        "--no-keep-alive",
        action="store_true",
        help="send every request on a new connection instead of keeping each client's connection open",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        help="give gunicorn DATABASE_URL=…?conn_max_age=N: persistent database connections "
        "(default: none, Django's CONN_MAX_AGE=0, a new connection per request)",
    )
    options = parser.parse_args(argv)
    if min(options.apps, options.modules, options.connections, options.workers, options.threads) < 1:
        parser.error("--apps, --modules, --connections, --workers and --threads must be at least 1")
    if options.duration <= 0 or options.warmup < 0 or options.deploy_every < 0:
        parser.error("--duration must be positive, --warmup and --deploy-every not negative")

    name, maintenance = _split_database_url(options.database_url)
    _create_database(maintenance, name, replace=True)
    log_dir = Path(tempfile.mkdtemp(prefix="stageboard-load-"))
    log_path = log_dir / "gunicorn.log"
    process = None
    errors: list[str] = []
    completed = False  # True once the report is printed; otherwise the log is kept to look at
    try:
        configure_django(options.database_url)
        import django
        from django.db import connection, connections

        started = time.perf_counter()
        size, plan, extra = prepare(options.apps, options.modules)
        build_seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            server = cursor.fetchone()[0].split(" on ")[0]
        connections.close_all()
        dev, test = extra["ids"]["Development"], extra["ids"]["Test"]
        rng = random.Random(options.seed)
        deployable = list(extra["deployable"])
        rng.shuffle(deployable)

        load_before = Path("/proc/loadavg").read_text().split()[0]
        port = free_port()
        server_url = options.database_url
        if options.conn_max_age is not None:
            server_url += ("&" if "?" in server_url else "?") + f"conn_max_age={options.conn_max_age}"
        process, command = start_gunicorn(
            server_url, port, options.workers, options.threads, log_path, options.access_log
        )
        boot_seconds = wait_until_answering(process, port, log_path)
        session = log_in(port, 30)
        session.keep_alive = not options.no_keep_alive

        print(
            f"Stageboard load test — database {name} ({server}), Django {django.get_version()}, "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        print(f"data build {build_seconds:.1f} s (migrate included)")
        print("data set: " + ", ".join(f"{value:,} {key}" for key, value in size.items()))
        print(
            f"targets: {len(plan.app_ids)} application pages, {len(plan.compare_pairs)} differing "
            f"(application, neighbouring environments) pairs to compare, {len(deployable)} applications "
            "to Tag & Deploy Development → Test"
        )
        shown = " ".join(part if " " not in part else repr(part) for part in command[1:])
        print(f"gunicorn {shown}  (up in {boot_seconds:.1f} s), DATABASE_URL={server_url}")
        mix = ", ".join(f"{kind}×{options.mix.count(kind)}" for kind in KINDS if kind in options.mix)
        deploying = (
            f"a deployment every {options.deploy_every:g} s" if options.deploy_every else "no deployments"
        )
        connecting = "a new connection per request" if options.no_keep_alive else "keep-alive"
        print(
            f"load: {options.connections} connections, closed loop ({connecting}), rotating over {mix}; "
            f"{options.warmup:g} s warm-up, then {options.duration:g} s measured; {deploying}"
        )
        sys.stdout.flush()

        t0 = time.monotonic()
        start_at, stop_at = t0 + options.warmup, t0 + options.warmup + options.duration
        per_client: list[list[Sample]] = [[] for _ in range(options.connections)]
        counters = {"reopened": 0, "warm-up errors": 0}
        threads = [
            threading.Thread(
                target=load_client,
                args=(
                    i,
                    session,
                    plan,
                    options.mix,
                    start_at,
                    stop_at,
                    options.request_timeout,
                    options.seed,
                    per_client[i],
                    counters,
                ),
                name=f"client-{i}",
            )
            for i in range(options.connections)
        ]
        deployer = Deployer(session, deployable, dev, test, options.deploy_every, options.request_timeout)
        if options.deploy_every:
            threads.append(
                threading.Thread(target=deployer.run, args=(start_at, stop_at, stop_at + 30), name="deployer")
            )
        for thread in threads:
            thread.start()
        time.sleep(max(start_at - time.monotonic(), 0))
        workers = worker_pids(process.pid)
        spread = connections_per_worker(port, workers)
        cpu_before, (busy_before, total_before) = cpu_snapshot(), machine_busy()
        time.sleep(max(stop_at - time.monotonic(), 0))
        cpu_after, (busy_after, total_after) = cpu_snapshot(), machine_busy()
        workers_now = worker_pids(process.pid)
        memory = [rss_mb(pid) for pid in workers_now]
        for thread in threads:
            thread.join()
        samples = [sample for group in per_client for sample in group]
        last_end = max((s.started + s.ms / 1000 for s in samples), default=stop_at)
        seconds = max(stop_at, last_end) - start_at

        window = stop_at - start_at
        cpu = cpu_by_group(cpu_before, cpu_after, {process.pid, *workers})
        busy = (busy_after - busy_before) / max(total_after - total_before, 1)

        print()
        lines, load_errors = table(samples, KINDS, seconds)
        print("\n".join(lines))
        print(
            f"measured {seconds:.1f} s (requests sent in the {window:g} s window, until the last answer); "
            f"connections reopened after a keep-alive close: {counters['reopened']}; "
            f"errors during the warm-up: {counters['warm-up errors']}"
        )
        print(
            f"connections held by each gunicorn worker after the warm-up: "
            f"{' / '.join(str(count) for count in spread)}; their memory (RSS) at the end: "
            f"{' / '.join(f'{megabytes:.0f}' for megabytes in memory)} MB"
        )
        cores = ", ".join(f"{group} {spent / window:.2f}" for group, spent in cpu.items())
        print(
            f"CPU during the window, in cores: machine {busy * os.cpu_count():.2f} of {os.cpu_count()} busy; "
            f"{cores}; load average before the run {load_before}"
        )
        if counters["warm-up errors"]:
            errors.append(f"{counters['warm-up errors']} requests failed during the warm-up")
        if sorted(workers_now) != sorted(workers):
            errors.append(f"gunicorn workers changed during the load: {workers} → {workers_now}")
        if load_errors:
            errors.append(f"{load_errors} load requests failed")
            problems: dict[str, int] = {}
            for sample in samples:
                if sample.problem:
                    key = f"{sample.kind}: {sample.problem}"
                    problems[key] = problems.get(key, 0) + 1
            for problem, count in sorted(problems.items(), key=lambda item: -item[1])[:10]:
                print(f"  {count:>6} × {problem}")

        if options.deploy_every:
            print(
                "\ndeployments Development → Test through the deploy dialog (requests not in the load above):"
            )
            deploy_lines, deploy_errors = table(deployer.samples, DEPLOY_KINDS, None)
            print("\n".join(deploy_lines))
            summary, deploy_problems = check_deployments(deployer.started, dev, test)
            durations = summary["durations"]
            statuses = ", ".join(f"{count} {status}" for status, count in sorted(summary["statuses"].items()))
            print(
                f"attempts {deployer.attempts}: started {len(deployer.started)}, "
                f"ended {len(deployer.outcomes)} "
                f"({statuses or 'none'}); refused because a deployment into Test was running (409, "
                f"expected, not errors): {len(deployer.refused_running)}; started late by at most "
                f"{max(deployer.late, default=0):.1f} s"
            )
            if durations:
                print(
                    "deployment run time (started_at → finished_at): "
                    f"median {_percentile(durations, 0.5):.0f} ms, max {durations[-1]:.0f} ms"
                    + (
                        "; every finished one left Test running what Development runs"
                        if not deploy_problems
                        else ""
                    )
                )
            if deployer.ran_out:
                print(
                    f"stopped deploying early: all {len(deployable)} applications with differences deployed"
                )
            for message in deployer.refused_running[:3]:
                print(f"  refused: {message}")
            connections.close_all()
            problems = deployer.problems + deploy_problems
            if deploy_errors and not problems:
                problems.append(f"{deploy_errors} deployer requests failed")
            if not deployer.started:
                problems.append("no deployment started")
            for problem in problems:
                print(f"  ERROR: {problem}")
            errors += problems

        returncode = stop_gunicorn(process)
        process_stopped = process
        process = None
        findings = log_findings(log_path)
        print(f"\ngunicorn stopped (exit {returncode}); in its log and Django's:")
        for what, found in findings.items():
            print(f"  {what}: {len(found)}")
            for line in found[:3] if not what.startswith("workers booted") else []:
                print(f"    {line}")
        serious = sum(
            len(findings[key])
            for key in (
                "tracebacks",
                "server errors (django.request)",
                "worker timeouts",
                "workers killed or exited early",
                "gunicorn errors",
            )
        )
        if serious:
            errors.append(f"{serious} errors in the server log")
        if returncode not in (0, -signal.SIGTERM):
            errors.append(f"gunicorn exited with {process_stopped.returncode}")
        print("\nresult: " + ("ZERO ERRORS" if not errors else "ERRORS: " + "; ".join(errors)))
        completed = True
        return 1 if errors else 0
    finally:
        if process is not None:
            stop_gunicorn(process)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        if options.keep:
            print(f"\nkept database {name}: {options.database_url}; log in as {USERNAME} / {PASSWORD}")
        else:
            _drop_database(maintenance, name)
        if options.keep or errors or not completed:
            print(f"kept the gunicorn log: {log_path}", file=sys.stderr if not completed else sys.stdout)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
