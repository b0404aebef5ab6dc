"""Tag & Deploy: validating a deployment plan, then switching every module at once.

A deployment goes through three steps:

1. `validate` reads the source and target (a fixed number of queries whatever
   the number of modules) and lists its findings: nothing to deploy, changes
   in the target it would undo, a downgrade, missing dependencies, a blocked
   application, an invalid or taken version number. Its `fingerprint` names
   the exact state it saw.
2. `start_deployment` re-validates under a lock on the target environment,
   refuses if another deployment into the target is running or if anything
   changed since the user saw the plan, and records a running Deployment.
3. `run_deployment` tags where needed and switches every module of every
   application in one transaction, writing a log the user watches live.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from lifecycle import access, audit, hooks
from lifecycle.fingerprints import fingerprint
from lifecycle.history import effective_links
from lifecycle.history_graph import ancestors
from lifecycle.models import (
    AccessLevel,
    Application,
    ApplicationBlock,
    ApplicationTag,
    AuditEvent,
    CurrentVersion,
    Deployment,
    DeploymentItem,
    DeploymentLogLine,
    Environment,
    EnvironmentTag,
    Module,
    ModuleChange,
    ModuleFile,
    ModuleVersion,
    TagMember,
)
from lifecycle.pipeline import build_rows
from lifecycle.tagging import TagError, tag_environment
from lifecycle.version_numbers import InvalidVersionNumber, VersionNumber, suggest_next

logger = logging.getLogger(__name__)

# The file in which a module declares the modules it uses: {"uses": ["Catalog", "Payments"]}.
DEPENDENCIES_FILE = "stageboard.json"
# A deployment still "running" after this long was abandoned by a process that stopped.
ABANDONED_AFTER = timedelta(minutes=15)


class DeploymentRefused(Exception):
    """The deployment cannot start; the message says why and what to do."""


@dataclass
class Finding:
    code: str
    severity: str  # "info", "warning", "confirm" (needs Deploy anyway) or "error" (blocks)
    message: str
    application: str
    modules: list[dict] = field(default_factory=list)

    def as_dict(self):
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "application": self.application,
            "modules": self.modules,
        }


@dataclass
class ItemPlan:
    """What deploying one application from the source to the target would do."""

    application: object
    source_label: str
    target_label: str
    needs_tag: bool
    number: str  # The tag to make (needs_tag) or the tag deployed as it is.
    suggested: str
    tag_id: int | None
    versions: dict[int, int]  # module id -> version id to make current in the target
    findings: list[Finding] = field(default_factory=list)

    @property
    def nothing_to_deploy(self):
        return any(f.code == "nothing_to_deploy" for f in self.findings)

    @property
    def has_errors(self):
        return any(f.severity == "error" for f in self.findings)

    @property
    def needs_confirmation(self):
        return any(f.severity == "confirm" for f in self.findings)

    @property
    def action_label(self):
        if self.nothing_to_deploy:
            return "Nothing to deploy"
        return f"Tag & Deploy {self.number}" if self.needs_tag else f"Deploy {self.number}"


@dataclass
class Validation:
    source: Environment
    target: Environment
    items: list[ItemPlan]
    fingerprint: str

    @property
    def findings(self):
        return [finding for item in self.items for finding in item.findings]

    @property
    def has_errors(self):
        return any(item.has_errors for item in self.items)

    @property
    def needs_confirmation(self):
        return any(item.needs_confirmation for item in self.items)

    @property
    def to_deploy(self):
        return [item for item in self.items if not item.nothing_to_deploy]


def fingerprint_of(rows, blocked: set[int]) -> str:
    """A hash of everything a plan depends on: both sides' modules and tags, and blocks."""
    state = sorted(
        [
            row.application.pk,
            [sorted(cell.modules.items()) for cell in row.cells],
            [cell.tag_number for cell in row.cells],
            row.application.pk in blocked,
        ]
        for row in rows
    )
    return fingerprint(state)


def _declared_dependencies(version_ids) -> dict[int, list[str]]:
    """version id -> names of the modules it declares it uses (in stageboard.json)."""
    declared = {}
    for version_id, data in ModuleFile.objects.filter(
        version_id__in=version_ids, path=DEPENDENCIES_FILE
    ).values_list("version_id", "blob__data"):
        try:
            uses = json.loads(bytes(data).decode("utf-8")).get("uses", [])
        except (ValueError, AttributeError):
            uses = []
        declared[version_id] = [name for name in uses if isinstance(name, str)]
    return declared


