"""The deployment row is the lease: claimed once, renewed while it runs, reaped when its worker stopped.

A worker that stops before committing its switch changed nothing (the switch is
one transaction), so the sweep says exactly that; a deployment is never run
twice, and never ended twice by two sweepers.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from lifecycle.deploying import leases, running
from lifecycle.deploying.running import launch, run_deployment, start_deployment
from lifecycle.deploying.validation import DeploymentRefused, validate
from lifecycle.models import AuditEvent, Deployment, DeploymentItem, DeploymentLogLine
from tests.lifecycle.deliveries import (
    changed_in_development,
    endings,
    log_messages,
    make_stale,
    snapshot,
    start,
)

pytestmark = pytest.mark.django_db

Status = Deployment.Status
DB_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


@pytest.fixture
def shop(environments):
    return changed_in_development("Shop", environments)[0]


def test_a_deployment_starts_with_its_lease_and_the_worker_that_claims_it_is_named(
    environments, release_manager, shop
):
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    assert deployment.status == Status.RUNNING
    assert deployment.heartbeat_at == deployment.started_at
    assert deployment.worker == ""

    deployment = run_deployment(deployment.pk)

    assert deployment.status == Status.FINISHED
    assert deployment.worker == leases.worker_name()
    host, pid = deployment.worker.rsplit(":", 1)
    assert host and pid.isdigit()
    assert deployment.heartbeat_at >= deployment.started_at


def test_a_deployment_is_never_run_twice(environments, release_manager, shop):
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    assert run_deployment(deployment.pk).status == Status.FINISHED
    lines, audit, state = log_messages(deployment), endings(deployment), snapshot()

    # The same task again (a double launch, a task run twice): nothing happens, nothing is re-judged.
    assert run_deployment(deployment.pk).status == Status.FINISHED
    assert (log_messages(deployment), endings(deployment), snapshot()) == (lines, audit, state)
    assert endings(deployment) == [AuditEvent.Action.DEPLOY_FINISHED]


def test_of_two_claims_one_wins_and_a_deployment_another_worker_holds_is_left_alone(
    environments, release_manager, shop
):
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    assert leases.claim(deployment.pk)
    assert not leases.claim(deployment.pk)

    Deployment.objects.filter(pk=deployment.pk).update(worker="web-2:777")
    before = snapshot()
    assert run_deployment(deployment.pk).status == Status.RUNNING
    assert snapshot() == before
    assert log_messages(deployment) == [
        f"Started by {release_manager.username}: Development → Quality Assurance."
    ]


def test_a_deployment_no_worker_took_in_time_is_aborted_and_never_runs_late(
    environments, release_manager, shop, settings
):
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    Deployment.objects.filter(pk=deployment.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.DEPLOYMENT_HEARTBEAT_SECONDS + 1)
    )
    before = snapshot()

    # A worker that gets to it late does not run it: its lease expired.
    assert run_deployment(deployment.pk).status == Status.RUNNING
    assert leases.sweep() == 1

    deployment.refresh_from_db()
    assert deployment.status == Status.FAILED
    assert deployment.status_label == "Aborted"
    assert deployment.finished_at is not None
    assert log_messages(deployment)[-1] == (
        f"No worker picked it up within {settings.DEPLOYMENT_HEARTBEAT_SECONDS} s; nothing was changed."
    )
    assert snapshot() == before
    assert endings(deployment) == [AuditEvent.Action.DEPLOY_FAILED]


def test_viewing_a_deployment_whose_worker_stopped_marks_it_aborted_once(
    client, environments, release_manager, viewer, shop
):
    """The SQLite form of the killed worker (test_worker_processes.py kills a real one on PostgreSQL)."""
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    assert leases.claim(deployment.pk)
    before = snapshot()
    make_stale(deployment, worker=leases.worker_name())

    client.force_login(viewer)
    url = reverse("lifecycle:deployment", args=[deployment.pk])
    page = client.get(url).content.decode()

    assert '<span class="deploy-status deploy-status-failed">Aborted</span>' in page
    assert "The worker stopped; nothing was changed in Quality Assurance." in page
    assert 'hx-trigger="every 1s"' not in page
    assert snapshot() == before
    deployment.refresh_from_db()
    assert deployment.status == Status.FAILED

    # The next views, sweeps and the worker, should it come back, change nothing more.
    assert client.get(url, headers={"HX-Request": "true"}).status_code == 286
    assert leases.sweep() == 0
    assert run_deployment(deployment.pk).status == Status.FAILED
    assert (
        log_messages(deployment).count("The worker stopped; nothing was changed in Quality Assurance.") == 1
    )
    assert endings(deployment) == [AuditEvent.Action.DEPLOY_FAILED]
    assert snapshot() == before
    event = AuditEvent.objects.get(action=AuditEvent.Action.DEPLOY_FAILED)
    assert event.environment == "Quality Assurance"
    assert event.after == {"deployment": deployment.pk, "status": "failed"}


def test_a_live_lease_is_not_reaped(environments, release_manager, shop):
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    assert leases.claim(deployment.pk)
    assert leases.sweep() == 0
    assert leases.renew(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == Status.RUNNING


def test_a_worker_reaped_between_its_steps_stops_without_switching(
    environments, release_manager, shop, monkeypatch
):
    """The sweep comes while the worker logs its first line: its renewal fails and it switches nothing."""
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    before = snapshot()
    real_renew = leases.renew

    def renew_after_a_sweep(deployment_id):
        make_stale(Deployment.objects.get(pk=deployment_id), worker=leases.worker_name())
        assert leases.sweep() == 1
        return real_renew(deployment_id)

    monkeypatch.setattr(leases, "renew", renew_after_a_sweep)
    deployment = run_deployment(deployment.pk)

    assert deployment.status == Status.FAILED
    assert snapshot() == before
    assert log_messages(deployment)[-2:] == [
        "Switching in Quality Assurance in one transaction.",
        "The worker stopped; nothing was changed in Quality Assurance.",
    ]
    assert endings(deployment) == [AuditEvent.Action.DEPLOY_FAILED]


def test_a_stopped_deployment_no_longer_blocks_its_target(environments, release_manager, developer, shop):
    dev, qa, _, _ = environments
    stopped = start(dev, qa, shop, release_manager)
    make_stale(stopped)

    second = start(dev, qa, shop, developer)

    stopped.refresh_from_db()
    assert stopped.status == Status.FAILED
    assert log_messages(stopped)[-1] == "The worker stopped; nothing was changed in Quality Assurance."
    assert run_deployment(second.pk).status == Status.FINISHED


def test_a_running_deployment_blocks_its_target_while_its_lease_is_fresh(
    environments, release_manager, developer, shop
):
    dev, qa, _, _ = environments
    first = start(dev, qa, shop, release_manager)
    assert leases.claim(first.pk)
    fingerprint = validate(dev, qa, [shop]).fingerprint
    with pytest.raises(
        DeploymentRefused,
        match=rf"^Deployment {first.pk} into Quality Assurance by release-manager is running since ",
    ):
        start_deployment(dev, qa, [shop], user=developer, fingerprint=fingerprint)
    assert Deployment.objects.count() == 1


def test_a_failure_in_the_switch_ends_the_deployment_aborted_once(
    environments, release_manager, shop, monkeypatch
):
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    before = snapshot()

    def broken(deployment):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(running, "_switcher", lambda deployment: broken)
    deployment = run_deployment(deployment.pk)

    assert deployment.status == Status.FAILED
    assert (
        log_messages(deployment)[-1] == "Failed, nothing was changed in Quality Assurance: the disk is full"
    )
    assert DeploymentLogLine.objects.filter(deployment=deployment, level="error").count() == 1
    assert snapshot() == before
    assert not DeploymentItem.objects.exists()
    assert endings(deployment) == [AuditEvent.Action.DEPLOY_FAILED]


# The next worker pass: a watch task, on a backend that can defer tasks.


def test_the_start_schedules_the_next_worker_pass_and_launch_the_run_on_the_database_backend(
    environments, release_manager, shop, settings
):
    settings.TASKS = DB_BACKEND
    dev, qa, _, _ = environments
    started = timezone.now()
    deployment = start(dev, qa, shop, release_manager)

    # Written with the deployment, in its transaction: a start whose process stops is still watched.
    watch = DBTaskResult.objects.get()
    assert watch.task_path == "lifecycle.tasks.watch_deployment"
    assert watch.args_kwargs == {"args": [deployment.pk], "kwargs": {}}
    heartbeat = timedelta(seconds=settings.DEPLOYMENT_HEARTBEAT_SECONDS)
    assert started + heartbeat <= watch.run_after <= timezone.now() + heartbeat
    assert not DBTaskResult.objects.ready().exists()

    launch(deployment)

    run = DBTaskResult.objects.ready().get()  # The run at once, the watch later.
    assert run.task_path == "lifecycle.tasks.run_deployment"
    assert run.args_kwargs == {"args": [deployment.pk], "kwargs": {}}
    # Nothing ran: a worker will.
    deployment.refresh_from_db()
    assert (deployment.status, deployment.worker) == (Status.RUNNING, "")


def test_the_watch_comes_back_while_the_deployment_runs_and_reaps_it_when_its_worker_stopped(
    environments, release_manager, shop, settings
):
    settings.TASKS = DB_BACKEND
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    assert leases.claim(deployment.pk)

    watches = DBTaskResult.objects.filter(task_path="lifecycle.tasks.watch_deployment")
    assert watches.count() == 1  # The start's.

    assert leases.watch(deployment.pk) == Status.RUNNING
    assert watches.count() == 2  # It comes back, a heartbeat later.

    make_stale(deployment, worker=leases.worker_name())
    assert leases.watch(deployment.pk) == Status.FAILED
    assert watches.count() == 2  # Over: no more passes.
    assert log_messages(deployment)[-1] == "The worker stopped; nothing was changed in Quality Assurance."


def test_without_a_backend_that_defers_there_is_no_watch(environments, release_manager, shop):
    dev, qa, _, _ = environments
    deployment = start(dev, qa, shop, release_manager)
    assert not leases.schedule_watch(deployment)
    # The immediate backend (the tests') ran the deployment within launch.
    launch(deployment)
    deployment.refresh_from_db()
    assert deployment.status == Status.FINISHED
