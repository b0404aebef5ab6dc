"""Three-way merge of a module's files. Pure Python, no Django.

Merges the source's changes (both sides measured from their merge base) into
the target, file by file. Trees are manifests (path -> content hash); content
is read, through the caller's `read(hash)`, only for files where both the
target and the source differ from the base, or the source's change is one to
choose at hunk level. Files only the target changed, or that both changed
alike, are decided from their hashes alone.

What happens to each path (`FileMerge.kind`):

    "target"           only the target changed it (or neither did in a way that
                       matters): the target's file is kept, nothing to decide.
    "same"             both sides made the same change: kept, nothing to decide.
    "text"             the source changed a text file, maybe the target too, or
                       both added it with different text (merged from an empty
                       base): regions whose source changes are taken by index,
                       and whose conflicts need resolutions.
    "add"              added only in the source: a change to take (or not).
    "delete"           deleted in the source, untouched in the target: a change
                       to take (or not).
    "binary"           the source changed a binary file the target did not: the
                       whole file, taken or not.
    "binary-conflict"  both changed it differently and one version is binary:
                       the user chooses "target" or "source".
    "delete-conflict"  deleted on one side, modified on the other: the user
                       chooses "keep" (the modified file) or "delete".

Every source change is taken unless the selection says otherwise; conflicts
are never resolved by default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from hotfixes.engine.linediff import decode_text, split_lines
from hotfixes.engine.textmerge import Region, merge_text, resolve

FileMergeKind = Literal[
    "target", "same", "text", "add", "delete", "binary", "binary-conflict", "delete-conflict"
]
CHOICES = {"binary-conflict": ("target", "source"), "delete-conflict": ("keep", "delete")}
# Kinds whose whole-file source change is taken by default and can be declined.
WHOLE_FILE_CHANGES = ("add", "delete", "binary")


@dataclass(frozen=True, slots=True)
class FileMerge:
    path: str
    kind: FileMergeKind
    base_hash: str | None
    target_hash: str | None
    source_hash: str | None
    regions: tuple[Region, ...] = ()  # for "text"
    deleted_in: Literal["target", "source"] | None = None  # for "delete-conflict"

    @property
    def conflicts(self) -> tuple[int, ...]:
        """The conflicting regions of a text merge, by index."""
        return tuple(region.index for region in self.regions if region.kind == "conflict")

    @property
    def is_conflict(self) -> bool:
        return self.kind in CHOICES or bool(self.conflicts)

    @property
    def source_changes(self) -> tuple[int, ...]:
        """The source regions of a text merge that can be taken, by index."""
        return tuple(region.index for region in self.regions if region.kind == "source")


@dataclass(frozen=True, slots=True)
class TreeMerge:
    files: tuple[FileMerge, ...]  # every path some side changed, by path
    target: Mapping[str, str]  # the target's manifest, the starting point of the result
    read: Callable[[str], bytes]

    def get(self, path: str) -> FileMerge | None:
        return next((file for file in self.files if file.path == path), None)

    @property
    def conflicts(self) -> list[FileMerge]:
        return [file for file in self.files if file.is_conflict]


@dataclass
class Selection:
    """Which source changes are taken and how conflicts are resolved; by default all taken, none resolved.

    skipped: paths whose source changes are not taken at all; the file stays as
        in the target, conflicts included (declining the source's side is a decision).
    regions: for a "text" file, the indexes of the source regions to take
        (missing path: all of them).
    resolutions: for a "text" file, conflict index -> the resolved lines.
    choices: for a "binary-conflict" file "target" or "source"; for a
        "delete-conflict" file "keep" or "delete".
    """

    skipped: set[str] = field(default_factory=set)
    regions: dict[str, set[int]] = field(default_factory=dict)
    resolutions: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)


class Unresolved(NamedTuple):
    path: str
    index: int | None  # the conflicting region of a text merge; None for a whole-file choice


class MergedTree(NamedTuple):
    files: dict[str, bytes] | None  # the merged module, path -> content; None while anything is unresolved
    unresolved: list[Unresolved]


def merge_trees(
    base: Mapping[str, str],
    target: Mapping[str, str],
    source: Mapping[str, str],
    read: Callable[[str], bytes],
) -> TreeMerge:
    """Compare the three manifests path by path and merge what both sides changed.

    `base` is the merge base's manifest (empty when the two have no common ancestor).
    """
    files = []
    # The paths some side added, deleted or changed, by set operations on (path, hash) pairs (in C);
    # a path all three have alike is nothing to merge.
    changed = (base.items() ^ target.items()) | (base.items() ^ source.items())
    for path in sorted({path for path, _ in changed}):
        b, t, s = base.get(path), target.get(path), source.get(path)
        if t == s:
            if t != b:
                files.append(FileMerge(path, "same", b, t, s))
        elif s == b:
            files.append(FileMerge(path, "target", b, t, s))
        else:
            files.append(_merge_file(path, b, t, s, read))
    return TreeMerge(files=tuple(files), target=target, read=read)


def _merge_file(path: str, b: str | None, t: str | None, s: str | None, read) -> FileMerge:
    """A path the source changed and the target either did not change or changed differently."""
    if s is None:
        if t == b:
            return FileMerge(path, "delete", b, t, s)
        return FileMerge(path, "delete-conflict", b, t, s, deleted_in="source")
    if t is None:
        if b is None:
            return FileMerge(path, "add", b, t, s)
        return FileMerge(path, "delete-conflict", b, t, s, deleted_in="target")
    texts = {digest: decode_text(read(digest)) for digest in {b, t, s} if digest is not None}
    if None in texts.values():
        return FileMerge(path, "binary" if t == b else "binary-conflict", b, t, s)
    # Each content decoded and split once: when only the source changed the file, base and target are one.
    lines = {digest: split_lines(text) for digest, text in texts.items()}
    lines[None] = []  # no base: both added the file
    return FileMerge(path, "text", b, t, s, regions=tuple(merge_text(lines[b], lines[t], lines[s])))


def apply(tree_merge: TreeMerge, selection: Selection | None = None) -> MergedTree:
    """The merged module: the target's files with the selected source changes and resolved conflicts.

    Raises ValueError for a selection that names a path or region the merge
    does not have, or a choice that does not fit the file.
    """
    merged = apply_manifest(tree_merge, selection)
    if merged.files is None:
        return MergedTree(files=None, unresolved=merged.unresolved)
    read = tree_merge.read
    files = {
        path: content if isinstance(content, bytes) else read(content)
        for path, content in merged.files.items()
    }
    return MergedTree(files=files, unresolved=[])


class MergedManifest(NamedTuple):
    # path -> content hash (a file kept whole from either side) or bytes (text merged here);
    # None while anything is unresolved.
    files: dict[str, str | bytes] | None
    unresolved: list[Unresolved]


def apply_manifest(tree_merge: TreeMerge, selection: Selection | None = None) -> MergedManifest:
    """`apply` without reading a file: what is kept whole stays a hash, so the caller reads only what it must.

    Raises ValueError as `apply` does.
    """
    selection = selection or Selection()
    _check(tree_merge, selection)
    merged: dict[str, str | bytes] = dict(tree_merge.target)  # path -> hash, or content once merged
    unresolved: list[Unresolved] = []
    for file in tree_merge.files:
        path = file.path
        if path in selection.skipped or file.kind in ("target", "same"):
            continue
        if file.kind == "text":
            result = resolve(file.regions, selection.regions.get(path), selection.resolutions.get(path))
            unresolved.extend(Unresolved(path, index) for index in result.unresolved)
            if result.text is not None:
                merged[path] = result.text.encode("utf-8")
        elif file.kind in WHOLE_FILE_CHANGES:
            _set(merged, path, file.source_hash)
        else:
            choice = selection.choices.get(path)
            if choice is None:
                unresolved.append(Unresolved(path, None))
            else:
                _set(merged, path, _chosen_hash(file, choice))
    if unresolved:
        return MergedManifest(files=None, unresolved=unresolved)
    return MergedManifest(files=dict(sorted(merged.items())), unresolved=[])


class BaseConflict(ValueError):
    """Two merge bases changed the same lines differently: no virtual base can be made of them."""

    def __init__(self, paths: list[str]):
        self.paths = paths
        super().__init__(f"they conflict in {', '.join(paths)}")


def merge_bases_trees(
    base: Mapping[str, str] | None,
    left: Mapping[str, str],
    right: Mapping[str, str],
    read: Callable[[str], bytes],
    store: Callable[[bytes], str],
) -> dict[str, str]:
    """Two merge bases merged into one virtual base, every change of both taken (git's recursive strategy).

    `base` is their own merged base (None: no common history). Merged text is
    handed to `store`, which returns the hash `read` will find it by. Raises
    BaseConflict when the two changed something differently: git would write
    conflict markers into the virtual base; here the caller refuses instead.
    """
    tree = merge_trees(base or {}, left, right, read)
    merged: dict[str, str] = dict(left)
    conflicts = [file.path for file in tree.files if file.is_conflict]
    if conflicts:
        raise BaseConflict(conflicts)
    for file in tree.files:
        if file.kind == "text":
            merged[file.path] = store(resolve(file.regions).text.encode("utf-8"))
        elif file.kind in WHOLE_FILE_CHANGES:
            _set(merged, file.path, file.source_hash)
    return merged


def _chosen_hash(file: FileMerge, choice: str) -> str | None:
    if choice == "target":
        return file.target_hash
    if choice == "source":
        return file.source_hash
    if choice == "delete":
        return None
    # "keep": the version of the side that modified the file.
    return file.target_hash if file.deleted_in == "source" else file.source_hash


def _set(manifest: dict[str, str | bytes], path: str, digest: str | None) -> None:
    if digest is None:
        manifest.pop(path, None)
    else:
        manifest[path] = digest


def _check(tree_merge: TreeMerge, selection: Selection) -> None:
    by_path = {file.path: file for file in tree_merge.files}
    for path in selection.skipped:
        if path not in by_path:
            raise ValueError(f"{path}: not changed by either side.")
    for path in selection.regions.keys() | selection.resolutions.keys():
        if path not in by_path or by_path[path].kind != "text":
            raise ValueError(f"{path}: not a text merge, so it has no regions to take or resolve.")
    for path, choice in selection.choices.items():
        file = by_path.get(path)
        if file is None or choice not in CHOICES.get(file.kind, ()):
            raise ValueError(f"{path}: {choice!r} is not a choice for this file.")
