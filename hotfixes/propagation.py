"""Whether each environment contains a hotfix's changes, and propagating a hotfix all the way back.

An environment contains a hotfix version when the module version running there
is that version or descends from it through parents and complete merges. A
deployment of a tag that holds the hotfix versions counts (it runs them); a
merge that left some of the hotfix's changes out does not. Such a partial merge
still brought some of them: the environment then contains *some* of the
hotfix, and what it lacks is found by merging the hotfix's own change (from the
version it replaced to its last version) into what runs there, file by file and
hunk by hunk.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from hotfixes.engine.treemerge import TreeMerge, merge_trees
from hotfixes.merging import MergeError, PreparedMerge, StaleMerge, perform, prepare
from hotfixes.models import Hotfix, HotfixChange
from lifecycle import access, audit
from lifecycle.history import effective_links
from lifecycle.history_graph import ancestors
from lifecycle.models import AccessLevel, AuditEvent, Blob, CurrentVersion, ModuleFile, ModuleVersion


class SolveError(ValueError):
    """Marking solved was refused; the message says why."""


class NeedsConfirmation(SolveError):
    def __init__(self, lacking):
        self.lacking = lacking
        names = ", ".join(status.environment.name for status in lacking)
        super().__init__(
            f"{names} do{'es' if len(lacking) == 1 else ''} not contain every change of this hotfix yet."
        )


@dataclass(frozen=True)
class Lacking:
    """One change of a hotfix an environment lacks: a hunk of a text file, or a whole file."""

    path: str
    what: str  # e.g. "line 10", "lines 4–6", "deleted line 7", "added file", "binary file"


@dataclass
class EnvironmentStatus:
    environment: object
    contained: list[str] = field(default_factory=list)  # module names whose hotfix change is there
    missing: list[str] = field(default_factory=list)  # module names with none of it
    partly: dict[str, list[Lacking]] = field(default_factory=dict)  # module name -> what it lacks

    @property
    def state(self) -> str:
        if not self.missing and not self.partly:
            return "all"
        return "some" if self.contained or self.partly else "none"

    @property
    def label(self) -> str:
        return {"all": "contains every change", "some": "contains some changes", "none": "contains none"}[
            self.state
        ]

    @property
    def lacks(self) -> list[str]:
        """What is lacking: a module's name, with the files and hunks it lacks when it is partly there."""
        partly = [
            f"{name}: {', '.join(f'{item.path} {item.what}' for item in items)}"
            for name, items in self.partly.items()
        ]
        return sorted(self.missing + partly)


def all_links(module_ids, links) -> dict:
    """`links` (the effective history) plus the merged-from links of partial merges: what reached where."""
    everything = dict(links)
    for pk, parent, merged_from in ModuleVersion.objects.filter(
        module_id__in=module_ids, merged_all=False, merged_from__isnull=False
    ).values_list("pk", "parent_id", "merged_from_id"):
        everything[pk] = (parent, merged_from)
    return everything


def statuses(hotfixes, environments) -> dict[int, list[EnvironmentStatus]]:
    """hotfix id -> the status of each other environment running the application.

    Fixed queries; a few more, whatever the number of hotfixes, when some environment
    holds a partial merge (to find what it lacks).
    """
    hotfixes = list(hotfixes)
    if not hotfixes:
        return {}
    changes = defaultdict(dict)  # hotfix id -> module id -> HotfixModule
    for hotfix_id, module_id, name, version_id, replaced_id in HotfixChange.objects.filter(
        hotfix__in=hotfixes
    ).values_list("hotfix_id", "module_id", "module__name", "version_id", "replaced_version_id"):
        if module_id not in changes[hotfix_id]:
            changes[hotfix_id][module_id] = _HotfixModule(name, replaced_id)
        changes[hotfix_id][module_id].versions.append(version_id)  # in order: the last is the newest
    module_ids = {module_id for per_module in changes.values() for module_id in per_module}
    links = effective_links(module_ids)
    application_ids = {hotfix.application_id for hotfix in hotfixes}
    running = defaultdict(dict)  # (environment id, application id) -> module id -> version id
    for environment_id, application_id, module_id, version_id in CurrentVersion.objects.filter(
        module__application_id__in=application_ids, environment__in=environments
    ).values_list("environment_id", "module__application_id", "module_id", "version_id"):
        running[environment_id, application_id][module_id] = version_id

    result, partial = {}, []  # partial: (status, module name, HotfixModule, current version id)
    everything = None
    for hotfix in hotfixes:
        rows = []
        for environment in environments:
            if environment.pk == hotfix.environment_id:
                continue
            here = running.get((environment.pk, hotfix.application_id))
            if not here:
                continue  # The application does not run there.
            status = EnvironmentStatus(environment)
            for module_id, module in sorted(changes[hotfix.pk].items(), key=lambda item: item[1].name):
                current = here.get(module_id)
                history = ancestors(current, links) if current else set()
                if all(v in history for v in module.versions):
                    status.contained.append(module.name)
                    continue
                if current is not None:
                    everything = everything if everything is not None else all_links(module_ids, links)
                    if any(v in ancestors(current, everything) for v in module.versions):
                        partial.append((status, module, current))
                        continue
                status.missing.append(module.name)
            rows.append(status)
        result[hotfix.pk] = rows
    if partial:
        _find_lacking(partial)
    return result


