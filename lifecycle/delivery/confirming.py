"""Turning what the machines say into deployment outcomes, and Retry.

A deployment into an agent or webhook environment switches in Stageboard and
then waits for its machines (status WAITING, "Waiting for Production"):

- `begin`, inside the switch's transaction, records what they must confirm
  (`expected`: per application, the generation and each module's tree hash)
  and by when (`delivery_deadline`), and tells a webhook receiver;
- `check`, after each agent report, ends it finished (or with warnings) when
  every application is applied, or with errors when a hook failed;
- `webhook_result` does the same for a webhook receiver's answer;
- `expire` ends it with errors when the deadline passed (leases.sweep calls it);
- `retry` makes the agents apply a deployment that ended with errors again.

Every ending is a conditional UPDATE from WAITING (leases.conclude), so two
reports, a report and a sweep, or two tabs clicking Retry end or retry it once.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from lifecycle import access, audit, revision
from lifecycle.delivery import revisions
from lifecycle.deploying import leases
from lifecycle.deploying.validation import DeploymentRefused
from lifecycle.models import (
    AccessLevel,
    AuditEvent,
    CurrentVersion,
    Delivery,
    DeliveryAttempt,
    Deployment,
    DeploymentItem,
    DeploymentLogLine,
    Environment,
    LiveApplication,
)

WAITING, ERRORS = Deployment.Status.WAITING, Deployment.Status.ERRORS
ERROR = DeploymentLogLine.Level.ERROR
# What a hook's output may add to one log line (the agent sends at most its last 4 KB).
OUTPUT_KEPT = 4096


def deadline_from(now):
    return now + timedelta(seconds=settings.DELIVERY_TIMEOUT_SECONDS)


def _expected(environment, application_ids) -> dict:
    """application name -> {generation, modules: {module name: tree hash}} now current in `environment`."""
    generations = dict(
        LiveApplication.objects.filter(
            environment=environment, application_id__in=application_ids
        ).values_list("application_id", "desired_generation")
    )
    expected: dict[str, dict] = {}
    rows = CurrentVersion.objects.filter(
        environment=environment, module__application_id__in=application_ids
    ).values_list("module__application_id", "module__application__name", "module__name", "version__tree_hash")
    for application_id, application, module, tree_hash in rows:
        entry = expected.setdefault(
            application, {"generation": generations.get(application_id, 0), "modules": {}}
        )
        entry["modules"][module] = tree_hash
    return expected


def _deliver_webhook(deployment) -> None:
    """Enqueue the next webhook attempt of `deployment` with the current transaction."""
    # Imported here: lifecycle.tasks imports the deployment code, which imports this module.
    from lifecycle import tasks

    attempts = DeliveryAttempt.objects.filter(deployment=deployment).order_by("-number").first()
    tasks.enqueue(tasks.deliver_webhook, deployment.pk, attempts.number + 1 if attempts else 1)


def begin(deployment) -> None:
    """Inside the switch's transaction, after its items: wait for the target's machines to confirm it."""
    target = deployment.target
    application_ids = list(
        DeploymentItem.objects.filter(deployment=deployment).values_list("application_id", flat=True)
    )
    now = timezone.now()
    deployment.expected = _expected(target, application_ids)
    deployment.status, deployment.delivery_deadline = WAITING, deadline_from(now)
    # The last heartbeat is the switch: reports from then on may confirm it (see _state).
    deployment.heartbeat_at = now
    deployment.save(update_fields=["expected", "status", "delivery_deadline", "heartbeat_at"])
    leases.log(
        deployment,
        f"Waiting for {target.name}: switched in Stageboard, being delivered "
        f"(until {timezone.localtime(deployment.delivery_deadline):%H:%M:%S}).",
    )
    if target.delivery == Delivery.WEBHOOK:
        _deliver_webhook(deployment)


# The state of one application of a waiting deployment, from its environment's last report.
PENDING, DELIVERED, HOOK_FAILED = "pending", "delivered", "hook failed"


def _state(row: LiveApplication | None, deployment, wanted: dict) -> str:
    if row is None or row.applied_generation < wanted.get("generation", 0):
        return PENDING  # Not applied since the last Retry, or never reported.
    matches = all(row.applied.get(module) == digest for module, digest in wanted.get("modules", {}).items())
    names_it = row.deployment_id is not None and row.deployment_id >= deployment.pk
    # A report after the switch that holds exactly what it switched counts too: the agent had
    # nothing to write (the same files ran there already), so it may name an older deployment.
    after = row.reported_at is not None and (
        deployment.heartbeat_at is None or row.reported_at >= deployment.heartbeat_at
    )
    if not (names_it or (after and matches)):
        return PENDING
    if row.hook_exit_status not in (None, 0):
        return HOOK_FAILED
    return DELIVERED if matches else PENDING


def _finished(deployment, message: str, lines=()) -> bool:
    warnings = any(
        isinstance(f, dict) and f.get("severity") in ("warning", "confirm") for f in deployment.findings or []
    )
    status = Deployment.Status.WARNINGS if warnings else Deployment.Status.FINISHED
    suffix = "finished with warnings." if warnings else "finished."
    return leases.conclude(deployment, status, f"{message}: {suffix}", from_statuses=(WAITING,), lines=lines)


def check(environment) -> list[Deployment]:
    """After a report from `environment`'s agent: end the deployments it confirms or whose hook failed.

    Returns the deployments this call ended.
    """
    waiting = list(
        Deployment.objects.filter(target=environment, status=WAITING).select_related("target", "started_by")
    )
    if not waiting:
        return []
    live = {
        row.application.name: row
        for row in LiveApplication.objects.filter(environment=environment).select_related("application")
    }
    ended = []
    for deployment in waiting:
        states = {
            name: _state(live.get(name), deployment, wanted)
            for name, wanted in (deployment.expected or {}).items()
        }
        failed = sorted(name for name, state in states.items() if state == HOOK_FAILED)
        if failed:
            lines = []
            for name in failed:
                row = live[name]
                # The report that named this deployment put the hook's output in the log already.
                if row.deployment_id != deployment.pk and row.hook_output:
                    lines.append((ERROR, f"{name}: the hook's output:\n{row.hook_output[-OUTPUT_KEPT:]}"))
            statuses = ", ".join(f"{name} (exit status {live[name].hook_exit_status})" for name in failed)
            if leases.conclude(
                deployment,
                ERRORS,
                f"Finished with errors: the hook failed in {environment.name} for {statuses}. "
                "Retry applies it again; Roll back returns to the previous version.",
                from_statuses=(WAITING,),
                lines=lines,
            ):
                ended.append(deployment)
        elif all(state == DELIVERED for state in states.values()) and _finished(
            deployment, f"Delivered to {environment.name}"
        ):
            ended.append(deployment)
    return ended


def webhook_result(deployment, succeeded: bool, output: str) -> bool:
    """A webhook receiver's answer (or the webhook giving up); False when the deployment no longer waits."""
    target = deployment.target
    output = (output or "")[-OUTPUT_KEPT:]
    if succeeded:
        lines = [(DeploymentLogLine.Level.INFO, f"{target.name} answered:\n{output}")] if output else []
        return _finished(deployment, f"{target.name} confirmed the delivery", lines)
    return leases.conclude(
        deployment,
        ERRORS,
        f"Finished with errors: {target.name} reported that the delivery failed"
        + (f":\n{output}" if output else "."),
        from_statuses=(WAITING,),
    )


