"""Merging a later environment's changes (a hotfix) backward into an earlier one.

`prepare` finds, for each module whose source version the target does not
contain yet, the merge base (nearest common ancestor) and three-way merges
the source's changes into the target's files. The user then chooses which
source changes to take (whole module, file or hunk), resolves conflicts, and
`perform` publishes the results into the target as new module versions whose
parent is the target's version and whose merged-from is the source's.

Merging goes backward only: from a later environment (higher position) into an
earlier one. Changes move forward only by Tag & Deploy, which tags them and
checks deploy access, blocks and the regression guard; a forward merge would
skip all of that, and its merged-from link would make every later check believe
the later environment holds work it never received through a deployment.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from hotfixes.engine.treemerge import (
    BaseConflict,
    MergedManifest,
    Selection,
    TreeMerge,
    apply_manifest,
    merge_bases_trees,
    merge_trees,
)
from hotfixes.models import Hotfix, Merge, MergeItem
from lifecycle import access, audit
from lifecycle.archives import ArchiveRejected
from lifecycle.fingerprints import fingerprint as fingerprint_of_state
from lifecycle.history import effective_links
from lifecycle.history_graph import ancestors, merge_bases, merged_base
from lifecycle.models import AccessLevel, AuditEvent, Blob, CurrentVersion, Module, ModuleFile, ModuleVersion
from lifecycle.publishing import StaleEdit, publish
from lifecycle.snapshots import content_hash

MAX_COMMENT = 2000  # As every comment in the console.


class StaleMerge(Exception):
    """The source or target changed after the merge was prepared."""


class MergeError(ValueError):
    """A merge that cannot be published; the message says why."""


class MergeDirectionError(MergeError):
    """A merge that does not go backward: into the same environment, or into a later one."""


def check_direction(source, target) -> None:
    """Refuse (MergeDirectionError) unless `source` comes after `target` in the pipeline."""
    if source.pk == target.pk:
        raise MergeDirectionError(
            f"{source.name} cannot be merged into itself: choose an earlier environment. Nothing was merged."
        )
    if (source.position, source.pk) < (target.position, target.pk):
        raise MergeDirectionError(
            f"Merging goes backward only: {source.name} comes before {target.name}, so its changes reach "
            f"{target.name} by Tag & Deploy, never by a merge. Nothing was merged."
        )


@dataclass
class ModuleMerge:
    module: Module
    bases: list[ModuleVersion]  # the nearest common ancestors: none, one, or several after criss-cross merges
    target: ModuleVersion | None
    source: ModuleVersion
    tree: TreeMerge

    @property
    def base(self) -> ModuleVersion | None:
        """The merge base; None without common history, or when several were merged into a virtual one."""
        return self.bases[0] if len(self.bases) == 1 else None

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

    merged: dict[int, MergedManifest] = field(default_factory=dict)  # kept files stay hashes
    complete: dict[int, bool] = field(default_factory=dict)
    skipped_modules: set[int] = field(default_factory=set)

    @property
    def unresolved(self):
        return {module_id: tree.unresolved for module_id, tree in self.merged.items() if tree.unresolved}


def prepare(application, source, target, module_ids=None) -> PreparedMerge:
    """Three-way merge every module whose source version the target does not contain yet.

    Refuses a merge that does not go backward (MergeDirectionError), and a module
    whose several merge bases conflict with each other (MergeError).
    """
    check_direction(source, target)
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
    pending = []  # (module, merge base ids, target version, source version)
    for module_id, versions in sides.items():
        source_version, target_version = versions.get("source"), versions.get("target")
        if source_version is None:
            continue  # Only in the target: nothing to take from the source.
        if target_version is not None and source_version.pk in ancestors(target_version.pk, links):
            continue  # The target already contains every change of the source.
        bases = sorted(merge_bases(target_version.pk, source_version.pk, links)) if target_version else []
        pending.append((modules[module_id], bases, target_version, source_version))

    manifests = _manifests({v for _, bases, t, s in pending for v in (*bases, t and t.pk, s.pk) if v})
    base_versions = ModuleVersion.objects.in_bulk({base for _, bases, _, _ in pending for base in bases})
    contents: dict[str, bytes] = {}

    def read(digest):
        # Everything the merge and its page read is fetched below in one query; only merging
        # several merge bases into a virtual one (criss-cross merges, rare) reads here, file by file.
        if digest not in contents:
            contents[digest] = bytes(Blob.objects.get(hash=digest).data)
        return contents[digest]

    sided = []  # (module, base versions, base manifest, target manifest, target version, source version)
    for module, bases, target_version, source_version in pending:
        base = _base_manifest(bases, target_version, source_version, links, manifests, read, contents)
        if isinstance(base, BaseConflict):
            numbers = " and ".join(f"v{base_versions[b].number}" for b in bases)
            raise MergeError(
                f"{module.name}: {source.name} v{source_version.number} and {target.name} "
                f"v{target_version.number} have {len(bases)} equally near merge bases ({numbers}, left by "
                f"merges made both ways) and those {base}. There is no one base to measure the changes "
                f"from, and Stageboard does not pick one: edit {module.name} in {target.name} by hand "
                "instead. Nothing was merged."
            )
        target_manifest = manifests[target_version.pk] if target_version else {}
        sided.append(
            (module, [base_versions[b] for b in bases], base, target_manifest, target_version, source_version)
        )
    # Read in one query the only contents needed: of the files the source changed and the target
    # has otherwise (to merge them, and for the page's diffs). What is kept whole stays a hash:
    # the merged version is published from its manifest (see perform).
    needed = set()
    for _, _, b, t, _, source_version in sided:
        s = manifests[source_version.pk]
        for path in b.keys() | t.keys() | s.keys():
            if s.get(path) not in (t.get(path), b.get(path)):
                needed.update(digest for digest in (b.get(path), t.get(path), s.get(path)) if digest)
    contents.update(
        (digest, bytes(data))
        for digest, data in Blob.objects.filter(hash__in=needed - contents.keys()).values_list("hash", "data")
    )

    merges = [
        ModuleMerge(
            module,
            bases,
            target_version,
            source_version,
            merge_trees(base, target_manifest, manifests[source_version.pk], read),
        )
        for module, bases, base, target_manifest, target_version, source_version in sorted(
            sided, key=lambda item: item[0].name
        )
    ]
    fingerprint = fingerprint_of_state(
        sorted(
            [module_id, side, version.pk]
            for module_id, versions in sides.items()
            for side, version in versions.items()
        )
    )
    hotfix = Hotfix.objects.open().filter(application=application, environment=source).first()
    return PreparedMerge(application, source, target, merges, fingerprint, hotfix)


def _manifests(version_ids) -> dict[int, dict[str, str]]:
    """version id -> its manifest (path -> content hash), in one query."""
    manifests = defaultdict(dict)
    for version_id, path, digest in ModuleFile.objects.filter(version_id__in=version_ids).values_list(
        "version_id", "path", "blob_id"
    ):
        manifests[version_id][path] = digest
    return manifests


def base_manifest(bases, target_version, source_version, links, read, contents=None):
    """`_base_manifest` for one module on its own (comparing uses it): the manifests are read here."""
    manifests = _manifests(bases)
    return _base_manifest(
        bases, target_version, source_version, links, manifests, read, {} if contents is None else contents
    )


def _base_manifest(bases, target_version, source_version, links, manifests, read, contents):
    """The manifest both sides' changes are measured from; a BaseConflict when there is none to trust.

    Several equally near merge bases come from criss-cross merges. Picking one would
    count the other's changes as new on one side, so a change the other side reverted
    could come back; they are merged into one virtual base instead, as git's recursive
    strategy does. Merged content is kept in `contents` under its content hash.
    """
    if not bases:
        return {}
    if len(bases) == 1:
        return manifests[bases[0]]

    def tree(version_id):
        if version_id not in manifests:  # a base of the bases, found while merging them
            manifests.update(_manifests([version_id]))
        return manifests[version_id]

    def store(data: bytes) -> str:
        digest = content_hash(data)
        contents[digest] = data
        return digest

    try:
        return merged_base(
            target_version.pk,
            source_version.pk,
            links,
            tree,
            lambda base, left, right: merge_bases_trees(base, left, right, read, store),
        )
    except BaseConflict as conflict:
        return conflict


def take_everything(prepared: PreparedMerge) -> dict[int, tuple[bool, Selection]]:
    """Every source change taken, no conflict resolved: what propagating all the way merges."""
    return {merge.module.pk: (True, Selection()) for merge in prepared.modules}


def check_fresh(prepared: PreparedMerge, fingerprint: str) -> None:
    """Refuse (StaleMerge) a selection made on a page that showed another state than `prepared`.

    Checked before the selection is read: its fields name files and hunks by position,
    which may mean other files now, so a choice it holds is judged only once it is current.
    """
    if fingerprint != prepared.fingerprint:
        raise StaleMerge(
            f"{prepared.source.name} or {prepared.target.name} changed after this merge was prepared. "
            "It has been prepared again: check it and merge."
        )


def evaluate(prepared: PreparedMerge, selections) -> Outcome:
    outcome = Outcome()
    for merge in prepared.modules:
        taken, selection = selections[merge.module.pk]
        if not taken:
            outcome.skipped_modules.add(merge.module.pk)
            continue
        try:
            outcome.merged[merge.module.pk] = apply_manifest(merge.tree, selection)
        except ValueError as error:
            raise MergeError(f"{merge.module.name}: {error}") from None
        declined = bool(selection.skipped) or any(
            set(file.source_changes) - selection.regions.get(file.path, set(file.source_changes))
            for file in merge.files
            if file.kind == "text"
        )
        outcome.complete[merge.module.pk] = not declined
    return outcome


def perform(prepared: PreparedMerge, selections=None, *, user, fingerprint: str, comment: str = "") -> Merge:
    """Publish the merged modules into the target, all or nothing; refuse if anything changed.

    `selections` (module id -> (taken, Selection)); None takes every change. The
    results are checked like any published content before anything is written,
    so a refusal (MergeError) leaves nothing behind.
    """
    check_direction(prepared.source, prepared.target)
    # Reading the source's changes needs seeing it; writing them into the target needs publish there.
    access.require(user, prepared.source, AccessLevel.VIEW)
    access.require(user, prepared.target, AccessLevel.PUBLISH)
    if len(comment) > MAX_COMMENT:
        raise MergeError(f"A comment has at most {MAX_COMMENT} characters; nothing was merged.")
    check_fresh(prepared, fingerprint)
    selections = take_everything(prepared) if selections is None else selections
    outcome = evaluate(prepared, selections)
    if outcome.unresolved:
        count = sum(len(items) for items in outcome.unresolved.values())
        raise MergeError(f"{count} conflict{'s' if count != 1 else ''} still to resolve; nothing was merged.")
    if not outcome.merged:
        raise MergeError("No changes were selected; nothing was merged.")
    # The merged content is checked by publish, as any published content: a refusal (empty, clashing
    # paths, over the limits) raises MergeError and rolls back every module of the merge.
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
        items = [
            _publish_module(record, merge, outcome, selections[merge.module.pk][1], user, comment)
            for merge in prepared.modules
            if merge.module.pk in outcome.merged
        ]
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


def _publish_module(
    record: Merge, merge: ModuleMerge, outcome: Outcome, selection, user, comment
) -> MergeItem:
    """Publish one merged module into the target (inside the merge's transaction); its MergeItem, unsaved."""
    complete = outcome.complete[merge.module.pk]
    text = comment or f"Merge {merge.source.module.name} v{merge.source.number} from {record.source.name}"
    merged = outcome.merged[merge.module.pk].files
    # From hashes: the files kept whole from either side are neither read nor hashed again.
    manifest = {path: content_hash(c) if isinstance(c, bytes) else c for path, c in merged.items()}
    try:
        result = publish(
            merge.module,
            record.target,
            manifest=manifest,
            blobs=[content for content in merged.values() if isinstance(content, bytes)],
            user=user,
            comment=text,
            based_on=merge.target,
            check_stale=True,
            merged_from=merge.source,
            merged_all=complete,
        )
    except StaleEdit as error:
        raise StaleMerge(f"{error} The merge has been prepared again: check it and merge.") from None
    except ArchiveRejected as refused:  # rolls back every module of the merge
        raise MergeError(
            f"The merged {merge.module.name} cannot be published into {record.target.name}: {refused}"
        ) from None
    return MergeItem(
        merge=record,
        module=merge.module,
        base_version=merge.base,
        target_version=merge.target,
        source_version=merge.source,
        result_version=result.version,
        complete=complete,
        selection={
            "skipped": sorted(selection.skipped),
            "regions": {path: sorted(indexes) for path, indexes in selection.regions.items()},
            "resolved": {path: sorted(r) for path, r in selection.resolutions.items()},
            "choices": selection.choices,
            # Several merge bases were merged into a virtual one (see _base_manifest).
            **({"bases": [base.number for base in merge.bases]} if len(merge.bases) > 1 else {}),
        },
    )
