import random

from hypothesis import given, settings
from hypothesis import strategies as st
from merge3 import Merge3
from patiencediff import PatienceSequenceMatcher

from hotfixes.engine.linediff import diff_split_lines
from hotfixes.engine.matching import LineMatcher, matching_blocks
from hotfixes.engine.textmerge import merge_text, resolve


def assert_valid(blocks, a, b):
    """Blocks of equal lines, in order, none touching the next, ending with (len(a), len(b), 0)."""
    *real, last = blocks
    assert tuple(last) == (len(a), len(b), 0)
    i = j = 0
    previous = None
    for x, y, n in real:
        assert n > 0 and x >= i and y >= j
        assert list(a[x : x + n]) == list(b[y : y + n])
        assert previous is None or not (previous[0] + previous[2] == x and previous[1] + previous[2] == y)
        previous, i, j = (x, y, n), x + n, y + n


def matched_lines(blocks):
    """The pairs of line numbers that blocks match, however the blocks are cut."""
    return {(x + k, y + k) for x, y, n in blocks for k in range(n)}


def rebuilt(a, b):
    """b built from a by LineMatcher's opcodes: a diff that turns a into b gives b back."""
    result = []
    for tag, i1, i2, j1, j2 in LineMatcher(None, a, b).get_opcodes():
        result.extend(a[i1:i2] if tag == "equal" else b[j1:j2])
    return result


# Lines of few letters repeat a lot, which is what trips diffs up. The keyword arguments make even
# these short texts walk, meet in windows and anchor, as large files do with the defaults.
lines = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "\n", "}\n"]), max_size=60)
tuning = st.fixed_dictionaries(
    {
        "small": st.just(0),
        "window": st.integers(1, 8),
        "meet": st.integers(1, 4),
        "trusted": st.integers(1, 6),
    }
)


@given(lines, lines, tuning)
def test_blocks_are_equal_lines_in_order(a, b, keywords):
    assert_valid(matching_blocks(a, b, **keywords), a, b)


@given(lines, lines)
def test_small_texts_keep_their_common_head_and_tail_and_patience_matches_between(a, b):
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    middle = PatienceSequenceMatcher(None, a[head : len(a) - tail], b[head : len(b) - tail])
    expected = [(0, 0, head)] + [(head + x, head + y, n) for x, y, n in middle.get_matching_blocks()]
    expected.append((len(a) - tail, len(b) - tail, tail))

    blocks = matching_blocks(a, b)

    assert_valid(blocks, a, b)
    assert matched_lines(blocks) == matched_lines(expected)


@given(lines, lines)
def test_opcodes_turn_one_text_into_the_other(a, b):
    assert rebuilt(a, b) == b


def numbered(count):
    return [f"line {n}\n" for n in range(count)]


def edited(rng, lines, edits, tag):
    """`lines` with `edits` replacements, insertions and deletions at random places."""
    lines = list(lines)
    for number in range(edits):
        at = rng.randrange(len(lines))
        operation = rng.choice(["replace", "insert", "delete"])
        if operation == "replace":
            lines[at] = f"{tag} {number}\n"
        elif operation == "insert":
            lines[at:at] = [f"{tag} {number}\n", "\n"]
        else:
            del lines[at]
    return lines


@given(st.integers(0, 2**32), st.integers(1, 60))
@settings(max_examples=40)
def test_large_texts_with_scattered_changes_match_as_patience_does(seed, edits):
    # Lines all different apart from blank ones: the common lines are found, none lost.
    rng = random.Random(seed)
    a = numbered(3_000)
    b = edited(rng, a, edits, "new")

    blocks = matching_blocks(a, b)

    assert_valid(blocks, a, b)
    assert blocks == PatienceSequenceMatcher(None, a, b).get_matching_blocks()
    assert rebuilt(a, b) == b