def expire(deployments, now) -> int:
    """End with errors each of `deployments` whose delivery deadline passed before `now`."""
    seconds = settings.DELIVERY_TIMEOUT_SECONDS
    ended = 0
    for deployment in deployments:
        ended += leases.conclude(
            deployment,
            ERRORS,
            f"Finished with errors: {deployment.target.name} did not confirm the delivery "
            f"within {seconds} s. Retry applies it again; Roll back returns to the previous version.",
            from_statuses=(WAITING,),
            # The deadline it was seen with: a Retry meanwhile set a new one.
            only_if=Q(delivery_deadline__lt=now),
        )
    return ended


def no_longer_delivering(deployments) -> int:
    """Finish each of `deployments`, waiting for an environment whose delivery was set back to record.

    There the switch is the deployment, and its agents are refused from now on: waiting for
    them would hold the environment until the deadline, then offer a Retry that is refused.
    """
    return sum(
        _finished(
            deployment,
            f"{deployment.target.name} no longer delivers to machines (its delivery is record): the "
            "switch in Stageboard is the deployment, and no machine confirmed it",
        )
        for deployment in deployments
    )


def request_reapply(environment, application_ids, user) -> dict[int, int]:
    """Make `environment`'s agents apply these applications again, even if nothing changed.

    Bumps each one's desired generation (making its live row if there is none
    yet) and the environment's state revision, in one transaction. The caller
    checks `user`'s access and audits (Retry: deploy; Redeploy over drift: its
    own rule). Returns application id -> the generation now desired.
    """
    application_ids = sorted(set(application_ids))
    with transaction.atomic():
        for application_id in application_ids:
            LiveApplication.objects.get_or_create(environment=environment, application_id=application_id)
        LiveApplication.objects.filter(environment=environment, application_id__in=application_ids).update(
            desired_generation=F("desired_generation") + 1
        )
        revisions.bump([environment.pk], application_ids)
        return dict(
            LiveApplication.objects.filter(
                environment=environment, application_id__in=application_ids
            ).values_list("application_id", "desired_generation")
        )


