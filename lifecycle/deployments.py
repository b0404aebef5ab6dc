"""Deploying a tag into an environment: every module switches at once, in one transaction."""

from django.db import transaction
from django.utils import timezone

from lifecycle.models import CurrentVersion, EnvironmentTag, ModuleChange


def deploy_tag(tag, environment, *, user=None, comment: str = "") -> int:
    """Make every module of `tag` current in `environment`; return how many modules changed.

    Bulk writes: a fixed number of queries whatever the number of modules.
    """
    now = timezone.now()
    with transaction.atomic():
        members = dict(tag.members.values_list("module_id", "version_id"))
        existing = {
            row.module_id: row
            for row in CurrentVersion.objects.select_for_update().filter(
                environment=environment, module_id__in=members
            )
        }
        to_update, to_create, changes = [], [], []
        for module_id, version_id in members.items():
            row = existing.get(module_id)
            if row is not None and row.version_id == version_id:
                continue
            changes.append(
                ModuleChange(
                    environment=environment,
                    module_id=module_id,
                    previous_version_id=row.version_id if row else None,
                    version_id=version_id,
                    kind=ModuleChange.Kind.DEPLOY,
                    user=user,
                    at=now,
                    comment=comment or f"Deployed {tag.number}",
                )
            )
            if row is None:
                to_create.append(
                    CurrentVersion(
                        environment=environment,
                        module_id=module_id,
                        version_id=version_id,
                        changed_at=now,
                        changed_by=user,
                    )
                )
            else:
                row.version_id, row.changed_at, row.changed_by = version_id, now, user
                to_update.append(row)
        CurrentVersion.objects.bulk_update(to_update, ["version", "changed_at", "changed_by"], batch_size=500)
        CurrentVersion.objects.bulk_create(to_create, batch_size=500)
        ModuleChange.objects.bulk_create(changes, batch_size=500)
        EnvironmentTag.objects.update_or_create(
            environment=environment, application=tag.application, defaults={"tag": tag, "changed_at": now}
        )
    return len(changes)
