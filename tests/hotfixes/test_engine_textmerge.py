import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from merge3 import Merge3

from hotfixes.engine.linediff import split_lines
from hotfixes.engine.matching import LineMatcher
from hotfixes.engine.textmerge import _sync_regions, merge_text, resolve

BASE = split_lines(
    "def total(cart):\n    s = 0\n    for line in cart:\n        s += line\n    return s\n\n\nx = 1\n"
)


def edit(lines, number, new_text):
    """The lines with line `number` (1-based) replaced; None deletes it."""
    result = list(lines)
    if new_text is None:
        del result[number - 1]
    else:
        result[number - 1] = new_text
    return result


def kinds(regions):
    return [region.kind for region in regions]


def test_it_keeps_non_overlapping_changes_of_both_sides():
    target = edit(BASE, 1, "def total(cart, tax):\n")
    source = edit(BASE, 8, "x = 2\n")

    regions = merge_text(BASE, target, source)

    assert kinds(regions) == ["target", "unchanged", "source"]
    assert resolve(regions).text == "".join(edit(target, 8, "x = 2\n"))


def test_it_reports_overlapping_changes_as_a_conflict_and_gives_no_text():
    target = edit(BASE, 2, "    s = 0.0\n")
    source = edit(BASE, 2, "    s = Decimal(0)\n")

    regions = merge_text(BASE, target, source)
    result = resolve(regions)

    [conflict] = [region for region in regions if region.kind == "conflict"]
    assert conflict.base == ("    s = 0\n",)
    assert conflict.target == ("    s = 0.0\n",)
    assert conflict.source == ("    s = Decimal(0)\n",)
    assert (conflict.base_start, conflict.target_start, conflict.source_start) == (1, 1, 1)
    assert result.text is None
    assert result.unresolved == (conflict.index,)
    assert not result.resolved


def test_a_conflict_is_resolved_by_taking_a_side_or_editing():
    target = edit(BASE, 2, "    s = 0.0\n")
    source = edit(BASE, 2, "    s = Decimal(0)\n")
    regions = merge_text(BASE, target, source)
    [conflict] = [region for region in regions if region.kind == "conflict"]

    assert resolve(regions, resolutions={conflict.index: conflict.target}).text == "".join(target)
    assert resolve(regions, resolutions={conflict.index: conflict.source}).text == "".join(source)
    edited = resolve(regions, resolutions={conflict.index: ["    s = Decimal('0.0')\n"]})
    assert edited.text == "".join(edit(BASE, 2, "    s = Decimal('0.0')\n"))
    assert edited.unresolved == ()


def test_changes_next_to_each_other_conflict_like_git():
    target = edit(BASE, 2, "    s = 0.0\n")
    source = edit(BASE, 3, "    for item in cart:\n")

    assert "conflict" in kinds(merge_text(BASE, target, source))


def test_the_same_change_on_both_sides_is_no_conflict():
    changed = edit(BASE, 4, "        s += line.price\n")

    regions = merge_text(BASE, changed, list(changed))

    assert kinds(regions) == ["unchanged", "same", "unchanged"]
    assert resolve(regions).text == "".join(changed)


def test_the_same_lines_deleted_on_both_sides_are_a_same_region():
    deleted = edit(edit(BASE, 7, None), 6, None)

    regions = merge_text(BASE, deleted, list(deleted))

    same = [region for region in regions if region.kind == "same"]
    assert [(r.base, r.target, r.source) for r in same] == [(("\n", "\n"), (), ())]
    assert resolve(regions).text == "".join(deleted)


def test_a_source_change_is_taken_only_when_chosen():
    source = edit(edit(BASE, 1, "def total(cart, tax):\n"), 8, "x = 2\n")
    regions = merge_text(BASE, BASE, source)
    first, second = [region.index for region in regions if region.kind == "source"]

    assert resolve(regions).text == "".join(source)
    assert resolve(regions, take={first, second}).text == "".join(source)
    assert resolve(regions, take={second}).text == "".join(edit(BASE, 8, "x = 2\n"))
    assert resolve(regions, take=set()).text == "".join(BASE)


