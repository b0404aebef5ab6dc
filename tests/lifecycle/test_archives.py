import io
import os
import random
import stat
import struct
import unicodedata
import warnings
import zipfile

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lifecycle.archives import (
    ArchiveRejected,
    Limits,
    check_files,
    human_bytes,
    normalise_path,
    parse_dependencies,
    read_archive,
    read_folder,
    write_archive,
)

MB = 1024 * 1024
LIMITS = Limits()


def make_zip(*entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of (name or ZipInfo, data) pairs, written by zipfile as given."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about duplicate names, and allows them
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return buffer.getvalue()


def entry_info(name, mode=None, create_system=3):
    info = zipfile.ZipInfo(name)
    info.create_system = create_system
    if mode is not None:
        info.external_attr = mode << 16
    return info


def patch_headers(data: bytes, local_offset: int, central_offset: int, fmt: str, value: int) -> bytes:
    """Overwrite one field in the (only) entry's local header and in its central directory record."""
    patched = bytearray(data)
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into(fmt, patched, local + local_offset, value)
    struct.pack_into(fmt, patched, central + central_offset, value)
    return bytes(patched)


# Field offsets in a local file header and in a central directory record.
FLAGS = (6, 8)
METHOD = (8, 10)
UNCOMPRESSED_SIZE = (22, 24)


def rejected(source, limits=LIMITS) -> ArchiveRejected:
    with pytest.raises(ArchiveRejected) as caught:
        read_archive(source, limits)
    assert "nothing was published" in str(caught.value)
    return caught.value


def count_decompressed(monkeypatch) -> list[int]:
    """Record the size of every chunk zipfile hands out, to prove how far a read went."""
    produced = []
    original = zipfile.ZipExtFile.read

    def read(self, n=-1):
        data = original(self, n)
        produced.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    return produced


# ---------------------------------------------------------------------------
# normalise_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.txt", "a.txt"),
        ("src/app.py", "src/app.py"),
        ("deep/er/still/file", "deep/er/still/file"),
        (".gitignore", ".gitignore"),
        (".github/workflows/ci.yml", ".github/workflows/ci.yml"),
        ("..hidden", "..hidden"),
        ("a..b/c", "a..b/c"),
        (" spaced .txt", " spaced .txt"),
        (" folder/ file", " folder/ file"),
        ("cafe\u0301.txt", "caf\u00e9.txt"),  # decomposed (macOS) becomes composed
        ("日本語/ファイル.txt", "日本語/ファイル.txt"),
        ("notes-2024.txt", "notes-2024.txt"),
        ("console.py", "console.py"),
        ("auxiliary/com10.txt", "auxiliary/com10.txt"),
        (".con", ".con"),
        ("emoji-\U0001f600.txt", "emoji-\U0001f600.txt"),
        ("x" * 255, "x" * 255),
        ("/".join(["a" * 100] * 10) + "/" + "b" * 14, "/".join(["a" * 100] * 10) + "/" + "b" * 14),
    ],
)
def test_it_normalises_valid_paths(path, expected):
    assert normalise_path(path) == expected
    assert normalise_path(expected) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        " ",
        "\t",
        "/",
        "/etc/passwd",
        "//server/share",
        "\\x",
        "a\\b",
        "C:/x",
        "C:x",
        "c:\\windows",
        "..",
        "../evil",
        "a/../b",
        "a/../../b",
        "a/..",
        ".",
        "./a",
        "a/./b",
        "a//b",
        "a/",
        "ok/",
        "...",
        "a/. ./b",
        "a\x00b",
        "a\nb",
        "a\rb",
        "a\tb",
        "a\x7fb",
        "a\x85b",
        "a\u2028b",
        "evil\u202etxt.exe",
        "bad\udc80name",
        "é" * 128,  # 256 bytes of UTF-8 in one component
        "x" * 256,
        "a/" * 512 + "b",
    ],
)
def test_it_refuses_unsafe_paths(path):
    with pytest.raises(ArchiveRejected) as caught:
        normalise_path(path)
    assert caught.value.code == "unsafe_path"
    assert "is not a safe file path" in str(caught.value)


def test_it_refuses_a_path_that_is_not_text():
    with pytest.raises(ArchiveRejected) as caught:
        normalise_path(b"a.txt")
    assert caught.value.code == "unsafe_path"


def test_it_explains_why_a_path_is_refused():
    with pytest.raises(ArchiveRejected) as caught:
        normalise_path("../evil")
    assert str(caught.value) == "'../evil' is not a safe file path: it leaves the module."


