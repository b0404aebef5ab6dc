"""Opening hotfixes and recording the module versions they make."""

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
    hotfix = (
        Hotfix.objects.open()
        .select_for_update()
        .filter(application_id=module.application_id, environment=environment)
        .first()
    )
    if hotfix is None:
        hotfix = Hotfix.objects.create(
            application_id=module.application_id, environment=environment, opened_at=now, opened_by=user
        )
        audit.record(
            AuditEvent.Action.HOTFIX_OPENED,
            user=user,
            environment=environment,
            application=module.application,
            summary=f"Hotfix of {module.application.name} opened in {environment.name} "
            f"by {module.name} v{version.number}",
            after={"hotfix": hotfix.pk},
        )
    HotfixChange.objects.create(
        hotfix=hotfix, module=module, version=version, replaced_version=replaced, at=now
    )
    return hotfix
