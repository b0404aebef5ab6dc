"""Deployments into agent and webhook environments: waiting for the machines, their answers, Retry.

A deployment switches in Stageboard and waits ("Waiting for Quality Assurance")
until the agent's report shows every application applied (finished), a hook
failed (finished with errors, with its output), or the deadline passed (finished
with errors). Retry makes the machines apply it again, once, for those allowed.
"""

import re
import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from lifecycle.delivery import confirming
from lifecycle.deploying import leases
from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.validation import DeploymentRefused, validate
from lifecycle.models import (
    AuditEvent,
    Delivery,
    Deployment,
    DeploymentLogLine,
    Environment,
    LiveApplication,
)
from tests.factories import publish_files
from tests.lifecycle.deliveries import (
    changed_in_development,
    endings,
    log_messages,
    report,
    running_hashes,
    snapshot,
    start,
)

pytestmark = pytest.mark.django_db

Status = Deployment.Status
Action = AuditEvent.Action
HTMX = {"HX-Request": "true"}
DB_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent transactions need PostgreSQL"
)


def delivering(environment, kind=Delivery.AGENT):
    Environment.objects.filter(pk=environment.pk).update(delivery=kind)
    environment.refresh_from_db()
    return environment


@pytest.fixture
def shop(environments):
    return changed_in_development("Shop", environments)[0]


@pytest.fixture
def waiting(environments, release_manager, shop):
    """Shop switched into Quality Assurance, an agent environment, and waiting for its agent."""
    dev, qa, _, _ = environments
    delivering(qa)
    return run_deployment(start(dev, qa, shop, release_manager).pk)


def applied(deployment, application, **changes):
    """A report of the deployment's application as the agent makes it once it wrote everything."""
    return report(
        deployment.target,
        application,
        applied=running_hashes(deployment.target, application),
        deployment=deployment,
        **changes,
    )


def test_a_deployment_into_an_agent_environment_switches_and_waits(waiting, environments, shop, settings):
    dev, qa, _, _ = environments
    assert waiting.status == Status.WAITING
    assert waiting.status_label == "Waiting for Quality Assurance"
    # Switched in Stageboard, in the same transaction as the wait began.
    assert running_hashes(qa, shop) == running_hashes(dev, shop)
    assert waiting.items.get().application == shop
    assert waiting.expected == {"Shop": {"generation": 0, "modules": running_hashes(qa, shop)}}
    assert waiting.finished_at is None
    timeout = timedelta(seconds=settings.DELIVERY_TIMEOUT_SECONDS)
    assert waiting.heartbeat_at + timeout == waiting.delivery_deadline
    assert re.fullmatch(
        r"Waiting for Quality Assurance: switched in Stageboard, being delivered \(until \d\d:\d\d:\d\d\)\.",
        log_messages(waiting)[-1],
    )
    assert endings(waiting) == []  # Not over yet.
    # The record-only environment next to it is unchanged: the switch is its deployment.
    assert waiting.target.delivers and not dev.delivers


def test_the_agent_confirming_every_application_finishes_it(waiting, shop, client, viewer):
    qa = waiting.target
    # The agent's sign of life before it applied: the old files. Still waiting.
    old = {name: "0" * 64 for name in running_hashes(qa, shop)}
    report(qa, shop, applied=old)
    assert confirming.check(qa) == []

    applied(waiting, shop)
    assert confirming.check(qa) == [waiting]
    waiting.refresh_from_db()
    assert waiting.status == Status.FINISHED
    assert waiting.finished_at is not None
    assert log_messages(waiting)[-1] == "Delivered to Quality Assurance: finished."
    assert endings(waiting) == [Action.DEPLOY_FINISHED]

    # Later reports end nothing more.
    assert confirming.check(qa) == []
    assert endings(waiting) == [Action.DEPLOY_FINISHED]
    client.force_login(viewer)
    page = client.get(reverse("lifecycle:deployment", args=[waiting.pk])).content.decode()
    assert '<span class="deploy-status deploy-status-finished">Finished</span>' in page


