"""Compare an application between two environments, module by module and file by file.

A changed module's two sides are each measured from their merge base (the
nearest common ancestor in the history graph), so the source's changes show
what the source did, not the target's newer work that the source lacks.

The module-level comparison reads a fixed number of queries whatever the
number of modules and files: the current versions, the history graph, the
merge bases and one query of manifests (path, content hash and size; never
the content). File content is read only for the diffs shown: the small ones
in one query (`load_inline_diffs`), a large one on its own (`file_diff`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from hotfixes.engine.linediff import FileDiff, Hunk, diff_lines
from hotfixes.engine.treediff import FileChange, diff_trees
from lifecycle.history import effective_links
from lifecycle.history_graph import merge_base
from lifecycle.models import Blob, CurrentVersion, ModuleFile, ModuleVersion

# A file's diff is shown inline when both sides are at most this size and it changes at most
# this many lines; otherwise the page offers to load it, so the page opens at once.
INLINE_MAX_BYTES = 50_000
INLINE_MAX_CHANGED_LINES = 200
# And at most this much content is read for one page, whatever the number of small files.
INLINE_BUDGET_BYTES = 1_000_000

ModuleStatus = Literal["same", "changed", "only-source", "only-target"]


@dataclass(frozen=True)
class Section:
    """A hunk of a diff, after `folded` unchanged lines that are not shown (hunk None: the file's tail)."""

    folded: int
    hunk: Hunk | None


@dataclass
class ChangedFile:
    path: str
    status: str  # added, deleted, changed; "unchanged" only from file_diff
    old_hash: str | None
    new_hash: str | None
    old_size: int | None
    new_size: int | None
    binary: bool
    diff: FileDiff | None = None  # None until loaded, and when too large to show inline
    old_line_count: int = 0
    deferred: str = ""  # why the diff is not shown inline, e.g. "312 changed lines"

    @property
    def sections(self) -> list[Section]:
        """The hunks with the number of unchanged lines folded before each, and after the last."""
        if self.diff is None or not self.diff.hunks:
            return []
        sections, after_previous = [], 1  # the first old line not yet accounted for
        for hunk in self.diff.hunks:
            # A start with a count of 0 is the line the hunk comes after (see linediff.Hunk).
            begin = hunk.old_start if hunk.old_count else hunk.old_start + 1
            sections.append(Section(max(begin - after_previous, 0), hunk))
            after_previous = hunk.old_start + hunk.old_count if hunk.old_count else hunk.old_start + 1
        tail = self.old_line_count + 1 - after_previous
        if tail > 0:
            sections.append(Section(tail, None))
        return sections


@dataclass
class ModuleComparison:
    module: object
    status: ModuleStatus
    source_version: ModuleVersion | None
    target_version: ModuleVersion | None
    base: ModuleVersion | None = None  # the merge base of a changed module; None: no common history
    source_changes: list[ChangedFile] = field(default_factory=list)  # from the base to the source
    target_changes: list[ChangedFile] = field(default_factory=list)  # from the base to the target

    @property
    def files(self) -> list[ChangedFile]:
        return self.source_changes + self.target_changes


@dataclass
class Comparison:
    application: object
    source: object
    target: object
    modules: list[ModuleComparison]

    def count(self, status: ModuleStatus) -> int:
        return sum(1 for module in self.modules if module.status == status)

    @property
    def same(self) -> int:
        return self.count("same")

    @property
    def changed(self) -> int:
        return self.count("changed")

    @property
    def only_source(self) -> int:
        return self.count("only-source")

    @property
    def only_target(self) -> int:
        return self.count("only-target")

    @property
    def differs(self) -> bool:
        return any(module.status != "same" for module in self.modules)

    @property
    def source_has_changes(self) -> bool:
        """Whether merging the source into the target has anything to take."""
        return any(m.status == "only-source" or m.source_changes for m in self.modules)

    @property
    def target_has_changes(self) -> bool:
        return any(m.status == "only-target" or m.target_changes for m in self.modules)


def compare_application(application, source_env, target_env) -> Comparison:
    """The application's modules in both environments: same, changed (with each side's files), one-sided."""
    running: dict[int, dict[int, ModuleVersion]] = defaultdict(dict)  # module id -> environment id -> version
    modules = {}
    for current in CurrentVersion.objects.filter(
        module__application=application, environment__in=[source_env, target_env]
    ).select_related("module", "version"):
        running[current.module_id][current.environment_id] = current.version
        modules[current.module_id] = current.module

    comparisons = []
    for module_id, module in sorted(modules.items(), key=lambda item: item[1].name.lower()):
        source = running[module_id].get(source_env.pk)
        target = running[module_id].get(target_env.pk)
        if target is None:
            status = "only-source"
        elif source is None:
            status = "only-target"
        elif source.pk == target.pk or source.tree_hash == target.tree_hash:
            status = "same"
        else:
            status = "changed"
        comparisons.append(ModuleComparison(module, status, source, target))

    changed = [comparison for comparison in comparisons if comparison.status == "changed"]
    if changed:
        _add_file_changes(changed)
    return Comparison(application, source_env, target_env, comparisons)


def _add_file_changes(changed: list[ModuleComparison]) -> None:
    links = effective_links({comparison.module.pk for comparison in changed})
    base_ids = {
        comparison.module.pk: merge_base(comparison.source_version.pk, comparison.target_version.pk, links)
        for comparison in changed
    }
    bases = {version.pk: version for version in ModuleVersion.objects.filter(pk__in=set(base_ids.values()))}
    version_ids = set(bases)
    for comparison in changed:
        version_ids |= {comparison.source_version.pk, comparison.target_version.pk}
    manifests: dict[int, dict[str, str]] = defaultdict(dict)
    blobs: dict[str, tuple[int, bool]] = {}  # content hash -> (size, binary)
    for version_id, path, digest, size, binary in ModuleFile.objects.filter(
        version_id__in=version_ids
    ).values_list("version_id", "path", "blob_id", "blob__size", "blob__is_binary"):
        manifests[version_id][path] = digest
        blobs[digest] = (size, binary)

    for comparison in changed:
        comparison.base = bases.get(base_ids[comparison.module.pk])
        # Without common history, each side's files are all its own changes.
        base_manifest = manifests[comparison.base.pk] if comparison.base else {}
        comparison.source_changes = [
            _changed_file(change, blobs)
            for change in diff_trees(base_manifest, manifests[comparison.source_version.pk])
        ]
        comparison.target_changes = [
            _changed_file(change, blobs)
            for change in diff_trees(base_manifest, manifests[comparison.target_version.pk])
        ]


def _changed_file(change: FileChange, blobs: dict[str, tuple[int, bool]]) -> ChangedFile:
    old_size, old_binary = blobs[change.old_hash] if change.old_hash else (None, False)
    new_size, new_binary = blobs[change.new_hash] if change.new_hash else (None, False)
    changed = ChangedFile(
        path=change.path,
        status=change.status,
        old_hash=change.old_hash,
        new_hash=change.new_hash,
        old_size=old_size,
        new_size=new_size,
        binary=old_binary or new_binary,
    )
    if changed.binary:
        # Shown as changed as a whole, with its sizes: there is no content to read.
        changed.diff = FileDiff(binary=True, hunks=(), added=0, deleted=0)
    elif max(old_size or 0, new_size or 0) > INLINE_MAX_BYTES:
        changed.deferred = "large file"
    return changed


def load_inline_diffs(comparison: Comparison, budget: int = INLINE_BUDGET_BYTES) -> None:
    """Read, in one query, the content of the small changed files and diff them; the rest stay deferred."""
    wanted: list[ChangedFile] = []
    hashes: set[str] = set()
    for module in comparison.modules:
        for changed in module.files:
            if changed.diff is not None or changed.deferred:
                continue
            needed = {digest for digest in (changed.old_hash, changed.new_hash) if digest} - hashes
            cost = sum(
                size
                for digest, size in (
                    (changed.old_hash, changed.old_size),
                    (changed.new_hash, changed.new_size),
                )
                if digest in needed
            )
            if cost > budget:
                changed.deferred = "not loaded to keep this page quick"
                continue
            budget -= cost
            hashes |= needed
            wanted.append(changed)
    if not wanted:
        return
    contents = dict(Blob.objects.filter(hash__in=hashes).values_list("hash", "data"))
    for changed in wanted:
        _diff(changed, contents, limit_lines=True)


def file_diff(
    module, base_version: ModuleVersion | None, version: ModuleVersion, path: str
) -> ChangedFile | None:
    """One file's line diff from `base_version` (None: from nothing) to `version`; None if in neither.

    Content is read only when the two sides' hashes differ, and only for this file.
    """
    version_ids = [version.pk] + ([base_version.pk] if base_version else [])
    rows = {
        version_id: (digest, size, binary)
        for version_id, digest, size, binary in ModuleFile.objects.filter(
            version_id__in=version_ids, version__module=module, path=path
        ).values_list("version_id", "blob_id", "blob__size", "blob__is_binary")
    }
    old = rows.get(base_version.pk) if base_version else None
    new = rows.get(version.pk)
    if old is None and new is None:
        return None
    old_hash, old_size, old_binary = old or (None, None, False)
    new_hash, new_size, new_binary = new or (None, None, False)
    if old_hash == new_hash:
        return ChangedFile(
            path,
            "unchanged",
            old_hash,
            new_hash,
            old_size,
            new_size,
            binary=old_binary,
            diff=FileDiff(binary=False, hunks=(), added=0, deleted=0),
        )
    status = "added" if old is None else "deleted" if new is None else "changed"
    changed = ChangedFile(
        path, status, old_hash, new_hash, old_size, new_size, binary=old_binary or new_binary
    )
    if changed.binary:
        changed.diff = FileDiff(binary=True, hunks=(), added=0, deleted=0)
        return changed
    hashes = [digest for digest in (old_hash, new_hash) if digest]
    _diff(changed, dict(Blob.objects.filter(hash__in=hashes).values_list("hash", "data")), limit_lines=False)
    return changed


def _diff(changed: ChangedFile, contents: dict[str, bytes], *, limit_lines: bool) -> None:
    old = bytes(contents[changed.old_hash]) if changed.old_hash else None
    new = bytes(contents[changed.new_hash]) if changed.new_hash else None
    diff = diff_lines(old, new)
    if limit_lines and diff.added + diff.deleted > INLINE_MAX_CHANGED_LINES:
        changed.deferred = f"{diff.added + diff.deleted} changed lines"
        return
    changed.diff = diff
    changed.binary = diff.binary
    # The number of lines as linediff.split_lines counts them, for the fold after the last hunk.
    changed.old_line_count = old.count(b"\n") + (0 if not old or old.endswith(b"\n") else 1) if old else 0