@dataclass
class _HotfixModule:
    name: str
    replaced: int | None  # the version the hotfix's first change of this module replaced
    versions: list[int] = field(default_factory=list)


def _find_lacking(partial) -> None:
    """Sort partly merged modules into `partly` (with what they lack) or, lacking nothing, `contained`.

    The hotfix's own change (replaced version -> its last version) is merged into what
    runs in the environment: a change still to take, or one that conflicts, is lacking.
    """
    version_ids = {
        v for _, module, current in partial for v in (module.replaced, module.versions[-1], current)
    }
    manifests = defaultdict(dict)
    for version_id, path, digest in ModuleFile.objects.filter(
        version_id__in=version_ids - {None}
    ).values_list("version_id", "path", "blob_id"):
        manifests[version_id][path] = digest
    sides = [
        (
            manifests[module.replaced] if module.replaced else {},
            manifests[current],
            manifests[module.versions[-1]],
        )
        for _, module, current in partial
    ]
    needed = {
        digest
        for base, target, source in sides
        for path in base.keys() | target.keys() | source.keys()
        if source.get(path) not in (target.get(path), base.get(path))
        for digest in (base.get(path), target.get(path), source.get(path))
        if digest
    }
    contents = {
        digest: bytes(data)
        for digest, data in Blob.objects.filter(hash__in=needed).values_list("hash", "data")
    }
    for (status, module, _), (base, target, source) in zip(partial, sides, strict=True):
        lacking = _lacking(merge_trees(base, target, source, contents.__getitem__))
        if lacking:
            status.partly[module.name] = lacking
        else:
            status.contained.append(module.name)


WHOLE_FILES = {
    "add": "added file",
    "delete": "deleted file",
    "binary": "binary file",
    "binary-conflict": "binary file, changed differently there",
    "delete-conflict": "file deleted on one side, changed on the other",
}


def _lacking(tree: TreeMerge) -> list[Lacking]:
    """The hotfix changes the merge would still bring: hunks by the line numbers of the hotfix's version."""
    lacking = []
    for file in tree.files:
        if file.kind in WHOLE_FILES:
            lacking.append(Lacking(file.path, WHOLE_FILES[file.kind]))
        elif file.kind == "text":
            lacking.extend(
                Lacking(file.path, _hunk(region))
                for region in file.regions
                if region.kind in ("source", "conflict")
            )
    return lacking


def _hunk(region) -> str:
    lines, start, prefix = region.source, region.source_start, ""
    if not lines:  # the hotfix deleted lines: number them as in the version it replaced
        lines, start, prefix = region.base, region.base_start, "deleted "
    first, last = start + 1, start + len(lines)
    where = f"{prefix}line {first}" if first == last else f"{prefix}lines {first}–{last}"
    return where + (", changed differently there" if region.kind == "conflict" else "")