def test_an_untaken_source_change_does_not_resolve_conflicts():
    target = edit(edit(BASE, 2, "    s = 0.0\n"), 8, "x = 3\n")
    source = edit(edit(BASE, 2, "    s = 1\n"), 8, "x = 2\n")

    result = resolve(merge_text(BASE, target, source), take=set())

    assert result.text is None
    assert len(result.unresolved) == 2


def test_it_refuses_to_take_or_resolve_the_wrong_regions():
    regions = merge_text(BASE, edit(BASE, 1, "a\n"), edit(BASE, 8, "b\n"))
    target_index = next(region.index for region in regions if region.kind == "target")

    with pytest.raises(ValueError, match="Only source changes"):
        resolve(regions, take={target_index})
    with pytest.raises(ValueError, match="Only source changes"):
        resolve(regions, take={99})
    with pytest.raises(ValueError, match="Only conflicts"):
        resolve(regions, resolutions={target_index: ["x\n"]})


def test_an_edited_resolution_without_newline_does_not_join_the_next_line():
    base = split_lines("a\r\nb\r\nc\r\n")
    regions = merge_text(base, split_lines("a\r\nB\r\nc\r\n"), split_lines("a\r\nbee\r\nc\r\n"))
    [conflict] = [region.index for region in regions if region.kind == "conflict"]

    assert resolve(regions, resolutions={conflict: ["merged"]}).text == "a\r\nmerged\r\nc\r\n"
    assert resolve(regions, resolutions={conflict: []}).text == "a\r\nc\r\n"


def test_it_round_trips_line_endings_and_a_missing_last_newline():
    base = split_lines("one\r\ntwo\r\nthree")
    target = split_lines("one\r\ntwo\r\nthree")
    source = split_lines("one\r\n2\r\nthree")

    assert resolve(merge_text(base, target, source)).text == "one\r\n2\r\nthree"


def test_it_merges_from_an_empty_base():
    regions = merge_text([], ["a\n"], ["b\n"])

    assert kinds(regions) == ["conflict"]
    assert resolve(merge_text([], [], ["b\n"])).text == "b\n"
    assert merge_text([], [], []) == []


# Property tests. Texts of few distinct letters repeat lines a lot, which is what trips diffs up.
texts = st.text(alphabet="ab\n", max_size=40).map(split_lines)


def sides_joined(regions):
    return tuple(
        "".join(line for region in regions for line in getattr(region, side))
        for side in ("base", "target", "source")
    )


@given(texts, texts, texts)
def test_regions_cover_all_three_texts_in_order(base, target, source):
    regions = merge_text(base, target, source)

    assert sides_joined(regions) == ("".join(base), "".join(target), "".join(source))
    assert [region.index for region in regions] == list(range(len(regions)))
    for region in regions:
        if region.kind == "unchanged":
            assert region.base == region.target == region.source
        elif region.kind == "same":
            assert region.target == region.source != region.base
        elif region.kind == "source":
            assert region.target == region.base != region.source
        elif region.kind == "target":
            assert region.source == region.base != region.target
        else:
            assert len({region.base, region.target, region.source}) == 3


@given(texts, texts)
def test_without_target_changes_the_merge_is_the_source(base, source):
    result = resolve(merge_text(base, list(base), source))

    assert result.unresolved == ()
    assert result.text == "".join(source)


@given(texts, texts)
def test_without_source_changes_the_merge_is_the_target(base, target):
    assert resolve(merge_text(base, target, list(base))).text == "".join(target)


@given(texts, texts)
def test_the_same_change_on_both_sides_never_conflicts(base, changed):
    result = resolve(merge_text(base, changed, list(changed)))

    assert result.text == "".join(changed)


