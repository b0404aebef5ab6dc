import hashlib

import pytest

from hotfixes.engine.treediff import FileChange, diff_tree_files, diff_trees


def h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """Content by hash, refusing to read the hashes a test says must not be read."""

    def __init__(self, *contents: bytes, forbidden: tuple[bytes, ...] = ()):
        self.blobs = {h(data): data for data in contents + forbidden}
        self.forbidden = {h(data) for data in forbidden}
        self.reads: list[str] = []

    def read(self, digest: str) -> bytes:
        if digest in self.forbidden:
            raise AssertionError(f"read content that both sides share: {self.blobs[digest]!r}")
        self.reads.append(digest)
        return self.blobs[digest]


def test_it_lists_added_deleted_and_changed_files_by_path():
    base = {"b.py": h(b"old"), "gone.txt": h(b"bye"), "same.py": h(b"same")}
    other = {"b.py": h(b"new"), "a.txt": h(b"hello"), "same.py": h(b"same")}

    assert diff_trees(base, other) == [
        FileChange("a.txt", "added", None, h(b"hello")),
        FileChange("b.py", "changed", h(b"old"), h(b"new")),
        FileChange("gone.txt", "deleted", h(b"bye"), None),
    ]


def test_it_finds_nothing_between_equal_trees():
    tree = {"a.py": h(b"a"), "b/c.py": h(b"c")}

    assert diff_trees(tree, dict(tree)) == []
    assert diff_trees({}, {}) == []


def test_it_sees_a_file_moved_as_deleted_and_added():
    assert [(c.path, c.status) for c in diff_trees({"old.py": h(b"x")}, {"new.py": h(b"x")})] == [
        ("new.py", "added"),
        ("old.py", "deleted"),
    ]


def test_it_reads_only_the_files_that_differ():
    shared = b"".join(b"shared line %d\n" % n for n in range(100))
    store = Store(b"one\ntwo\n", b"one\n2\n", b"new file\n", forbidden=(shared,))
    base = {"same.py": h(shared), "changed.py": h(b"one\ntwo\n"), "also-same.py": h(shared)}
    other = {
        "same.py": h(shared),
        "changed.py": h(b"one\n2\n"),
        "also-same.py": h(shared),
        "added.py": h(b"new file\n"),
    }

    diffs = diff_tree_files(base, other, store.read)

    assert [(change.path, d.added, d.deleted) for change, d in diffs] == [
        ("added.py", 1, 0),
        ("changed.py", 1, 1),
    ]
    assert sorted(store.reads) == sorted([h(b"one\ntwo\n"), h(b"one\n2\n"), h(b"new file\n")])


def test_it_diffs_a_deleted_file_against_nothing():
    store = Store(b"a\nb\n")

    [(change, diff)] = diff_tree_files({"x.py": h(b"a\nb\n")}, {}, store.read)

    assert change.status == "deleted"
    assert (diff.added, diff.deleted) == (0, 2)


def test_it_diffs_binary_files_as_binary():
    store = Store(b"\x89PNG\0one", b"\x89PNG\0two")

    [(change, diff)] = diff_tree_files(
        {"logo.png": h(b"\x89PNG\0one")}, {"logo.png": h(b"\x89PNG\0two")}, store.read
    )

    assert change.status == "changed"
    assert diff.binary and diff.hunks == ()


def test_a_read_failure_for_a_changed_file_is_not_swallowed():
    def read(digest):
        raise KeyError(digest)

    with pytest.raises(KeyError):
        diff_tree_files({"a.py": h(b"1")}, {"a.py": h(b"2")}, read)