def test_a_deployment_with_warnings_finishes_with_warnings(waiting, shop):
    Deployment.objects.filter(pk=waiting.pk).update(
        findings=[{"severity": "warning", "code": "x", "message": "A downgrade.", "application": "Shop"}]
    )
    waiting.refresh_from_db()
    applied(waiting, shop)
    confirming.check(waiting.target)
    waiting.refresh_from_db()
    assert waiting.status == Status.WARNINGS
    assert log_messages(waiting)[-1] == "Delivered to Quality Assurance: finished with warnings."


def test_a_report_with_the_same_files_after_the_switch_confirms_it(waiting, shop):
    """The agent had nothing to write (the files ran there already): it may name no deployment."""
    report(waiting.target, shop, applied=running_hashes(waiting.target, shop))
    assert confirming.check(waiting.target) == [waiting]


def test_a_report_from_before_the_switch_confirms_nothing(waiting, shop):
    before = waiting.heartbeat_at - timedelta(seconds=1)
    report(waiting.target, shop, applied=running_hashes(waiting.target, shop), at=before)
    assert confirming.check(waiting.target) == []


def test_a_failed_hook_finishes_it_with_errors_and_its_output(waiting, shop, client, release_manager):
    qa = waiting.target
    applied(waiting, shop, hook=3, output="migrate: relation cart_line does not exist")
    assert confirming.check(qa) == [waiting]

    waiting.refresh_from_db()
    assert waiting.status == Status.ERRORS
    assert waiting.status_label == "Finished with errors"
    assert log_messages(waiting)[-1] == (
        "Finished with errors: the hook failed in Quality Assurance for Shop (exit status 3). "
        "Retry applies it again; Roll back returns to the previous version."
    )
    assert endings(waiting) == [Action.DEPLOY_FAILED]
    # Switched all the same: the machines run the new files, and their hook failed on them.
    assert waiting.items.get().modules_changed == 2

    client.force_login(release_manager)
    page = client.get(reverse("lifecycle:deployment", args=[waiting.pk])).content.decode()
    assert '<span class="deploy-status deploy-status-errors">Finished with errors</span>' in page
    retry_url = reverse("lifecycle:deployment-retry", args=[waiting.pk])
    assert re.search(rf'<form method="post" action="{retry_url}"\s+hx-post="{retry_url}"', page)
    assert 'name="csrfmiddlewaretoken"' in page
    item = waiting.items.get()
    rollback_url = reverse("lifecycle:rollback", args=[shop.pk, item.previous_tag_id])
    assert f'href="{rollback_url}?environment={qa.pk}">Roll back Shop to 0.3</a>' in page


def test_the_hook_output_is_logged_when_the_report_did_not_name_the_deployment(waiting, shop):
    report(waiting.target, shop, applied=running_hashes(waiting.target, shop), hook=1, output="boom")
    confirming.check(waiting.target)
    assert log_messages(waiting)[-2:] == [
        "Shop: the hook's output:\nboom",
        "Finished with errors: the hook failed in Quality Assurance for Shop (exit status 1). "
        "Retry applies it again; Roll back returns to the previous version.",
    ]


def test_an_agent_that_does_not_confirm_in_time_ends_it_with_errors(waiting, client, viewer, settings):
    Deployment.objects.filter(pk=waiting.pk).update(delivery_deadline=timezone.now() - timedelta(seconds=1))
    client.force_login(viewer)
    url = reverse("lifecycle:deployment", args=[waiting.pk])

    response = client.get(url, headers=HTMX)  # The log's poll sees it over and stops.

    assert response.status_code == 286
    fragment = response.content.decode()
    assert '<span class="deploy-status deploy-status-errors">Finished with errors</span>' in fragment
    message = (
        f"Finished with errors: Quality Assurance did not confirm the delivery within "
        f"{settings.DELIVERY_TIMEOUT_SECONDS} s. Retry applies it again; Roll back returns to the previous "
        "version."
    )
    assert message in fragment
    assert 'hx-trigger="every 1s"' not in fragment
    assert leases.sweep() == 0
    assert endings(waiting) == [Action.DEPLOY_FAILED]
    # A viewer may do neither: no Retry, no Roll back.
    assert "deployment-retry" not in fragment and "Roll back Shop" not in fragment


