"""Drift: files found on a machine that differ from the version deployed there, and what users do about it.

The agent uploads a drifted module's files (lifecycle/delivery/reports.py keeps
them as an open Drift). A user with publish access in that environment then
chooses one of two actions, each audited and each done at most once per drift:

- `adopt`: the files become a new version of the module in that environment,
  published on top of the deployed version (refused when another version became
  current since). Outside the first environment that opens a hotfix, as any
  publish there does, so the change made on the server enters the normal
  propagate-back loop instead of being lost at the next deployment.
- `redeploy`: the agents apply the deployed version again and overwrite the drift.

Two users (or two tabs) acting on one drift at once: the drift row is locked
and re-read before anything is written, so the second is refused with
DriftResolved, naming what the first did, and writes nothing.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from lifecycle import access, audit, revision
from lifecycle.delivery import confirming
from lifecycle.models import AccessLevel, AuditEvent, Blob, Drift
from lifecycle.publishing import check_comment, publish


class DriftResolved(Exception):
    """The drift was adopted, redeployed over or went away before this action: nothing was done."""

    def __init__(self, drift: Drift):
        self.drift = drift
        super().__init__(f"{resolution_text(drift)}; nothing was done.")


class DriftNotAdoptable(Exception):
    """The drift's files cannot become a version: a clear reason, and nothing written."""


def resolution_text(drift: Drift) -> str:
    """ "This drift was adopted as hotfix v5 by alice at 2025-01-02 10:00 UTC", or how else it ended."""
    who = f" by {drift.resolved_by.get_username()}" if drift.resolved_by else ""
    when = f" at {timezone.localtime(drift.resolved_at):%Y-%m-%d %H:%M %Z}" if drift.resolved_at else ""
    if drift.resolution == Drift.Resolution.ADOPTED:
        what = "adopted as hotfix" + (f" v{drift.adopted_version.number}" if drift.adopted_version else "")
    elif drift.resolution == Drift.Resolution.REDEPLOYED:
        what = "redeployed over"
    else:
        what = "resolved: the machine matches the deployed version again"
    return f"This drift of {drift.module.name} in {drift.environment.name} was {what}{who}{when}"


def _locked_open(drift: Drift) -> Drift:
    """The drift re-read under a row lock; DriftResolved when someone resolved it meanwhile."""
    list(Drift.objects.select_for_update().filter(pk=drift.pk).values_list("pk", flat=True))
    # Read again once locked, and alone: rows joined to a locked one could be those seen before the wait.
    locked = Drift.objects.select_related(
        "environment", "module__application", "deployed_version", "resolved_by", "adopted_version"
    ).get(pk=drift.pk)
    if locked.resolved_at is not None:
        raise DriftResolved(locked)
    return locked


def _resolve(drift: Drift, resolution: str, user, **extra) -> None:
    # Conditional as well as locked: on SQLite, which has no row locks, the write transaction serialises.
    updated = Drift.objects.filter(pk=drift.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolution=resolution, resolved_by=user, **extra
    )
    if updated != 1:
        raise DriftResolved(
            Drift.objects.select_related("module", "environment", "resolved_by").get(pk=drift.pk)
        )
    revision.bump(revision.applications_of(drift))  # An update(): no signal.


def _files(drift: Drift) -> dict[str, bytes]:
    wanted = set(drift.manifest.values())
    content = {
        digest: bytes(data)
        for digest, data in Blob.objects.filter(hash__in=wanted).values_list("hash", "data")
    }
    missing = wanted - content.keys()
    if missing:
        raise DriftNotAdoptable(
            f"{len(missing)} of the files found on the machine were not kept; nothing was published. "
            "Redeploy, or wait for the agent to upload them again."
        )
    return {path: content[digest] for path, digest in drift.manifest.items()}


def adopt(drift: Drift, user, *, comment: str = "") -> Drift:
    """Publish the drift's files as the module's new version in its environment; the drift is ADOPTED.

    Needs publish access there (view first: a drift the user cannot see is a 404).
    Refused, writing nothing: when the drift is resolved already (DriftResolved),
    when another version became current in the environment since it was found
    (publishing.StaleEdit), when its files equal the deployed version, or when
    its files are not all kept (DriftNotAdoptable); content the limits refuse
    raises ArchiveRejected as for any publish.
    """
    access.require(user, drift.environment, AccessLevel.VIEW)
    access.require(user, drift.environment, AccessLevel.PUBLISH)
    comment = comment.strip()
    check_comment(comment)
    with transaction.atomic():
        drift = _locked_open(drift)
        module, environment, deployed = drift.module, drift.environment, drift.deployed_version
        found_at = timezone.localtime(drift.found_at)
        text = (
            comment
            or f"Adopted the files found on {environment.name}'s machines on {found_at:%Y-%m-%d %H:%M %Z}"
        )
        result = publish(
            module,
            environment,
            _files(drift),
            user=user,
            comment=text,
            based_on=deployed,
            check_stale=True,
        )
        if not result.created:
            raise DriftNotAdoptable(
                f"The files found on the machine are those of v{deployed.number}, the deployed version: "
                "there is nothing to adopt."
            )
        _resolve(drift, Drift.Resolution.ADOPTED, user, adopted_version=result.version)
        audit.record(
            AuditEvent.Action.DRIFT_ADOPTED,
            user=user,
            environment=environment,
            application=module.application,
            summary=(
                f"Adopted the drift of {module.name} in {environment.name} as v{result.version.number} "
                f"(on v{deployed.number})"
            ),
            before={"module": module.name, "version": deployed.number, "drift": drift.pk},
            after={
                "module": module.name,
                "version": result.version.number,
                "tree_hash": result.version.tree_hash,
            },
        )
    drift.refresh_from_db()
    return drift


def redeploy(drift: Drift, user) -> Drift:
    """Have the environment's agents apply the deployed version again, over the drift; it is REDEPLOYED.

    Needs publish access there (view first: a drift the user cannot see is a 404);
    DriftResolved, writing nothing, when it is resolved already. The agents see a
    new desired generation of the module's application and write a fresh release.
    """
    access.require(user, drift.environment, AccessLevel.VIEW)
    access.require(user, drift.environment, AccessLevel.PUBLISH)
    with transaction.atomic():
        drift = _locked_open(drift)
        module, environment = drift.module, drift.environment
        _resolve(drift, Drift.Resolution.REDEPLOYED, user)
        generations = confirming.request_reapply(environment, [module.application_id], user)
        audit.record(
            AuditEvent.Action.DRIFT_REDEPLOYED,
            user=user,
            environment=environment,
            application=module.application,
            summary=(
                f"Redeployed {module.application.name} in {environment.name} over the drift of {module.name} "
                f"(v{drift.deployed_version.number} again)"
            ),
            before={"module": module.name, "drift": drift.pk, "tree_hash": drift.tree_hash},
            after={
                "module": module.name,
                "version": drift.deployed_version.number,
                "generation": generations.get(module.application_id),
            },
        )
    drift.refresh_from_db()
    return drift