def validate(source, target, applications, numbers: dict[int, str] | None = None) -> Validation:
    """Everything the user must know before deploying `applications` from `source` to `target`.

    `numbers` holds, per application id, the number the user typed for a new
    tag; otherwise the suggested number is used. Reads a fixed number of queries.
    """
    numbers = numbers or {}
    applications = list(applications)
    rows = build_rows(applications, [source, target])
    application_ids = [application.pk for application in applications]
    taken_by_application: dict[int, set[VersionNumber]] = {pk: set() for pk in application_ids}
    for application_id, major, minor, patch in ApplicationTag.objects.filter(
        application_id__in=application_ids
    ).values_list("application_id", "major", "minor", "patch"):
        taken_by_application[application_id].add(VersionNumber(major, minor, patch))
    tag_ids = dict(
        EnvironmentTag.objects.filter(environment=source, application_id__in=application_ids).values_list(
            "application_id", "tag_id"
        )
    )
    modules = {
        pk: (name, application_id)
        for pk, name, application_id in Module.objects.filter(application_id__in=application_ids).values_list(
            "pk", "name", "application_id"
        )
    }
    # One definition of the history graph: a partial merge does not contain its source.
    links = effective_links(modules)
    numbers_by_version = dict(ModuleVersion.objects.filter(module_id__in=modules).values_list("pk", "number"))
    hotfixed = {
        module_id for _, module_id in hooks.hotfix_state().hotfixed_modules(application_ids, [target.pk])
    }
    blocks = dict(
        ApplicationBlock.objects.filter(
            environment=target, application_id__in=application_ids, unblocked_at__isnull=True
        ).values_list("application_id", "reason")
    )
    deployed_versions = {v for row in rows for v in row.cells[0].modules.values()}
    declared = _declared_dependencies(deployed_versions)
    names_in_target = set(
        CurrentVersion.objects.filter(environment=target).values_list("module__name", flat=True)
    )

    hotfix_numbers = not source.is_first()
    items = []
    for row in rows:
        application = row.application
        source_cell, target_cell = row.cells
        findings: list[Finding] = []
        name = application.name
        current = VersionNumber.parse(source_cell.tag_number) if source_cell.tag_number else None
        taken = taken_by_application[application.pk]
        suggested = str(suggest_next(current, taken, hotfix=hotfix_numbers))
        needs_tag = source_cell.has_plus
        number = source_cell.tag_number or ""
        if needs_tag:
            number = (numbers.get(application.pk) or suggested).strip()
            try:
                typed = VersionNumber.parse(number)
                if typed in taken:
                    findings.append(
                        Finding("taken_number", "error", f"{number} is already taken in {name}.", name)
                    )
            except InvalidVersionNumber as error:
                findings.append(Finding("invalid_number", "error", str(error), name))
        deploying = dict(source_cell.modules)

        if not deploying:
            findings.append(
                Finding("empty_source", "error", f"{name} has no modules in {source.name}.", name)
            )
        elif (
            deploying == target_cell.modules
            and not needs_tag
            and source_cell.tag_number == target_cell.tag_number
        ):
            findings.append(
                Finding(
                    "nothing_to_deploy",
                    "info",
                    f"{target.name} already runs exactly {name} {target_cell.label}.",
                    name,
                )
            )
        if application.pk in blocks:
            findings.append(
                Finding(
                    "blocked", "error", f"{name} is blocked in {target.name}: {blocks[application.pk]}", name
                )
            )

        undone = []
        for module_id, target_version in sorted(target_cell.modules.items()):
            new_version = deploying.get(module_id)
            if new_version is None or new_version == target_version:
                continue
            if target_version not in ancestors(new_version, links):
                undone.append(
                    {
                        "module": modules[module_id][0],
                        "module_id": module_id,
                        "target_version": numbers_by_version.get(target_version),
                        "deployed_version": numbers_by_version.get(new_version),
                        "hotfix": module_id in hotfixed,
                    }
                )
        if undone:
            hotfix_modules = [m["module"] for m in undone if m["hotfix"]]
            detail = f" including the open hotfix in {', '.join(hotfix_modules)}" if hotfix_modules else ""
            findings.append(
                Finding(
                    "undoes_changes",
                    "confirm",
                    f"This deployment would undo changes in {target.name}{detail}: "
                    + ", ".join(f"{m['module']} v{m['target_version']}" for m in undone)
                    + " would be replaced by versions that do not contain them.",
                    name,
                    undone,
                )
            )

        valid_number = number and not any(f.code == "invalid_number" for f in findings)
        if (
            target_cell.tag_number
            and valid_number
            and VersionNumber.parse(number) < VersionNumber.parse(target_cell.tag_number)
        ):
            findings.append(
                Finding(
                    "downgrade",
                    "warning",
                    f"{target.name} runs {name} {target_cell.tag_number}, newer than {number}: a downgrade.",
                    name,
                )
            )

        will_exist = names_in_target | {modules[m][0] for m in deploying}
        missing = sorted(
            {
                (modules[module_id][0], used)
                for module_id, version_id in deploying.items()
                for used in declared.get(version_id, [])
                if used not in will_exist
            }
        )
        if missing:
            findings.append(
                Finding(
                    "missing_dependency",
                    "error",
                    "Missing in "
                    + target.name
                    + ": "
                    + "; ".join(f"{module} uses {used}" for module, used in missing)
                    + ". Deploy those modules first.",
                    name,
                    [{"module": module, "uses": used} for module, used in missing],
                )
            )
        items.append(
            ItemPlan(
                application=application,
                source_label=source_cell.label,
                target_label=target_cell.label,
                needs_tag=needs_tag,
                number=number,
                suggested=suggested,
                tag_id=None if needs_tag else tag_ids.get(application.pk),
                versions=deploying,
                findings=findings,
            )
        )
    return Validation(source, target, items, fingerprint_of(rows, set(blocks)))


