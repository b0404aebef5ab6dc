"""Running a deployment: start it under a lock on its target, switch, log, finish or wait.

1. `start_deployment` re-validates under a lock on the target environment,
   refuses if another deployment into the target is active (running, or waiting
   for its delivery) or if anything changed since the user saw the plan, and
   records a running Deployment whose heartbeat is its start (leases.py).
2. `launch` hands it to a worker (`manage.py db_worker`, lifecycle/tasks.py).
3. `run_deployment` claims the lease, then in one transaction that locks the
   deployment row switches everything and either finishes it or, for a target
   that delivers to machines, begins waiting for them (delivery/confirming.py).
   A worker that dies before the commit changed nothing; a sweep says so.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from lifecycle import access, audit
from lifecycle.delivery import confirming
from lifecycle.deploying import leases
from lifecycle.deploying.switching import switch
from lifecycle.deploying.validation import DeploymentRefused, check_can_deploy, validate
from lifecycle.models import (
    AccessLevel,
    AuditEvent,
    Deployment,
    DeploymentItem,
    DeploymentLogLine,
    Environment,
)
from lifecycle.tagging import TagError

logger = logging.getLogger(__name__)


def start_deployment(
    source,
    target,
    applications,
    *,
    user,
    fingerprint: str,
    numbers: dict[int, str] | None = None,
    deploy_anyway: bool = False,
    notes: str = "",
    plan=None,
) -> Deployment:
    """Record a running deployment after checking, under a lock on the target, that it may run.

    Raises PermissionDenied or DeploymentRefused; writes nothing then.
    """
    check_can_deploy(user, source, target)
    if source == target:
        raise DeploymentRefused("Choose two different environments.")
    numbers = {int(k): v for k, v in (numbers or {}).items()}
    with transaction.atomic():
        # One deployment into an environment at a time: the row lock makes the check-and-record atomic.
        claim_target(target)
        validation = validate(source, target, applications, numbers)
        if validation.fingerprint != fingerprint:
            raise DeploymentRefused(
                f"{source.name} or {target.name} changed after this plan was validated. Validate it again."
            )
        if validation.has_errors:
            raise DeploymentRefused(
                "The plan has errors: "
                + " ".join(f.message for f in validation.findings if f.severity == "error")
            )
        if validation.needs_confirmation:
            if not deploy_anyway:
                raise DeploymentRefused(
                    "This deployment would undo changes in the target; confirm with Deploy anyway."
                )
            access.require(user, target, AccessLevel.FULL)
        if not validation.to_deploy:
            raise DeploymentRefused(f"Nothing to deploy: {target.name} already runs all of it.")
        now = timezone.now()
        deployment = Deployment.objects.create(
            source=source,
            target=target,
            plan=plan,
            started_by=user,
            started_at=now,
            heartbeat_at=now,  # The lease starts with it: no worker taking it in time aborts it.
            notes=notes,
            deploy_anyway=deploy_anyway and validation.needs_confirmation,
            findings=[finding.as_dict() for finding in validation.findings],
            requested={
                # Everything validated, so the switch can recompute the same fingerprint.
                "applications": [item.application.pk for item in validation.items],
                "numbers": {str(item.application.pk): item.number for item in validation.items},
                "fingerprint": fingerprint,
            },
        )
        log_start(deployment, validation.findings, user)
        record_start(deployment, [item.application for item in validation.to_deploy])
    return deployment


def claim_target(target) -> None:
    """Inside a transaction: lock the target and refuse if another deployment into it is active.

    A deployment whose worker stopped, or whose delivery is overdue, is ended first
    (leases.sweep), so it never blocks the target longer than its lease or deadline.
    """
    Environment.objects.select_for_update().get(pk=target.pk)
    leases.sweep(target=target)
    active = (
        Deployment.objects.filter(target=target, status__in=Deployment.ACTIVE)
        .select_related("started_by")
        .first()
    )
    if active is None:
        return
    who = f"Deployment {active.pk} into {target.name} by {active.started_by.get_username()}"
    if active.status == Deployment.Status.WAITING:
        raise DeploymentRefused(
            f"{who} is waiting for {target.name} to confirm its delivery, at the latest until "
            f"{timezone.localtime(active.delivery_deadline):%H:%M:%S}; try again when it has finished."
        )
    raise DeploymentRefused(
        f"{who} is running since {timezone.localtime(active.started_at):%H:%M:%S}; "
        "try again when it has finished."
    )


def launch(deployment: Deployment) -> None:
    """Hand the committed deployment to a worker (the user watches its log).

    Outside the start's transaction: the immediate backend (tests) runs it at once.
    """
    # Imported here: lifecycle.tasks imports this module for the functions its tasks call.
    from lifecycle import tasks

    tasks.run_deployment.enqueue(deployment.pk)


class _Lost(Exception):
    """The lease was lost before the switch: reaped, or ended by someone else. Nothing to do."""


def run_deployment(deployment_id: int) -> Deployment:
    """Tag where needed and switch every module of every application at once; finish, or wait for delivery.

    Runs only with the lease (leases.claim): a deployment already run, reaped or
    taken by another worker is returned as it is, never run or judged twice.
    """
    claimed = leases.claim(deployment_id)
    deployment = Deployment.objects.select_related("source", "target", "started_by").get(pk=deployment_id)
    if not claimed:
        return deployment
    target = deployment.target
    try:
        _log(deployment, f"Switching in {target.name} in one transaction.")
        if not leases.renew(deployment.pk):
            raise _Lost
        with transaction.atomic():
            # Locked for the whole switch: a sweeper waits for it and then sees it no longer running,
            # and one that got here first (after the lease went stale) made it not running already.
            status, worker = (
                Deployment.objects.select_for_update()
                .filter(pk=deployment.pk)
                .values_list("status", "worker")
                .get()
            )
            if status != Deployment.Status.RUNNING or worker != leases.worker_name():
                raise _Lost
            items = _switcher(deployment)(deployment)
            DeploymentItem.objects.bulk_create(items)
            for item in items:
                what = "Tagged and deployed" if item.tagged else "Deployed"
                changed = modules(item.modules_changed)
                _log(deployment, f"{what} {item.application.name} {item.tag.number}: {changed} switched.")
            if target.delivers:
                confirming.begin(deployment)
            else:
                warnings = any(f["severity"] in ("warning", "confirm") for f in deployment.findings)
                status = Deployment.Status.WARNINGS if warnings else Deployment.Status.FINISHED
                _finish(deployment, status, "Finished with warnings." if warnings else "Finished.")
    except _Lost:
        deployment.refresh_from_db()
        return deployment
    except (DeploymentRefused, TagError) as error:
        _finish(deployment, Deployment.Status.FAILED, str(error))
    except Exception as error:  # noqa: BLE001  (any failure must leave a failed deployment, not a running one)
        logger.exception("Deployment %s failed", deployment.pk)
        _finish(
            deployment, Deployment.Status.FAILED, f"Failed, nothing was changed in {target.name}: {error}"
        )
    deployment.refresh_from_db()
    return deployment


def modules(count: int) -> str:
    """ "1 module", "2 modules": log lines read as sentences."""
    return f"{count} module" if count == 1 else f"{count} modules"


def _switcher(deployment):
    """The switch for a plain deployment, or for a rollback (which builds on this module)."""
    if "rollback_of" in deployment.requested:
        # Imported here: lifecycle.rollback imports this module to claim its target and log.
        from lifecycle.rollback import switch_rollback

        return switch_rollback
    return switch


def _log(deployment, message, level=DeploymentLogLine.Level.INFO):
    leases.log(deployment, message, level)


def log_start(deployment, findings, user) -> None:
    _log(
        deployment, f"Started by {user.get_username()}: {deployment.source.name} → {deployment.target.name}."
    )
    for finding in findings:
        if finding.severity in ("warning", "confirm"):
            _log(deployment, f"{finding.application}: {finding.message}", DeploymentLogLine.Level.WARNING)
    if deployment.deploy_anyway:
        _log(
            deployment, f"Deploy anyway confirmed by {user.get_username()}.", DeploymentLogLine.Level.WARNING
        )


def record_start(deployment, applications) -> None:
    """Inside the start's transaction: its audit line (what, with which findings, any Deploy anyway)
    and the next worker pass over it.

    The pass (leases.watch) is a deferred task written with the deployment, so even
    if the process that started it stops before `launch`, a worker aborts it once
    its lease expired; on a backend that cannot defer, page views and starts do.
    """
    leases.schedule_watch(deployment)
    what = ", ".join(
        f"{a.name} {deployment.requested['numbers'].get(str(a.pk), '')}".strip() for a in applications
    )
    audit.record(
        AuditEvent.Action.DEPLOY_STARTED,
        user=deployment.started_by,
        environment=deployment.target,
        application=applications[0] if len(applications) == 1 else "",
        summary=f"Deployment {deployment.pk} started: {what} "
        f"{deployment.source.name} → {deployment.target.name}"
        + (" (Deploy anyway)" if deployment.deploy_anyway else ""),
        after={
            "deployment": deployment.pk,
            "findings": deployment.findings,
            "deploy_anyway": deployment.deploy_anyway,
        },
    )


def _finish(deployment, status, message):
    """End the running deployment (once: leases.conclude), with its log and audit lines."""
    leases.conclude(deployment, status, message)
    return deployment
