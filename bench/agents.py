"""Agents polling their desired state under gunicorn on PostgreSQL, while deployments are delivered.

Builds the data set of bench/grid.py (APPS applications x 4 environments x
MODULES modules, every environment an `agent` environment) plus an application
`Large` of LARGE modules in Development and Test, in a database of its own.
Starts gunicorn, a real `manage.py db_worker` and one real agent process
(agent/stageboard_agent.py) delivering Test into a temporary folder, and waits
until that agent has delivered everything Test runs.

Then AGENTS simulated agents, each with an agent token of its own and spread
over the four environments, poll GET /api/v1/agent/state with If-None-Match
every INTERVAL seconds for DURATION seconds (after a warm-up in which each
fetches the state once), from a separate process, while a thread of this one
performs real Tag & Deploy runs Development -> Test through the deploy dialog
every DEPLOY_EVERY seconds; the real agent delivers each of them and the
deployment finishes when it has confirmed. Last, with the simulated agents
stopped, Large (every module changed) is deployed to Test and timed from its
start to Finished.

It prints the p50/p99 of an unchanged poll (304) and of a changed one (200), the
errors, the CPU the gunicorn processes (and PostgreSQL) spent per poll (from
/proc), the p50/p99 of deliveries (deployment started -> the agent confirmed),
and the large delivery's time; it exits 1 on any error.

    .venv/bin/python bench/agents.py                          # 200 agents, every 5 s, 60 s
    .venv/bin/python bench/agents.py --agents 50 --duration 15 --large 100    # a quick check
    .venv/bin/python bench/agents.py --deploy-every 0         # polls alone: their CPU cost

Every request goes to 127.0.0.1 only; the run is bounded in time and stops by
itself. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy import build_application  # noqa: E402  (shared data builders)
from grid import (  # noqa: E402  (the shared database helpers of the grid benchmark)
    DEFAULT_DATABASE_URL,
    _create_database,
    _drop_database,
    _split_database_url,
    configure_django,
    data_set_size,
)
from load import (  # noqa: E402  (gunicorn, the login, the deploy dialog and /proc of the load test)
    HOST,
    SECRET_KEY,
    Deployer,
    _percentile,
    cpu_snapshot,
    free_port,
    log_findings,
    log_in,
    machine_busy,
    prepare,
    start_gunicorn,
    wait_until_answering,
    worker_pids,
)

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "agent" / "stageboard_agent.py"
STATE_PATH = "/api/v1/agent/state"
TARGET = "Test"  # where the deployments go and the real agent delivers


# --------------------------------------------------------------------------- the simulated agents


@dataclass
class Poll:
    agent: int
    environment: str
    sent: float  # time.time() when the connection was opened
    ms: float
    status: int  # 0: no answer (socket error or timeout)
    size: int
    problem: str = ""


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2 :]
        body = decoded
    return status, headers, body


async def _poll_once(port: int, token: str, etag: str | None, timeout: float):
    """(status, headers, body) of one poll on a new connection, as the agent (urllib) makes it."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    try:
        request = (
            f"GET {STATE_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {token}\r\n"
            + (f"If-None-Match: {etag}\r\n" if etag else "")
            + "Accept: application/json\r\nUser-Agent: bench-agents\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    return _parse(data)


async def _simulated_agent(index: int, spec: dict, polls: list[Poll], counters: dict) -> None:
    token, environment = spec["tokens"][index]
    interval, timeout = spec["interval"], spec["timeout"]
    start_at, stop_at = spec["start_at"], spec["stop_at"]
    # Spread evenly over the interval, as agents started at random times are.
    due = spec["first_at"] + interval * index / len(spec["tokens"])
    etag = None
    while due < stop_at:
        await asyncio.sleep(max(due - time.time(), 0))
        sent, began = time.time(), time.perf_counter()
        problem, status, size = "", 0, 0
        try:
            status, headers, body = await _poll_once(spec["port"], token, etag, timeout)
            size = len(body)
            if status == 200:
                state = json.loads(body)
                if state.get("environment") != environment or not isinstance(state.get("applications"), list):
                    problem = f"200 with the state of {state.get('environment')!r}, not {environment!r}"
                elif not headers.get("etag"):
                    problem = "200 without an ETag"
                etag = headers.get("etag") or etag
            elif status == 304:
                if etag is None:
                    problem = "304 to a poll without If-None-Match"
                elif body:
                    problem = "304 with a body"
            else:
                problem = f"HTTP {status}: {body[:200].decode(errors='replace')}"
        except (TimeoutError, OSError, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
        ms = (time.perf_counter() - began) * 1000
        if start_at <= sent < stop_at:
            polls.append(Poll(index, environment, sent, ms, status, size, problem))
        elif problem:
            counters["warm-up errors"] += 1
            counters.setdefault("warm-up problems", []).append(problem)
        due += interval
        if due < time.time():  # fell behind (a slow answer): skip the missed polls, as an agent would
            counters["late"] += 1
            due = time.time()


async def _simulate(spec: dict) -> dict:
    polls: list[Poll] = []
    counters = {"warm-up errors": 0, "late": 0}
    await asyncio.gather(*(_simulated_agent(i, spec, polls, counters) for i in range(len(spec["tokens"]))))
    return {"polls": [poll.__dict__ for poll in polls], "counters": counters}


def simulate(spec_path: Path) -> int:
    """The poller process: run the simulated agents of `spec_path`, write their polls beside it."""
    spec = json.loads(spec_path.read_text())
    result = asyncio.run(_simulate(spec))
    spec_path.with_suffix(".out.json").write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- the data


def build(apps: int, modules: int, large: int) -> dict:
    """Migrate and build; every environment delivers through agents; return what the run needs."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from lifecycle.models import Application, Delivery, Environment

    size, _plan, extra = prepare(apps, modules)
    user = get_user_model().objects.get(username="load")
    environments = {environment.name: environment for environment in Environment.objects.all()}
    dev, test = environments["Development"], environments[TARGET]
    # A new version of every module in Development: each application can be deployed to Test.
    publish_new_versions(dev, user)
    if large:
        build_application("Large", large, [dev, test], user)
    Environment.objects.update(delivery=Delivery.AGENT)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    deployable = list(Application.objects.exclude(name="Large").order_by("name").values_list("pk", flat=True))
    return {
        "size": data_set_size(),
        "ids": extra["ids"],
        "deployable": deployable,
        "large": Application.objects.get(name="Large").pk if large else None,
        "grid size": size,
    }


def publish_new_versions(environment, user) -> None:
    """What publishing a new version of every module into `environment` leaves behind, in bulk."""
    from django.db import transaction
    from django.db.models import Max
    from django.utils import timezone

    from lifecycle.models import Blob, CurrentVersion, ModuleChange, ModuleFile, ModuleVersion
    from lifecycle.snapshots import content_hash, tree_hash

    now = timezone.now()
    with transaction.atomic():
        rows = list(
            CurrentVersion.objects.select_related("version", "module").filter(environment=environment)
        )
        # Above every number the module has, a hotfix's in a later environment included.
        highest = dict(
            ModuleVersion.objects.values("module_id")
            .annotate(top=Max("number"))
            .values_list("module_id", "top")
        )
        contents = {row.module_id: f"# {row.module.name} bench/agents.py\n".encode() for row in rows}
        digests = {module: content_hash(data) for module, data in contents.items()}
        Blob.objects.bulk_create(
            [
                Blob(hash=digests[m], data=data, size=len(data), is_binary=False)
                for m, data in contents.items()
            ],
            batch_size=2000,
            ignore_conflicts=True,
        )
        versions = ModuleVersion.objects.bulk_create(
            [
                ModuleVersion(
                    module_id=row.module_id,
                    number=highest[row.module_id] + 1,
                    parent=row.version,
                    tree_hash=tree_hash({"main.py": digests[row.module_id]}),
                    file_count=1,
                    total_size=len(contents[row.module_id]),
                    comment="bench/agents.py",
                    published_in=environment,
                    created_by=user,
                )
                for row in rows
            ],
            batch_size=2000,
        )
        ModuleFile.objects.bulk_create(
            [ModuleFile(version=v, path="main.py", blob_id=digests[v.module_id]) for v in versions],
            batch_size=2000,
        )
        created = {version.module_id: version for version in versions}
        ModuleChange.objects.bulk_create(
            [
                ModuleChange(
                    environment=environment,
                    module_id=row.module_id,
                    previous_version=row.version,
                    version=created[row.module_id],
                    kind=ModuleChange.Kind.PUBLISH,
                    user=user,
                    at=now,
                )
                for row in rows
            ],
            batch_size=5000,
        )
        for row in rows:
            row.version, row.changed_at, row.changed_by = created[row.module_id], now, user
        CurrentVersion.objects.bulk_update(rows, ["version", "changed_at", "changed_by"], batch_size=2000)


def make_tokens(count: int) -> tuple[list[tuple[str, str]], str]:
    """`count` agent tokens spread over the environments (raw, environment name), and the real agent's."""
    from lifecycle.delivery import agent_tokens
    from lifecycle.models import Environment

    # Each creation is logged (and audited); hundreds of log lines would bury the report.
    logging.getLogger("lifecycle").setLevel(logging.WARNING)
    environments = list(Environment.objects.order_by("position"))
    simulated = []
    for index in range(count):
        environment = environments[index % len(environments)]
        _token, raw = agent_tokens.create(environment, f"simulated agent {index}")
        simulated.append((raw, environment.name))
    _token, real = agent_tokens.create(Environment.objects.get(name=TARGET), "real agent")
    return simulated, real


def undelivered(environment_name: str) -> int:
    """How many applications' modules in the environment the agent has not reported as applied."""
    from lifecycle.models import CurrentVersion, LiveApplication

    desired: dict[int, dict[str, str]] = {}
    for application, module, content in CurrentVersion.objects.filter(
        environment__name=environment_name
    ).values_list("module__application_id", "module__name", "version__tree_hash"):
        desired.setdefault(application, {})[module] = content
    applied = dict(
        LiveApplication.objects.filter(environment__name=environment_name).values_list(
            "application_id", "applied"
        )
    )
    return sum(1 for application, modules in desired.items() if applied.get(application) != modules)


# --------------------------------------------------------------------------- processes


def server_env(database_url: str) -> dict[str, str]:
    """The environment of gunicorn (as bench/load.py starts it) for the worker too."""
    env = {key: value for key, value in os.environ.items() if key != "GUNICORN_CMD_ARGS"}
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        HTTPS="false",
        STATIC_MANIFEST="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_process(command: list[str], log_path: Path, env: dict[str, str]):
    log = open(log_path, "wb")  # noqa: SIM115 - closed in stop_process
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    process.log_file = log
    return process


def stop_process(process, seconds: float = 20) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    process.log_file.close()
    return process.returncode


class OneShotDeployer(Deployer):
    """load.py's deployer, but each attempt only starts its deployment: the database says how it ended."""

    def _fail(self, sample, what: str, body: bytes) -> None:
        # A deployment waiting for the agent holds its target like a running one: the 409 that says
        # so is the expected refusal, and the application is tried again later, as its user would.
        match = re.fullmatch(r"deployment of application (\d+) refused: (.*is waiting for .*)", what, re.S)
        if match is None:
            super()._fail(sample, what, body)
            return
        sample.refused = True
        with self.lock:
            self.refused_running.append(match.group(2))
            self.queue.append(int(match.group(1)))

    def attempt(self, application: int, scheduled: float, drain_until: float) -> None:
        from load import Client

        with self.lock:
            self.attempts += 1
            self.late.append(time.monotonic() - scheduled)
        client = Client(self.session, self.timeout)
        try:
            self.start_one(client, application)
        except Exception as error:  # noqa: BLE001 - reported, never lost in a thread
            self.problems.append(f"deployment of application {application}: {error!r}")
        finally:
            client.close()


def wait_for_deployments(ids: list[int], seconds: float) -> None:
    from lifecycle.models import Deployment

    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if not Deployment.objects.filter(pk__in=ids, status__in=Deployment.ACTIVE).exists():
            return
        time.sleep(0.2)


def deliveries(ids: list[int]) -> tuple[list[dict], list[str]]:
    """Per deployment: its status, and the seconds from its start to the switch and to Finished."""
    from django.db.models import Min

    from lifecycle.models import Deployment, ModuleChange

    switched = dict(
        ModuleChange.objects.filter(deployment_id__in=ids)
        .values("deployment_id")
        .annotate(at=Min("at"))
        .values_list("deployment_id", "at")
    )
    rows, problems = [], []
    for deployment in Deployment.objects.filter(pk__in=ids).order_by("pk"):
        row = {
            "id": deployment.pk,
            "status": deployment.status,
            "switch": None,
            "total": None,
            "from": deployment.started_at.timestamp(),
            "until": deployment.finished_at.timestamp() if deployment.finished_at else None,
        }
        if deployment.pk in switched:
            row["switch"] = (switched[deployment.pk] - deployment.started_at).total_seconds()
        if deployment.finished_at:
            row["total"] = (deployment.finished_at - deployment.started_at).total_seconds()
        if deployment.status != Deployment.Status.FINISHED:
            lines = " / ".join(deployment.log_lines.values_list("message", flat=True)[:20])
            problems.append(f"deployment {deployment.pk} is {deployment.status_label}: {lines}")
        rows.append(row)
    return rows, problems


# --------------------------------------------------------------------------- profile


def profile_polls(count: int, lines: int) -> None:
    """Where an unchanged poll's time goes: `count` polls served in this process by Django's test client.

    Each poll is the first of its token for over a second, as in the load (every agent polls every
    few seconds), so each renews the token's sign of life. Measured twice: with a new database
    connection per poll (what gunicorn does with the default CONN_MAX_AGE=0) and with one kept
    open, then a cProfile of the first kind.
    """
    import cProfile
    import pstats

    from django.db import connection, connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from lifecycle.delivery import agent_tokens
    from lifecycle.models import Environment

    environment = Environment.objects.get(name=TARGET)
    raws = [agent_tokens.create(environment, f"profiled agent {index}")[1] for index in range(count)]
    client = Client()
    etag = client.get(STATE_PATH, HTTP_AUTHORIZATION=f"Bearer {raws[0]}")["ETag"]

    def poll(raw: str, reconnect: bool) -> None:
        response = client.get(STATE_PATH, HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_IF_NONE_MATCH=etag)
        if response.status_code != 304:
            sys.exit(f"profile: an unchanged poll answered {response.status_code}")
        if reconnect:
            connections.close_all()

    print(f"\nprofile: {count} unchanged polls in this process (Django's test client, no HTTP server)")
    for reconnect in (True, False):
        time.sleep(1.1)  # every token's sign of life is due again
        connection.ensure_connection()
        with CaptureQueriesContext(connection) as queries:
            began, cpu = time.perf_counter(), time.process_time()
            for raw in raws:
                poll(raw, reconnect)
            wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        kinds: dict[str, list[float]] = {}
        for query in queries.captured_queries:
            kinds.setdefault(query["sql"].split(" ", 1)[0], []).append(float(query["time"]) * 1000)
        shown = ", ".join(
            f"{len(times) / count:g} {kind} {sum(times) / len(times):.2f} ms" for kind, times in kinds.items()
        )
        what = "a new database connection per poll" if reconnect else "one database connection kept open"
        print(
            f"  {what}: {wall / count * 1000:.2f} ms per poll, {cpu / count * 1000:.2f} ms of it CPU in "
            f"this process; queries per poll: {shown} (as Django times them)"
        )
    time.sleep(1.1)
    profiler = cProfile.Profile()
    profiler.enable()
    for raw in raws:
        poll(raw, True)
    profiler.disable()
    print(f"  cProfile of the {count} polls with a new connection each, by own time:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(lines)


# --------------------------------------------------------------------------- report


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    return (
        f"p50 {_percentile(ordered, 0.5):.1f}  p99 {_percentile(ordered, 0.99):.1f}  "
        f"max {ordered[-1]:.1f}  (n={len(ordered)})"
    )


def cpu_of(before: dict, after: dict, pids: set[int]) -> float:
    spent = 0.0
    for pid in pids:
        if pid in after:
            _, own, children = after[pid]
            _, own_before, children_before = before.get(pid, (None, 0.0, 0.0))
            spent += (own - own_before) + (children - children_before)
    return spent


def postgres_cpu(before: dict, after: dict) -> float:
    spent = 0.0
    for pid, (name, own, children) in after.items():
        if name == "postgres":
            _, own_before, children_before = before.get(pid, (name, 0.0, 0.0))
            spent += (own - own_before) + (children - children_before)
    return spent


def agent_log_summary(log_path: Path) -> dict[str, int]:
    text = log_path.read_text(errors="replace")
    return {
        "lines": text.count("\n"),
        "tracebacks": text.count("Traceback"),
        "errors": sum(1 for line in text.splitlines() if "error" in line.lower() or "refus" in line.lower()),
    }


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=200, help="simulated agents (default 200)")
    parser.add_argument("--interval", type=float, default=5, help="seconds between polls (default 5)")
    parser.add_argument("--duration", type=float, default=60, help="seconds measured (default 60)")
    parser.add_argument(
        "--warmup", type=float, default=0, help="seconds before the measurement (default: one interval)"
    )
    parser.add_argument("--apps", type=int, default=40, help="applications (default 40)")
    parser.add_argument("--modules", type=int, default=10, help="modules per application (default 10)")
    parser.add_argument(
        "--large", type=int, default=500, help="modules of the application Large, 0 for none (default 500)"
    )
    parser.add_argument(
        "--deploy-every", type=float, default=4.0, help="seconds between deployments, 0 for none (default 4)"
    )
    parser.add_argument(
        "--agent-interval", type=float, default=1.0, help="the real agent's --interval (default 1)"
    )
    parser.add_argument(
        "--worker-interval", type=float, default=0.2, help="the worker's --interval (default 0.2)"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker (default 2)")
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        help="give gunicorn and the worker DATABASE_URL=…?conn_max_age=N, as docs/deployment.md does "
        "(default 60: persistent database connections; 0: a new connection per request)",
    )
    parser.add_argument("--request-timeout", type=float, default=30, help="seconds before a poll times out")
    parser.add_argument(
        "--sync-timeout",
        type=float,
        default=600,
        help="seconds the real agent may take to deliver Test first",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the deployment order")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL.replace("stageboard_bench", "stageboard_bench_agents"),
        help="PostgreSQL database to use: dropped and re-created, dropped at the end (default %(default)s)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database, the logs and the agent's folder"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="at the end, time and cProfile N unchanged polls in this process (default: none)",
    )
    parser.add_argument("--profile-lines", type=int, default=25, help="functions of the profile shown")
    parser.add_argument("--simulate", type=Path, help=argparse.SUPPRESS)  # the poller process
    options = parser.parse_args(argv)
    if options.simulate:
        return simulate(options.simulate)
    if min(options.agents, options.apps, options.modules, options.workers, options.threads) < 1:
        parser.error("--agents, --apps, --modules, --workers and --threads must be at least 1")
    if options.interval <= 0 or options.duration <= 0 or options.deploy_every < 0 or options.large < 0:
        parser.error("--interval and --duration must be positive, --deploy-every and --large not negative")
    if not AGENT.exists():
        sys.exit(f"{AGENT.relative_to(ROOT)} is missing")
    warmup = options.warmup or options.interval

    name, maintenance = _split_database_url(options.database_url)
    _create_database(maintenance, name, replace=True)
    work = Path(tempfile.mkdtemp(prefix="stageboard-agents-"))
    processes: dict[str, subprocess.Popen] = {}
    errors: list[str] = []
    completed = False
    try:
        configure_django(options.database_url)
        import django
        from django.db import connection, connections

        started = time.perf_counter()
        data = build(options.apps, options.modules, options.large)
        simulated, real_token = make_tokens(options.agents)
        build_seconds = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            server = cursor.fetchone()[0].split(" on ")[0]
        connections.close_all()

        server_url = options.database_url
        if options.conn_max_age:
            server_url += ("&" if "?" in server_url else "?") + f"conn_max_age={options.conn_max_age}"
        port = free_port()
        gunicorn, command = start_gunicorn(
            server_url, port, options.workers, options.threads, work / "gunicorn.log", False
        )
        processes["gunicorn"] = gunicorn
        boot_seconds = wait_until_answering(gunicorn, port, work / "gunicorn.log")
        env = server_env(server_url)
        processes["worker"] = start_process(
            [
                sys.executable,
                "manage.py",
                "db_worker",
                "--interval",
                str(options.worker_interval),
                "--no-reload",
                "--no-startup-delay",
            ],
            work / "worker.log",
            env,
        )
        token_file = work / "real-agent.token"
        token_file.write_text(real_token + "\n")
        token_file.chmod(0o600)
        agent_root = work / "test"
        agent_command = [
            sys.executable,
            str(AGENT),
            "--server",
            f"http://{HOST}:{port}",
            "--token-file",
            str(token_file),
            "--root",
            str(agent_root),
            "--interval",
            f"{options.agent_interval:g}",
        ]
        sync_started = time.monotonic()
        processes["agent"] = start_process(
            agent_command, work / "agent.log", {**os.environ, "PYTHONUNBUFFERED": "1"}
        )

        print(
            f"Stageboard agents benchmark — database {name} ({server}), Django {django.get_version()}, "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        print(f"data build {build_seconds:.1f} s (migrate and {options.agents + 1} agent tokens included)")
        print("data set: " + ", ".join(f"{value:,} {key}" for key, value in data["size"].items()))
        shown = " ".join(command[1:])
        print(f"gunicorn {shown}  (up in {boot_seconds:.1f} s), DATABASE_URL={server_url}")
        print(f"worker: manage.py db_worker --interval {options.worker_interval:g}")
        print(f"real agent on {TARGET}: stageboard_agent.py --interval {options.agent_interval:g}")
        sys.stdout.flush()

        # The real agent's first pass delivers everything Test runs.
        while (left := undelivered(TARGET)) and time.monotonic() - sync_started < options.sync_timeout:
            for process_name, process in processes.items():
                if process.poll() is not None:
                    sys.exit(f"{process_name} exited with {process.returncode}; see {work}")
            time.sleep(0.5)
        connections.close_all()
        if left:
            sys.exit(
                f"the real agent had not delivered {left} applications of {TARGET} after "
                f"{options.sync_timeout:g} s; see {work / 'agent.log'}"
            )
        print(f"first delivery of {TARGET} by the real agent: {time.monotonic() - sync_started:.1f} s")

        # The simulated agents, in a process of their own so that this one's work does not delay them.
        now = time.time()
        first_at = now + 1.0
        start_at = first_at + warmup
        stop_at = start_at + options.duration
        spec = {
            "port": port,
            "tokens": simulated,
            "interval": options.interval,
            "timeout": options.request_timeout,
            "first_at": first_at,
            "start_at": start_at,
            "stop_at": stop_at,
        }
        spec_path = work / "pollers.json"
        spec_path.write_text(json.dumps(spec))
        pollers = start_process(
            [sys.executable, str(Path(__file__).resolve()), "--simulate", str(spec_path)],
            work / "pollers.log",
            os.environ.copy(),
        )
        processes["pollers"] = pollers
        print(
            f"load: {options.agents} simulated agents over 4 environments, each polling every "
            f"{options.interval:g} s with If-None-Match on a new connection; {warmup:g} s warm-up, then "
            f"{options.duration:g} s measured; "
            + (
                f"a Tag & Deploy Development → {TARGET} every {options.deploy_every:g} s"
                if options.deploy_every
                else "no deployments"
            )
        )
        sys.stdout.flush()

        session = log_in(port, 30)
        rng = random.Random(options.seed)
        candidates = list(data["deployable"])
        rng.shuffle(candidates)
        offset = time.monotonic() - time.time()  # the deployer schedules on the monotonic clock
        deployer = OneShotDeployer(
            session,
            candidates,
            data["ids"]["Development"],
            data["ids"][TARGET],
            options.deploy_every or 1,
            30,
        )
        deployer_thread = None
        if options.deploy_every:
            deployer_thread = threading.Thread(
                target=deployer.run,
                args=(start_at + offset, stop_at + offset, stop_at + offset),
                name="deployer",
            )
            deployer_thread.start()

        time.sleep(max(start_at - time.time(), 0))
        workers = worker_pids(gunicorn.pid)
        gunicorn_pids = {gunicorn.pid, *workers}
        cpu_before, (busy_before, total_before) = cpu_snapshot(), machine_busy()
        time.sleep(max(stop_at - time.time(), 0))
        cpu_after, (busy_after, total_after) = cpu_snapshot(), machine_busy()
        if deployer_thread:
            deployer_thread.join()
        pollers.wait(options.request_timeout + 10)
        stop_process(pollers)
        del processes["pollers"]
        result = json.loads(spec_path.with_suffix(".out.json").read_text())
        wait_for_deployments(deployer.started, 120)

        polls = [Poll(**poll) for poll in result["polls"]]
        window = options.duration
        rows, deploy_problems = deliveries(deployer.started) if options.deploy_every else ([], [])
        unchanged = [poll.ms for poll in polls if poll.status == 304 and not poll.problem]
        changed = [poll.ms for poll in polls if poll.status == 200 and not poll.problem]
        failed = [poll for poll in polls if poll.problem]
        gunicorn_cpu = cpu_of(cpu_before, cpu_after, gunicorn_pids)
        database_cpu = postgres_cpu(cpu_before, cpu_after)
        busy = (busy_after - busy_before) / max(total_after - total_before, 1) * os.cpu_count()
        print()
        print(f"polls in the {window:g} s window: {len(polls):,} ({len(polls) / window:.1f}/s)")
        print(f"  unchanged (304) ms: {percentiles(unchanged)}")
        print(f"  changed (200) ms:   {percentiles(changed)}")
        sizes = [poll.size for poll in polls if poll.status == 200]
        if sizes:
            print(f"  a changed state is {sum(sizes) / len(sizes) / 1024:.1f} KB on average")
        print(
            f"  errors: {len(failed)}; errors in the warm-up: {result['counters']['warm-up errors']}; "
            f"polls sent late: {result['counters']['late']}"
        )
        problems: dict[str, int] = {}
        for poll in failed:
            problems[poll.problem[:160]] = problems.get(poll.problem[:160], 0) + 1
        for problem, count in sorted(problems.items(), key=lambda item: -item[1])[:8]:
            print(f"    {count:>6} × {problem}")
        for problem in result["counters"].get("warm-up problems", [])[:3]:
            print(f"    warm-up: {problem[:160]}")
        if rows:
            # What the slow unchanged polls met: a deployment being delivered (the real agent's
            # downloads) or a changed state being served to another agent, or neither.
            spans = [(row["from"], row["until"] or stop_at) for row in rows] + [
                (poll.sent, poll.sent + poll.ms / 1000) for poll in polls if poll.status == 200
            ]
            during, others = [], []
            for poll in polls:
                if poll.status == 304 and not poll.problem:
                    answered = poll.sent + poll.ms / 1000
                    met = any(start <= answered and poll.sent <= end for start, end in spans)
                    (during if met else others).append(poll.ms)
            print(f"    met a delivery (start → confirmed) or a changed state: {percentiles(during)}")
            print(f"    met neither:                                           {percentiles(others)}")
        per_poll = 1000 / max(len(polls), 1)
        print(
            f"CPU in the window: gunicorn {gunicorn_cpu:.2f} s ({gunicorn_cpu * per_poll:.2f} ms per poll), "
            f"PostgreSQL (all databases) {database_cpu:.2f} s ({database_cpu * per_poll:.2f} ms per poll); "
            f"machine {busy:.2f} of {os.cpu_count()} cores busy"
            + ("" if not options.deploy_every else " (deployments and the real agent's requests included)")
        )
        groups = {
            "gunicorn": gunicorn_pids,
            "simulated agents": {pollers.pid},
            "real agent": {processes["agent"].pid},
            "worker": {processes["worker"].pid},
            "this script": {os.getpid()},
        }
        spent = {name: cpu_of(cpu_before, cpu_after, pids) for name, pids in groups.items()}
        spent["PostgreSQL"] = database_cpu
        spent["everything else on the machine"] = max(busy * window - sum(spent.values()), 0)
        print("  in cores: " + ", ".join(f"{name} {seconds / window:.2f}" for name, seconds in spent.items()))
        if failed:
            errors.append(f"{len(failed)} polls failed")
        if result["counters"]["warm-up errors"]:
            errors.append(f"{result['counters']['warm-up errors']} polls failed in the warm-up")

        if options.deploy_every:
            print()
            print(
                f"deployments Development → {TARGET}: attempts {deployer.attempts}, started {len(rows)}, "
                f"refused because one into {TARGET} was still running or waiting (409, expected): "
                f"{len(deployer.refused_running)}"
            )
            statuses: dict[str, int] = {}
            for row in rows:
                statuses[row["status"]] = statuses.get(row["status"], 0) + 1
            print("  ended: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))
            print(
                "  start → switched (s):        "
                + percentiles([row["switch"] for row in rows if row["switch"] is not None])
            )
            print(
                "  start → agent confirmed (s): "
                + percentiles([row["total"] for row in rows if row["status"] == "finished"])
            )
            for problem in (deployer.problems + deploy_problems)[:5]:
                print(f"  ERROR: {problem}")
            errors += deployer.problems + deploy_problems
            if not rows:
                errors.append("no deployment started")

        if data["large"]:
            print()
            large = OneShotDeployer(
                session, [data["large"]], data["ids"]["Development"], data["ids"][TARGET], 1, 60
            )
            gunicorn_pids = {gunicorn.pid, *worker_pids(gunicorn.pid)}
            cpu_before, wall_before = cpu_snapshot(), time.monotonic()
            large.run(time.monotonic(), time.monotonic() + 0.5, time.monotonic() + 0.5)
            wait_for_deployments(large.started, 120)
            cpu_after, wall = cpu_snapshot(), time.monotonic() - wall_before
            rows, large_problems = deliveries(large.started)
            for row in rows:
                print(
                    f"Large, {options.large} modules changed, Development → {TARGET}: {row['status']}; "
                    f"start → switched {row['switch'] or 0:.2f} s, start → agent confirmed "
                    + (f"{row['total']:.2f} s" if row["total"] is not None else "never")
                )
            spent = {
                "the agent": cpu_of(cpu_before, cpu_after, {processes["agent"].pid}),
                "gunicorn": cpu_of(cpu_before, cpu_after, gunicorn_pids),
                "the worker": cpu_of(cpu_before, cpu_after, {processes["worker"].pid}),
                "PostgreSQL (all databases)": postgres_cpu(cpu_before, cpu_after),
            }
            print(
                f"  CPU in those {wall:.1f} s: "
                + ", ".join(f"{who} {seconds:.2f} s" for who, seconds in spent.items())
            )
            for problem in large.problems + large_problems:
                print(f"  ERROR: {problem}")
            errors += large.problems + large_problems
            if not rows:
                errors.append("the deployment of Large did not start")
        connections.close_all()

        if options.profile:
            profile_polls(options.profile, options.profile_lines)
            connections.close_all()

        for process_name in ("agent", "worker", "gunicorn"):
            process = processes.pop(process_name)
            returncode = stop_process(process)
            if returncode not in (0, -signal.SIGTERM, 1 if process_name == "agent" else 0):
                errors.append(f"{process_name} exited with {returncode}")
        print()
        findings = log_findings(work / "gunicorn.log")
        serious = {
            key: found
            for key, found in findings.items()
            if key
            in {
                "tracebacks",
                "server errors (django.request)",
                "worker timeouts",
                "workers killed or exited early",
                "gunicorn errors",
            }
        }
        for what, found in serious.items():
            print(f"gunicorn log, {what}: {len(found)}")
            for line in found[:3]:
                print(f"    {line}")
        if sum(len(found) for found in serious.values()):
            errors.append("errors in the gunicorn log")
        worker_tracebacks = (work / "worker.log").read_text(errors="replace").count("Traceback")
        agent = agent_log_summary(work / "agent.log")
        print(f"worker log: {worker_tracebacks} tracebacks")
        print(
            f"real agent log: {agent['lines']} lines, {agent['tracebacks']} tracebacks, "
            f"{agent['errors']} lines saying error or refused"
        )
        if worker_tracebacks or agent["tracebacks"]:
            errors.append("tracebacks in the worker's or the agent's log")
        print("\nresult: " + ("ZERO ERRORS" if not errors else "ERRORS: " + "; ".join(errors[:10])))
        completed = True
        return 1 if errors else 0
    finally:
        for process in processes.values():
            stop_process(process)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        if options.keep:
            print(f"\nkept database {name}: {options.database_url}")
        else:
            _drop_database(maintenance, name)
        if options.keep or errors or not completed:
            print(
                f"kept the logs and the agent's folder: {work}",
                file=sys.stderr if not completed else sys.stdout,
            )
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
