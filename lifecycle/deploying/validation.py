"""Validating a deployment plan: what the user must know before anything changes.

`validate` reads the source and target (a fixed number of queries whatever the
number of modules) and lists its findings. Each finding is one small function
that returns a `Finding` or None; rollback uses the same ones. The validation's
`fingerprint` names the exact state it saw, so that running it later can refuse
when anything changed in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lifecycle import access, hooks
from lifecycle.archives import DEPENDENCIES_FILE, ArchiveRejected, parse_dependencies
from lifecycle.fingerprints import fingerprint
from lifecycle.history import effective_links
from lifecycle.history_graph import ancestors
from lifecycle.models import (
    AccessLevel,
    ApplicationBlock,
    ApplicationTag,
    CurrentVersion,
    Environment,
    Module,
    ModuleFile,
    ModuleVersion,
    TagMember,
)
from lifecycle.pipeline import build_rows
from lifecycle.version_numbers import InvalidVersionNumber, NoNumberLeft, VersionNumber, suggest_next


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


class Judged:
    """A plan with `findings`: an error blocks it; "confirm" needs Deploy anyway (deployments, rollbacks)."""

    findings: list[Finding]

    @property
    def has_errors(self):
        return any(f.severity == "error" for f in self.findings)

    @property
    def needs_confirmation(self):
        return any(f.severity == "confirm" for f in self.findings)


@dataclass
class ItemPlan(Judged):
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
    source_hotfix: bool = False  # an open hotfix sits in the source, as the grid shows it
    target_hotfix: bool = False

    @property
    def nothing_to_deploy(self):
        return any(f.code == "nothing_to_deploy" for f in self.findings)

    @property
    def action_label(self):
        if self.nothing_to_deploy:
            return "Nothing to deploy"
        return f"Tag & Deploy {self.number}" if self.needs_tag else f"Deploy {self.number}"


@dataclass
class Validation(Judged):
    source: Environment
    target: Environment
    items: list[ItemPlan]
    fingerprint: str

    @property
    def findings(self):
        return [finding for item in self.items for finding in item.findings]

    @property
    def to_deploy(self):
        return [item for item in self.items if not item.nothing_to_deploy]


def check_can_deploy(user, source, target) -> None:
    """Deploying needs `deploy` on the target; tagging the source needs only seeing it."""
    access.require(user, source, AccessLevel.VIEW)
    access.require(user, target, AccessLevel.DEPLOY)


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


@dataclass
class Dependencies:
    """What the deployed versions declare in their stageboard.json (DEPENDENCIES_FILE)."""

    uses: dict[int, list[str]]  # version id -> names of the modules it uses
    malformed: set[int]  # versions whose file cannot be read (published before it was checked)


def declared_dependencies(version_ids) -> Dependencies:
    """Read the versions' stageboard.json with the rules publishing applies, never raising.

    `version_ids`: ids, or a query of them (a subquery reads no list of ids from Python).
    """
    dependencies = Dependencies({}, set())
    # Unordered: a dict and a set are built, and the default ordering joins module and version to sort.
    for version_id, data in (
        ModuleFile.objects.filter(version_id__in=version_ids, path=DEPENDENCIES_FILE)
        .order_by()
        .values_list("version_id", "blob__data")
    ):
        try:
            dependencies.uses[version_id] = parse_dependencies(bytes(data))
        except ArchiveRejected:
            dependencies.malformed.add(version_id)
    return dependencies


def numbers_and_contents(versions) -> dict[int, tuple[int, str]]:
    """version id -> (number, tree hash), for a queryset of module versions."""
    return {
        pk: (number, content) for pk, number, content in versions.values_list("pk", "number", "tree_hash")
    }


# The findings, one function each. `name` is the application's name, as findings show it.


def suggest(current: VersionNumber | None, taken: set[VersionNumber], *, hotfix: bool) -> tuple[str, str]:
    """The number to suggest for a new tag, or "" and why there is none (every part at its largest)."""
    try:
        return str(suggest_next(current, taken, hotfix=hotfix)), ""
    except NoNumberLeft as error:
        return "", str(error)


def version_number(
    name: str, number: str, taken: set[VersionNumber], *, none_left: str = ""
) -> Finding | None:
    """A new tag's number must be valid and free in the application.

    `none_left` says why no number was suggested, for when the user typed none either.
    """
    if not number and none_left:
        return Finding("invalid_number", "error", none_left, name)
    try:
        parsed = VersionNumber.parse(number)
    except InvalidVersionNumber as error:
        return Finding("invalid_number", "error", str(error), name)
    if parsed in taken:
        return Finding("taken_number", "error", f"{number} is already taken in {name}.", name)
    return None


def empty_source(name: str, source, deploying: dict[int, int]) -> Finding | None:
    if deploying:
        return None
    return Finding("empty_source", "error", f"{name} has no modules in {source.name}.", name)


def backward(name: str, source, target) -> Finding | None:
    """A deployment into an earlier environment: changes move backward only by merging.

    Deploying Production into Development would carry its hotfix back with no choice of
    changes, over Development's own work, and past the hotfix's propagation.
    """
    if (source.position, source.pk) < (target.position, target.pk) or source.pk == target.pk:
        return None
    return Finding(
        "backward",
        "error",
        f"{source.name} comes after {target.name}: Tag & Deploy goes forward only. Merge "
        f"{source.name}'s changes into {target.name} instead.",
        name,
    )


def nothing_to_deploy(name: str, message: str, *, severity: str = "info") -> Finding:
    """The target already runs exactly what would be deployed (a note; an error for a rollback)."""
    return Finding("nothing_to_deploy", severity, message, name)


def blocked(name: str, target, reason: str | None) -> Finding | None:
    if reason is None:
        return None
    return Finding("blocked", "error", f"{name} is blocked in {target.name}: {reason}", name)


def undone_modules(
    running: dict[int, int], deploying: dict[int, int], links, contents: dict[int, str]
) -> list[int]:
    """Target modules whose running version is not an ancestor of the one deployed, nor the same content.

    `contents` maps version ids to tree hashes: the same files are never undone.
    """
    undone = []
    for module_id, target_version in sorted(running.items()):
        new_version = deploying.get(module_id)
        if new_version is None or new_version == target_version:
            continue
        if contents.get(target_version, target_version) == contents.get(new_version, new_version):
            continue
        if target_version not in ancestors(new_version, links):
            undone.append(module_id)
    return undone


def undoes_changes(
    name: str,
    target,
    running: dict[int, int],
    deploying: dict[int, int],
    *,
    links,
    module_names: dict[int, str],
    versions: dict[int, tuple[int, str]],
    hotfixed: set[int],
    intro: str = "",
) -> Finding | None:
    """Changes in the target that the deployment would replace by versions lacking them.

    `versions` maps version ids to (number, tree hash). `intro` replaces the
    opening words (a rollback says what it rolls back to).
    """
    contents = {pk: content for pk, (_, content) in versions.items()}
    undone = [
        {
            "module": module_names[module_id],
            "module_id": module_id,
            "target_version": versions[running[module_id]][0],
            "deployed_version": versions[deploying[module_id]][0],
            "hotfix": module_id in hotfixed,
        }
        for module_id in undone_modules(running, deploying, links, contents)
    ]
    if not undone:
        return None
    hotfix_modules = [m["module"] for m in undone if m["hotfix"]]
    detail = f" including the open hotfix in {', '.join(hotfix_modules)}" if hotfix_modules else ""
    message = (
        (intro or f"This deployment would undo changes in {target.name}")
        + f"{detail}: "
        + ", ".join(f"{m['module']} v{m['target_version']}" for m in undone)
        + (
            " would be replaced by a version that does not contain it."
            if len(undone) == 1
            else " would be replaced by versions that do not contain them."
        )
    )
    return Finding("undoes_changes", "confirm", message, name, undone)


def downgrade(name: str, target, target_number: str | None, number: str) -> Finding | None:
    """Deploying an older number than the target runs. `number` must be valid."""
    if not target_number or not VersionNumber.parse(number) < VersionNumber.parse(target_number):
        return None
    return Finding(
        "downgrade",
        "warning",
        f"{target.name} runs {name} {target_number}, newer than {number}: a downgrade.",
        name,
    )


def missing_dependency(
    name: str,
    target,
    deploying: dict[int, int],
    *,
    declared: Dependencies,
    will_exist: set[str],
    module_names: dict[int, str],
) -> Finding | None:
    """Modules the deployed versions use that would exist neither in the target nor in the deployment."""
    missing = sorted(
        {
            (module_names[module_id], used)
            for module_id, version_id in deploying.items()
            for used in declared.uses.get(version_id, [])
            if used not in will_exist
        }
    )
    if not missing:
        return None
    return Finding(
        "missing_dependency",
        "error",
        f"Missing in {target.name}: "
        + "; ".join(f"{module} uses {used}" for module, used in missing)
        + ". Deploy those modules first.",
        name,
        [{"module": module, "uses": used} for module, used in missing],
    )


def malformed_dependencies(
    name: str,
    deploying: dict[int, int],
    *,
    declared: Dependencies,
    module_names: dict[int, str],
    versions: dict[int, tuple[int, str]],
) -> Finding | None:
    """Deployed versions whose stageboard.json cannot be read, so their dependencies cannot be checked.

    Publishing refuses such a file; versions published before it did may still hold one.
    """
    malformed = [
        {"module": module_names[module_id], "version": versions[version_id][0]}
        for module_id, version_id in sorted(deploying.items(), key=lambda item: module_names[item[0]])
        if version_id in declared.malformed
    ]
    if not malformed:
        return None
    listed = ", ".join(f"{m['module']} v{m['version']}" for m in malformed)
    if len(malformed) == 1:
        problem = f"Cannot check which modules {listed} uses: its {DEPENDENCIES_FILE} is not"
    else:
        problem = f"Cannot check which modules {listed} use: their {DEPENDENCIES_FILE} files are not"
    return Finding(
        "malformed_dependencies",
        "error",
        f'{problem} a JSON object whose "uses" lists module names. Publish a corrected version first.',
        name,
        malformed,
    )


@dataclass
class _Context:
    """Everything `validate` reads once for all applications."""

    source: Environment
    target: Environment
    numbers: dict[int, str]
    taken: dict[int, set[VersionNumber]]
    module_names: dict[int, str]
    links: dict
    versions: dict[int, tuple[int, str]]  # version id -> (number, tree hash)
    hotfixed: set[int]
    blocks: dict[int, str]
    declared: Dependencies
    names_in_target: set[str]  # of the names some deployed version uses
    # Every application of the deployment counts: a module may use one of another application.
    names_deployed: set[str]


def validate(source, target, applications, numbers: dict[int, str] | None = None) -> Validation:
    """Everything the user must know before deploying `applications` from `source` to `target`.

    `numbers` holds, per application id, the number the user typed for a new
    tag; otherwise the suggested number is used. Reads a fixed number of queries, whatever the
    number of modules (plus one when a side shows `+`, one when versions declare modules they use).
    """
    applications = list(applications)
    rows = build_rows(applications, [source, target])
    context = _read_context(source, target, applications, rows, numbers or {})
    items = [_plan_item(row, context) for row in rows]
    return Validation(source, target, items, fingerprint_of(rows, set(context.blocks)))


def _read_context(source, target, applications, rows, numbers) -> _Context:
    application_ids = [application.pk for application in applications]
    taken: dict[int, set[VersionNumber]] = {pk: set() for pk in application_ids}
    for application_id, major, minor, patch in ApplicationTag.objects.filter(
        application_id__in=application_ids
    ).values_list("application_id", "major", "minor", "patch"):
        taken[application_id].add(VersionNumber(major, minor, patch))
    modules = Module.objects.filter(application_id__in=application_ids)
    module_names = dict(modules.values_list("pk", "name"))
    # Subqueries, not lists of the 500 ids of a large application: Django prepares each id of a
    # list and psycopg parses every query holding one anew, three validations a deployment (issue 11).
    # The versions deployed (`deploying`) are among those the source runs and the tags it shows.
    deployable = CurrentVersion.objects.filter(environment=source, module__in=modules).values("version_id")
    shown_tags = {row.cells[0].tag_id for row in rows if row.cells[0].tag_id is not None}
    if shown_tags:
        deployable = deployable.union(TagMember.objects.filter(tag_id__in=shown_tags).values("version_id"))
    declared = declared_dependencies(deployable)
    used = {name for names in declared.uses.values() for name in names}
    return _Context(
        source=source,
        target=target,
        numbers=numbers,
        taken=taken,
        module_names=module_names,
        # One definition of the history graph: a partial merge does not contain its source.
        links=effective_links(modules.values("pk")),
        versions=numbers_and_contents(ModuleVersion.objects.filter(module__in=modules).order_by()),
        hotfixed={
            module_id for _, module_id in hooks.hotfix_state().hotfixed_modules(application_ids, [target.pk])
        },
        blocks=dict(
            ApplicationBlock.objects.filter(
                environment=target, application_id__in=application_ids, unblocked_at__isnull=True
            ).values_list("application_id", "reason")
        ),
        declared=declared,
        # Only the names some version uses, not every module of the target (no query when none is used).
        names_in_target=set(
            CurrentVersion.objects.filter(environment=target, module__name__in=used).values_list(
                "module__name", flat=True
            )
        ),
        names_deployed={module_names[m] for row in rows for m in deploying(row.cells[0])},
    )


def deploying(source_cell) -> dict[int, int]:
    """module id -> the version a deployment from this cell makes current in the target.

    With `+`, the source's own versions (tagged first). Without, the tag shown is
    deployed as it is: its versions, whose contents the source runs (maybe under
    other version ids, after a merge brought it to exactly that tag's files).
    """
    if source_cell.has_plus or not source_cell.modules:
        return dict(source_cell.modules)
    return dict(source_cell.tagged)


def _plan_item(row, context: _Context) -> ItemPlan:
    application, (source_cell, target_cell) = row.application, row.cells
    source, target, name = context.source, context.target, application.name
    current = VersionNumber.parse(source_cell.tag_number) if source_cell.tag_number else None
    taken = context.taken[application.pk]
    suggested, none_left = suggest(current, taken, hotfix=not source.is_first())
    needs_tag = source_cell.has_plus
    number = source_cell.tag_number or ""
    findings: list[Finding | None] = [backward(name, source, target)]
    if needs_tag:
        number = (context.numbers.get(application.pk) or suggested).strip()
        findings.append(version_number(name, number, taken, none_left=none_left))
    versions = deploying(source_cell)
    findings.append(empty_source(name, source, versions))
    # Compared by content: the same files under other version ids are nothing to deploy.
    if (
        versions
        and source_cell.contents == target_cell.contents
        and not needs_tag
        and source_cell.tag_number == target_cell.tag_number
    ):
        findings.append(
            nothing_to_deploy(name, f"{target.name} already runs exactly {name} {target_cell.label}.")
        )
    findings.append(blocked(name, target, context.blocks.get(application.pk)))
    findings.append(
        undoes_changes(
            name,
            target,
            target_cell.modules,
            versions,
            links=context.links,
            module_names=context.module_names,
            versions=context.versions,
            hotfixed=context.hotfixed,
        )
    )
    valid_number = number and not any(f and f.code == "invalid_number" for f in findings)
    if valid_number:
        findings.append(downgrade(name, target, target_cell.tag_number, number))
    findings.append(
        malformed_dependencies(
            name,
            versions,
            declared=context.declared,
            module_names=context.module_names,
            versions=context.versions,
        )
    )
    findings.append(
        missing_dependency(
            name,
            target,
            versions,
            declared=context.declared,
            will_exist=context.names_in_target | context.names_deployed,
            module_names=context.module_names,
        )
    )
    return ItemPlan(
        application=application,
        source_label=source_cell.label,
        target_label=target_cell.label,
        needs_tag=needs_tag,
        number=number,
        suggested=suggested,
        tag_id=None if needs_tag else source_cell.tag_id,
        versions=versions,
        findings=[finding for finding in findings if finding is not None],
        source_hotfix=source_cell.open_hotfix,
        target_hotfix=target_cell.open_hotfix,
    )
