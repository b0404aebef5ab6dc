"""Merging a later environment's changes (a hotfix) backward into an earlier one.

`prepare` finds, for each module whose source version the target does not
contain yet, the merge base (nearest common ancestor) and three-way merges
the source's changes into the target's files. The user then chooses which
source changes to take (whole module, file or hunk), resolves conflicts, and
`perform` publishes the results into the target as new module versions whose
parent is the target's version and whose merged-from is the source's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from hotfixes.engine.treemerge import MergedTree, Selection, TreeMerge, apply, merge_trees
from hotfixes.models import Hotfix, Merge, MergeItem
from lifecycle import access, audit
from lifecycle.fingerprints import fingerprint as fingerprint_of_state
from lifecycle.history import effective_links
from lifecycle.history_graph import ancestors, merge_base
from lifecycle.models import AccessLevel, AuditEvent, Blob, CurrentVersion, Module, ModuleFile, ModuleVersion
from lifecycle.publishing import StaleEdit, publish


class StaleMerge(Exception):
    """The source or target changed after the merge was prepared."""


class MergeError(ValueError):
    """A merge that cannot be published; the message says why."""


@dataclass
class ModuleMerge:
    module: Module
    base: ModuleVersion | None
    target: ModuleVersion | None
    source: ModuleVersion
    tree: TreeMerge

    @property
    def files(self):
        """The files with something to decide or to know: every path the source changed."""
        return [file for file in self.tree.files if file.kind not in ("target", "same")]

    @property
    def has_conflicts(self):
        return bool(self.tree.conflicts)


@dataclass
class PreparedMerge:
    application: object
    source: object
    target: object
    modules: list[ModuleMerge]
    fingerprint: str
    hotfix: Hotfix | None = None

    @property
    def has_conflicts(self):
        return any(module.has_conflicts for module in self.modules)


@dataclass
class Outcome:
    """What a selection makes of a prepared merge: merged files per module, or what is unresolved."""

    merged: dict[int, MergedTree] = field(default_factory=dict)
    complete: dict[int, bool] = field(default_factory=dict)
    skipped_modules: set[int] = field(default_factory=set)

    @property
    def unresolved(self):
        return {module_id: tree.unresolved for module_id, tree in self.merged.items() if tree.unresolved}


def prepare(application, source, target, module_ids=None) -> PreparedMerge:
    """Three-way merge every module whose source version the target does not contain yet."""
    rows = CurrentVersion.objects.filter(
        module__application=application, environment__in=[source, target]
    ).select_related("version", "module")
    if module_ids is not None:
        rows = rows.filter(module_id__in=module_ids)
    sides = defaultdict(dict)  # module id -> {"source"/"target": version}
    modules = {}
    for row in rows:
        sides[row.module_id]["source" if row.environment_id == source.pk else "target"] = row.version
        modules[row.module_id] = row.module
    links = effective_links(list(modules))
    pending = []
    for module_id, versions in sides.items():
        source_version, target_version = versions.get("source"), versions.get("target")
        if source_version is None:
            continue  # Only in the target: nothing to take from the source.
        if target_version is not None and source_version.pk in ancestors(target_version.pk, links):
            continue  # The target already contains every change of the source.
        base_id = merge_base(target_version.pk, source_version.pk, links) if target_version else None
        pending.append((modules[module_id], base_id, target_version, source_version))

    version_ids = {v for _, base, t, s in pending for v in (base, t and t.pk, s.pk) if v}
    manifests = defaultdict(dict)
    for version_id, path, digest in ModuleFile.objects.filter(version_id__in=version_ids).values_list(
        "version_id", "path", "blob_id"
    ):
        manifests[version_id][path] = digest
    bases = ModuleVersion.objects.in_bulk({base for _, base, _, _ in pending if base})
    # Read in one query the contents the engine needs: files where both sides differ from each other.
    needed = set()
    for _, base, target_version, source_version in pending:
        b, t, s = (
            manifests[base] if base else {},
            manifests[target_version.pk] if target_version else {},
            manifests[source_version.pk],
        )
        for path in b.keys() | t.keys() | s.keys():
            if s.get(path) not in (t.get(path), b.get(path)):
                needed.update(digest for digest in (b.get(path), t.get(path), s.get(path)) if digest)
    contents = {
        digest: bytes(data)
        for digest, data in Blob.objects.filter(hash__in=needed).values_list("hash", "data")
    }

    def read(digest):
        if digest not in contents:
            contents[digest] = bytes(Blob.objects.get(hash=digest).data)
        return contents[digest]

    merges = []
    for module, base, target_version, source_version in sorted(pending, key=lambda item: item[0].name):
        tree = merge_trees(
            manifests[base] if base else {},
            manifests[target_version.pk] if target_version else {},
            manifests[source_version.pk],
            read,
        )
        merges.append(ModuleMerge(module, bases.get(base), target_version, source_version, tree))
    fingerprint = fingerprint_of_state(
        sorted(
            [module_id, side, version.pk]
            for module_id, versions in sides.items()
            for side, version in versions.items()
        )
    )
    hotfix = Hotfix.objects.open().filter(application=application, environment=source).first()
    return PreparedMerge(application, source, target, merges, fingerprint, hotfix)


def read_selection(prepared: PreparedMerge, data) -> dict[int, tuple[bool, Selection]]:
    """module id -> (taken at all, Selection) from the merge form; with no form, everything is taken.

    Field names use positions, never paths: take-module-M, take-file-M-F, take-hunk-M-F-R,
    resolve-M-F-R ("target", "source" or "edit") with edit-M-F-R, choice-M-F.
    """
    submitted = data is not None and data.get("submitted") == "1"
    selections = {}
    for merge in prepared.modules:
        m = merge.module.pk
        taken = not submitted or data.get(f"take-module-{m}") == "on"
        selection = Selection()
        for f, file in enumerate(merge.files):
            if submitted and data.get(f"take-file-{m}-{f}") != "on" and not file.is_conflict:
                selection.skipped.add(file.path)
                continue
            if file.kind == "text":
                if submitted:
                    selection.regions[file.path] = {
                        r for r in file.source_changes if data.get(f"take-hunk-{m}-{f}-{r}") == "on"
                    }
                for r in file.conflicts:
                    how = data.get(f"resolve-{m}-{f}-{r}") if submitted else None
                    region = file.regions[r]
                    if how == "target":
                        selection.resolutions.setdefault(file.path, {})[r] = list(region.target)
                    elif how == "source":
                        selection.resolutions.setdefault(file.path, {})[r] = list(region.source)
                    elif how == "edit":
                        text = data.get(f"edit-{m}-{f}-{r}", "").replace("\r\n", "\n")
                        lines = text.splitlines(keepends=True)
                        if (
                            lines
                            and not lines[-1].endswith("\n")
                            and any(line.endswith("\n") for line in region.target + region.source)
                        ):
                            lines[-1] += "\n"
                        selection.resolutions.setdefault(file.path, {})[r] = lines
            elif file.is_conflict:
                choice = data.get(f"choice-{m}-{f}") if submitted else None
                if choice:
                    selection.choices[file.path] = choice
        selections[m] = (taken, selection)
    return selections


def evaluate(prepared: PreparedMerge, selections) -> Outcome:
    outcome = Outcome()
    for merge in prepared.modules:
        taken, selection = selections[merge.module.pk]
        if not taken:
            outcome.skipped_modules.add(merge.module.pk)
            continue
        try:
            outcome.merged[merge.module.pk] = apply(merge.tree, selection)
        except ValueError as error:
            raise MergeError(f"{merge.module.name}: {error}") from None
        declined = bool(selection.skipped) or any(
            set(file.source_changes) - selection.regions.get(file.path, set(file.source_changes))
            for file in merge.files
            if file.kind == "text"
        )
        outcome.complete[merge.module.pk] = not declined
    return outcome


def perform(prepared: PreparedMerge, selections, *, user, fingerprint: str, comment: str = "") -> Merge:
    """Publish the merged modules into the target, all or nothing; refuse if anything changed."""
    access.require(user, prepared.target, AccessLevel.PUBLISH)
    if fingerprint != prepared.fingerprint:
        raise StaleMerge(
            f"{prepared.source.name} or {prepared.target.name} changed after this merge was prepared. "
            "It has been prepared again: check it and merge."
        )
    outcome = evaluate(prepared, selections)
    if outcome.unresolved:
        count = sum(len(items) for items in outcome.unresolved.values())
        raise MergeError(f"{count} conflict{'s' if count != 1 else ''} still to resolve; nothing was merged.")
    if not outcome.merged:
        raise MergeError("No changes were selected; nothing was merged.")
    with transaction.atomic():
        record = Merge.objects.create(
            source=prepared.source,
            target=prepared.target,
            application=prepared.application,
            hotfix=prepared.hotfix,
            user=user,
            at=timezone.now(),
            comment=comment,
        )
        items = []
        for merge in prepared.modules:
            merged = outcome.merged.get(merge.module.pk)
            if merged is None:
                continue
            text = (
                comment
                or f"Merge {merge.source.module.name} v{merge.source.number} from {prepared.source.name}"
            )
            try:
                result = publish(
                    merge.module,
                    prepared.target,
                    merged.files,
                    user=user,
                    comment=text,
                    based_on=merge.target,
                    check_stale=True,
                    merged_from=merge.source,
                    merged_all=outcome.complete[merge.module.pk],
                )
            except StaleEdit as error:
                raise StaleMerge(f"{error} The merge has been prepared again: check it and merge.") from None
            _, selection = selections[merge.module.pk]
            items.append(
                MergeItem(
                    merge=record,
                    module=merge.module,
                    base_version=merge.base,
                    target_version=merge.target,
                    source_version=merge.source,
                    result_version=result.version,
                    complete=outcome.complete[merge.module.pk],
                    selection={
                        "skipped": sorted(selection.skipped),
                        "regions": {path: sorted(indexes) for path, indexes in selection.regions.items()},
                        "resolved": {path: sorted(r) for path, r in selection.resolutions.items()},
                        "choices": selection.choices,
                    },
                )
            )
        MergeItem.objects.bulk_create(items)
        audit.record(
            AuditEvent.Action.MERGE,
            user=user,
            environment=prepared.target,
            application=prepared.application,
            summary=f"Merged {', '.join(f'{i.module.name} v{i.source_version.number}' for i in items)} "
            f"from {prepared.source.name} into {prepared.target.name}"
            + ("" if all(i.complete for i in items) else " (partly)"),
            before={i.module.name: i.target_version.number if i.target_version else None for i in items},
            after={
                i.module.name: {"version": i.result_version.number, "complete": i.complete} for i in items
            },
        )
    return record
