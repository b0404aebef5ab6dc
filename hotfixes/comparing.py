"""Compare an application between two environments, module by module and file by file.

A changed module's two sides are each measured from their merge base (the
nearest common ancestor in the history graph), so the source's changes show
what the source did, not the target's newer work that the source lacks. After
criss-cross merges there are several equally near bases: they are merged into
one virtual base, as a merge does (see merging._base_manifest), never one
picked. The file changes that belong to an open hotfix of either side are
labelled, and the modules carrying them come first.

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

from hotfixes.engine.linediff import FileDiff, Hunk, decode_text, diff_lines
from hotfixes.engine.treediff import FileChange, diff_trees
from hotfixes.engine.treemerge import BaseConflict
from hotfixes.merging import base_manifest
from hotfixes.models import HotfixChange
from lifecycle.history import effective_links
from lifecycle.history_graph import merge_bases
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
    hotfix: bool = False  # the change is (part of) the open hotfix of its side's environment
    # Measured from a virtual merge base, which no link can name: always shown inline.
    inline_only: bool = False

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
    base: ModuleVersion | None = None  # the merge base of a changed module; None: none, or several
    bases: list[ModuleVersion] = field(default_factory=list)  # several after criss-cross merges
    base_problem: str = ""  # why the changes cannot be measured (several bases that conflict)
    source_changes: list[ChangedFile] = field(default_factory=list)  # from the base to the source
    target_changes: list[ChangedFile] = field(default_factory=list)  # from the base to the target
    hotfix_side: str = ""  # "source" or "target": the side whose open hotfix changed this module

    @property
    def files(self) -> list[ChangedFile]:
        return self.source_changes + self.target_changes

    @property
    def hotfix_files(self) -> int:
        return sum(1 for changed in self.files if changed.hotfix)


@dataclass
class Comparison:
    application: object
    source: object
    target: object
    modules: list[ModuleComparison]
    open_hotfixes: set[int] = field(default_factory=set)  # the environments (ids) with an open hotfix
    virtual_contents: dict[str, bytes] = field(default_factory=dict)  # virtual merge bases' merged files

    @property
    def later(self):
        """The side later in the pipeline: the only one whose changes may be merged into the other."""
        return max((self.source, self.target), key=lambda e: (e.position, e.pk))

    @property
    def earlier(self):
        return self.target if self.later == self.source else self.source

    @property
    def later_has_changes(self) -> bool:
        """Whether merging the later side backward into the earlier has anything to take."""
        return self.source_has_changes if self.later == self.source else self.target_has_changes

    @property
    def earlier_has_changes(self) -> bool:
        """Whether the earlier side has work the later lacks: it moves forward by Tag & Deploy only."""
        return self.target_has_changes if self.later == self.source else self.source_has_changes

    @property
    def propagates_hotfix(self) -> bool:
        """Whether merging backward propagates the later side's open hotfix: it changed what differs."""
        side = "source" if self.later == self.source else "target"
        return self.later.pk in self.open_hotfixes and any(m.hotfix_side == side for m in self.modules)

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

    comparison = Comparison(application, source_env, target_env, comparisons)
    hotfixed = _open_hotfix_changes(comparison)
    changed = [entry for entry in comparisons if entry.status == "changed"]
    manifests = _add_file_changes(comparison, changed, hotfixed) if changed else defaultdict(dict)
    _label_hotfix_changes(comparison, hotfixed, manifests)
    # The modules carrying an open hotfix's changes first: they are what a merge backward is about.
    comparison.modules.sort(key=lambda entry: not entry.hotfix_side)
    return comparison


def _open_hotfix_changes(comparison: Comparison) -> dict[tuple[int, int], tuple[int | None, int]]:
    """(environment id, module id) -> (version the hotfix replaced first, its last version), one query."""
    hotfixed: dict[tuple[int, int], tuple[int | None, int]] = {}
    for environment_id, module_id, version_id, replaced_id in (
        HotfixChange.objects.filter(
            hotfix__application=comparison.application,
            hotfix__environment__in=[comparison.source, comparison.target],
            hotfix__solved_at__isnull=True,
        )
        .order_by("at", "id")
        .values_list("hotfix__environment_id", "module_id", "version_id", "replaced_version_id")
    ):
        comparison.open_hotfixes.add(environment_id)
        first_replaced = hotfixed.get((environment_id, module_id), (replaced_id, None))[0]
        hotfixed[environment_id, module_id] = (first_replaced, version_id)
    return hotfixed


