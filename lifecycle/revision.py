"""The pipeline revision: a number that changes whenever anything the grid or an application page shows.

`bump()` moves it when the transaction of the change commits; pages read it before their
rows, so a page showing revision N that asks again while it is still N has seen every change
and is answered 204 from this one row (lifecycle/refresh.py). Each bump also records which
applications it changed (`PipelineChange`), so a page that is behind re-renders only their rows;
a change that is not one application's (an environment, someone's access) is recorded as
"anything". Saves and deletes of the models the pages show bump it through signals (the admin
included), naming the instance's application when it has one; writes that bypass signals
(`update()`, `bulk_create`, `bulk_update`) call `bump()` themselves: environment state revisions
(lifecycle.delivery.revisions), unblock, drift resolution, live reports that change a row,
deployments ending. The hotfixes app connects its own models (hotfixes/apps.py).

A spurious bump, or "anything" where one application would do, costs a refresh more rendering,
never a wrong page; a missed bump or a missing application leaves a stale page, so when unsure,
bump with no application.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ObjectDoesNotExist
from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from lifecycle.models import PipelineChange, PipelineRevision

ROW = 1
# Revisions whose changes are kept. A page further behind compares its whole page once.
KEEP = 1000
PRUNE_EVERY = 100


class _Pending:
    """The applications one transaction changed, bumped once when it commits."""

    def __init__(self) -> None:
        self.applications: set[int] = set()
        self.everything = False

    def add(self, applications: Iterable[int | None] | None) -> None:
        if applications is None:
            self.everything = True
            return
        for pk in applications:
            if pk is None:
                self.everything = True
            else:
                self.applications.add(int(pk))

    def __call__(self) -> None:
        _bump_now(None if self.everything else self.applications)


def bump(applications: Iterable[int | None] | None = None) -> None:
    """Move the revision once the current transaction commits (at once outside one).

    `applications`: the ids of the applications whose rows the change alters; None when it may
    alter anything (every page then compares all it shows).

    After the commit, not inside it: one row every writer locks, taken in the middle of
    transactions that lock modules and versions in their own order, deadlocked on PostgreSQL
    (a publish racing a merge). Pages read the revision before their rows, so a change
    committed before its bump is shown under the old number and shown again under the new
    one: never missed. Only a crash between the commit and the bump leaves a page stale until
    the next change.
    """
    for _savepoints, callback, _robust in connection.run_on_commit:
        if isinstance(callback, _Pending):
            callback.add(applications)  # Once per transaction is enough.
            return
    pending = _Pending()
    pending.add(applications)
    transaction.on_commit(pending)


def _bump_now(applications: set[int] | None) -> None:
    # Its own short transaction: the row's lock is held for the UPDATE and the inserts of the
    # changes, never across other locks; readers see the new value and its changes together.
    with transaction.atomic():
        if not PipelineRevision.objects.filter(pk=ROW).update(value=F("value") + 1):
            # The migration creates the row; a flushed database (transactional tests) has none.
            revision, created = PipelineRevision.objects.get_or_create(pk=ROW, defaults={"value": 1})
            if not created:
                PipelineRevision.objects.filter(pk=ROW).update(value=F("value") + 1)
        value = current()
        PipelineChange.objects.bulk_create(
            [PipelineChange(revision=value, application_id=pk) for pk in sorted(applications or ())]
            if applications is not None
            else [PipelineChange(revision=value, application_id=None)]
        )
        if value % PRUNE_EVERY == 0:
            PipelineChange.objects.filter(revision__lte=value - KEEP).delete()


def current() -> int:
    """The revision now: one query on one row."""
    return PipelineRevision.objects.filter(pk=ROW).values_list("value", flat=True).first() or 0


def changed_since(shown: int, now: int) -> set[int] | None:
    """The applications changed after revision `shown` up to `now`; None if anything may have."""
    if not 0 <= now - shown < KEEP:
        return None  # Pruned, or a revision from another database: compare everything.
    changed = set()
    for pk in PipelineChange.objects.filter(revision__gt=shown, revision__lte=now).values_list(
        "application_id", flat=True
    ):
        if pk is None:
            return None
        changed.add(pk)
    return changed


def applications_of(instance) -> list[int] | None:
    """The applications whose rows a saved or deleted instance shows on, or None for any."""
    if hasattr(instance, "shown_applications"):  # A deployment names several.
        return instance.shown_applications()
    if getattr(instance, "application_id", None):
        return [instance.application_id]
    for via in ("module", "hotfix", "tag"):
        if getattr(instance, f"{via}_id", None):
            try:
                return applications_of(getattr(instance, via))
            except ObjectDoesNotExist:  # Deleted with it: say "anything".
                return None
    return None  # An environment, an access, a user, an application itself (its row comes or goes).


def _on_change(sender, instance=None, **kwargs) -> None:
    if kwargs.get("raw"):  # Fixtures being loaded: nothing is shown yet.
        return
    if kwargs.get("update_fields") == frozenset({"last_login"}):
        return  # Every login saves it, and no page shows it.
    bump(applications_of(instance) if instance is not None else None)


def _groups():
    from django.contrib.auth import get_user_model

    return get_user_model().groups.through


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
    pre_save.connect(_on_module_move, sender=models.Module, dispatch_uid="pipeline-revision-module-move")
    # A user's access is the highest of their groups'.
    m2m_changed.connect(_on_m2m_change, sender=_groups(), dispatch_uid="pipeline-revision-groups")


def _on_module_move(sender, instance, raw=False, **kwargs) -> None:
    """A module moved to another application (the admin's module form) leaves its old one's row too.

    The save names the new one only (`applications_of`); the old one is read before it is lost.
    """
    if raw or instance._state.adding:
        return
    before = sender.objects.filter(pk=instance.pk).values_list("application_id", flat=True).first()
    if before is not None and before != instance.application_id:
        bump([before])


def _on_m2m_change(sender, **kwargs) -> None:
    bump()  # Someone's access: anything they see may change.