def mark_solved(hotfix_id, environments, *, user, confirm_incomplete=False, note="") -> Hotfix:
    """Mark the hotfix solved. Asks for confirmation (NeedsConfirmation) while an environment lacks it.

    Two people at once: the row lock lets one win; the other is told who solved it.
    """
    with transaction.atomic():
        hotfix = (
            Hotfix.objects.select_for_update(of=("self",))
            .select_related("solved_by", "environment", "application")
            .get(pk=hotfix_id)
        )
        # Solving needs full access where the hotfix was made, whichever way in asks.
        access.require(user, hotfix.environment, AccessLevel.FULL)
        if not hotfix.is_open:
            # Read who solved it after the lock: a join taken with the lock still shows the old row.
            who = (
                get_user_model()
                .objects.filter(pk=hotfix.solved_by_id)
                .values_list("username", flat=True)
                .first()
                or "someone"
            )
            raise SolveError(
                f"This hotfix was already marked solved by {who} "
                f"at {timezone.localtime(hotfix.solved_at):%H:%M}."
            )
        lacking = [status for status in statuses([hotfix], environments)[hotfix.pk] if status.state != "all"]
        if lacking and not confirm_incomplete:
            raise NeedsConfirmation(lacking)
        hotfix.solved_at = timezone.now()
        hotfix.solved_by = user
        hotfix.solved_incomplete = bool(lacking)
        lacked = "; ".join(f"{s.environment.name} lacked {'; '.join(s.lacks)}" for s in lacking)
        # The record of what was lacking is kept whatever the user writes beside it.
        hotfix.solved_note = " — ".join(
            part for part in (note.strip(), f"Solved while {lacked}" if lacking else "") if part
        )
        hotfix.save(update_fields=["solved_at", "solved_by", "solved_incomplete", "solved_note"])
        audit.record(
            AuditEvent.Action.HOTFIX_SOLVED,
            user=user,
            environment=hotfix.environment,
            application=hotfix.application,
            summary=f"Hotfix of {hotfix.application.name} in {hotfix.environment.name} marked solved"
            + (" while incomplete" if lacking else ""),
            before={"open": True},
            after={"open": False, "incomplete": bool(lacking), "note": hotfix.solved_note},
        )
    return hotfix


# Propagating a hotfix all the way: merged into every earlier environment, nearest first.


@dataclass
class Propagation:
    hotfix: Hotfix
    steps: list[PreparedMerge]  # one per earlier environment, nearest first, up to a conflict
    stopped: PreparedMerge | None  # the step with a conflict, to resolve in the merge page first

    @property
    def pending(self) -> list[PreparedMerge]:
        """The steps with something to merge."""
        return [step for step in self.steps if step.modules]

    @property
    def fingerprints(self) -> list[str]:
        return [step.fingerprint for step in self.steps]


def earlier_environments(hotfix, environments) -> list:
    """The environments before the hotfix's, nearest first: the order a hotfix travels back."""
    here = (hotfix.environment.position, hotfix.environment.pk)
    return sorted((e for e in environments if (e.position, e.pk) < here), key=lambda e: (e.position, e.pk))[
        ::-1
    ]


def plan_propagation(hotfix, environments) -> Propagation:
    """Prepare afresh the merge of the hotfix's modules into each earlier environment; stop at a conflict."""
    module_ids = list(hotfix.changes.values_list("module_id", flat=True))
    steps, stopped = [], None
    for environment in earlier_environments(hotfix, environments):
        prepared = prepare(hotfix.application, hotfix.environment, environment, module_ids)
        steps.append(prepared)
        if prepared.has_conflicts:
            stopped = prepared
            break
    return Propagation(hotfix, steps, stopped)


def propagate(propagation: Propagation, *, user, fingerprints: list[str], comment: str = "") -> list:
    """Publish every pending step, all or nothing, if the page's fingerprints match this fresh preparation.

    A page shown again (the browser's Back button) carries the fingerprints of what it
    showed: when anything changed since, StaleMerge, and the page is prepared again.
    """
    if propagation.stopped is not None:
        raise MergeError(
            f"Stopped at {propagation.stopped.target.name}: resolve its conflict first. Nothing was merged."
        )
    stale = [
        step.target.name
        for index, step in enumerate(propagation.steps)
        if index >= len(fingerprints) or fingerprints[index] != step.fingerprint
    ]
    if stale or len(fingerprints) != len(propagation.steps):
        names = ", ".join(stale) or "The environments"
        raise StaleMerge(
            f"{names} changed after this page was prepared, or the page was shown again. It has been "
            "prepared again: check what each environment will receive, and merge. Nothing was merged."
        )
    for step in propagation.pending:
        access.require(user, step.target, AccessLevel.PUBLISH)
    comment = comment.strip() or f"Propagate the hotfix from {propagation.hotfix.environment.name}"
    with transaction.atomic():
        return [
            perform(step, None, user=user, fingerprint=step.fingerprint, comment=comment)
            for step in propagation.pending
        ]