@given(st.text(max_size=40))
def test_it_never_returns_an_unsafe_path(text):
    try:
        path = normalise_path(text)
    except ArchiveRejected:
        return
    names = path.split("/")
    assert all(name not in ("", ".", "..") for name in names)
    assert "\\" not in path and "\x00" not in path
    assert not path.startswith("/")
    assert unicodedata.is_normalized("NFC", path)
    assert normalise_path(path) == path
    assert not any(unicodedata.category(char) == "Cf" for char in path)
    assert not set('<>:"|?*') & set(path)
    assert not any(name.endswith((".", " ")) for name in names)


# ---------------------------------------------------------------------------
# human_bytes


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (12, "12 bytes"),
        (1023, "1023 bytes"),
        (1024, "1 KB"),
        (1536, "1.5 KB"),
        (200 * 1024, "200 KB"),
        (MB - 1, "1 MB"),
        (5 * MB, "5 MB"),
        (50 * MB, "50 MB"),
        (3 * 1024 * MB // 2, "1.5 GB"),
    ],
)
def test_it_shows_sizes_for_people(n, expected):
    assert human_bytes(n) == expected


# ---------------------------------------------------------------------------
# check_files


def test_it_checks_files_and_normalises_their_paths():
    files = check_files({"cafe\u0301.txt": b"x", "src/app.py": bytearray(b"print()")}, LIMITS)
    assert files == {"caf\u00e9.txt": b"x", "src/app.py": b"print()"}
    assert all(type(data) is bytes for data in files.values())


@pytest.mark.parametrize(
    ("files", "limits", "code"),
    [
        ({}, LIMITS, "empty"),
        ({"../evil": b""}, LIMITS, "unsafe_path"),
        ({"A.txt": b"", "a.txt": b""}, LIMITS, "duplicate_path"),
        ({"Straße.txt": b"", "STRASSE.txt": b""}, LIMITS, "duplicate_path"),
        ({"caf\u00e9": b"", "cafe\u0301": b""}, LIMITS, "duplicate_path"),
        ({"docs": b"", "docs/readme": b""}, LIMITS, "duplicate_path"),
        ({"Docs/readme": b"", "docs": b""}, LIMITS, "duplicate_path"),
        ({"a": b"", "b": b"", "c": b""}, Limits(max_files=2), "too_many_files"),
        ({"big.bin": b"x" * 11}, Limits(max_file_bytes=10), "file_too_large"),
        ({"a": b"x" * 6, "b": b"x" * 6}, Limits(max_total_bytes=10), "too_large"),
    ],
)
def test_it_refuses_bad_files(files, limits, code):
    with pytest.raises(ArchiveRejected) as caught:
        check_files(files, limits)
    assert caught.value.code == code
    assert str(caught.value).endswith("; nothing was published.")


def test_it_names_the_file_and_the_limit_in_human_units():
    with pytest.raises(ArchiveRejected) as caught:
        check_files({"media/video.mp4": b"x" * (7 * MB)}, LIMITS)
    assert str(caught.value) == (
        "The module contains 'media/video.mp4', 7 MB, over the limit of 5 MB per file; nothing was published."
    )


def test_it_names_both_paths_that_differ_only_in_case():
    with pytest.raises(ArchiveRejected) as caught:
        check_files({"README.md": b"", "readme.md": b""}, LIMITS)
    assert "'README.md' and 'readme.md'" in str(caught.value)


def test_it_refuses_more_folders_than_a_module_may_hold_files():
    """Every folder is a row of the module page: a few thousand files, each under its own chain of
    500 folders, made a page of millions of rows that took minutes for anyone opening it."""
    files = {"a/b/c/one.py": b"", "a/b/two.py": b"", "a/x/three.py": b""}
    assert len(check_files(files, Limits(max_files=4))) == 3  # a, a/b, a/b/c, a/x: four folders
    with pytest.raises(ArchiveRejected) as caught:
        check_files({**files, "d/four.py": b""}, Limits(max_files=4))
    assert caught.value.code == "too_many_folders"
    assert str(caught.value) == (
        "The module has more than 4 folders, as many as the files one module may hold; nothing was published."
    )


def test_it_checks_deep_paths():
    """5,000 files under one chain of 500 folders took 6 seconds to check (quadratic in the path's
    length); bench/paths.py measures it now. Here: such a module is accepted, whole."""
    deep = "a/" * 500
    files = {f"{deep}f{n}": b"" for n in range(5000)}
    assert set(check_files(files, LIMITS)) == set(files)


