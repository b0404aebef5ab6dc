"""The Deployment row is the lease of the worker that runs it.

A deployment is created running with `heartbeat_at` = its start. A worker claims
it with a conditional UPDATE (still running, never claimed, heartbeat fresher
than DEPLOYMENT_HEARTBEAT_SECONDS), renews the heartbeat between steps, and
switches in one transaction that locks the row first. So:

- a deployment already run, reaped or claimed by another worker is never run again;
- a heartbeat older than the setting means its worker stopped before committing
  the switch, and since the switch is one transaction, nothing was changed:
  `sweep` marks it aborted and says so;
- a sweeper never reaps a worker that is inside its switch: the switch holds the
  row lock, so the sweeper's UPDATE waits for the commit and then finds the
  deployment no longer running.

Every ending of a deployment goes through `conclude`: a conditional UPDATE from
the status it was seen in, with its log line and audit line in the same
transaction, so two enders at once (a worker and a sweeper, two reports, two
sweepers) end it once. Sweeps run when a deployment's page is viewed, when a
deployment into the same target starts, and on the next worker pass (the
`watch_deployment` task, on a backend that can defer tasks).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lifecycle import audit, revision
from lifecycle.models import AuditEvent, Delivery, Deployment, DeploymentLogLine

RUNNING, WAITING = Deployment.Status.RUNNING, Deployment.Status.WAITING
ENDED_BADLY = (Deployment.Status.FAILED, Deployment.Status.ERRORS)


def lease() -> timedelta:
    return timedelta(seconds=settings.DEPLOYMENT_HEARTBEAT_SECONDS)


def worker_name() -> str:
    """ "<hostname>:<pid>": which process on which machine holds the lease (workers share one database)."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def _fresh(cutoff) -> Q:
    # A row made before the lease existed (or by code that does not set it) counts from its start.
    return Q(heartbeat_at__gte=cutoff) | Q(heartbeat_at__isnull=True, started_at__gte=cutoff)


def _stale(cutoff) -> Q:
    return Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)


def claim(deployment_id: int) -> bool:
    """Take the lease of a running deployment no worker has taken yet; False when it must not run."""
    now = timezone.now()
    return (
        Deployment.objects.filter(_fresh(now - lease()), pk=deployment_id, status=RUNNING, worker="").update(
            heartbeat_at=now, worker=worker_name()
        )
        == 1
    )


def renew(deployment_id: int) -> bool:
    """Renew this worker's lease; False when the deployment was reaped (or ended) meanwhile."""
    return (
        Deployment.objects.filter(pk=deployment_id, status=RUNNING, worker=worker_name()).update(
            heartbeat_at=timezone.now()
        )
        == 1
    )


def conclude(
    deployment,
    status,
    message: str,
    *,
    from_statuses=(RUNNING,),
    only_if: Q | None = None,
    lines=(),
) -> bool:
    """End `deployment` with `status` if it still is in one of `from_statuses` (and matches `only_if`).

    The log lines `lines` ((level, message) pairs), the final `message` and the
    audit line are written only by the one caller whose UPDATE ended it, in its
    transaction. Returns whether this call ended it.
    """
    now = timezone.now()
    failed = status in ENDED_BADLY
    with transaction.atomic():
        ended = Deployment.objects.filter(
            only_if or Q(), pk=deployment.pk, status__in=list(from_statuses)
        ).update(status=status, finished_at=now)
        if not ended:
            return False
        revision.bump(deployment.shown_applications())  # An update(): no signal.
        for level, line in lines:
            log(deployment, line, level)
        log(deployment, message, DeploymentLogLine.Level.ERROR if failed else DeploymentLogLine.Level.INFO)
        audit.record(
            AuditEvent.Action.DEPLOY_FAILED if failed else AuditEvent.Action.DEPLOY_FINISHED,
            user=deployment.started_by,
            environment=deployment.target,
            summary=f"Deployment {deployment.pk} into {deployment.target.name}: {message}",
            after={"deployment": deployment.pk, "status": status},
        )
    deployment.status, deployment.finished_at = status, now
    return True


def log(deployment, message, level=DeploymentLogLine.Level.INFO) -> None:
    DeploymentLogLine.objects.create(deployment=deployment, at=timezone.now(), level=level, message=message)


def sweep(*, target=None, deployment_id: int | None = None) -> int:
    """Abort running deployments whose worker stopped; end with errors those whose delivery is overdue.

    Limited to one target or one deployment when given (a page view, a start).
    Returns how many it ended. Cheap when there is nothing to do: one query.
    """
    now = timezone.now()
    seconds = settings.DEPLOYMENT_HEARTBEAT_SECONDS
    cutoff = now - lease()
    candidates = Deployment.objects.filter(
        Q(_stale(cutoff), status=RUNNING)
        | Q(status=WAITING, delivery_deadline__lt=now)
        # Its environment was set back to record since: no machine will confirm it any more.
        | Q(status=WAITING, target__delivery=Delivery.RECORD)
    ).select_related("target", "started_by")
    if target is not None:
        candidates = candidates.filter(target=target)
    if deployment_id is not None:
        candidates = candidates.filter(pk=deployment_id)
    ended = 0
    overdue, undelivered = [], []
    for deployment in candidates:
        if deployment.status == WAITING:
            (overdue if deployment.target.delivers else undelivered).append(deployment)
            continue
        if deployment.worker:
            message = f"The worker stopped; nothing was changed in {deployment.target.name}."
        else:
            # Not claimed: no `manage.py db_worker` runs, or all were busy (docs/deployment.md).
            message = f"No worker picked it up within {seconds} s; nothing was changed."
        ended += conclude(
            deployment,
            Deployment.Status.FAILED,
            message,
            # The worker it was seen with: a lease renewed (or taken) meanwhile is not stale.
            only_if=_stale(cutoff) & Q(worker=deployment.worker),
        )
    if overdue or undelivered:
        # Imported here: confirming imports this module to end deployments.
        from lifecycle.delivery import confirming

        ended += confirming.expire(overdue, now)
        ended += confirming.no_longer_delivering(undelivered)
    return ended


def watch(deployment_id: int) -> str:
    """One worker pass over a deployment: sweep, then come back while it is still active."""
    sweep()
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None:
        return "gone"
    if deployment.is_running:
        schedule_watch(deployment)
    return deployment.status


def schedule_watch(deployment) -> bool:
    """Enqueue the next pass over `deployment`: a heartbeat from now, or at its delivery deadline.

    Only on a backend that can defer a task (the database one); elsewhere page
    views and new deployments sweep. Returns whether it was scheduled.
    """
    # Imported here: lifecycle.tasks imports this module for the functions its tasks call.
    from lifecycle import tasks

    if not tasks.watch_deployment.get_backend().supports_defer:
        return False
    now = timezone.now()
    when = now + lease()
    if deployment.status == WAITING and deployment.delivery_deadline is not None:
        when = max(deployment.delivery_deadline, now) + timedelta(seconds=1)
    tasks.enqueue(tasks.watch_deployment, deployment.pk, run_after=when)
    return True
