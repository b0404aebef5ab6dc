"""The switch: every module of every application of a deployment changes in one transaction.

`switch` runs inside the deployment's transaction: it locks the rows it will
replace, validates again and refuses if anything changed since the plan was
validated, tags the source where needed and makes each tag current in the
target with bulk writes (a fixed number of queries whatever the number of
modules). No reader ever sees half of it.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from lifecycle.delivery import revisions
from lifecycle.deploying.validation import DeploymentRefused, validate
from lifecycle.models import (
    Application,
    ApplicationTag,
    CurrentVersion,
    DeploymentItem,
    EnvironmentTag,
    ModuleChange,
    TagMember,
)
from lifecycle.tagging import tag_environment


def lock_rows(environments, applications) -> None:
    """Lock the current-version rows a deployment replaces: a publish into them waits, or we see it."""
    list(
        CurrentVersion.objects.select_for_update()
        .filter(environment__in=environments, module__application__in=applications)
        .values_list("pk", flat=True)
    )


def switch(deployment) -> list[DeploymentItem]:
    """Inside the deployment's transaction: tag where needed and deploy every application."""
    source, target, user = deployment.source, deployment.target, deployment.started_by
    requested = deployment.requested
    applications = list(Application.objects.filter(pk__in=requested["applications"]).order_by("name"))
    numbers = {int(k): v for k, v in requested["numbers"].items()}
    lock_rows([source, target], applications)
    validation = validate(source, target, applications, numbers)
    if validation.fingerprint != requested["fingerprint"]:
        raise DeploymentRefused(
            f"{source.name} or {target.name} changed after the plan was validated; nothing was deployed. "
            "Validate it again."
        )
    items = []
    for item in validation.to_deploy:
        if item.needs_tag:
            tag = tag_environment(item.application, source, item.number, user=user, notes=deployment.notes)
        else:
            tag = ApplicationTag.objects.get(pk=item.tag_id)
        items.append(deploy_item(deployment, item.application, tag, tagged=item.needs_tag))
    return items


def deploy_item(deployment, application, tag, *, tagged) -> DeploymentItem:
    """Deploy one application's tag into the deployment's target; the item records what changed."""
    target = deployment.target
    previous = EnvironmentTag.objects.filter(environment=target, application=application).first()
    changed = deploy_tag(
        tag, target, user=deployment.started_by, comment=deployment.notes, deployment=deployment
    )
    return DeploymentItem(
        deployment=deployment,
        application=application,
        tag=tag,
        previous_tag=previous.tag if previous else None,
        tagged=tagged,
        modules_changed=changed,
    )


def deploy_tag(tag, environment, *, user=None, comment: str = "", deployment=None) -> int:
    """Make every module of `tag` current in `environment`; return how many modules changed.

    Bulk writes: a fixed number of queries whatever the number of modules.
    """
    now = timezone.now()
    with transaction.atomic():
        members = dict(TagMember.objects.filter(tag=tag).values_list("module_id", "version_id"))
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
                    deployment=deployment,
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
        # Only the versions differ row by row; the time and user are the same for all of them.
        CurrentVersion.objects.bulk_update(to_update, ["version"], batch_size=500)
        CurrentVersion.objects.filter(pk__in=[row.pk for row in to_update]).update(
            changed_at=now, changed_by=user
        )
        CurrentVersion.objects.bulk_create(to_create, batch_size=500)
        ModuleChange.objects.bulk_create(changes, batch_size=500)
        EnvironmentTag.objects.update_or_create(
            environment=environment, application=tag.application, defaults={"tag": tag, "changed_at": now}
        )
        # Even when no module changed, the tag did: agents are told the version it names.
        revisions.bump([environment.pk])
    return len(changes)
