"""Running a deployment: start it under a lock on its target, switch, log, finish.

1. `start_deployment` re-validates under a lock on the target environment,
   refuses if another deployment into the target is running or if anything
   changed since the user saw the plan, and records a running Deployment.
2. `launch` runs it in the background (or inline when configured).
3. `run_deployment` switches everything in one transaction and records the
   outcome in the log the user watches live and in the audit trail.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from lifecycle import access, audit
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

# A deployment still "running" after this long was abandoned by a process that stopped.
ABANDONED_AFTER = timedelta(minutes=15)


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
        deployment = Deployment.objects.create(
            source=source,
            target=target,
            plan=plan,
            started_by=user,
            started_at=timezone.now(),
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
    """Inside a transaction: lock the target and refuse if another deployment into it is running."""
    Environment.objects.select_for_update().get(pk=target.pk)
    running = (
        Deployment.objects.filter(target=target, status=Deployment.Status.RUNNING)
        .select_related("started_by")
        .first()
    )
    if running is not None and running.started_at < timezone.now() - ABANDONED_AFTER:
        running.status, running.finished_at = Deployment.Status.FAILED, timezone.now()
        running.save(update_fields=["status", "finished_at"])
        _log(running, "Abandoned: the process running it stopped.", DeploymentLogLine.Level.ERROR)
        running = None
    if running is not None:
        raise DeploymentRefused(
            f"Deployment {running.pk} into {target.name} by {running.started_by.get_username()} "
            f"is running since {timezone.localtime(running.started_at):%H:%M:%S}; "
            "try again when it has finished."
        )


def launch(deployment: Deployment) -> None:
    """Hand the deployment to a worker (the user watches its log).

    On the database backend the task is a row: enqueued inside a transaction, it
    commits with it, so a worker never sees a task whose deployment is not there.
    """
    # Imported here: lifecycle.tasks imports this module for the functions its tasks call.
    from lifecycle import tasks

    tasks.run_deployment.enqueue(deployment.pk)


def run_deployment(deployment_id: int) -> Deployment:
    """Tag where needed and switch every module of every application at once; record the outcome."""
    deployment = Deployment.objects.select_related("source", "target", "started_by").get(pk=deployment_id)
    if deployment.status != Deployment.Status.RUNNING:
        return deployment  # Already ran (a retry or a double launch): never run, or re-judge, twice.
    target = deployment.target
    try:
        _log(deployment, f"Switching in {target.name} in one transaction.")
        with transaction.atomic():
            items = _switcher(deployment)(deployment)
            DeploymentItem.objects.bulk_create(items)
    except (DeploymentRefused, TagError) as error:
        return _finish(deployment, Deployment.Status.FAILED, str(error))
    except Exception as error:  # noqa: BLE001  (any failure must leave a failed deployment, not a running one)
        logger.exception("Deployment %s failed", deployment.pk)
        return _finish(
            deployment, Deployment.Status.FAILED, f"Failed, nothing was changed in {target.name}: {error}"
        )
    for item in items:
        what = "Tagged and deployed" if item.tagged else "Deployed"
        _log(
            deployment,
            f"{what} {item.application.name} {item.tag.number}: {modules(item.modules_changed)} switched.",
        )
    warnings = any(f["severity"] in ("warning", "confirm") for f in deployment.findings)
    status = Deployment.Status.WARNINGS if warnings else Deployment.Status.FINISHED
    return _finish(deployment, status, "Finished with warnings." if warnings else "Finished.")


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
    DeploymentLogLine.objects.create(deployment=deployment, at=timezone.now(), level=level, message=message)


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
    """The audit line of a deployment's start: what, with which findings, and any Deploy anyway."""
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
    level = (
        DeploymentLogLine.Level.ERROR if status == Deployment.Status.FAILED else DeploymentLogLine.Level.INFO
    )
    _log(deployment, message, level)
    deployment.status, deployment.finished_at = status, timezone.now()
    deployment.save(update_fields=["status", "finished_at"])
    failed = status == Deployment.Status.FAILED
    audit.record(
        AuditEvent.Action.DEPLOY_FAILED if failed else AuditEvent.Action.DEPLOY_FINISHED,
        user=deployment.started_by,
        environment=deployment.target,
        summary=f"Deployment {deployment.pk} into {deployment.target.name}: {message}",
        after={"deployment": deployment.pk, "status": status},
    )
    return deployment