def test_it_accepts_files_at_the_limits():
    limits = Limits(max_files=2, max_file_bytes=10, max_total_bytes=20)
    assert len(check_files({"a": b"x" * 10, "b": b"y" * 10}, limits)) == 2


# ---------------------------------------------------------------------------
# read_archive: good zips


def test_it_reads_a_zip():
    data = make_zip(
        ("ok/", b""),
        ("ShoppingCart/cart.py", b"def total():\r\n    return 0\n"),
        ("ShoppingCart/logo.png", bytes(range(256))),
        (".env.example", b"KEY=\n"),
    )
    assert read_archive(data, LIMITS) == {
        "ShoppingCart/cart.py": b"def total():\r\n    return 0\n",
        "ShoppingCart/logo.png": bytes(range(256)),
        ".env.example": b"KEY=\n",
    }


def test_it_reads_stored_entries():
    data = make_zip(("a.txt", b"hello"), compression=zipfile.ZIP_STORED)
    assert read_archive(data, LIMITS) == {"a.txt": b"hello"}


def test_it_reads_from_a_file(tmp_path):
    path = tmp_path / "module.zip"
    path.write_bytes(make_zip(("a.txt", b"hello")))
    with path.open("rb") as file:
        file.read(3)  # wherever the caller left it, the whole file is read
        assert read_archive(file, LIMITS) == {"a.txt": b"hello"}


def test_it_reads_a_stream_that_cannot_seek():
    class Pipe:
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def read(self, n=-1):
            return self._data.read(n)

    assert read_archive(Pipe(make_zip(("a.txt", b"hello"))), LIMITS) == {"a.txt": b"hello"}


def test_it_reads_names_in_utf8_even_without_the_utf8_flag():
    # Info-ZIP on Linux writes UTF-8 names without setting the flag; zipfile would decode them as cp437.
    data = make_zip(("caf??.txt", b"x")).replace(b"caf??.txt", "café.txt".encode())
    assert read_archive(data, LIMITS) == {"café.txt": b"x"}


def test_it_reads_old_dos_names_as_cp437():
    data = make_zip(("caf?.txt", b"x")).replace(b"caf?.txt", b"caf\x82.txt")
    assert read_archive(data, LIMITS) == {"café.txt": b"x"}


def test_it_normalises_decomposed_names():
    data = make_zip(("cafe\u0301.txt", b"x"))
    assert read_archive(data, LIMITS) == {"caf\u00e9.txt": b"x"}


def test_it_allows_small_very_compressible_files():
    data = make_zip(("zeros.bin", bytes(MB)))
    assert read_archive(data, LIMITS) == {"zeros.bin": bytes(MB)}


def test_it_allows_regular_file_modes():
    data = make_zip((entry_info("run.sh", stat.S_IFREG | 0o755), b"#!/bin/sh\n"), (entry_info("plain"), b""))
    assert read_archive(data, LIMITS) == {"run.sh": b"#!/bin/sh\n", "plain": b""}


# ---------------------------------------------------------------------------
# read_archive: refusals


@pytest.mark.parametrize(
    "name", ["../evil", "/etc/passwd", "a\\b", "C:/x", "C:x", "a/./b", "a//b", "x/../../y", "..", " "]
)
def test_it_refuses_unsafe_names(name):
    error = rejected(make_zip((name, b"x")))
    assert error.code == "unsafe_path"
    assert repr(name) in str(error)


def test_it_refuses_unsafe_folder_entries():
    assert rejected(make_zip(("../up/", b""), ("a.txt", b"x"))).code == "unsafe_path"


def test_it_explains_a_path_that_leaves_the_module():
    assert str(rejected(make_zip(("../evil", b"x")))) == (
        "The zip contains '../evil', a path that leaves the module; nothing was published."
    )


def test_it_refuses_a_nul_in_a_name_that_zipfile_would_cut_short():
    data = make_zip(("evil?.txt", b"x")).replace(b"evil?.txt", b"evil\x00.txt")
    error = rejected(data)
    assert error.code == "unsafe_path"
    assert "\\x00" in str(error)


def test_it_refuses_names_that_differ_only_in_case():
    error = rejected(make_zip(("A.txt", b"1"), ("a.txt", b"2")))
    assert error.code == "duplicate_path"


def test_it_refuses_the_same_name_twice():
    error = rejected(make_zip(("a.txt", b"1"), ("a.txt", b"2")))
    assert error.code == "duplicate_path"
    assert "'a.txt' twice" in str(error)