def _add_file_changes(comparison: Comparison, changed: list[ModuleComparison], hotfixed) -> dict:
    """Each changed module's file changes on both sides since the merge base; returns the manifests read."""
    links = effective_links({entry.module.pk for entry in changed})
    base_ids = {
        entry.module.pk: sorted(merge_bases(entry.source_version.pk, entry.target_version.pk, links))
        for entry in changed
    }
    bases = ModuleVersion.objects.in_bulk({base for ids in base_ids.values() for base in ids})
    version_ids = set(bases) | {v for pair in hotfixed.values() for v in pair if v}
    for entry in changed:
        version_ids |= {entry.source_version.pk, entry.target_version.pk}
    manifests: dict[int, dict[str, str]] = defaultdict(dict)
    blobs: dict[str, tuple[int, bool]] = {}  # content hash -> (size, binary)
    for version_id, path, digest, size, binary in ModuleFile.objects.filter(
        version_id__in=version_ids
    ).values_list("version_id", "path", "blob_id", "blob__size", "blob__is_binary"):
        manifests[version_id][path] = digest
        blobs[digest] = (size, binary)

    for entry in changed:
        entry.bases = [bases[pk] for pk in base_ids[entry.module.pk]]
        entry.base = entry.bases[0] if len(entry.bases) == 1 else None
        # Without common history, each side's files are all its own changes.
        base = manifests[entry.base.pk] if entry.base else {}
        if len(entry.bases) > 1:
            base = _virtual_base(comparison, entry, links, blobs)
            if base is None:
                continue
        virtual = len(entry.bases) > 1
        entry.source_changes = [
            _changed_file(change, blobs, inline_only=virtual)
            for change in diff_trees(base, manifests[entry.source_version.pk])
        ]
        entry.target_changes = [
            _changed_file(change, blobs, inline_only=virtual)
            for change in diff_trees(base, manifests[entry.target_version.pk])
        ]
    return manifests


def _virtual_base(comparison, entry: ModuleComparison, links, blobs) -> dict[str, str] | None:
    """The bases merged into one (their merged files kept in the comparison), or None when they conflict."""
    contents = comparison.virtual_contents

    def read(digest):
        if digest not in contents:
            contents[digest] = bytes(Blob.objects.get(hash=digest).data)
        return contents[digest]

    base = base_manifest(
        [version.pk for version in entry.bases],
        entry.target_version,
        entry.source_version,
        links,
        read,
        contents,
    )
    if isinstance(base, BaseConflict):
        numbers = " and ".join(f"v{version.number}" for version in entry.bases)
        entry.base_problem = (
            f"{comparison.source.name} and {comparison.target.name} have {len(entry.bases)} equally near "
            f"merge bases for this module ({numbers}, left by merges made both ways), and those {base}: "
            "there is no one base to measure each side's changes from."
        )
        return None
    for digest, data in contents.items():
        blobs.setdefault(digest, (len(data), decode_text(data) is None))
    return base


def _label_hotfix_changes(comparison: Comparison, hotfixed, manifests) -> None:
    """Mark each side's file changes that are its open hotfix's own: a path it changed, as it left it."""
    for entry in comparison.modules:
        for side, environment, version in (
            ("source", comparison.source, entry.source_version),
            ("target", comparison.target, entry.target_version),
        ):
            replaced, last = hotfixed.get((environment.pk, entry.module.pk), (None, None))
            if last is None or version is None or entry.status == "same":
                continue
            before, after, here = (
                manifests[replaced] if replaced else {},
                manifests[last],
                manifests[version.pk],
            )
            paths = {change.path for change in diff_trees(before, after)}
            for changed in entry.source_changes if side == "source" else entry.target_changes:
                if changed.path in paths and here.get(changed.path) == after.get(changed.path):
                    changed.hotfix = True
            if version.pk == last or any(changed.hotfix for changed in entry.files):
                entry.hotfix_side = side


def _changed_file(
    change: FileChange, blobs: dict[str, tuple[int, bool]], *, inline_only=False
) -> ChangedFile:
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
        inline_only=inline_only,
    )
    if changed.binary:
        # Shown as changed as a whole, with its sizes: there is no content to read.
        changed.diff = FileDiff(binary=True, hunks=(), added=0, deleted=0)
    elif max(old_size or 0, new_size or 0) > INLINE_MAX_BYTES and not inline_only:
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
            if changed.inline_only:
                hashes |= {
                    d for d in (changed.old_hash, changed.new_hash) if d
                } - comparison.virtual_contents.keys()
                wanted.append(changed)
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
    contents.update(comparison.virtual_contents)
    for changed in wanted:
        _diff(changed, contents, limit_lines=not changed.inline_only)


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