def test_a_worker_pass_ends_an_overdue_delivery_with_errors(waiting):
    assert leases.sweep() == 0
    Deployment.objects.filter(pk=waiting.pk).update(delivery_deadline=timezone.now() - timedelta(seconds=1))
    assert leases.sweep() == 1
    waiting.refresh_from_db()
    assert waiting.status == Status.ERRORS


def test_the_log_keeps_refreshing_while_it_waits(waiting, client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("lifecycle:deployment", args=[waiting.pk]), headers=HTMX)
    fragment = response.content.decode()
    assert response.status_code == 200
    assert 'hx-trigger="every 1s"' in fragment
    assert (
        '<span class="deploy-status deploy-status-waiting">Waiting for Quality Assurance</span>' in fragment
    )
    assert "switched, being delivered until" in fragment


def test_a_waiting_deployment_blocks_its_target_and_says_until_when(waiting, environments, developer, shop):
    dev, qa, _, _ = environments
    publish_files(shop.modules.first(), dev, {"main.py": "print('newest')\n"})
    fingerprint = validate(dev, qa, [shop]).fingerprint
    deadline = timezone.localtime(waiting.delivery_deadline)
    with pytest.raises(DeploymentRefused) as refusal:
        start_deployment(dev, qa, [shop], user=developer, fingerprint=fingerprint)
    assert str(refusal.value) == (
        f"Deployment {waiting.pk} into Quality Assurance by release-manager is waiting for Quality Assurance "
        f"to confirm its delivery, at the latest until {deadline:%H:%M:%S}; try again when it has finished."
    )
    assert Deployment.objects.count() == 1

    # Once it is overdue it no longer blocks: starting another ends it first.
    Deployment.objects.filter(pk=waiting.pk).update(delivery_deadline=timezone.now() - timedelta(seconds=1))
    second = start_deployment(dev, qa, [shop], user=developer, fingerprint=fingerprint)
    waiting.refresh_from_db()
    assert waiting.status == Status.ERRORS
    assert second.status == Status.RUNNING


# Webhook environments.


def test_a_webhook_environment_is_told_with_the_switch_and_its_answer_ends_it(
    environments, release_manager, shop, settings
):
    settings.TASKS = DB_BACKEND
    dev, qa, _, _ = environments
    delivering(qa, Delivery.WEBHOOK)
    deployment = start(dev, qa, shop, release_manager)

    deployment = run_deployment(deployment.pk)

    assert deployment.status == Status.WAITING
    task = DBTaskResult.objects.get(task_path="lifecycle.tasks.deliver_webhook")
    assert task.args_kwargs == {"args": [deployment.pk, 1], "kwargs": {}}
    assert confirming.webhook_result(deployment, True, "deployed on web-1")
    deployment.refresh_from_db()
    assert deployment.status == Status.FINISHED
    assert log_messages(deployment)[-2:] == [
        "Quality Assurance answered:\ndeployed on web-1",
        "Quality Assurance confirmed the delivery: finished.",
    ]
    # A second answer is too late: it changes nothing (the API answers 409).
    assert not confirming.webhook_result(deployment, False, "late")
    assert endings(deployment) == [Action.DEPLOY_FINISHED]


def test_a_webhook_receiver_reporting_failure_ends_it_with_errors(waiting):
    assert confirming.webhook_result(waiting, False, "x" * 5000 + "disk full")
    waiting.refresh_from_db()
    assert waiting.status == Status.ERRORS
    last = waiting.log_lines.order_by("at", "id").last()
    assert last.level == DeploymentLogLine.Level.ERROR
    assert last.message.startswith(
        "Finished with errors: Quality Assurance reported that the delivery failed:\n"
    )
    assert last.message.endswith("disk full") and len(last.message) < 4096 + 100