def test_texts_changed_everywhere_are_matched_whole():
    a = [f"{n % 7}\n" for n in range(3_000)]
    b = [f"{n % 5}\n" for n in range(3_000)]

    assert matching_blocks(a, b) == PatienceSequenceMatcher(None, a, b).get_matching_blocks()


def test_a_block_moved_far_is_matched_where_patience_matches_it():
    a = numbered(3_000)
    b = a[:500] + a[1_500:2_900] + a[500:1_500] + a[2_900:]  # 1,000 lines moved down

    blocks = matching_blocks(a, b)

    assert_valid(blocks, a, b)
    assert sum(n for _, _, n in blocks) == 2_000  # the 1,400 lines shown moved instead, as patience does
    assert blocks == PatienceSequenceMatcher(None, a, b).get_matching_blocks()


def test_a_large_file_diff_gives_the_new_text():
    rng = random.Random(11)
    old = [
        rng.choice(["\n", "    return None\n", "}\n"]) if n % 3 else f"def f{n}():\n" for n in range(5_000)
    ]
    new = edited(rng, old, 40, "changed")

    diff = diff_split_lines(old, new)

    result, position = [], 0
    for hunk in diff.hunks:
        first_old = hunk.old_start - 1 if hunk.old_count else hunk.old_start
        result.extend(old[position:first_old])
        position = first_old
        for line in hunk.lines:
            if line.kind != "add":
                assert old[position] == line.text + line.eol
                position += 1
            if line.kind != "delete":
                result.append(line.text + line.eol)
    result.extend(old[position:])
    assert result == new


@given(st.integers(0, 2**32))
@settings(max_examples=20)
def test_large_merges_keep_both_sides_changes(seed):
    # The target edits the first half, the source the second: no conflict, every change kept.
    rng = random.Random(seed)
    base = numbered(4_000)
    target = edited(rng, base[:2_000], 20, "target") + base[2_000:]
    source = base[:2_000] + edited(rng, base[2_000:], 20, "source")

    result = resolve(merge_text(base, target, source))

    assert result.text == "".join(target[: len(target) - 2_000] + source[2_000:])


def test_merge3_takes_it_as_its_sequence_matcher():
    base = numbered(3_000)
    target = base[:100] + ["target\n"] + base[101:]
    source = base[:2_000] + ["source\n"] + base[2_001:]

    merged = Merge3(base, target, source, sequence_matcher=LineMatcher).merge_lines()

    assert "".join(merged) == "".join(
        base[:100] + ["target\n"] + base[101:2_000] + ["source\n"] + base[2_001:]
    )


# patiencediff refuses to recurse more than 10 deep on these (its Rust matcher panics).
DEEP_OLD = [f"l{n}\n" for n in (23, 0, 23, 27, 27, 31, 31, 3, 3, 22, 2)]
DEEP_NEW = [f"l{n}\n" for n in (0, 23, 0, 13, 23, 27, 10, 27, 31, 19, 31, 3, 10, 3, 22, 2, 22)]


def test_texts_patiencediff_gives_up_on_are_still_diffed_and_merged():
    diff = diff_split_lines(DEEP_OLD, DEEP_NEW)

    assert_valid(matching_blocks(DEEP_OLD, DEEP_NEW), DEEP_OLD, DEEP_NEW)
    assert rebuilt(DEEP_OLD, DEEP_NEW) == DEEP_NEW
    assert (diff.added, diff.deleted) == (len(DEEP_NEW) - 11, len(DEEP_OLD) - 11)
    assert resolve(merge_text(DEEP_OLD, DEEP_OLD, DEEP_NEW)).text == "".join(DEEP_NEW)


def test_a_large_text_with_such_a_stretch_is_matched_around_it():
    old = numbered(2_000) + DEEP_OLD + numbered(2_000)[1_000:]
    new = numbered(2_000) + DEEP_NEW + numbered(2_000)[1_000:]

    blocks = matching_blocks(old, new)

    assert_valid(blocks, old, new)
    assert sum(n for _, _, n in blocks) == 3_000 + 11