def test_it_refuses_a_file_used_as_a_folder():
    assert rejected(make_zip(("lib", b"1"), ("lib/x.py", b"2"))).code == "duplicate_path"


@pytest.mark.parametrize("create_system", [3, 0])  # p7zip marks itself as DOS and still writes a Unix mode
def test_it_refuses_symlinks(create_system):
    data = make_zip((entry_info("link", stat.S_IFLNK | 0o777, create_system), b"/etc/passwd"))
    error = rejected(data)
    assert error.code == "symlink"
    assert "'link', a symbolic link" in str(error)


@pytest.mark.parametrize("kind", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK, stat.S_IFDIR])
def test_it_refuses_entries_that_are_not_regular_files(kind):
    assert rejected(make_zip((entry_info("dev", kind | 0o644), b""))).code == "unsafe_path"


def test_it_refuses_encrypted_entries():
    data = patch_headers(make_zip(("secret.txt", b"x")), *FLAGS, "<H", 0x1)
    error = rejected(data)
    assert error.code == "corrupt_zip"
    assert "password-protected" in str(error)


@pytest.mark.parametrize(("method", "name"), [(14, "LZMA"), (12, "bzip2"), (99, "password")])
def test_it_refuses_compression_it_does_not_read(method, name):
    error = rejected(patch_headers(make_zip(("a.txt", b"x")), *METHOD, "<H", method))
    assert error.code == "corrupt_zip"
    assert name in str(error)


def test_it_refuses_a_bad_crc():
    data = bytearray(make_zip(("a.txt", b"hello world"), compression=zipfile.ZIP_STORED))
    data[data.index(b"hello world")] = ord("j")
    error = rejected(bytes(data))
    assert error.code == "corrupt_zip"
    assert "'a.txt'" in str(error)


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1])
def test_it_refuses_a_truncated_zip(keep):
    data = make_zip(("a.txt", os.urandom(2000)), ("b.txt", b"b"))
    assert rejected(data[: int(len(data) * keep)]).code == "corrupt_zip"


def test_it_refuses_a_damaged_deflate_stream():
    data = bytearray(make_zip(("a.txt", os.urandom(5000))))
    start = data.index(b"a.txt") + len("a.txt")
    data[start : start + 200] = bytes(200)
    assert rejected(bytes(data)).code == "corrupt_zip"


@pytest.mark.parametrize("data", [b"", b"hello world", b"\x89PNG\r\n\x1a\n" + bytes(100), b"%PDF-1.7\n"])
def test_it_refuses_what_is_not_a_zip(data):
    error = rejected(data)
    assert error.code == "not_a_zip"
    assert str(error) == "The file is not a zip archive; nothing was published."


@pytest.mark.parametrize(
    ("entries", "message"),
    [((), "The zip contains no files"), ((("a/", b""), ("a/b/", b"")), "The zip contains only folders")],
)
def test_it_refuses_a_zip_without_files(entries, message):
    error = rejected(make_zip(*entries))
    assert error.code == "empty"
    assert str(error).startswith(message)


def test_it_refuses_a_zip_bomb(monkeypatch):
    data = make_zip(("zeros.bin", bytes(20 * MB)))
    compressed = zipfile.ZipFile(io.BytesIO(data)).getinfo("zeros.bin").compress_size
    produced = count_decompressed(monkeypatch)
    error = rejected(data)
    assert error.code == "zip_bomb"
    assert str(error) == (
        "The zip contains 'zeros.bin', which expands to more than 200 times its compressed size, "
        "the mark of a zip bomb; nothing was published."
    )
    # Stopped as soon as the output passed 200 times the input (about 4 MB), long before 20 MB.
    assert sum(produced) <= 200 * compressed + 64 * 1024


def test_it_refuses_a_zip_bomb_at_a_lower_ratio():
    data = make_zip(("repeats.txt", b"the same line\n" * 200_000))  # 2.7 MB, deflates about 300 times
    assert rejected(data, Limits(max_compression_ratio=50)).code == "zip_bomb"
    assert read_archive(data, Limits(max_compression_ratio=1000))["repeats.txt"].startswith(b"the same")


def test_it_stops_reading_a_file_at_the_limit(monkeypatch):
    produced = count_decompressed(monkeypatch)
    error = rejected(make_zip(("big.bin", random.randbytes(3 * MB))), Limits(max_file_bytes=MB))
    assert error.code == "file_too_large"
    assert str(error) == "The zip contains 'big.bin', over the limit of 1 MB per file; nothing was published."
    assert sum(produced) <= MB + 64 * 1024


