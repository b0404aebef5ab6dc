"""Load test of the console under gunicorn on PostgreSQL, driven by locust (bench/locustfile.py).

Builds the large data set of bench/grid.py (APPS applications x 4 environments x
MODULES modules) in a database of its own, makes agent tokens for Acceptance and
Production, starts gunicorn and one db_worker on a free port of 127.0.0.1, logs in
once through the login form, then runs `locust --headless --run-time … --csv …`
against that server only: CLIENTS active clients over the grid, its refresh, the
application page and the compare dialog; TABS idle grid tabs that only refresh;
AGENTS agents polling their state; a Tag & Deploy Development -> Test every
DEPLOY_EVERY seconds. It prints p50/p99 and failures per kind of request from
locust's CSV stats, checks the deployments in the database and the server's log,
and exits 1 on any error.

    .venv/bin/pip install -r bench/requirements.txt              # locust, once
    .venv/bin/python bench/load.py                               # 500 apps, 10 s warm-up + 60 s
    .venv/bin/python bench/load.py --tabs 0 --agents 0           # the old mix alone
    .venv/bin/python bench/load.py --apps 50 --duration 10       # a quick check

Every request goes to 127.0.0.1 only; the run is bounded in time and stops by
itself. See bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import html
import http.client
import json
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
    first_app_name: str  # Application orders by Lower(name): the first row of the grid's first page


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
        "--max-requests",
        "0",  # no worker restarts in the measured minute
        "--config",
        str(ROOT / "gunicorn.conf.py"),  # the production settings (docs/deployment.md), flags above win
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
        first_app_name=min(names.values(), key=str.lower),  # on the first page
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


# --------------------------------------------------------------------------- locust


def run_locust(options, port: int, plan_path: Path, result_path: Path, csv_prefix: Path, log_path: Path):
    """locust, headless and bounded in time, against this gunicorn only; its exit code."""
    users = options.clients + options.tabs + options.agents + (1 if options.deploy_every else 0)
    command = [
        str(ROOT / ".venv/bin/locust"),
        "-f",
        str(ROOT / "bench/locustfile.py"),
        "--headless",
        "--host",
        f"http://{HOST}:{port}",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),  # all at once: each kind spreads its own start (IdleTab, AgentPoller)
        "--run-time",
        f"{math.ceil(options.warmup + options.duration)}s",
        "--stop-timeout",
        "5",
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--logfile",
        str(log_path),
    ]
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")},
        "BENCH_PLAN": str(plan_path),
        "BENCH_RESULT": str(result_path),
    }
    completed = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return completed.returncode, completed.stderr.decode(errors="replace"), command


def report(csv_prefix: Path) -> tuple[list[str], int]:
    """The table of locust's CSV stats (its percentiles are rounded to 2 significant digits above
    100 ms) and the failures; the lines and the number of failed requests."""
    with open(f"{csv_prefix}_stats.csv", newline="") as stats:
        rows = list(csv.DictReader(stats))
    with open(f"{csv_prefix}_failures.csv", newline="") as failures:
        failed = list(csv.DictReader(failures))
    header = (
        f"{'':58} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>8} {'failed':>6} "
        f"{'KB/resp':>8}"
    )
    lines = [header, "-" * len(header)]
    errors = 0
    for row in rows:
        name = "all" if row["Name"] == "Aggregated" else row["Name"]
        count = int(row["Request Count"])
        failures = int(row["Failure Count"])
        if row["Name"] != "Aggregated":
            errors += failures
        else:
            lines.append("-" * len(header))
        if not count:
            lines.append(f"{name:58} {0:>8}")
            continue
        lines.append(
            f"{name:58} {count:>8} {float(row['Requests/s']):>7.1f} {row['50%']:>7} {row['99%']:>7} "
            f"{float(row['Max Response Time']):>8.0f} {failures:>6} "
            f"{float(row['Average Content Size']) / 1024:>8.1f}"
        )
    for row in failed:
        lines.append(f"  {row['Occurrences']:>6} × {row['Method']} {row['Name']}: {row['Error']}")
    return lines, errors


# --------------------------------------------------------------------------- main


def prepare_agents(count: int) -> tuple[list[str], list[str]]:
    """Acceptance and Production deliver to agents: `count` agent tokens over them, round robin.

    Development and Test stay `record`, so each deployment Development -> Test ends in the worker,
    without an agent to wait for (bench/agents.py measures deliveries with a real agent).
    """
    import logging

    from lifecycle.delivery import agent_tokens
    from lifecycle.models import Delivery, Environment

    if not count:  # no agents: every environment stays `record`, as without delivery
        return [], []
    logging.getLogger("lifecycle").setLevel(logging.WARNING)  # one log line per token would bury the report
    polled = list(Environment.objects.filter(name__in=["Acceptance", "Production"]).order_by("position"))
    Environment.objects.filter(pk__in=[environment.pk for environment in polled]).update(
        delivery=Delivery.AGENT
    )
    polled = list(Environment.objects.filter(pk__in=[environment.pk for environment in polled]))
    tokens = [agent_tokens.create(polled[i % len(polled)], f"load agent {i}")[1] for i in range(count)]
    return tokens, [environment.name for environment in polled]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", type=int, default=500, help="applications (default 500)")
    parser.add_argument("--modules", type=int, default=10, help="modules per application (default 10)")
    parser.add_argument("--duration", type=float, default=60, help="seconds measured (default 60)")
    parser.add_argument("--warmup", type=float, default=20, help="seconds of load not measured (default 20)")
    parser.add_argument("--clients", type=int, default=16, help="active clients (default 16)")
    parser.add_argument(
        "--think",
        default="1:3",
        help="seconds an active client waits between two requests, MIN:MAX uniformly, as a person reading "
        "the page; 0 for a closed loop with no pause, a stress test (default 1:3)",
    )
    parser.add_argument("--tabs", type=int, default=100, help="idle grid tabs (default 100)")
    parser.add_argument("--agents", type=int, default=40, help="polling agents (default 40)")
    parser.add_argument("--agent-interval", type=float, default=5, help="seconds between polls of an agent")
    parser.add_argument(
        "--deploy-every", type=float, default=2.0, help="seconds between deployments, 0 for none (default 2)"
    )
    parser.add_argument("--workers", type=int, default=5, help="gunicorn workers (default 5, 2 x cores + 1)")
    parser.add_argument(
        "--threads", type=int, default=1, help="gunicorn threads per worker (default 1: sync workers)"
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        help="gunicorn's DATABASE_URL gets ?conn_max_age=N, as docs/deployment.md sets it (default 60)",
    )
    parser.add_argument(
        "--request-timeout", type=float, default=30, help="seconds before a request counts as failed"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the URLs (default 7)")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL.replace("stageboard_bench", "stageboard_bench_load"),
        help="PostgreSQL database to use: dropped and re-created, dropped at the end (default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database, the logs and the CSV files")
    options = parser.parse_args(argv)
    if min(options.apps, options.modules, options.workers, options.threads) < 1:
        parser.error("--apps, --modules, --workers and --threads must be at least 1")
    if min(options.clients, options.tabs, options.agents) < 0:
        parser.error("--clients, --tabs and --agents must not be negative")
    if options.duration <= 0 or options.warmup < 0 or options.deploy_every < 0 or options.agent_interval <= 0:
        parser.error(
            "--duration and --agent-interval must be positive, --warmup and --deploy-every not negative"
        )

    name, maintenance = _split_database_url(options.database_url)
    _create_database(maintenance, name, replace=True)
    work = Path(tempfile.mkdtemp(prefix="stageboard-load-"))
    log_path = work / "gunicorn.log"
    process = None
    errors: list[str] = []
    completed = False  # True once the report is printed; otherwise the logs are kept to look at
    try:
        configure_django(options.database_url)
        import django
        from django.conf import settings
        from django.db import connection, connections

        started = time.perf_counter()
        size, plan, extra = prepare(options.apps, options.modules)
        tokens, polled = prepare_agents(options.agents)
        build_seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            server = cursor.fetchone()[0].split(" on ")[0]
        connections.close_all()
        dev, test = extra["ids"]["Development"], extra["ids"]["Test"]
        deployable = list(extra["deployable"])
        random.Random(options.seed).shuffle(deployable)

        port = free_port()
        server_url = options.database_url
        server_url += ("&" if "?" in server_url else "?") + f"conn_max_age={options.conn_max_age}"
        process, command = start_gunicorn(server_url, port, options.workers, options.threads, log_path, False)
        boot_seconds = wait_until_answering(process, port, log_path)
        session = log_in(port, 30)

        plan_path, result_path, csv_prefix = work / "plan.json", work / "result.json", work / "locust"
        plan_path.write_text(
            json.dumps(
                {
                    "settings": {
                        "clients": options.clients,
                        "think": options.think,
                        "tabs": options.tabs,
                        "agents": options.agents,
                        "agent_interval": options.agent_interval,
                        "deploy_every": options.deploy_every,
                        "refresh_seconds": settings.GRID_REFRESH_SECONDS,
                        "warmup": options.warmup,
                        "request_timeout": options.request_timeout,
                        "seed": options.seed,
                    },
                    "cookies": session.cookies,
                    "app_ids": plan.app_ids,
                    "app_names": plan.app_names,
                    "compare_pairs": plan.compare_pairs,
                    "first_app_name": plan.first_app_name,
                    "deployable": deployable,
                    "source": dev,
                    "target": test,
                    "agent_tokens": tokens,
                }
            )
        )
        plan_path.chmod(0o600)  # a session cookie and agent tokens

        print(
            f"Stageboard load test — database {name} ({server}), Django {django.get_version()}, "
            f"Python {sys.version.split()[0]}, locust {locust_version()}, {os.cpu_count()} CPUs"
        )
        print(f"data build {build_seconds:.1f} s (migrate and {len(tokens)} agent tokens included)")
        print("data set: " + ", ".join(f"{value:,} {key}" for key, value in size.items()))
        shown = " ".join(part if " " not in part else repr(part) for part in command[1:])
        print(f"gunicorn {shown}  (up in {boot_seconds:.1f} s), DATABASE_URL={server_url}")
        deploying = (
            f"a Tag & Deploy Development → Test every {options.deploy_every:g} s"
            if options.deploy_every
            else "no deployments"
        )
        print(
            f"load: {options.clients} active clients (think {options.think} s), "
            f"{options.tabs} idle grid tabs (the page's refresh every {settings.GRID_REFRESH_SECONDS} s), "
            f"{options.agents} agents of {' and '.join(polled) or 'none'} "
            f"(a poll every {options.agent_interval:g} s), "
            f"{deploying}; {options.warmup:g} s warm-up, then {options.duration:g} s measured"
        )
        sys.stdout.flush()

        load_before = Path("/proc/loadavg").read_text().split()[0]
        (busy_before, total_before) = machine_busy()
        returncode, stderr, locust_command = run_locust(
            options, port, plan_path, result_path, csv_prefix, work / "locust.log"
        )
        (busy_after, total_after) = machine_busy()
        busy = (busy_after - busy_before) / max(total_after - total_before, 1)
        print(f"locust {' '.join(locust_command[1:])}")
        if not result_path.exists():
            errors.append(f"locust ended with {returncode} and no result")
            print(stderr[-4000:], file=sys.stderr)
            return 1
        result = json.loads(result_path.read_text())

        print()
        lines, failures = report(csv_prefix)
        print("\n".join(lines))
        print(
            f"machine busy during the run: {busy * os.cpu_count():.2f} of {os.cpu_count()} cores "
            f"(load average before it {load_before})"
        )
        if failures:
            errors.append(f"{failures} requests failed")
        warmup_errors = result["warm-up errors"]
        if warmup_errors:
            errors.append(f"{sum(warmup_errors.values())} requests failed during the warm-up")
            for what, count in warmup_errors.items():
                print(f"  warm-up: {count} × {what}")
        if returncode not in (0, 1):  # 1: some request failed, counted above
            errors.append(f"locust exited with {returncode}: {stderr[-2000:]}")

        if options.deploy_every:
            # The last deployments may still run: wait for them, as their users would.
            from lifecycle.models import Deployment

            deadline = time.monotonic() + 30
            while (
                Deployment.objects.filter(
                    pk__in=result["deployments"], status=Deployment.Status.RUNNING
                ).exists()
                and time.monotonic() < deadline
            ):
                time.sleep(0.5)
            summary, problems = check_deployments(result["deployments"], dev, test)
            statuses = ", ".join(f"{count} {status}" for status, count in sorted(summary["statuses"].items()))
            durations = summary["durations"]
            print(
                f"\ndeployments Development → Test: started {len(result['deployments'])}, ended "
                f"{statuses or 'none'}; refused because one into Test was running (409, expected): "
                f"{result['refused']}"
                + (
                    f"; run time median {_percentile(durations, 0.5):.0f} ms, max {durations[-1]:.0f} ms"
                    if durations
                    else ""
                )
            )
            if result["ran out"]:
                print(
                    f"stopped deploying early: all {len(deployable)} applications with differences deployed"
                )
            if not result["deployments"]:
                problems.append("no deployment started")
            for problem in problems:
                print(f"  ERROR: {problem}")
            errors += problems
            connections.close_all()

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
            print(f"kept the logs and CSV files: {work}", file=sys.stderr if not completed else sys.stdout)
        else:
            shutil.rmtree(work, ignore_errors=True)


def locust_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("locust")
    except PackageNotFoundError:
        sys.exit("locust is not installed: .venv/bin/pip install -r bench/requirements.txt")


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
