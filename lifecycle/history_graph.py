"""The history graph of module versions, like git's commit graph. Pure Python, no Django.

Each version links to its parent (the version it was edited from) and, for a
merge, to the version whose changes it took in. `links` maps a version id to
(parent id, merged-from id).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

Links = Mapping[int, tuple[int | None, int | None]]
Tree = TypeVar("Tree")


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


def merged_base(
    a: int,
    b: int,
    links: Links,
    tree: Callable[[int], Tree],
    merge: Callable[[Tree | None, Tree, Tree], Tree],
) -> Tree | None:
    """The tree to measure the changes of `a` and of `b` from, as git's recursive merge strategy does.

    With one nearest common ancestor, its tree (`tree(version)`). After criss-cross
    merges there are several, equally near: picking one would count the others'
    changes as new on one side, so a change that side reverted could come back.
    Instead they are merged, two at a time, into one virtual base:
    `merge(base, left, right)` three-way merges two trees from their own merged base
    (found the same way, recursively; None without common history) and raises
    when they conflict. None when `a` and `b` share no history.
    """
    graph = dict(links)
    virtual_ids = itertools.count(-1, -1)  # real versions have positive ids
    return _merged_base(a, b, graph, tree, merge, virtual_ids)


def _merged_base(a, b, graph: dict, tree, merge, virtual_ids: Iterator[int]):
    bases = sorted(merge_bases(a, b, graph))
    if not bases:
        return None
    node, result = bases[0], tree(bases[0])
    for other in bases[1:]:
        inner = _merged_base(node, other, graph, tree, merge, virtual_ids)
        result = merge(inner, result, tree(other))
        # The virtual base descends from both, so the next base is measured against both.
        virtual = next(virtual_ids)
        graph[virtual] = (node, other)
        node = virtual
    return result
