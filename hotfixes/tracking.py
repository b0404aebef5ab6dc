"""Opening hotfixes and recording the module versions they make."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from hotfixes.models import Hotfix, HotfixChange
from lifecycle import audit
from lifecycle.models import AuditEvent


def on_version_published(sender, *, module, environment, version, previous, user, merged_from, **kwargs):
    """A publish outside the first environment opens or extends a hotfix; a merge propagates one instead."""
    if merged_from is None and not environment.is_first():
        record_hotfix_change(module, environment, version, replaced=previous, user=user)


def record_hotfix_change(module, environment, version, *, replaced, user) -> Hotfix:
    """Add `version` to the open hotfix of the module's application in `environment`, opening one if needed.

    Call inside the publishing transaction, so a hotfix never exists without its change.
    """
    now = timezone.now()
    hotfix = _locked_open_hotfix(module.application_id, environment)
    if hotfix is None:
        hotfix = _open_hotfix(module, environment, version, user=user, at=now)
    HotfixChange.objects.create(
        hotfix=hotfix, module=module, version=version, replaced_version=replaced, at=now
    )
    return hotfix


def _locked_open_hotfix(application_id, environment) -> Hotfix | None:
    return (
        Hotfix.objects.open()
        .select_for_update()
        .filter(application_id=application_id, environment=environment)
        .first()
    )


def _open_hotfix(module, environment, version, *, user, at) -> Hotfix:
    """Open the application's hotfix in `environment`, or join the one a concurrent publish just opened.

    Two first publishes into one environment (two modules of one application) both find no open
    hotfix. The one-open-hotfix constraint lets one insert win; the other's insert waits until the
    winner commits, then fails inside its savepoint only, and that publish joins the winner's hotfix.
    """
    try:
        with transaction.atomic():
            hotfix = Hotfix.objects.create(
                application_id=module.application_id, environment=environment, opened_at=at, opened_by=user
            )
    except IntegrityError:
        hotfix = _locked_open_hotfix(module.application_id, environment)
        if hotfix is None:
            raise  # Not the race above: a real error.
        return hotfix
    audit.record(
        AuditEvent.Action.HOTFIX_OPENED,
        user=user,
        environment=environment,
        application=module.application,
        summary=f"Hotfix of {module.application.name} opened in {environment.name} "
        f"by {module.name} v{version.number}",
        after={"hotfix": hotfix.pk},
    )
    return hotfix