@given(texts, texts, texts)
def test_taking_no_source_change_gives_the_target(base, target, source):
    regions = merge_text(base, target, source)
    keep_target = {region.index: region.target for region in regions if region.kind == "conflict"}

    assert resolve(regions, take=set(), resolutions=keep_target).text == "".join(target)


@given(texts, texts, texts)
def test_every_conflict_is_reported_until_resolved(base, target, source):
    regions = merge_text(base, target, source)
    conflicts = tuple(region.index for region in regions if region.kind == "conflict")

    result = resolve(regions)

    assert result.unresolved == conflicts
    assert (result.text is None) == bool(conflicts)


# Edits at chosen lines of a text whose lines are all different, so the expected merge is known.
@st.composite
def two_sided_edits(draw, overlapping: bool):
    size = draw(st.integers(min_value=3, max_value=40))
    base = [f"line {n}\n" for n in range(size)]
    operations = st.sampled_from(["replace", "delete", "insert"])
    positions = draw(st.lists(st.integers(0, size - 1), min_size=2, max_size=10, unique=True))
    target_edits, source_edits = {}, {}
    for position in sorted(positions):
        # A side may edit a line only two lines away from the other side's edits, so one line
        # lies untouched between them; edits next to each other are a conflict, as in git.
        side = draw(st.sampled_from(["target", "source"]))
        mine, theirs = (target_edits, source_edits) if side == "target" else (source_edits, target_edits)
        if all(abs(position - other) >= 2 for other in theirs):
            mine[position] = draw(operations)
    if overlapping:
        position = draw(st.integers(0, size - 1))
        target_edits[position] = source_edits[position] = "replace"
    return base, target_edits, source_edits


def apply_edits(base, edits):
    """edits: position -> {side: operation}, the new lines named after the side."""
    result = []
    for position, line in enumerate(base):
        for side, operation in edits.get(position, {}).items():
            if operation == "insert":
                result.append(line)
                result.append(f"{side} inserted after {position}\n")
            elif operation == "replace":
                result.append(f"{side} replaced {position}\n")
        if not edits.get(position):
            result.append(line)
    return result


def per_position(side, side_edits):
    return {position: {side: operation} for position, operation in side_edits.items()}


@given(two_sided_edits(overlapping=False))
def test_non_overlapping_changes_are_all_kept(case):
    base, target_edits, source_edits = case
    target = apply_edits(base, per_position("target", target_edits))
    source = apply_edits(base, per_position("source", source_edits))

    result = resolve(merge_text(base, target, source))

    both = per_position("target", target_edits) | per_position("source", source_edits)
    assert result.text == "".join(apply_edits(base, both))


@given(two_sided_edits(overlapping=True))
def test_overlapping_changes_are_never_dropped(case):
    base, target_edits, source_edits = case
    target = apply_edits(base, per_position("target", target_edits))
    source = apply_edits(base, per_position("source", source_edits))
    assume(target != source)

    regions = merge_text(base, target, source)
    result = resolve(regions)

    assert result.text is None
    conflicting_lines = {line for region in regions if region.kind == "conflict" for line in region.source}
    overlap = [
        p for p in target_edits if p in source_edits and target_edits[p] == source_edits[p] == "replace"
    ]
    assert any(f"source replaced {position}\n" in conflicting_lines for position in overlap)


@given(texts, texts)
def test_one_sided_merges_find_the_stretches_merge3_finds(base, changed):
    # With one side equal to the base, merge_text diffs only the other side: the same as merge3.
    merge3_regions = Merge3(base, list(base), changed, sequence_matcher=LineMatcher)

    assert _sync_regions(base, list(base), changed) == merge3_regions.find_sync_regions()
    merge3_regions = Merge3(base, changed, list(base), sequence_matcher=LineMatcher)
    assert _sync_regions(base, changed, list(base)) == merge3_regions.find_sync_regions()


def test_it_takes_any_sequences_of_lines():
    regions = merge_text(tuple(BASE), BASE, tuple(BASE))

    assert kinds(regions) == ["unchanged"]