def test_it_does_not_trust_a_declared_size_that_is_too_small(monkeypatch):
    # The headers claim 100 KB; the data behind them is 3 MB.
    data = patch_headers(
        make_zip(("big.bin", random.randbytes(3 * MB))), *UNCOMPRESSED_SIZE, "<I", 100 * 1024
    )
    produced = count_decompressed(monkeypatch)
    assert rejected(data, Limits(max_file_bytes=MB)).code == "corrupt_zip"
    assert sum(produced) <= 100 * 1024


def test_it_does_not_trust_a_declared_size_that_is_too_large(monkeypatch):
    # The headers claim almost 4 GB; the read goes by the real bytes and stops at the limit.
    data = patch_headers(
        make_zip(("big.bin", random.randbytes(3 * MB))), *UNCOMPRESSED_SIZE, "<I", 0xFFFFFFF0
    )
    produced = count_decompressed(monkeypatch)
    assert rejected(data, Limits(max_file_bytes=MB)).code == "file_too_large"
    assert sum(produced) <= MB + 64 * 1024


def test_it_stops_reading_at_the_total_limit(monkeypatch):
    entries = [(f"part{i}.bin", random.randbytes(400 * 1024)) for i in range(10)]
    produced = count_decompressed(monkeypatch)
    error = rejected(make_zip(*entries), Limits(max_total_bytes=MB))
    assert error.code == "too_large"
    assert sum(produced) <= MB + 64 * 1024


def test_it_refuses_too_many_files():
    error = rejected(make_zip(*[(f"f{i}", b"") for i in range(4)]), Limits(max_files=3))
    assert error.code == "too_many_files"
    assert "more than 3 files" in str(error)