def check_can_deploy(user, source, target) -> None:
    """Deploying needs `deploy` on the target; tagging the source needs only seeing it."""
    access.require(user, source, AccessLevel.VIEW)
    access.require(user, target, AccessLevel.DEPLOY)


def _log(deployment, message, level=DeploymentLogLine.Level.INFO):
    DeploymentLogLine.objects.create(deployment=deployment, at=timezone.now(), level=level, message=message)


def start_deployment(
    source,
    target,
    applications,
    *,
    user,
    fingerprint: str,
    numbers: dict[int, str] | None = None,
    deploy_anyway: bool = False,
    notes: str = "",
    plan=None,
) -> Deployment:
    """Record a running deployment after checking, under a lock on the target, that it may run.

    Raises PermissionDenied or DeploymentRefused; writes nothing then.
    """
    check_can_deploy(user, source, target)
    if source == target:
        raise DeploymentRefused("Choose two different environments.")
    numbers = {int(k): v for k, v in (numbers or {}).items()}
    with transaction.atomic():
        # One deployment into an environment at a time: the row lock makes the check-and-record atomic.
        claim_target(target)
        validation = validate(source, target, applications, numbers)
        if validation.fingerprint != fingerprint:
            raise DeploymentRefused(
                f"{source.name} or {target.name} changed after this plan was validated. Validate it again."
            )
        if validation.has_errors:
            raise DeploymentRefused(
                "The plan has errors: "
                + " ".join(f.message for f in validation.findings if f.severity == "error")
            )
        if validation.needs_confirmation:
            if not deploy_anyway:
                raise DeploymentRefused(
                    "This deployment would undo changes in the target; confirm with Deploy anyway."
                )
            access.require(user, target, AccessLevel.FULL)
        if not validation.to_deploy:
            raise DeploymentRefused(f"Nothing to deploy: {target.name} already runs all of it.")
        deployment = Deployment.objects.create(
            source=source,
            target=target,
            plan=plan,
            started_by=user,
            started_at=timezone.now(),
            notes=notes,
            deploy_anyway=deploy_anyway and validation.needs_confirmation,
            findings=[finding.as_dict() for finding in validation.findings],
            requested={
                # Everything validated, so the switch can recompute the same fingerprint.
                "applications": [item.application.pk for item in validation.items],
                "numbers": {str(item.application.pk): item.number for item in validation.items},
                "fingerprint": fingerprint,
            },
        )
        log_start(deployment, validation.findings, user)
        record_start(deployment, [item.application for item in validation.to_deploy])
    return deployment


def launch(deployment: Deployment) -> None:
    """Run the deployment in the background (the user watches its log), or inline when configured."""
    if not settings.DEPLOY_IN_BACKGROUND:
        run_deployment(deployment.pk)
        return

    def work():
        try:
            run_deployment(deployment.pk)
        finally:
            connection.close()

    transaction.on_commit(lambda: threading.Thread(target=work, name=f"deployment-{deployment.pk}").start())


