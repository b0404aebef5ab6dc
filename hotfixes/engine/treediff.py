"""Which files differ between two snapshots of a module. Pure Python, no Django.

A snapshot is a manifest: relative path -> content hash. Files with equal
hashes are the same, so they are skipped without reading their content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from hotfixes.engine.linediff import FileDiff, diff_lines

Status = Literal["added", "deleted", "changed"]


@dataclass(frozen=True, slots=True)
class FileChange:
    path: str
    status: Status
    old_hash: str | None  # None when added
    new_hash: str | None  # None when deleted


def diff_trees(base: Mapping[str, str], other: Mapping[str, str]) -> list[FileChange]:
    """The files added, deleted or changed from `base` to `other`, by path."""
    changes = []
    for path in sorted(base.keys() | other.keys()):
        old_hash, new_hash = base.get(path), other.get(path)
        if old_hash == new_hash:
            continue
        if old_hash is None:
            status = "added"
        elif new_hash is None:
            status = "deleted"
        else:
            status = "changed"
        changes.append(FileChange(path, status, old_hash, new_hash))
    return changes


def diff_tree_files(
    base: Mapping[str, str],
    other: Mapping[str, str],
    read: Callable[[str], bytes],
    context: int = 3,
) -> list[tuple[FileChange, FileDiff]]:
    """`diff_trees` with the line diff of each differing file; `read(hash)` is called only for those."""
    return [
        (
            change,
            diff_lines(
                read(change.old_hash) if change.old_hash else None,
                read(change.new_hash) if change.new_hash else None,
                context,
            ),
        )
        for change in diff_trees(base, other)
    ]
