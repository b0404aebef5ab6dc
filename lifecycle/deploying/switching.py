"""The switch: every module of every application of a deployment changes in one transaction.

`switch` runs inside the deployment's transaction: it locks the rows it will
replace, validates again and refuses if anything changed since the plan was
validated, tags the source where needed and makes each tag current in the
target with bulk writes (a fixed number of queries whatever the number of
modules). No reader ever sees half of it.
"""

from __future__ import annotations

from django.db import connection, transaction
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
        previous_tag_id=previous.tag_id if previous else None,
        tagged=tagged,
        modules_changed=changed,
    )


def _update_versions(rows: list[tuple[int, int]], now, user) -> None:
    """Write each (pk, version id) row's new version, and the time and user shared by all of them.

    On PostgreSQL one `UPDATE … FROM UNNEST(…)` of two arrays: bulk_update's 500-branch `CASE` was about
    40% of the switch of a 500-module tag, and a `VALUES` list of 1,000 parameters cost psycopg more
    than two arrays (issue 11). SQLite keeps bulk_update, which is fast there.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        CurrentVersion.objects.bulk_update(
            [CurrentVersion(pk=pk, version_id=version_id) for pk, version_id in rows],
            ["version"],
            batch_size=500,
        )
        CurrentVersion.objects.filter(pk__in=[pk for pk, _ in rows]).update(changed_at=now, changed_by=user)
        return
    pks, versions = (list(column) for column in zip(*rows, strict=True))
    # The table is the model's and every value is a parameter.
    sql = (
        f"UPDATE {CurrentVersion._meta.db_table} AS c "  # noqa: S608
        "SET version_id = u.version_id, changed_at = %s, changed_by_id = %s "
        "FROM UNNEST(%s::bigint[], %s::bigint[]) AS u(id, version_id) WHERE c.id = u.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, user.pk if user is not None else None, pks, versions])


def _record_changes(
    changes: list[tuple[int, int | None, int]], *, environment, user, at, comment, deployment
):
    """One ModuleChange per (module, previous version, version): what changed, by whom, in which deployment.

    On PostgreSQL one `INSERT … SELECT … FROM UNNEST(…)` of three arrays: preparing 500 model instances
    field by field for bulk_create cost more than the insert itself. Elsewhere, bulk_create.
    """
    if not changes:
        return
    if connection.vendor != "postgresql":
        ModuleChange.objects.bulk_create(
            [
                ModuleChange(
                    environment=environment,
                    module_id=module_id,
                    previous_version_id=previous_id,
                    version_id=version_id,
                    kind=ModuleChange.Kind.DEPLOY,
                    user=user,
                    at=at,
                    comment=comment,
                    deployment=deployment,
                )
                for module_id, previous_id, version_id in changes
            ],
            batch_size=500,
        )
        return
    modules, previous, versions = (list(column) for column in zip(*changes, strict=True))
    table = ModuleChange._meta.db_table
    sql = (
        f"INSERT INTO {table} (environment_id, module_id, previous_version_id, version_id, kind, "  # noqa: S608
        "user_id, at, comment, deployment_id) "
        # Typed: an untyped NULL in a SELECT list would be text, which no bigint column takes.
        "SELECT %s::bigint, u.module_id, u.previous_id, u.version_id, %s::text, %s::bigint, %s::timestamptz, "
        "%s::text, %s::bigint "
        "FROM UNNEST(%s::bigint[], %s::bigint[], %s::bigint[]) AS u(module_id, previous_id, version_id)"
    )
    params = [
        environment.pk,
        ModuleChange.Kind.DEPLOY.value,
        user.pk if user is not None else None,
        at,
        comment,
        deployment.pk if deployment is not None else None,
        modules,
        previous,
        versions,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def deploy_tag(tag, environment, *, user=None, comment: str = "", deployment=None) -> int:
    """Make every module of `tag` current in `environment`; return how many modules changed.

    Bulk writes: a fixed number of queries whatever the number of modules.
    """
    now = timezone.now()
    with transaction.atomic():
        members = dict(TagMember.objects.filter(tag=tag).values_list("module_id", "version_id"))
        # (pk, version) pairs, not model instances: building 500 of them was a measurable part of the switch.
        # The tag's modules as a subquery, not a list of 500 ids (issue 11).
        existing = {
            module_id: (pk, current_id)
            for pk, module_id, current_id in CurrentVersion.objects.select_for_update()
            .filter(
                environment=environment, module_id__in=TagMember.objects.filter(tag=tag).values("module_id")
            )
            .values_list("pk", "module_id", "version_id")
        }
        to_update, to_create, changes = [], [], []
        for module_id, version_id in members.items():
            pk, current_id = existing.get(module_id, (None, None))
            if pk is not None and current_id == version_id:
                continue
            changes.append((module_id, current_id, version_id))
            if pk is None:
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
                to_update.append((pk, version_id))
        _update_versions(to_update, now, user)
        CurrentVersion.objects.bulk_create(to_create, batch_size=500)
        _record_changes(
            changes,
            environment=environment,
            user=user,
            at=now,
            comment=comment or f"Deployed {tag.number}",
            deployment=deployment,
        )
        EnvironmentTag.objects.update_or_create(
            environment=environment, application=tag.application, defaults={"tag": tag, "changed_at": now}
        )
        # Even when no module changed, the tag did: agents are told the version it names.
        revisions.bump([environment.pk], [tag.application_id])
    return len(changes)
