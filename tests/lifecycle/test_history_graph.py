import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.history_graph import ancestors, contains, merge_bases, merged_base


def merge_base(a, b, links):
    """The one nearest common ancestor, where there is exactly one (None: no common history)."""
    bases = merge_bases(a, b, links)
    assert len(bases) <= 1, f"{a} and {b} have several merge bases: {bases}"
    return next(iter(bases), None)


#   1 ── 2 ── 4 (merges 3)
#    ╲       ╱
#     ── 3 ──
DIAMOND = {1: (None, None), 2: (1, None), 3: (1, None), 4: (2, 3)}


def test_the_merge_base_of_two_branches_is_where_they_split():
    assert merge_base(2, 3, DIAMOND) == 1


def test_after_a_merge_the_merged_version_is_the_merge_base():
    assert merge_base(4, 3, DIAMOND) == 3
    assert merge_base(3, 4, DIAMOND) == 3
    assert merge_base(4, 2, DIAMOND) == 2


def test_a_version_is_its_own_merge_base():
    assert merge_base(4, 4, DIAMOND) == 4


def test_in_a_line_of_history_the_older_version_is_the_merge_base():
    line = {1: (None, None), 2: (1, None), 3: (2, None)}

    assert merge_base(3, 1, line) == 1
    assert merge_base(2, 3, line) == 2


def test_versions_without_common_history_have_no_merge_base():
    links = {1: (None, None), 2: (None, None), 3: (1, None)}

    assert merge_base(3, 2, links) is None
    assert merge_bases(3, 2, links) == set()


def test_a_merge_base_further_back_than_the_last_merge():
    # 1 → 2 → 3 → 5 (merges 4); 2 → 4 → 6.  Since 5 took in 4, the base of 5 and 6 is 4.
    links = {1: (None, None), 2: (1, None), 3: (2, None), 4: (2, None), 5: (3, 4), 6: (4, None)}

    assert merge_base(5, 6, links) == 4


def test_criss_cross_merges_have_two_bases():
    # 1 → 2 and 1 → 3; then 4 = 2 merging 3 and 5 = 3 merging 2: both 2 and 3 are nearest.
    links = {1: (None, None), 2: (1, None), 3: (1, None), 4: (2, 3), 5: (3, 2)}

    assert merge_bases(4, 5, links) == {2, 3}
    assert merge_bases(5, 4, links) == {2, 3}


# Trees for merged_base: a version's tree is the set of changes it holds; a three-way merge of
# sets keeps what both sides kept and adds what either added, and removes what either removed.


def set_merge(base, left, right):
    base = base or frozenset()
    if (left - base) & (base - right) or (right - base) & (base - left):
        raise ValueError("conflict")
    return frozenset((left & right) | (left - base) | (right - base))


def test_one_merge_base_is_its_own_tree():
    trees = {1: frozenset(), 2: frozenset("a"), 3: frozenset("b"), 4: frozenset("ab")}

    assert merged_base(2, 3, DIAMOND, trees.__getitem__, set_merge) == frozenset()
    assert merged_base(4, 3, DIAMOND, trees.__getitem__, set_merge) == frozenset("b")
    assert merged_base(7, 8, {}, trees.__getitem__, set_merge) is None


def test_criss_cross_bases_are_merged_into_a_virtual_base():
    # 2 added x, 3 added y; 4 and 5 each merged the other: the virtual base holds x and y,
    # so 4 dropping x and 5 dropping y are both changes measured from it.
    links = {1: (None, None), 2: (1, None), 3: (1, None), 4: (2, 3), 5: (3, 2), 6: (4, None), 7: (5, None)}
    trees = {1: frozenset(), 2: frozenset("x"), 3: frozenset("y"), 4: frozenset("xy"), 5: frozenset("xy")}
    trees |= {6: frozenset("y"), 7: frozenset("x")}
    calls = []

    def merge(base, left, right):
        calls.append((base, left, right))
        return set_merge(base, left, right)

    base = merged_base(6, 7, links, trees.__getitem__, merge)

    assert base == frozenset("xy")
    assert calls == [(frozenset(), frozenset("x"), frozenset("y"))]
    # Either real base alone would bring back a removed change.
    assert set_merge(trees[2], trees[6], trees[7]) != set_merge(base, trees[6], trees[7]) == frozenset()
    assert set_merge(trees[3], trees[6], trees[7]) != frozenset()


def test_merge_bases_that_are_criss_cross_merges_themselves_are_merged_recursively():
    # 2 and 3 criss-cross into 4 and 5; then 6 and 7 criss-cross 4 and 5 again.
    links = {1: (None, None), 2: (1, None), 3: (1, None), 4: (2, 3), 5: (3, 2), 6: (4, 5), 7: (5, 4)}
    trees = {1: frozenset(), 2: frozenset("a"), 3: frozenset("b"), 4: frozenset("abc"), 5: frozenset("abd")}
    seen = []

    def merge(base, left, right):
        seen.append(base)
        return set_merge(base, left, right)

    assert merge_bases(6, 7, links) == {4, 5}
    assert merged_base(6, 7, links, trees.__getitem__, merge) == frozenset("abcd")
    # 4 and 5 are measured from the virtual merge of their own bases 2 and 3, not from 2 or 3.
    assert seen == [frozenset(), frozenset("ab")]


def test_a_conflict_between_merge_bases_is_raised():
    links = {1: (None, None), 2: (1, None), 3: (1, None), 4: (2, 3), 5: (3, 2)}
    trees = {1: frozenset("z"), 2: frozenset("zx"), 3: frozenset(), 4: frozenset(), 5: frozenset()}

    def merge(base, left, right):
        raise ValueError("conflict")

    with pytest.raises(ValueError, match="conflict"):
        merged_base(4, 5, links, trees.__getitem__, merge)


def test_versions_missing_from_the_links_are_roots():
    assert merge_base(7, 7, {}) == 7
    assert merge_base(7, 8, {}) is None


def test_ancestors_and_contains_follow_both_links():
    assert ancestors(4, DIAMOND) == {1, 2, 3, 4}
    assert contains(4, 3, DIAMOND)
    assert not contains(2, 3, DIAMOND)


@st.composite
def histories(draw):
    """A random history of up to 25 versions; each links only to older ones, so it has no cycles."""
    size = draw(st.integers(min_value=1, max_value=25))
    links = {}
    for version in range(1, size + 1):
        older = st.none() | st.integers(1, version - 1) if version > 1 else st.none()
        parent = draw(older)
        merged_from = draw(older) if parent is not None else None
        links[version] = (parent, merged_from)
    a = draw(st.integers(1, size))
    b = draw(st.integers(1, size))
    return links, a, b


@given(histories())
def test_the_merge_base_is_a_nearest_common_ancestor(history):
    links, a, b = history

    bases = merge_bases(a, b, links)

    common = ancestors(a, links) & ancestors(b, links)
    nearest = {c for c in common if not any(c in ancestors(other, links) - {other} for other in common)}
    assert bases == nearest
    assert merge_bases(b, a, links) == bases