def retry(deployment, user) -> Deployment:
    """Apply a deployment that finished with errors again: the machines redo it and run their hooks.

    Needs deploy access on its target; only while the target still runs what it
    switched, and while no other deployment into the target is active. Raises
    DeploymentRefused (or PermissionDenied / Http404) and writes nothing then.
    """
    # Imported here: the deployment code imports this module to begin a delivery.
    from lifecycle.deploying.running import claim_target

    target = deployment.target
    access.require(user, target, AccessLevel.VIEW)
    access.require(user, target, AccessLevel.DEPLOY)
    with transaction.atomic():
        # The target first, as a new deployment locks it, then the deployment: two tabs retry in turn.
        Environment.objects.select_for_update().get(pk=target.pk)
        deployment = (
            Deployment.objects.select_for_update()
            .select_related("target", "started_by")
            .get(pk=deployment.pk)
        )
        if deployment.status != ERRORS:
            label = deployment.status_label
            raise DeploymentRefused(
                f"Deployment {deployment.pk} is {label[:1].lower()}{label[1:]}: only a deployment that "
                "finished with errors can be retried."
            )
        # One active deployment into a target at a time, as for a new one.
        claim_target(target)
        if not target.delivers:
            raise DeploymentRefused(
                f"{target.name} no longer delivers to machines: there is nothing to apply again."
            )
        expected = deployment.expected or {}
        application_ids = dict(
            DeploymentItem.objects.filter(deployment=deployment).values_list(
                "application__name", "application_id"
            )
        )
        now_running = _expected(target, list(application_ids.values()))
        changed = sorted(
            module
            for name, wanted in expected.items()
            for module, digest in wanted.get("modules", {}).items()
            if now_running.get(name, {}).get("modules", {}).get(module) != digest
        )
        if changed:
            raise DeploymentRefused(
                f"{target.name} no longer runs what deployment {deployment.pk} switched "
                f"({', '.join(changed)} changed since): deploy again instead."
            )
        generations = request_reapply(target, list(application_ids.values()), user)
        for name, wanted in expected.items():
            wanted["generation"] = generations.get(application_ids.get(name), wanted.get("generation", 0))
        now = timezone.now()
        Deployment.objects.filter(pk=deployment.pk).update(
            status=WAITING,
            finished_at=None,
            expected=expected,
            delivery_deadline=deadline_from(now),
            heartbeat_at=now,
        )
        revision.bump(deployment.shown_applications())  # An update(): no signal.
        deployment.refresh_from_db()
        leases.log(
            deployment,
            f"Retried by {user.get_username()}: {target.name} applies it again "
            f"(waiting until {timezone.localtime(deployment.delivery_deadline):%H:%M:%S}).",
        )
        audit.record(
            AuditEvent.Action.DEPLOY_RETRIED,
            user=user,
            environment=target,
            application=next(iter(expected)) if len(expected) == 1 else "",
            summary=f"Deployment {deployment.pk} into {target.name} retried: " + ", ".join(sorted(expected)),
            after={
                "deployment": deployment.pk,
                "generations": {n: w["generation"] for n, w in expected.items()},
            },
        )
        if target.delivery == Delivery.WEBHOOK:
            _deliver_webhook(deployment)
        leases.schedule_watch(deployment)
    return deployment
