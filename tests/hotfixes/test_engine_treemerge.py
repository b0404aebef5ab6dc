import hashlib

import pytest

from hotfixes.engine.treemerge import Selection, Unresolved, apply, merge_trees


class Store:
    """Content by hash; the test can forbid reading some, to prove merge_trees never needs them."""

    def __init__(self):
        self.blobs: dict[str, bytes] = {}
        self.forbidden: set[str] = set()
        self.reads: list[str] = []

    def tree(self, files: dict[str, bytes]) -> dict[str, str]:
        manifest = {}
        for path, data in files.items():
            digest = hashlib.sha256(data).hexdigest()
            self.blobs[digest] = data
            manifest[path] = digest
        return manifest

    def read(self, digest: str) -> bytes:
        if digest in self.forbidden:
            raise AssertionError(f"read content it did not need: {self.blobs[digest][:40]!r}")
        self.reads.append(digest)
        return self.blobs[digest]


CART = b"".join(b"line %d of the cart\n" % n for n in range(1, 21))
LOGO = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"


def change(data: bytes, number: int, new: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    lines[number - 1] = new
    return b"".join(lines)


@pytest.fixture
def store():
    return Store()


def merge(store, base, target, source):
    return merge_trees(store.tree(base), store.tree(target), store.tree(source), store.read)


def test_it_skips_unchanged_files_without_reading_them(store):
    base = {"cart.py": CART, "logo.png": LOGO}
    source = {"cart.py": change(CART, 2, b"fixed\n"), "logo.png": LOGO}
    base_tree, source_tree = store.tree(base), store.tree(source)
    store.forbidden = {base_tree["logo.png"]}

    tree_merge = merge_trees(base_tree, dict(base_tree), source_tree, store.read)

    assert [(file.path, file.kind) for file in tree_merge.files] == [("cart.py", "text")]
    store.forbidden = set()
    assert apply(tree_merge).files == source


def test_files_only_the_target_changed_are_kept_without_reading(store):
    base = {"cart.py": CART, "logo.png": LOGO}
    target = {"cart.py": change(CART, 2, b"target\n")}  # and the logo deleted
    base_tree, target_tree = store.tree(base), store.tree(target)
    store.forbidden = set(base_tree.values()) | set(target_tree.values())

    tree_merge = merge_trees(base_tree, target_tree, dict(base_tree), store.read)

    assert [(file.path, file.kind) for file in tree_merge.files] == [
        ("cart.py", "target"),
        ("logo.png", "target"),
    ]
    store.forbidden = set()
    assert apply(tree_merge).files == target


def test_the_same_change_on_both_sides_is_kept_without_reading(store):
    base = {"cart.py": CART, "old.txt": b"old\n"}
    both = {"cart.py": change(CART, 5, b"same fix\n"), "new.txt": b"new\n"}
    base_tree, both_tree = store.tree(base), store.tree(both)
    store.forbidden = set(store.blobs)

    tree_merge = merge_trees(base_tree, both_tree, dict(both_tree), store.read)

    assert {file.path: file.kind for file in tree_merge.files} == {
        "cart.py": "same",
        "new.txt": "same",
        "old.txt": "same",
    }
    store.forbidden = set()
    assert apply(tree_merge).files == both


def test_non_overlapping_text_changes_of_both_sides_are_merged(store):
    target = {"cart.py": change(CART, 2, b"target fix\n")}
    source = {"cart.py": change(CART, 18, b"hotfix\n")}

    tree_merge = merge(store, {"cart.py": CART}, target, source)

    [file] = tree_merge.files
    assert file.kind == "text" and not file.is_conflict
    assert apply(tree_merge).files == {"cart.py": change(change(CART, 2, b"target fix\n"), 18, b"hotfix\n")}


def test_source_hunks_can_be_taken_one_by_one(store):
    source = {"cart.py": change(change(CART, 2, b"first\n"), 18, b"second\n")}
    tree_merge = merge(store, {"cart.py": CART}, {"cart.py": CART}, source)
    [file] = tree_merge.files
    first, second = file.source_changes

    only_second = apply(tree_merge, Selection(regions={"cart.py": {second}}))
    none = apply(tree_merge, Selection(regions={"cart.py": set()}))

    assert only_second.files == {"cart.py": change(CART, 18, b"second\n")}
    assert none.files == {"cart.py": CART}


def test_a_text_conflict_stays_unresolved_until_resolved(store):
    target = {"cart.py": change(CART, 10, b"target\n"), "other.py": b"untouched\n"}
    source = {"cart.py": change(CART, 10, b"source\n"), "other.py": b"untouched\n"}
    tree_merge = merge(store, {"cart.py": CART, "other.py": b"untouched\n"}, target, source)
    [file] = tree_merge.files
    [conflict] = file.conflicts

    files, unresolved = apply(tree_merge)

    assert files is None
    assert unresolved == [Unresolved("cart.py", conflict)]
    assert tree_merge.conflicts == [file]
    merged = apply(tree_merge, Selection(resolutions={"cart.py": {conflict: [b"both\n".decode()]}}))
    assert merged.unresolved == []
    assert merged.files == {"cart.py": change(CART, 10, b"both\n"), "other.py": b"untouched\n"}


def test_declining_a_file_keeps_the_target_even_with_conflicts(store):
    target = {"cart.py": change(CART, 10, b"target\n")}
    source = {"cart.py": change(CART, 10, b"source\n")}
    tree_merge = merge(store, {"cart.py": CART}, target, source)

    assert apply(tree_merge, Selection(skipped={"cart.py"})).files == target


def test_a_file_added_only_in_the_source_is_taken_unless_declined(store):
    tree_merge = merge(store, {}, {}, {"new.py": b"print()\n"})

    [file] = tree_merge.files
    assert file.kind == "add"
    assert apply(tree_merge).files == {"new.py": b"print()\n"}
    assert apply(tree_merge, Selection(skipped={"new.py"})).files == {}


def test_a_file_deleted_in_the_source_is_deleted_unless_declined(store):
    tree_merge = merge(
        store,
        {"old.py": b"x\n", "keep.py": b"k\n"},
        {"old.py": b"x\n", "keep.py": b"k\n"},
        {"keep.py": b"k\n"},
    )

    [file] = tree_merge.files
    assert file.kind == "delete"
    assert apply(tree_merge).files == {"keep.py": b"k\n"}
    assert apply(tree_merge, Selection(skipped={"old.py"})).files == {"old.py": b"x\n", "keep.py": b"k\n"}


def test_deleted_in_the_source_and_modified_in_the_target_is_a_choice(store):
    tree_merge = merge(store, {"cart.py": CART}, {"cart.py": change(CART, 1, b"t\n")}, {})

    [file] = tree_merge.files
    assert (file.kind, file.deleted_in, file.is_conflict) == ("delete-conflict", "source", True)
    assert apply(tree_merge) == (None, [Unresolved("cart.py", None)])
    assert apply(tree_merge, Selection(choices={"cart.py": "keep"})).files == {
        "cart.py": change(CART, 1, b"t\n")
    }
    assert apply(tree_merge, Selection(choices={"cart.py": "delete"})).files == {}


def test_deleted_in_the_target_and_modified_in_the_source_is_a_choice(store):
    tree_merge = merge(store, {"cart.py": CART}, {}, {"cart.py": change(CART, 1, b"s\n")})

    [file] = tree_merge.files
    assert (file.kind, file.deleted_in) == ("delete-conflict", "target")
    assert apply(tree_merge).unresolved == [Unresolved("cart.py", None)]
    assert apply(tree_merge, Selection(choices={"cart.py": "keep"})).files == {
        "cart.py": change(CART, 1, b"s\n")
    }
    assert apply(tree_merge, Selection(choices={"cart.py": "delete"})).files == {}


def test_deleted_on_both_sides_is_the_same_change(store):
    tree_merge = merge(store, {"old.py": b"x\n"}, {}, {})

    assert [file.kind for file in tree_merge.files] == ["same"]
    assert apply(tree_merge).files == {}


def test_a_binary_file_changed_in_the_source_is_taken_whole(store):
    new_logo = LOGO + b"\0more"
    tree_merge = merge(store, {"logo.png": LOGO}, {"logo.png": LOGO}, {"logo.png": new_logo})

    [file] = tree_merge.files
    assert (file.kind, file.regions, file.is_conflict) == ("binary", (), False)
    assert apply(tree_merge).files == {"logo.png": new_logo}
    assert apply(tree_merge, Selection(skipped={"logo.png"})).files == {"logo.png": LOGO}


def test_a_binary_file_changed_on_both_sides_is_a_choice(store):
    target, source = {"logo.png": LOGO + b"t"}, {"logo.png": LOGO + b"s"}
    tree_merge = merge(store, {"logo.png": LOGO}, target, source)

    [file] = tree_merge.files
    assert file.kind == "binary-conflict"
    assert apply(tree_merge).files is None
    assert apply(tree_merge, Selection(choices={"logo.png": "target"})).files == target
    assert apply(tree_merge, Selection(choices={"logo.png": "source"})).files == source


def test_a_text_file_made_binary_on_one_side_is_a_binary_choice(store):
    tree_merge = merge(store, {"data": b"a\n"}, {"data": b"b\n"}, {"data": b"\0binary"})

    assert [file.kind for file in tree_merge.files] == ["binary-conflict"]


def test_added_on_both_sides_with_different_text_is_merged_from_nothing(store):
    tree_merge = merge(store, {}, {"new.py": b"a = 1\n"}, {"new.py": b"a = 2\n"})

    [file] = tree_merge.files
    [conflict] = file.conflicts
    assert (file.kind, file.base_hash) == ("text", None)
    region = file.regions[conflict]
    merged = apply(tree_merge, Selection(resolutions={"new.py": {conflict: list(region.source)}}))
    assert merged.files == {"new.py": b"a = 2\n"}


def test_added_on_both_sides_with_different_binaries_is_a_choice(store):
    tree_merge = merge(store, {}, {"logo.png": LOGO + b"t"}, {"logo.png": LOGO + b"s"})

    assert [file.kind for file in tree_merge.files] == ["binary-conflict"]


def test_it_refuses_a_selection_that_does_not_fit(store):
    tree_merge = merge(
        store,
        {"logo.png": LOGO, "cart.py": CART},
        {"logo.png": LOGO + b"t", "cart.py": CART},
        {"logo.png": LOGO + b"s", "cart.py": change(CART, 1, b"x\n")},
    )

    with pytest.raises(ValueError, match="not a choice"):
        apply(tree_merge, Selection(choices={"logo.png": "keep"}))
    with pytest.raises(ValueError, match="not a choice"):
        apply(tree_merge, Selection(choices={"cart.py": "source"}))
    with pytest.raises(ValueError, match="not a text merge"):
        apply(tree_merge, Selection(regions={"logo.png": {0}}))
    with pytest.raises(ValueError, match="not changed"):
        apply(tree_merge, Selection(skipped={"elsewhere.py"}))
    with pytest.raises(ValueError, match="Only source changes"):
        apply(tree_merge, Selection(regions={"cart.py": {42}}))


def test_all_unresolved_conflicts_are_listed_together(store):
    base = {"a.py": CART, "b.png": LOGO, "c.py": CART}
    target = {"a.py": change(CART, 3, b"t\n"), "b.png": LOGO + b"t"}
    source = {"a.py": change(CART, 3, b"s\n"), "b.png": LOGO + b"s", "c.py": change(CART, 3, b"s\n")}
    tree_merge = merge(store, base, target, source)

    files, unresolved = apply(tree_merge)

    assert files is None
    assert [(item.path, item.index is None) for item in unresolved] == [
        ("a.py", False),
        ("b.png", True),
        ("c.py", True),
    ]
