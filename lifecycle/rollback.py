"""Rollback: tag an older version's content under a new number and deploy it, in one flow.

The new tag holds exactly the module versions of the older tag; it is made in
the environment being rolled back and deployed there at once, as a recorded
deployment. Because it replaces newer versions, it always undoes changes and
so needs "Deploy anyway" from a user with full access.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from lifecycle import access, hooks
from lifecycle.deploying import validation as findings
from lifecycle.deploying.running import claim_target, log_start, record_start
from lifecycle.deploying.switching import deploy_item, lock_rows
from lifecycle.deploying.validation import DeploymentRefused, Finding, Judged
from lifecycle.fingerprints import fingerprint
from lifecycle.history import effective_links
from lifecycle.models import (
    AccessLevel,
    ApplicationBlock,
    ApplicationTag,
    CurrentVersion,
    Deployment,
    DeploymentItem,
    EnvironmentTag,
    Module,
    ModuleChange,
    ModuleVersion,
    TagMember,
)
from lifecycle.tagging import taken_numbers
from lifecycle.version_numbers import VersionNumber


class RollbackError(ValueError):
    pass


@dataclass
class RollbackPlan(Judged):
    number: str
    suggested: str
    findings: list[Finding] = field(default_factory=list)
    fingerprint: str = ""


def rollback_validation(application, tag, environment, number_text: str = "") -> RollbackPlan:
    """The findings of rolling `environment` back to `tag`'s modules, with the deploy findings' rules."""
    running = dict(
        CurrentVersion.objects.filter(environment=environment, module__application=application).values_list(
            "module_id", "version_id"
        )
    )
    members = dict(TagMember.objects.filter(tag=tag).values_list("module_id", "version_id"))
    current = EnvironmentTag.objects.filter(environment=environment, application=application).first()
    taken = taken_numbers(application)
    base = current.tag.version_number if current else tag.version_number
    suggested, none_left = findings.suggest(base, taken, hotfix=not environment.is_first())
    number = (number_text or suggested).strip()
    plan = RollbackPlan(number=number, suggested=suggested)
    name = application.name
    block = ApplicationBlock.objects.filter(
        application=application, environment=environment, unblocked_at__isnull=True
    ).first()
    hotfixed = {
        module_id
        for _, module_id in hooks.hotfix_state().hotfixed_modules([application.pk], [environment.pk])
    }
    versions = findings.numbers_and_contents(ModuleVersion.objects.filter(module__application=application))

    def contents(modules):
        return {module_id: versions[version_id][1] for module_id, version_id in modules.items()}

    undone = findings.undoes_changes(
        name,
        environment,
        running,
        members,
        links=effective_links(list(members.keys() | running.keys())),
        module_names=dict(Module.objects.filter(application=application).values_list("pk", "name")),
        versions=versions,
        hotfixed=hotfixed,
        intro=f"Rolling back to {tag.number} undoes the changes made since in {environment.name}",
    )
    plan.findings = [
        finding
        for finding in (
            never_ran_here(name, tag, environment, members, versions),
            findings.version_number(name, number, taken, none_left=none_left),
            findings.blocked(name, environment, block.reason if block else None),
            # By content: the same files under other version ids would be a new number for nothing.
            findings.nothing_to_deploy(
                name, f"{environment.name} already runs exactly the files of {tag.number}.", severity="error"
            )
            if contents(running) == contents(members)
            else None,
            undone,
        )
        if finding is not None
    ]
    state = [sorted(running.items()), current.tag_id if current else None, bool(block), tag.pk]
    plan.fingerprint = fingerprint(state)
    return plan


def never_ran_here(name, tag, environment, members: dict[int, int], versions) -> Finding | None:
    """A tag holding files the environment never ran: rolling "back" to it is not a rollback.

    It would move changes forward past Tag & Deploy (Production to a Development tag), or
    backward past merging (Development to a Pre-Production hotfix's tag, whose versions its
    viewers may not read). A module ran there when a version with exactly its files was
    made current there (`ModuleChange`), by whatever means.
    """
    ran = set(
        ModuleChange.objects.filter(environment=environment, module_id__in=members).values_list(
            "module_id", "version__tree_hash"
        )
    )
    never = sorted(
        module_id
        for module_id, version_id in members.items()
        if (module_id, versions[version_id][1]) not in ran
    )
    if not never:
        return None
    names = dict(Module.objects.filter(pk__in=never).values_list("pk", "name"))
    return Finding(
        "never_ran_here",
        "error",
        f"{environment.name} never ran {tag.number}'s {', '.join(names[m] for m in never)}: a rollback "
        f"returns {environment.name} to what it ran before. Changes move forward by Tag & Deploy and "
        "backward by merging.",
        name,
        [{"module": names[m], "module_id": m} for m in never],
    )


def rollback(application, tag, environment, *, number, user, fingerprint, deploy_anyway) -> Deployment:
    """Record a running rollback deployment after validating it under a lock on the environment."""
    access.require(user, environment, AccessLevel.DEPLOY)
    with transaction.atomic():
        claim_target(environment)
        plan = rollback_validation(application, tag, environment, number)
        if plan.fingerprint != fingerprint:
            raise RollbackError(
                f"{environment.name} changed after this rollback was prepared. Check it again."
            )
        if plan.has_errors:
            raise RollbackError(" ".join(f.message for f in plan.findings if f.severity == "error"))
        if plan.needs_confirmation:
            if not deploy_anyway:
                raise RollbackError("A rollback undoes changes; confirm with Deploy anyway.")
            access.require(user, environment, AccessLevel.FULL)
        deployment = Deployment.objects.create(
            source=environment,
            target=environment,
            started_by=user,
            started_at=timezone.now(),
            notes=f"Rollback to {tag.number}",
            deploy_anyway=plan.needs_confirmation,
            findings=[f.as_dict() for f in plan.findings],
            requested={
                "rollback_of": tag.pk,
                "applications": [application.pk],
                "numbers": {str(application.pk): plan.number},
                "fingerprint": plan.fingerprint,
            },
        )
        log_start(deployment, plan.findings, user)
        record_start(deployment, [application])
    return deployment


def switch_rollback(deployment) -> list[DeploymentItem]:
    """Inside the deployment's transaction: make the new tag from the old one's versions and deploy it."""
    requested = deployment.requested
    old = ApplicationTag.objects.select_related("application").get(pk=requested["rollback_of"])
    application, environment = old.application, deployment.target
    number = requested["numbers"][str(application.pk)]
    lock_rows([environment], [application])
    plan = rollback_validation(application, old, environment, number)
    if plan.fingerprint != requested["fingerprint"]:
        raise DeploymentRefused(
            f"{environment.name} changed after the rollback was prepared; nothing was changed."
        )
    parsed = VersionNumber.parse(number)
    try:
        with transaction.atomic():
            tag = ApplicationTag.objects.create(
                application=application,
                number=str(parsed),
                major=parsed.major,
                minor=parsed.minor,
                patch=parsed.patch,
                environment=environment,
                created_by=deployment.started_by,
                notes=f"Rollback to {old.number}",
            )
    except IntegrityError:
        raise DeploymentRefused(
            f"{number} was just taken in {application.name}; nothing was changed."
        ) from None
    TagMember.objects.bulk_create(
        TagMember(tag=tag, module_id=m, version_id=v)
        for m, v in TagMember.objects.filter(tag=old).values_list("module_id", "version_id")
    )
    return [deploy_item(deployment, application, tag, tagged=True)]
