"""Three-way merge of a text file's lines. Pure Python, no Django.

The source's changes (a hotfix) are merged into the target (an earlier
environment), both measured from their merge base. The lines are cut into
regions, each one stretch of the base with what the target and the source
made of it, and the user decides per region: take a source change or not,
and how each conflict is resolved. Conflicts are never resolved silently.

Built on merge3's sync regions (the stretches all three sides agree on) with
patience diff (`matching`), like `merge3.Merge3.merge_regions`, but each region keeps all
three sides, and two differences from merge3 are deliberate:

- merge3 gives a region's range in one side's numbering only (base for
  "unchanged", a for "a" and "same", b for "b"); here every region carries
  the base, target and source lines and where they start.
- merge3 says nothing when both sides deleted the same lines; here that is a
  "same" region with base lines and empty target and source, so the regions
  always cover the three texts completely and in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from merge3 import Merge3

from hotfixes.engine.matching import LineMatcher, matching_blocks

RegionKind = Literal["unchanged", "target", "source", "same", "conflict"]


@dataclass(frozen=True, slots=True)
class Region:
    """One stretch of the merge; joining a side's lines over all regions gives that side's text.

    kind:
        "unchanged": neither side changed these lines.
        "target": only the target changed them; the target's lines are kept.
        "source": only the source changed them; a change to take (or not).
        "same": both sides made the same change (including both deleting the same lines).
        "conflict": both sides changed them differently; must be resolved.
    """

    index: int  # position in the list of regions, the key of `take` and `resolutions`
    kind: RegionKind
    base: tuple[str, ...]
    target: tuple[str, ...]
    source: tuple[str, ...]
    base_start: int  # 0-based positions of the first line of each side
    target_start: int
    source_start: int


@dataclass(frozen=True, slots=True)
class MergeResult:
    text: str | None  # None while any conflict is unresolved
    unresolved: tuple[int, ...]  # indexes of the conflicts without a resolution

    @property
    def resolved(self) -> bool:
        return not self.unresolved


def merge_text(base: Sequence[str], target: Sequence[str], source: Sequence[str]) -> list[Region]:
    """The regions of a three-way merge of lines (each keeping its line ending)."""
    # As tuples, so slices of different sides compare equal whatever sequences were given, and a
    # slice is already the region's tuple (no list slice copied once more).
    base, target, source = tuple(base), tuple(target), tuple(source)
    regions: list[Region] = []

    def add(kind: RegionKind, z1: int, z2: int, t1: int, t2: int, s1: int, s2: int) -> None:
        base_lines = base[z1:z2]
        # Sides known to be equal share one tuple: an unchanged stretch can be most of a large file.
        if kind == "unchanged":
            target_lines = source_lines = base_lines
        else:
            target_lines = target[t1:t2]
            source_lines = target_lines if kind == "same" else source[s1:s2]
        regions.append(Region(len(regions), kind, base_lines, target_lines, source_lines, z1, t1, s1))

    z = t = s = 0
    for z_match, z_end, t_match, t_end, s_match, s_end in _sync_regions(base, target, source):
        if z < z_match or t < t_match or s < s_match:
            base_lines, target_lines, source_lines = base[z:z_match], target[t:t_match], source[s:s_match]
            if target_lines == source_lines:
                kind = "unchanged" if target_lines == base_lines else "same"
            elif target_lines == base_lines:
                kind = "source"
            elif source_lines == base_lines:
                kind = "target"
            else:
                kind = "conflict"
            add(kind, z, z_match, t, t_match, s, s_match)
        if z_end > z_match:
            previous = regions[-1] if regions else None
            if previous is not None and previous.kind == "unchanged":
                # Sync regions can abut (one side's match ends where the other's does not): one region.
                regions.pop()
                add(
                    "unchanged",
                    previous.base_start,
                    z_end,
                    previous.target_start,
                    t_end,
                    previous.source_start,
                    s_end,
                )
            else:
                add("unchanged", z_match, z_end, t_match, t_end, s_match, s_end)
        z, t, s = z_end, t_end, s_end
    return regions


def _sync_regions(base: Sequence[str], target: Sequence[str], source: Sequence[str]) -> list[tuple[int, ...]]:
    """The stretches (base, target, source start and end) where all three agree, as merge3 finds them.

    When one side is the base, as for a hotfix merged into an environment that did not change
    the file, one diff of the other side does: merge3 would diff the base against itself too.
    """
    if target == base:
        blocks = matching_blocks(base, source)
        return [(i, i + n, i, i + n, j, j + n) for i, j, n in blocks]
    if source == base:
        blocks = matching_blocks(base, target)
        return [(i, i + n, j, j + n, i, i + n) for i, j, n in blocks]
    return Merge3(base, target, source, sequence_matcher=LineMatcher).find_sync_regions()


def resolve(
    regions: Sequence[Region],
    take: set[int] | None = None,
    resolutions: dict[int, Sequence[str]] | None = None,
) -> MergeResult:
    """The merged text: the target, plus the source changes in `take`, with each conflict resolved.

    `take` holds indexes of "source" regions; None takes them all. An untaken
    source change keeps the target's lines (the same as the base's).
    `resolutions` maps a conflict's index to its lines: the target's, the
    source's, or the user's edit. Any conflict without one is reported in
    `unresolved`, and then there is no text.
    """
    resolutions = resolutions or {}
    kinds = {region.index: region.kind for region in regions}
    if take is not None:
        wrong = sorted(index for index in take if kinds.get(index) != "source")
        if wrong:
            raise ValueError(f"Only source changes can be taken; not regions {wrong}.")
    wrong = sorted(index for index in resolutions if kinds.get(index) != "conflict")
    if wrong:
        raise ValueError(f"Only conflicts can be resolved; not regions {wrong}.")

    unresolved = tuple(
        region.index for region in regions if region.kind == "conflict" and region.index not in resolutions
    )
    if unresolved:
        return MergeResult(text=None, unresolved=unresolved)

    lines: list[str] = []
    for region in regions:
        if region.kind == "conflict":
            chunk = resolutions[region.index]
        elif region.kind == "source" and (take is None or region.index in take):
            chunk = region.source
        else:
            chunk = region.target
        if chunk and lines and not lines[-1].endswith("\n"):
            # A last line without a newline (say, from an edited resolution) followed by more lines.
            lines[-1] += _newline(regions)
        lines.extend(chunk)
    return MergeResult(text="".join(lines), unresolved=())


def _newline(regions: Sequence[Region]) -> str:
    """The line ending the target uses, judged by its first line that has one."""
    for region in regions:
        for line in region.target:
            if line.endswith("\n"):
                return "\r\n" if line.endswith("\r\n") else "\n"
    return "\n"