# Retry.


@pytest.fixture
def errored(waiting, shop):
    applied(waiting, shop, hook=3, output="migration failed")
    confirming.check(waiting.target)
    waiting.refresh_from_db()
    assert waiting.status == Status.ERRORS
    return waiting


def test_retry_makes_the_agent_apply_it_again_and_wait(errored, shop, release_manager):
    qa = errored.target
    revision = Environment.objects.get(pk=qa.pk).state_revision
    state = snapshot()

    confirming.retry(errored, release_manager)

    errored.refresh_from_db()
    assert errored.status == Status.WAITING
    assert errored.finished_at is None
    assert errored.delivery_deadline > timezone.now()
    assert errored.expected["Shop"]["generation"] == 1
    assert LiveApplication.objects.get(environment=qa, application=shop).desired_generation == 1
    assert Environment.objects.get(pk=qa.pk).state_revision == revision + 1
    assert snapshot() == state  # Nothing switches again: the machines redo what was switched.
    assert re.fullmatch(
        r"Retried by release-manager: Quality Assurance applies it again \(waiting until \d\d:\d\d:\d\d\)\.",
        log_messages(errored)[-1],
    )
    assert endings(errored) == [Action.DEPLOY_FAILED, Action.DEPLOY_RETRIED]
    event = AuditEvent.objects.get(action=Action.DEPLOY_RETRIED)
    assert (event.user, event.environment, event.application) == (
        release_manager,
        "Quality Assurance",
        "Shop",
    )

    # The failed hook's report is of the last generation: it does not fail the retry at once.
    assert confirming.check(qa) == []
    # The agent applies generation 1 and its hook passes now.
    applied(errored, shop, generation=1, hook=0, output="")
    assert confirming.check(qa) == [errored]
    errored.refresh_from_db()
    assert errored.status == Status.FINISHED


def test_only_a_deployment_that_finished_with_errors_can_be_retried(waiting, shop, release_manager):
    with pytest.raises(DeploymentRefused, match=r"is waiting for Quality Assurance: only a deployment that"):
        confirming.retry(waiting, release_manager)
    applied(waiting, shop)
    confirming.check(waiting.target)
    waiting.refresh_from_db()
    with pytest.raises(
        DeploymentRefused, match=r"^Deployment \d+ is finished: only a deployment that finished"
    ):
        confirming.retry(waiting, release_manager)
    assert endings(waiting) == [Action.DEPLOY_FINISHED]


def test_retry_needs_deploy_access_on_the_target(errored, environments, viewer, outsider, developer, shop):
    with pytest.raises(PermissionDenied):
        confirming.retry(errored, viewer)
    with pytest.raises(Http404):
        confirming.retry(errored, outsider)
    errored.refresh_from_db()
    assert errored.status == Status.ERRORS
    assert not LiveApplication.objects.filter(desired_generation__gt=0).exists()
    # A developer deploys into Quality Assurance.
    confirming.retry(errored, developer)
    errored.refresh_from_db()
    assert errored.status == Status.WAITING


def test_retry_is_refused_once_the_target_runs_something_else(errored, shop, release_manager):
    qa = errored.target
    publish_files(shop.modules.get(name="Shop-Core"), qa, {"main.py": "print('fixed by hand')\n"})
    with pytest.raises(DeploymentRefused) as refusal:
        confirming.retry(errored, release_manager)
    assert str(refusal.value) == (
        f"Quality Assurance no longer runs what deployment {errored.pk} switched (Shop-Core changed since): "
        "deploy again instead."
    )
    errored.refresh_from_db()
    assert errored.status == Status.ERRORS
    assert endings(errored) == [Action.DEPLOY_FAILED]


def test_retry_is_refused_while_another_deployment_into_the_target_is_active(
    errored, environments, shop, release_manager
):
    dev, qa, _, _ = environments
    other = changed_in_development("Stock", environments)[0]
    active = start(dev, qa, other, release_manager)
    with pytest.raises(
        DeploymentRefused, match=rf"^Deployment {active.pk} into Quality Assurance .* is running since"
    ):
        confirming.retry(errored, release_manager)


