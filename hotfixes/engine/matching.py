"""Which lines two texts have in common: patience diff, anchored on long common stretches. No Django.

patiencediff's compiled matcher hashes and compares every line through Python
calls, ~30–35 ms per 100,000 lines, however few of them changed. Most of a
large file usually did not change, so here, for texts of more than `SMALL`
lines together:

1. Both texts are walked from the top, comparing whole slices of lines (in C):
   a stretch the two have in common, line for line, is passed over at once.
   Where they differ, patience diff of the next `WINDOW` lines of each side
   (a window that doubles until it finds something) says where they meet
   again: the first matching block of at least `MEET` lines.
2. Every common stretch of at least `TRUSTED` lines found so becomes an
   anchor, matched as found, as patience's own anchors (lines unique on both
   sides) are.
3. Patience diff matches the lines between two anchors, as it would the lines
   between its own.

Smaller texts keep only their common first and last lines as anchors: the
trimming git does before its Myers diff (`xdl_trim_ends`; git does not trim
before its own patience diff). Texts whose walk spends more than `BUDGET` of
their lines on windows (changes everywhere) are matched by patience from where
the walk stopped.

Anchors, like that trimming, change which lines are unique within what patience
sees, so in some cases the result aligns differently from patience over the
whole texts (a repeated line matched one place earlier or later; measured on
random texts of few distinct lines: 0.5 % of small ones, more of large ones,
where patience over the whole often matched fewer lines). Every block is still
lines equal on both sides, in order, so a diff built on it turns one text into
the other and a merge on it keeps every change. Where patiencediff gives up
(`_patience`), difflib's matcher matches instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import Match, SequenceMatcher

from patiencediff import PatienceSequenceMatcher
from patiencediff._patiencediff_py import MaxRecursionDepth

SMALL = 2_000  # lines of both texts together, below which only the common head and tail are anchors
WINDOW = 32  # lines of each side in the first window where the texts are sought to meet again
MEET = 4  # lines of a matching block in a window where the walk goes on
TRUSTED = 16  # lines of a common stretch kept as an anchor
BUDGET = 0.25  # of both texts' lines, at most spent in windows before patience matches the rest at once


def matching_blocks(
    a: Sequence[str],
    b: Sequence[str],
    *,
    small: int = SMALL,
    window: int = WINDOW,
    meet: int = MEET,
    trusted: int = TRUSTED,
) -> list[Match]:
    """`difflib.SequenceMatcher.get_matching_blocks` of `a` and `b` (the keywords are for tests).

    Triples (i, j, n) with a[i:i+n] == b[j:j+n], increasing in i and j, no two
    adjoining, and a last one (len(a), len(b), 0).
    """
    anchors = _ends(a, b) if len(a) + len(b) < small else _anchors(a, b, window, meet, trusted)
    blocks: list[tuple[int, int, int]] = []
    i = j = 0
    for anchor_i, anchor_j, size in anchors:
        if i < anchor_i and j < anchor_j:
            for x, y, n in _patience(a[i:anchor_i], b[j:anchor_j]):
                if n:
                    blocks.append((i + x, j + y, n))
        blocks.append((anchor_i, anchor_j, size))
        i, j = anchor_i + size, anchor_j + size
    if i < len(a) and j < len(b):
        for x, y, n in _patience(a[i:], b[j:]):
            if n:
                blocks.append((i + x, j + y, n))
    result: list[Match] = []
    for x, y, n in blocks:
        if result and result[-1].a + result[-1].size == x and result[-1].b + result[-1].size == y:
            previous = result.pop()
            result.append(Match(previous.a, previous.b, previous.size + n))
        else:
            result.append(Match(x, y, n))
    result.append(Match(len(a), len(b), 0))
    return result


def _anchors(a: Sequence[str], b: Sequence[str], window: int, meet: int, trusted: int):
    """The common stretches (i, j, size) of at least `trusted` lines met walking `a` and `b` from the top."""
    budget = BUDGET * (len(a) + len(b))
    i = j = 0
    while True:
        size = _common_run(a, i, b, j)
        if size >= trusted:
            yield i, j, size
        i, j = i + size, j + size
        if i >= len(a) or j >= len(b):
            return
        width = window
        while True:
            budget -= 2 * width
            if budget < 0:
                return  # changes everywhere: the rest is matched whole
            blocks = _patience(a[i : i + width], b[j : j + width])
            met = next(((x, y) for x, y, n in blocks if n >= meet), None)
            if met is not None:
                i, j = i + met[0], j + met[1]
                break
            if i + width >= len(a) and j + width >= len(b):
                return  # nothing long in common up to the end
            width *= 2


def _patience(a: Sequence[str], b: Sequence[str]) -> list[Match]:
    """patiencediff's matching blocks; difflib's where patiencediff fails.

    patiencediff refuses to recurse more than 10 deep, which texts of a dozen
    lines can need (`'l23 l0 l23 l27 l27 l31 l31 l3 l3 l22 l2'` against
    `'l0 l23 l0 l13 l23 l27 l10 l27 l31 l19 l31 l3 l10 l3 l22 l2 l22'`, a line
    each): its pure-Python matcher raises MaxRecursionDepth, its Rust one panics,
    and a panic is a BaseException that no `except Exception` would stop.
    """
    try:
        return PatienceSequenceMatcher(None, a, b).get_matching_blocks()
    except BaseException as error:
        panic = type(error).__name__ == "PanicException" and type(error).__module__ == "pyo3_runtime"
        if not (panic or isinstance(error, MaxRecursionDepth)):
            raise
    return SequenceMatcher(None, a, b).get_matching_blocks()


def _ends(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int]]:
    """The lines `a` and `b` have in common at their start and at their end, as anchors."""
    head = _common_run(a, 0, b, 0)
    tail = _common_tail(a, b, min(len(a), len(b)) - head)
    anchors = [(0, 0, head)] if head else []
    if tail:
        anchors.append((len(a) - tail, len(b) - tail, tail))
    return anchors


def _common_run(a: Sequence[str], i: int, b: Sequence[str], j: int) -> int:
    """How many lines a[i:] and b[j:] have in common at their start, compared slice by slice."""
    limit = min(len(a) - i, len(b) - j)
    size, step = 0, 8
    while True:  # doubling slices while they are equal
        step = min(step, limit - size)
        if step == 0:
            return size
        if a[i + size : i + size + step] != b[j + size : j + size + step]:
            break
        size += step
        step *= 2
    low, high = size, size + step  # a[i:i+low] == b[j:j+low]; they differ before high
    while high - low > 1:
        middle = (low + high) // 2
        if a[i + low : i + middle] == b[j + low : j + middle]:
            low = middle
        else:
            high = middle
    return low


def _common_tail(a: Sequence[str], b: Sequence[str], limit: int) -> int:
    """How many lines, at most `limit`, `a` and `b` have in common at their end (as `_common_run`)."""
    end_a, end_b = len(a), len(b)
    size, step = 0, 8
    while True:
        step = min(step, limit - size)
        if step == 0:
            return size
        if a[end_a - size - step : end_a - size] != b[end_b - size - step : end_b - size]:
            break
        size += step
        step *= 2
    low, high = size, size + step
    while high - low > 1:
        middle = (low + high) // 2
        if a[end_a - middle : end_a - low] == b[end_b - middle : end_b - low]:
            low = middle
        else:
            high = middle
    return low


class LineMatcher(SequenceMatcher):
    """`matching_blocks` as a `difflib.SequenceMatcher`, for merge3 and for opcodes.

    Takes merge3's `sequence_matcher(None, a, b)`; difflib's `get_opcodes` and
    `get_grouped_opcodes` work from `get_matching_blocks`.
    """

    def __init__(self, isjunk: None, a: Sequence[str], b: Sequence[str]) -> None:
        # Not SequenceMatcher.__init__: it indexes every line of b, which patience does not need.
        self.a, self.b = a, b
        self.matching_blocks = self.opcodes = None

    def get_matching_blocks(self) -> list[Match]:
        if self.matching_blocks is None:
            self.matching_blocks = matching_blocks(self.a, self.b)
        return self.matching_blocks
