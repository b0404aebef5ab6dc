"""The pipeline revision: a number that changes whenever anything the grid or an application page shows.

`bump()` moves it when the transaction of the change commits; pages read it before their
rows, so a page showing revision N that asks again while it is still N has seen every change
and is answered 204 from this one row (lifecycle/refresh.py). Saves and deletes of the models
the pages show bump it through signals (the admin included); writes that bypass signals
(`update()`, `bulk_create`, `bulk_update`) call `bump()` themselves: environment state
revisions (lifecycle.delivery.revisions), unblock, drift resolution, live reports that
change a row, deployments ending. The hotfixes app connects its own models (hotfixes/apps.py).

A spurious bump costs one full re-render of a refresh, never a wrong page; a missed bump
leaves a stale page, so when unsure, bump.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_save

from lifecycle.models import PipelineRevision

ROW = 1


def bump() -> None:
    """Move the revision once the current transaction commits (at once outside one).

    After the commit, not inside it: one row every writer locks, taken in the middle of
    transactions that lock modules and versions in their own order, deadlocked on PostgreSQL
    (a publish racing a merge). Pages read the revision before their rows, so a change
    committed before its bump is shown under the old number and shown again under the new
    one: never missed. Only a crash between the commit and the bump leaves a page stale until
    the next change.
    """
    if any(entry[1] is _bump_now for entry in connection.run_on_commit):
        return  # Once per transaction is enough.
    transaction.on_commit(_bump_now)


def _bump_now() -> None:
    # Its own short transaction: the row's lock is held for one UPDATE, never across other locks.
    if not PipelineRevision.objects.filter(pk=ROW).update(value=F("value") + 1):
        # The migration creates the row; a flushed database (transactional tests) has none.
        with transaction.atomic():
            revision, created = PipelineRevision.objects.get_or_create(pk=ROW, defaults={"value": 1})
            if not created:
                PipelineRevision.objects.filter(pk=ROW).update(value=F("value") + 1)


def current() -> int:
    """The revision now: one query on one row."""
    return PipelineRevision.objects.filter(pk=ROW).values_list("value", flat=True).first() or 0


def _on_change(sender, **kwargs) -> None:
    if kwargs.get("raw"):  # Fixtures being loaded: nothing is shown yet.
        return
    bump()


def watch(*models) -> None:
    """Bump the revision on every save and delete of `models`."""
    for model in models:
        label = model._meta.label_lower
        post_save.connect(_on_change, sender=model, dispatch_uid=f"pipeline-revision-save-{label}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"pipeline-revision-delete-{label}")


def watch_lifecycle() -> None:
    from django.contrib.auth import get_user_model

    from lifecycle import models
    from lifecycle.models import delivery

    watch(
        models.Environment,
        models.EnvironmentAccess,
        models.Application,
        models.Module,
        models.CurrentVersion,
        models.ApplicationTag,
        models.EnvironmentTag,
        models.ApplicationBlock,
        models.Deployment,
        delivery.AgentToken,
        delivery.LiveApplication,
        delivery.Drift,
        get_user_model(),  # Staff and superuser flags decide what a viewer may see.
    )
    # A user's access is the highest of their groups'.
    groups = get_user_model().groups.through
    m2m_changed.connect(_on_change, sender=groups, dispatch_uid="pipeline-revision-groups")