def run_deployment(deployment_id: int) -> Deployment:
    """Tag where needed and switch every module of every application at once; record the outcome."""
    deployment = Deployment.objects.select_related("source", "target", "started_by").get(pk=deployment_id)
    if deployment.status != Deployment.Status.RUNNING:
        return deployment  # Already ran (a retry or a double launch): never run, or re-judge, twice.
    target = deployment.target
    try:
        _log(deployment, f"Switching in {target.name} in one transaction.")
        with transaction.atomic():
            if "rollback_of" in deployment.requested:
                from lifecycle.rollback import switch_rollback

                items = switch_rollback(deployment)
            else:
                items = _switch(deployment)
            DeploymentItem.objects.bulk_create(items)
    except (DeploymentRefused, TagError) as error:
        return _finish(deployment, Deployment.Status.FAILED, str(error))
    except Exception as error:  # noqa: BLE001  (any failure must leave a failed deployment, not a running one)
        logger.exception("Deployment %s failed", deployment.pk)
        return _finish(
            deployment, Deployment.Status.FAILED, f"Failed, nothing was changed in {target.name}: {error}"
        )
    for item in items:
        what = "Tagged and deployed" if item.tagged else "Deployed"
        _log(
            deployment,
            f"{what} {item.application.name} {item.tag.number}: {item.modules_changed} module(s) switched.",
        )
    warnings = any(f["severity"] in ("warning", "confirm") for f in deployment.findings)
    status = Deployment.Status.WARNINGS if warnings else Deployment.Status.FINISHED
    return _finish(deployment, status, "Finished with warnings." if warnings else "Finished.")


def lock_rows(environments, applications) -> None:
    """Lock the current-version rows a deployment replaces: a publish into them waits, or we see it."""
    list(
        CurrentVersion.objects.select_for_update()
        .filter(environment__in=environments, module__application__in=applications)
        .values_list("pk", flat=True)
    )


def _switch(deployment) -> list[DeploymentItem]:
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


def claim_target(target) -> None:
    """Inside a transaction: lock the target and refuse if another deployment into it is running."""
    Environment.objects.select_for_update().get(pk=target.pk)
    running = (
        Deployment.objects.filter(target=target, status=Deployment.Status.RUNNING)
        .select_related("started_by")
        .first()
    )
    if running is not None and running.started_at < timezone.now() - ABANDONED_AFTER:
        running.status, running.finished_at = Deployment.Status.FAILED, timezone.now()
        running.save(update_fields=["status", "finished_at"])
        _log(running, "Abandoned: the process running it stopped.", DeploymentLogLine.Level.ERROR)
        running = None
    if running is not None:
        raise DeploymentRefused(
            f"Deployment {running.pk} into {target.name} by {running.started_by.get_username()} "
            f"is running since {timezone.localtime(running.started_at):%H:%M:%S}; "
            "try again when it has finished."
        )


def record_start(deployment, applications) -> None:
    """The audit line of a deployment's start: what, with which findings, and any Deploy anyway."""
    what = ", ".join(
        f"{a.name} {deployment.requested['numbers'].get(str(a.pk), '')}".strip() for a in applications
    )
    audit.record(
        AuditEvent.Action.DEPLOY_STARTED,
        user=deployment.started_by,
        environment=deployment.target,
        application=applications[0] if len(applications) == 1 else "",
        summary=f"Deployment {deployment.pk} started: {what} "
        f"{deployment.source.name} → {deployment.target.name}"
        + (" (Deploy anyway)" if deployment.deploy_anyway else ""),
        after={
            "deployment": deployment.pk,
            "findings": deployment.findings,
            "deploy_anyway": deployment.deploy_anyway,
        },
    )


def log_start(deployment, findings, user) -> None:
    _log(
        deployment, f"Started by {user.get_username()}: {deployment.source.name} → {deployment.target.name}."
    )
    for finding in findings:
        if finding.severity in ("warning", "confirm"):
            _log(deployment, f"{finding.application}: {finding.message}", DeploymentLogLine.Level.WARNING)
    if deployment.deploy_anyway:
        _log(
            deployment, f"Deploy anyway confirmed by {user.get_username()}.", DeploymentLogLine.Level.WARNING
        )


def _finish(deployment, status, message):
    level = (
        DeploymentLogLine.Level.ERROR if status == Deployment.Status.FAILED else DeploymentLogLine.Level.INFO
    )
    _log(deployment, message, level)
    deployment.status, deployment.finished_at = status, timezone.now()
    deployment.save(update_fields=["status", "finished_at"])
    failed = status == Deployment.Status.FAILED
    audit.record(
        AuditEvent.Action.DEPLOY_FAILED if failed else AuditEvent.Action.DEPLOY_FINISHED,
        user=deployment.started_by,
        environment=deployment.target,
        summary=f"Deployment {deployment.pk} into {deployment.target.name}: {message}",
        after={"deployment": deployment.pk, "status": status},
    )
    return deployment


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
    return len(changes)
