"""The history graph of module versions, like git's commit graph. Pure Python, no Django.

Each version links to its parent (the version it was edited from) and, for a
merge, to the version whose changes it took in. `links` maps a version id to
(parent id, merged-from id).
"""

from __future__ import annotations

from collections.abc import Mapping

Links = Mapping[int, tuple[int | None, int | None]]


def ancestors(version: int, links: Links) -> set[int]:
    """The version and every version it descends from."""
    seen: set[int] = set()
    stack = [version]
    while stack:
        current = stack.pop()
        if current is None or current in seen:
            continue
        seen.add(current)
        stack.extend(links.get(current, (None, None)))
    return seen


def contains(descendant: int, ancestor: int, links: Links) -> bool:
    """Whether `descendant` already holds every change of `ancestor` (is it, or descends from it)."""
    return ancestor in ancestors(descendant, links)


def merge_bases(a: int, b: int, links: Links) -> set[int]:
    """The best common ancestors of `a` and `b`: those that are not an ancestor of another common one.

    Usually one; several after criss-cross merges (each side merged the other). Empty
    when the two share no history.
    """
    common = ancestors(a, links) & ancestors(b, links)
    # Every proper ancestor of a common ancestor is common too, and not the nearest: walk them once.
    dominated: set[int] = set()
    stack = [parent for version in common for parent in links.get(version, (None, None))]
    while stack:
        current = stack.pop()
        if current is None or current in dominated:
            continue
        dominated.add(current)
        stack.extend(links.get(current, (None, None)))
    return common - dominated


def merge_base(a: int, b: int, links: Links) -> int | None:
    """The nearest common ancestor of `a` and `b`, like `git merge-base`; None when there is none.

    After criss-cross merges there are several equally near ones; this takes the one with the
    highest id, the newest, so the answer is the same every time. (git instead merges those
    bases recursively; here the diff from the chosen base may show changes the other base already had.)
    """
    return max(merge_bases(a, b, links), default=None)
