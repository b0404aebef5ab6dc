"""Real `manage.py db_worker` processes on PostgreSQL: one runs a deployment, one is killed inside its switch.

The worker is a subprocess on the test database (DATABASE_URL), with the database
task backend (TASKS_BACKEND) and a 2-second heartbeat. To kill it *inside* its
switch, the test holds a row lock on a CurrentVersion row the switch must update:
the worker blocks there, in its one transaction, until it is killed. Nothing it
did in that transaction survives, and the deployment's page says so once the
lease expired. (On SQLite, test_leases.py simulates the stale lease.)
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from lifecycle.deploying import leases
from lifecycle.deploying.running import launch, run_deployment
from lifecycle.models import CurrentVersion, Deployment, DeploymentItem
from tests.lifecycle.deliveries import changed_in_development, log_messages, running_hashes, snapshot, start

ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT = 2
WAIT = 60  # seconds: the most any step may take before the test gives up (never an assertion on speed)

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks and worker processes need PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]
Status = Deployment.Status


@pytest.fixture
def worker_settings(settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.DEPLOYMENT_HEARTBEAT_SECONDS = HEARTBEAT
    return settings


def database_url() -> str:
    params = connection.settings_dict
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    where = f"{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}"
    return f"postgres://{params['USER']}{password}@{where}/{params['NAME']}"


def worker(log_path, *arguments) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
        "DEPLOYMENT_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "--no-reload", "-v", "2"]
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [*command, *arguments], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )


def wait_for(condition, what, log_path=None):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            output = Path(log_path).read_text(errors="replace")[-4000:] if log_path else ""
            pytest.fail(f"gave up waiting for {what}\n{output}")
        time.sleep(0.05)


def lock_waiters() -> int:
    """Sessions of the test database waiting for a lock now (read afresh: we are in autocommit)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def hold_rows(environment, application) -> psycopg.Connection:
    """Lock the application's current-version rows in `environment` from a connection of our own."""
    holder = psycopg.connect(**connection.get_connection_params())
    rows = CurrentVersion.objects.filter(environment=environment, module__application=application)
    table = CurrentVersion._meta.db_table
    holder.execute(
        f"SELECT id FROM {table} WHERE id = ANY(%s) FOR UPDATE", [list(rows.values_list("pk", flat=True))]
    )
    return holder


def until_the_lease_is_stale(deployment) -> None:
    deployment.refresh_from_db()
    remaining = (deployment.heartbeat_at + timedelta(seconds=HEARTBEAT) - timezone.now()).total_seconds()
    time.sleep(max(remaining, 0) + 0.2)


def test_a_worker_process_runs_a_deployment_to_the_end(
    environments, release_manager, worker_settings, tmp_path
):
    dev, qa, _, _ = environments
    shop, _ = changed_in_development("Shop", environments)
    deployment = start(dev, qa, shop, release_manager)
    launch(deployment)  # On the database backend: a row for the worker, and the watch for later.

    process = worker(tmp_path / "worker.log", "--batch")
    assert process.wait(WAIT) == 0, (tmp_path / "worker.log").read_text()

    deployment.refresh_from_db()
    assert deployment.status == Status.FINISHED, log_messages(deployment)
    assert deployment.worker == f"{socket.gethostname()}:{process.pid}"
    assert running_hashes(qa, shop) == running_hashes(dev, shop)
    assert log_messages(deployment)[-1] == "Finished."


def test_a_worker_killed_inside_its_switch_changed_nothing_and_the_page_says_aborted(
    client, environments, release_manager, viewer, worker_settings, tmp_path
):
    dev, qa, _, _ = environments
    shop, _ = changed_in_development("Shop", environments)
    deployment = start(dev, qa, shop, release_manager)
    before = snapshot()
    log_path = tmp_path / "worker.log"

    holder = hold_rows(qa, shop)
    try:
        launch(deployment)
        process = worker(log_path)
        try:
            # The worker claimed the lease, logged, opened its transaction and now waits for our lock.
            wait_for(lambda: lock_waiters() >= 1, "the worker to wait for the locked rows", log_path)
            deployment.refresh_from_db()
            assert deployment.worker == f"{socket.gethostname()}:{process.pid}"
            assert log_messages(deployment)[-1] == "Switching in Quality Assurance in one transaction."
            assert deployment.status == Status.RUNNING
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(WAIT)
    finally:
        holder.rollback()
        holder.close()
    # Its database session notices it is gone and rolls back; its locks go with it.
    wait_for(lambda: lock_waiters() == 0, "the killed worker's session to end", log_path)

    until_the_lease_is_stale(deployment)
    client.force_login(viewer)
    page = client.get(reverse("lifecycle:deployment", args=[deployment.pk])).content.decode()

    assert '<span class="deploy-status deploy-status-failed">Aborted</span>' in page
    assert "The worker stopped; nothing was changed in Quality Assurance." in page
    deployment.refresh_from_db()
    assert deployment.status == Status.FAILED
    assert snapshot() == before  # No CurrentVersion, ModuleChange, tag or item of the switch survived.
    assert not DeploymentItem.objects.filter(deployment=deployment).exists()


def test_a_sweep_waits_for_a_live_switch_and_never_reaps_it(environments, release_manager, worker_settings):
    """A worker slower than its heartbeat holds its row in the switch: a sweeper waits, then sees it done."""
    dev, qa, _, _ = environments
    shop, _ = changed_in_development("Shop", environments)
    deployment = start(dev, qa, shop, release_manager)
    outcomes = {}

    def run(name, function):
        try:
            outcomes[name] = function()
        except Exception as error:  # noqa: BLE001  (reported by the assertions below)
            outcomes[name] = repr(error)
        finally:
            connection.close()

    holder = hold_rows(qa, shop)
    threads = [threading.Thread(target=run, args=("worker", lambda: run_deployment(deployment.pk).status))]
    try:
        threads[0].start()
        wait_for(lambda: lock_waiters() >= 1, "the switch to wait for the locked rows")
        until_the_lease_is_stale(deployment)  # Its lease looks stale now; its transaction holds the row.
        threads.append(threading.Thread(target=run, args=("sweeper", leases.sweep)))
        threads[1].start()
        wait_for(lambda: lock_waiters() >= 2, "the sweeper to wait for the deployment's row")
    finally:
        holder.rollback()
        holder.close()
    for thread in threads:
        thread.join(WAIT)

    assert outcomes == {"worker": Status.FINISHED, "sweeper": 0}
    deployment.refresh_from_db()
    assert deployment.status == Status.FINISHED
    assert "The worker stopped; nothing was changed in Quality Assurance." not in log_messages(deployment)
    assert running_hashes(qa, shop) == running_hashes(dev, shop)