def test_two_tabs_clicking_retry_retry_once(errored, release_manager, client):
    client.force_login(release_manager)
    url = reverse("lifecycle:deployment-retry", args=[errored.pk])

    first = client.post(url, headers=HTMX)
    second = client.post(url, headers=HTMX)

    assert first.status_code == 200
    assert 'hx-trigger="every 1s"' in first.content.decode()  # The log polls again while it waits.
    assert second.status_code == 409
    assert (
        f"Not retried: Deployment {errored.pk} is waiting for Quality Assurance: only a deployment that "
        "finished with errors can be retried."
    ) in second.content.decode()
    assert endings(errored) == [Action.DEPLOY_FAILED, Action.DEPLOY_RETRIED]
    assert LiveApplication.objects.get(application__name="Shop").desired_generation == 1


def test_retry_without_htmx_redirects_and_says_so(errored, release_manager, client):
    client.force_login(release_manager)
    response = client.post(reverse("lifecycle:deployment-retry", args=[errored.pk]), follow=True)
    assert response.redirect_chain == [(reverse("lifecycle:deployment", args=[errored.pk]), 302)]
    page = response.content.decode()
    assert f"Retried deployment {errored.pk}: Quality Assurance applies it again." in page
    assert "Waiting for Quality Assurance" in page


def test_retry_needs_a_post_with_the_csrf_token(errored, release_manager):
    client = Client(enforce_csrf_checks=True)
    client.force_login(release_manager)
    url = reverse("lifecycle:deployment-retry", args=[errored.pk])
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403
    errored.refresh_from_db()
    assert errored.status == Status.ERRORS


def test_retry_answers_a_viewer_403_and_an_outsider_404(errored, client, viewer, outsider):
    url = reverse("lifecycle:deployment-retry", args=[errored.pk])
    client.force_login(viewer)
    assert client.post(url).status_code == 403
    page = client.get(reverse("lifecycle:deployment", args=[errored.pk])).content.decode()
    assert "deployment-retry" not in page
    client.force_login(outsider)
    assert client.post(url).status_code == 404
    errored.refresh_from_db()
    assert errored.status == Status.ERRORS


def test_request_reapply_bumps_the_generation_and_the_revision(environments, shop, release_manager):
    _, qa, _, _ = environments
    revision = Environment.objects.get(pk=qa.pk).state_revision
    assert confirming.request_reapply(qa, [shop.pk], release_manager) == {shop.pk: 1}
    assert confirming.request_reapply(qa, [shop.pk, shop.pk], release_manager) == {shop.pk: 2}
    assert Environment.objects.get(pk=qa.pk).state_revision == revision + 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(3))
def test_two_simultaneous_retries_retry_once(environments, release_manager, shop, attempt):
    dev, qa, _, _ = environments
    delivering(qa)
    deployment = run_deployment(start(dev, qa, shop, release_manager).pk)
    applied(deployment, shop, hook=2, output="no")
    confirming.check(qa)
    barrier = threading.Barrier(2, timeout=30)
    outcomes = []

    def click():
        try:
            user = User.objects.get(pk=release_manager.pk)
            mine = Deployment.objects.select_related("target").get(pk=deployment.pk)
            barrier.wait()
            try:
                confirming.retry(mine, user)
                outcomes.append("retried")
            except DeploymentRefused as refusal:
                outcomes.append(str(refusal))
        except Exception as error:  # noqa: BLE001  (reported by the assertions below)
            outcomes.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(outcomes) == sorted(
        [
            "retried",
            f"Deployment {deployment.pk} is waiting for Quality Assurance: only a deployment that finished "
            "with errors can be retried.",
        ]
    ), outcomes
    assert endings(deployment) == [Action.DEPLOY_FAILED, Action.DEPLOY_RETRIED]
    assert LiveApplication.objects.get(environment=qa, application=shop).desired_generation == 1
