"""On SQLite, the default for one machine, concurrent requests queue: never "database is locked".

Two deployments into one target at once: one starts, the other is refused with the usual message,
never a 500. SQLite's locks only show on a file opened through the real settings, one connection per
thread, so the race runs in a child process (tests/lifecycle/sqlite_race.py) on a fresh file database.
Before transactions took the write lock when they began, it failed with OperationalError
"database is locked" in most rounds.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNING = re.compile(
    r"Deployment \d+ into Quality Assurance by (alice|bob) is running since \d\d:\d\d:\d\d; "
    r"try again when it has finished\."
)
STALE = "Development or Quality Assurance changed after this plan was validated. Validate it again."


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return tmp_path_factory.mktemp("sqlite") / "stageboard.sqlite3"


@pytest.fixture(scope="module")
def report(database):
    """What each side of each race got, from the child process (about two seconds)."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{database}",
        # Deployments run inline, within the request that starts them, as in every test.
        "TASKS_BACKEND": "django_tasks.backends.immediate.ImmediateBackend",
    }
    child = subprocess.run(
        [sys.executable, "-m", "tests.lifecycle.sqlite_race"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-4000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def test_a_file_database_takes_the_write_lock_first_and_waits_for_it(report, database):
    assert report["options"]["transaction_mode"] == "IMMEDIATE"
    assert report["options"]["timeout"] >= 5
    # Bytes 18 and 19 of an SQLite file are 2 in write-ahead-log mode: readers never wait for a writer.
    assert database.read_bytes()[18:20] == b"\x02\x02"


def test_of_two_deployments_at_once_one_starts_and_the_other_is_told_who_runs(report):
    for outcomes in report["domain"]:
        assert sorted(kind for kind, _ in outcomes) == ["refused", "started"], outcomes
        (refusal,) = [detail for kind, detail in outcomes if kind == "refused"]
        assert RUNNING.fullmatch(refusal), refusal


def test_of_two_deploy_requests_at_once_one_deploys_and_the_other_is_refused(report):
    """Through the whole request stack; the first deployment runs inline, so it may have finished."""
    for outcomes in report["http"]:
        assert sorted(status for status, _ in outcomes) == [302, 409], outcomes
        (refusal,) = [message for status, message in outcomes if status == 409]
        assert RUNNING.fullmatch(refusal) or refusal == STALE, refusal
