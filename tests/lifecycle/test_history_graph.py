from hypothesis import given
from hypothesis import strategies as st

from lifecycle.history_graph import ancestors, contains, merge_base, merge_bases

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


def test_criss_cross_merges_have_two_bases_and_the_newest_is_taken():
    # 1 → 2 and 1 → 3; then 4 = 2 merging 3 and 5 = 3 merging 2: both 2 and 3 are nearest.
    links = {1: (None, None), 2: (1, None), 3: (1, None), 4: (2, 3), 5: (3, 2)}

    assert merge_bases(4, 5, links) == {2, 3}
    assert merge_base(4, 5, links) == 3
    assert merge_base(5, 4, links) == 3


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

    base = merge_base(a, b, links)

    common = ancestors(a, links) & ancestors(b, links)
    if base is None:
        assert common == set()
        return
    nearest = {c for c in common if not any(c in ancestors(other, links) - {other} for other in common)}
    assert merge_bases(a, b, links) == nearest
    assert base == max(nearest)
    assert merge_base(b, a, links) == base