@pytest.mark.parametrize("zip64", [False, True], ids=["zip", "zip64"])
def test_it_refuses_a_zip_of_too_many_entries_before_listing_them(monkeypatch, zip64):
    """Listing is costly: a 40 MB zip of 500,000 empty entries took 4 seconds and 270 MB to list."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(25):
            archive.writestr(f"f{i}", b"")
    data = buffer.getvalue()
    if zip64:
        data = _as_zip64(data)
    monkeypatch.setattr(zipfile, "ZipFile", None)  # listing the zip would fail the test
    error = rejected(data, Limits(max_files=10))
    assert error.code == "too_many_files"
    assert "more than 20 entries (files and folders), more than a module of 10 files" in str(error)


def _as_zip64(data: bytes) -> bytes:
    """The zip with a zip64 end record in front of its end record, whose entry counts say 0xFFFF."""
    end = data.rindex(b"PK\x05\x06")
    (_, disk, cd_disk, entries_here, entries, cd_size, cd_offset, _) = struct.unpack(
        "<IHHHHIIH", data[end : end + 22]
    )
    zip64_end = struct.pack(
        "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, disk, cd_disk, entries_here, entries, cd_size, cd_offset
    )
    locator = struct.pack("<IIQI", 0x07064B50, 0, end, 1)
    record = struct.pack("<IHHHHIIH", 0x06054B50, disk, cd_disk, 0xFFFF, 0xFFFF, cd_size, cd_offset, 0)
    return data[:end] + zip64_end + locator + record


def test_a_zip64_end_record_is_read(monkeypatch):
    data = _as_zip64(make_zip(("a.py", b"x"), ("b/", b""), ("b/c.py", b"y")))
    assert read_archive(data, LIMITS) == {"a.py": b"x", "b/c.py": b"y"}


def test_it_does_not_count_folders_as_files():
    data = make_zip(("a/", b""), ("a/x", b""), ("b/", b""), ("b/y", b""))
    assert len(read_archive(data, Limits(max_files=2))) == 2


def test_it_refuses_a_zip_over_the_archive_limit_before_reading_it(tmp_path):
    data = make_zip(("a.bin", random.randbytes(2000)))
    limits = Limits(max_archive_bytes=1000)
    error = rejected(data, limits)
    assert error.code == "archive_too_large"
    assert (
        str(error)
        == f"The zip is {human_bytes(len(data))}, over the limit of 1000 bytes; nothing was published."
    )
    path = tmp_path / "big.zip"
    path.write_bytes(data)
    with path.open("rb") as file:
        assert rejected(file, limits).code == "archive_too_large"


def test_it_refuses_a_stream_over_the_archive_limit_reading_no_further():
    class Endless:
        consumed = 0

        def read(self, n=-1):
            assert n >= 0, "asked to read everything"
            self.consumed += n
            return b"\0" * n

    stream = Endless()
    assert rejected(stream, Limits(max_archive_bytes=1000)).code == "archive_too_large"
    assert stream.consumed == 1001


# ---------------------------------------------------------------------------
# write_archive


def test_it_writes_the_same_bytes_for_the_same_files():
    files = {"b/two.txt": b"2", "a.txt": b"1", "c.bin": bytes(range(256))}
    reordered = dict(reversed(files.items()))
    assert write_archive(files) == write_archive(reordered)


def test_it_writes_sorted_deflated_entries_with_fixed_time_and_mode():
    data = write_archive({"z.txt": b"z", "a/b.txt": b"b", "é.txt": b"e"})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == ["a/b.txt", "z.txt", "é.txt"]
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == stat.S_IFREG | 0o644
        assert info.create_system == 3
        assert info.compress_type == zipfile.ZIP_DEFLATED


def test_it_round_trips_every_byte_value_and_random_bytes():
    files = {
        "all-bytes.bin": bytes(range(256)) * 4,
        "random.bin": random.randbytes(100_000),
        "empty.txt": b"",
        "windows.txt": b"line\r\nline\r\n",
        "utf16.txt": "héllo".encode("utf-16"),
        "dir/ünïcödé/名前.txt": "名前".encode(),
    }
    assert read_archive(write_archive(files), LIMITS) == files


def test_it_writes_an_empty_zip_for_no_files():
    with zipfile.ZipFile(io.BytesIO(write_archive({}))) as archive:
        assert archive.infolist() == []


@pytest.mark.parametrize(
    ("files", "code"), [({"../x": b""}, "unsafe_path"), ({"A": b"", "a": b""}, "duplicate_path")]
)
def test_it_refuses_to_write_bad_paths(files, code):
    with pytest.raises(ArchiveRejected) as caught:
        write_archive(files)
    assert caught.value.code == code
    assert str(caught.value).endswith("; no zip was written.")


path_names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=12
)
module_paths = st.lists(path_names, min_size=1, max_size=3).map("/".join)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(module_paths, st.binary(max_size=300), min_size=1, max_size=8))
def test_it_round_trips_any_valid_files(raw):
    try:
        files = check_files(raw, LIMITS)
    except ArchiveRejected:
        assume(False)
    assert read_archive(write_archive(files), LIMITS) == files


# ---------------------------------------------------------------------------
# read_folder


def test_it_reads_a_folder(tmp_path):
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / "src" / "app.py").write_bytes(b"print()\n")
    (tmp_path / "src" / "deep" / "data.bin").write_bytes(bytes(range(256)))
    (tmp_path / ".gitignore").write_bytes(b"*.pyc\n")
    (tmp_path / ".config").mkdir()
    (tmp_path / ".config" / "settings").write_bytes(b"")
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "cafe\u0301.txt").write_bytes(b"x")
    assert read_folder(tmp_path, LIMITS) == {
        "src/app.py": b"print()\n",
        "src/deep/data.bin": bytes(range(256)),
        ".gitignore": b"*.pyc\n",
        ".config/settings": b"",
        "caf\u00e9.txt": b"x",
    }
    assert read_folder(str(tmp_path), LIMITS) == read_folder(tmp_path, LIMITS)


@pytest.mark.parametrize("target", ["inside.txt", "/etc/passwd", "missing", "sub"])
def test_it_refuses_a_symlink_inside_a_folder(tmp_path, target):
    (tmp_path / "inside.txt").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "file").write_bytes(b"y")
    (tmp_path / "sub" / "link").symlink_to(target)
    with pytest.raises(ArchiveRejected) as caught:
        read_folder(tmp_path, LIMITS)
    assert caught.value.code == "symlink"
    assert str(caught.value) == (
        "The folder contains 'sub/link', a symbolic link (a module holds only regular files); "
        "nothing was published."
    )


def test_it_follows_a_root_that_is_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.txt").write_bytes(b"x")
    (tmp_path / "current").symlink_to(tmp_path / "real")
    assert read_folder(tmp_path / "current", LIMITS) == {"a.txt": b"x"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_it_refuses_a_named_pipe_in_a_folder(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ArchiveRejected) as caught:
        read_folder(tmp_path, LIMITS)
    assert caught.value.code == "unsafe_path"


def test_it_refuses_a_file_it_cannot_read(tmp_path, monkeypatch):
    (tmp_path / "secret").write_bytes(b"x")
    real_open = os.open

    def open_(path, *args, **kwargs):
        if os.fspath(path).endswith("secret"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)  # chmod 0 means nothing to root, who may run the tests
    with pytest.raises(ArchiveRejected) as caught:
        read_folder(tmp_path, LIMITS)
    assert caught.value.code == "unreadable"
    assert str(caught.value) == (
        "The folder contains 'secret', which cannot be read (Permission denied); nothing was published."
    )


@pytest.mark.parametrize(
    ("files", "limits", "code"),
    [
        ({}, LIMITS, "empty"),
        ({"A.txt": b"", "a.txt": b""}, LIMITS, "duplicate_path"),
        ({"a\\b": b""}, LIMITS, "unsafe_path"),
        ({"f1": b"", "f2": b"", "f3": b""}, Limits(max_files=2), "too_many_files"),
        ({"big": bytes(11)}, Limits(max_file_bytes=10), "file_too_large"),
        ({"f1": bytes(6), "f2": bytes(6)}, Limits(max_total_bytes=10), "too_large"),
    ],
)
def test_it_refuses_bad_folders(tmp_path, files, limits, code):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    if len(os.listdir(tmp_path)) < len(files):
        pytest.skip("a case-insensitive file system cannot hold names that differ only in case")
    with pytest.raises(ArchiveRejected) as caught:
        read_folder(tmp_path, limits)
    assert caught.value.code == code
    assert str(caught.value).endswith("; nothing was published.")


def test_it_refuses_what_is_not_a_folder(tmp_path):
    (tmp_path / "file.zip").write_bytes(b"")
    for path in (tmp_path / "file.zip", tmp_path / "missing"):
        with pytest.raises(ArchiveRejected) as caught:
            read_folder(path, LIMITS)
        assert caught.value.code == "not_a_folder"


def test_it_is_a_value_error_with_a_code():
    error = ArchiveRejected("empty", "The zip contains no files; nothing was published.")
    assert isinstance(error, ValueError)
    assert error.code == "empty"
    assert str(error) == "The zip contains no files; nothing was published."


# ---------------------------------------------------------------------------
# Paths that do not check out everywhere

UNPORTABLE = [
    ("notes.txt.", "ending in a dot"),
    ("notes.txt ", "ending in a space"),
    ("docs./a.md", "ending in a dot"),
    ("docs /a.md", "ending in a space"),
    ("CON", "reserves for the device CON"),
    ("aux.txt", "reserves for the device AUX"),
    ("src/Nul.tar.gz", "reserves for the device NUL"),
    ("com1", "reserves for the device COM1"),
    ("LPT9.log", "reserves for the device LPT9"),
    ("prn/readme.md", "reserves for the device PRN"),
    ("com\u00b9.txt", "reserves for the device COM\u00b9"),
    ("aux .txt", "reserves for the device AUX"),
    ("CONOUT$.txt", "reserves for the device CONOUT$"),
    ("\ufeffmain.py", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("main\u200b.py", "U+200B ZERO WIDTH SPACE"),
    ("ma\u200din.py", "U+200D ZERO WIDTH JOINER"),
    ("soft\u00adhyphen.py", "U+00AD SOFT HYPHEN"),
    ("word\u2060joiner.py", "U+2060 WORD JOINER"),
    ("a<b.txt", "'<'"),
    ("a>b.txt", "'>'"),
    ("notes:2024.txt", "':'"),
    ('say"hi".txt', "'\"'"),
    ("a|b.txt", "'|'"),
    ("why?.txt", "'?'"),
    ("src/*.py", "'*'"),
]


@pytest.mark.parametrize(("path", "reason"), UNPORTABLE)
def test_it_refuses_paths_that_do_not_check_out_everywhere(path, reason):
    with pytest.raises(ArchiveRejected) as caught:
        normalise_path(path)
    assert caught.value.code == "unsafe_path"
    assert reason in str(caught.value)


@pytest.mark.parametrize(("path", "reason"), UNPORTABLE)
def test_every_reader_refuses_them(tmp_path, path, reason):
    readers = {
        "files": lambda: check_files({"ok.py": b"x", path: b"y"}, LIMITS),
        "zip": lambda: read_archive(make_zip(("ok.py", b"x"), (path, b"y")), LIMITS),
    }
    target = tmp_path / "module" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"y")
    readers["folder"] = lambda: read_folder(tmp_path / "module", LIMITS)
    for name, read in readers.items():
        with pytest.raises(ArchiveRejected) as caught:
            read()
        assert caught.value.code == "unsafe_path", name
        assert reason in str(caught.value), name
        assert str(caught.value).endswith("; nothing was published.")


def test_it_refuses_two_names_that_windows_would_make_one():
    with pytest.raises(ArchiveRejected) as caught:
        check_files({"a.txt": b"1", "a.txt.": b"2"}, LIMITS)
    assert "'a.txt.'" in str(caught.value) and "ending in a dot" in str(caught.value)


def test_it_still_writes_an_older_version_with_such_paths():
    # Versions published before the rule stay downloadable; only unsafe paths are never written.
    files = {"aux.txt": b"1", "notes:2024.txt": b"2", "a.txt.": b"3"}
    with zipfile.ZipFile(io.BytesIO(write_archive(files))) as archive:
        assert sorted(archive.namelist()) == sorted(files)


# ---------------------------------------------------------------------------
# stageboard.json


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"uses": ["Catalog", "Payments"]}', ["Catalog", "Payments"]),
        (b"{}", []),
        (b'{"uses": [], "owner": "team-a"}', []),
        (b'\xef\xbb\xbf{"uses": ["Catalog"]}', ["Catalog"]),  # a byte-order mark, as Windows editors write
    ],
)
def test_it_reads_declared_dependencies(data, expected):
    assert parse_dependencies(data) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"uses": 5}', 'must give "uses" as a list of module names'),
        (b'{"uses": null}', "not null"),
        (b'{"uses": "Catalog"}', "not a string ('Catalog')"),
        (b'{"uses": {"a": 1}}', "not an object"),
        (b'{"uses": [1]}', "lists a number (1)"),
        (b'{"uses": [null]}', "lists null"),
        (b'{"uses": [["Catalog"]]}', "lists a list"),
        (b'{"uses": [""]}', "which is not a module name"),
        (b'{"uses": [" Catalog"]}', "which is not a module name"),
        (b'["Catalog"]', "must hold a JSON object"),
        (b"5", "must hold a JSON object"),
        (b"null", "must hold a JSON object"),
        (b"{uses: []}", "is not valid JSON"),
        (b"", "is not valid JSON"),
        (b'{"uses": NaN}', "is not valid JSON (NaN is not a JSON value"),
        (b"\xff\xfe{}", "is not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "over the limit of 64 KB"),
        (b"[" * 30_000 + b"]" * 30_000, "nests lists or objects too deeply"),
        (b'{"uses": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "nests lists or objects too deeply"),
        # Escapes that decode to what no module name holds.
        (b'{"uses": ["\\ud800"]}', "which is not a module name"),
        (b'{"uses": ["Cat\\u0000alog"]}', "which is not a module name"),
        (b'{"uses": ["Cat\\u202ealog"]}', "which is not a module name"),
        # Readers disagree on which of two "uses" counts, and JSON has no NaN or Infinity.
        (b'{"uses": 5, "uses": ["Catalog"]}', 'gives "uses" twice'),
        (b'{"uses": [], "owner": NaN}', "is not valid JSON"),
        (b'{"owner": -Infinity}', "is not valid JSON"),
    ],
)
def test_it_refuses_a_malformed_dependencies_file(data, reason):
    with pytest.raises(ArchiveRejected) as caught:
        parse_dependencies(data)
    assert caught.value.code == "invalid_dependencies"
    assert isinstance(caught.value, ValueError)
    assert reason in str(caught.value)
    assert str(caught.value).startswith("The module's stageboard.json ")


@pytest.mark.parametrize("data", [b'{"uses": 5}', b"[" * 30_000 + b"]" * 30_000])
def test_every_way_of_publishing_refuses_a_malformed_dependencies_file(tmp_path, data):
    (tmp_path / "stageboard.json").write_bytes(data)
    (tmp_path / "main.py").write_bytes(b"x")
    for read in (
        lambda: check_files({"stageboard.json": data, "main.py": b"x"}, LIMITS),
        lambda: check_files(
            read_archive(make_zip(("stageboard.json", data), ("main.py", b"x")), LIMITS), LIMITS
        ),
        lambda: check_files(read_folder(tmp_path, LIMITS), LIMITS),
    ):
        with pytest.raises(ArchiveRejected) as caught:
            read()
        assert caught.value.code == "invalid_dependencies"


def test_it_checks_only_the_file_at_the_module_root():
    files = {"docs/stageboard.json": b"not json", "stageboard.json": b'{"uses": ["Catalog"]}'}
    assert check_files(files, LIMITS).keys() == files.keys()
