"""Module archives: reading a user's zip or folder of module files safely, writing a version as a zip.

Pure Python, no Django, so it can be tested and benchmarked alone. Everything
happens in memory and nothing is ever extracted to disk: a module is at most
`Limits.max_total_bytes` of content, and every reader stops as soon as the real
bytes (never the sizes an archive declares) pass a limit.

Every refusal is an `ArchiveRejected` whose `code` is one of:

    empty              no files at all (a zip holding only folders counts as empty)
    unsafe_path        a path that is not a plain relative path (see `normalise_path`),
                       or an entry that is neither a file nor a folder (device, named pipe...)
    duplicate_path     two paths equal, or equal ignoring case, or one file used as a folder
    too_many_files     more than `max_files` (for a zip also: more than twice as many entries,
                       counted before it is opened)
    too_many_folders   more than `max_files` folders (each is a row of the module's page)
    file_too_large     one file over `max_file_bytes`
    too_large          all files together over `max_total_bytes`
    archive_too_large  the zip itself over `max_archive_bytes`
    not_a_zip          the upload is not a zip at all
    corrupt_zip        damaged or cut short, bad CRC, encrypted, or compressed other than
                       stored/deflate (the two methods every zip tool writes by default)
    symlink            a symbolic link, in a zip or anywhere inside a folder
    zip_bomb           an entry that expands to over `max_compression_ratio` times its compressed size
    invalid_dependencies  a stageboard.json at the module's root that is not a JSON object whose
                       optional "uses" is a list of module names (see `parse_dependencies`)
    not_a_folder       read_folder was given something that is not a folder
    unreadable         read_folder could not read a file (permissions...)

and whose message tells a person what was wrong and that nothing was published (for
write_archive: that no zip was written).
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

_MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_files: int = 5000
    max_file_bytes: int = 5 * _MB
    max_total_bytes: int = 50 * _MB
    max_archive_bytes: int = 50 * _MB
    max_compression_ratio: int = 200


class ArchiveRejected(ValueError):
    """Bad module content.

    `code` is a stable machine-readable string, str(error) a clear message for a person.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def human_bytes(n: int) -> str:
    """A size for people, 1024-based: "12 bytes", "200 KB", "5 MB", "1.5 GB"."""
    if n < 1024:
        return "1 byte" if n == 1 else f"{n} bytes"
    for power, unit in enumerate(("KB", "MB", "GB", "TB"), start=1):
        value = n / 1024**power
        if round(value, 1) < 1024 or unit == "TB":
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"


# ---------------------------------------------------------------------------
# Paths

_MAX_PATH_CHARS = 1024
_MAX_NAME_BYTES = 255
_DRIVE_LETTER = re.compile(r"[A-Za-z]:")
# Control characters (Unicode category Cc) and the line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Invisible characters that reorder how text displays (the "Trojan Source" trick): with them
# 'evil\u202etxt.exe' shows as 'evilexe.txt', so a file could pass for another in a review.
_DIRECTION_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Characters Windows forbids in a file name (control characters are refused above).
_WINDOWS_FORBIDDEN = re.compile(r'[<>:"|?*]')
# Names Windows keeps for devices, whatever their case and extension: 'aux.txt' or 'Con.py' cannot be
# checked out there. COM and LPT take 0-9 and the superscripts ¹ ² ³, which Windows reads as digits.
_RESERVED_NAMES = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [device + digit for device in ("com", "lpt") for digit in "0123456789\u00b9\u00b2\u00b3"]
)


def _path_problem(path: str, *, portable: bool = True) -> str | None:
    """Why `path` (already NFC) cannot name a file in a module, as the end of "a path that ...", or None.

    `portable` adds the rules that make a module check out on every file system
    (Windows' reserved names and characters, invisible characters); without it,
    only what makes a path unsafe anywhere is refused.
    """
    if not path:
        return "is empty"
    if not path.strip():
        return "is only whitespace"
    if len(path) > _MAX_PATH_CHARS:
        return f"is longer than {_MAX_PATH_CHARS:,} characters"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    if _CONTROL.search(path):
        return "contains a control character, such as a tab, a line break or NUL"
    if _DIRECTION_CONTROL.search(path):
        return "contains invisible characters that change the direction of the text"
    if portable and not path.isascii() and (invisible := _invisible(path)):
        return f"contains an invisible character ({invisible}), which makes two different names look the same"
    if "\\" in path:
        return "uses a backslash (\\); folders must be separated by '/'"
    if path.startswith("/"):
        return "is absolute (it starts with '/'); module paths are relative, like src/app.py"
    if _DRIVE_LETTER.match(path):
        return "starts with a drive letter; module paths are relative, like src/app.py"
    if path.endswith("/"):
        return "ends with '/', so it names a folder, not a file"
    if portable and (forbidden := _WINDOWS_FORBIDDEN.search(path)):
        return f"contains {forbidden.group()!r}, a character Windows does not allow in file names"
    names = path.split("/")
    if ".." in names:
        return "leaves the module" if _climbs_out(names) else "goes up a folder with '..'"
    for name in names:
        if problem := _name_problem(name, portable):
            return problem
    return None


@functools.lru_cache(maxsize=4096)
def _name_problem(name: str, portable: bool) -> str | None:
    """Why one file or folder name cannot be part of a path, or None.

    Cached: a module's paths repeat the same folder names over and over, and a path may
    have hundreds of them.
    """
    if not name:
        return "has an empty folder name ('//')"
    if name == ".":
        return "contains a '.' folder"
    if not name.strip(". "):
        # Windows drops trailing dots and spaces, so '...' or '. .' would become '.' or '..' there.
        return f"has a name made only of dots and spaces ({name!r})"
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        return f"has a name longer than {_MAX_NAME_BYTES} bytes"
    if portable:
        return _unportable_name(name)
    return None


def _invisible(path: str) -> str | None:
    """The first invisible formatting character of `path` (Unicode category Cf), named, or None.

    Zero-width spaces and joiners, a byte-order mark, a soft hyphen: with one of
    them 'main.py' and 'main\u200b.py' are two files that look like one.
    """
    for char in path:
        if unicodedata.category(char) == "Cf":
            return f"U+{ord(char):04X} {unicodedata.name(char, 'FORMAT CHARACTER')}"
    return None


def _unportable_name(name: str) -> str | None:
    """Why Windows cannot check out a file or folder called `name`, or None."""
    if name.endswith((".", " ")):
        # Windows drops them: 'a.txt.' would become 'a.txt', and clash with it if both exist.
        ending = "a dot" if name.endswith(".") else "a space"
        return f"has a name ending in {ending} ({name!r}), which Windows removes"
    device = name.split(".", 1)[0].rstrip(" ").casefold()
    if device in _RESERVED_NAMES:
        return f"uses {name!r}, a name Windows reserves for the device {device.upper()} (with any extension)"
    return None


def _climbs_out(names: list[str]) -> bool:
    depth = 0
    for name in names:
        depth += -1 if name == ".." else 1
        if depth < 0:
            return True
    return False


def _show(path: object) -> str:
    """A path quoted for a message: control characters escaped, very long paths shortened."""
    text = path if isinstance(path, str) else repr(path)
    if len(text) > 80:
        text = text[:77] + "..."
    return repr(text)


def normalise_path(path: str) -> str:
    """A module-relative path as stored: '/'-separated, NFC-normalised.

    Refused (code "unsafe_path"), never repaired: empty or only whitespace;
    absolute ('/x', 'C:/x', 'C:x'); a backslash anywhere; a '..', '.' or empty
    ('a//b') component, or one made only of dots and spaces (Windows reads '. .'
    as '.'); a trailing '/'; control characters (NUL, tab, line breaks) and the
    invisible characters that reverse the direction of text; text that is not
    valid Unicode; a component over 255 bytes of UTF-8 or a path over 1024
    characters.

    And what does not check out on every file system: any invisible formatting
    character (Unicode category Cf: zero-width spaces and joiners, a byte-order
    mark...); the characters Windows forbids, < > : " | ? *; a name ending in a
    dot or a space; a name Windows reserves for a device (CON, PRN, AUX, NUL,
    COM0-9, LPT0-9, CONIN$, CONOUT$), in any case and with any extension
    ('aux.txt'). Spaces at the start of a name are kept: they are legal.
    """
    if not isinstance(path, str):
        raise ArchiveRejected("unsafe_path", f"{_show(path)} is not a file path: a path must be text.")
    normal = unicodedata.normalize("NFC", path)
    problem = _path_problem(normal)
    if problem:
        raise ArchiveRejected("unsafe_path", f"{_show(path)} is not a safe file path: it {problem}.")
    return normal


# ---------------------------------------------------------------------------
# The checks every source shares


@dataclass(frozen=True)
class _Source:
    subject: str  # how messages name the content: "The zip"
    outcome: str  # what did not happen: "nothing was published"


_FILES = _Source("The module", "nothing was published")
_ZIP = _Source("The zip", "nothing was published")
_FOLDER = _Source("The folder", "nothing was published")
_VERSION = _Source("The version", "no zip was written")


def _over(limit: int, size: int | None = None) -> str:
    """'7.2 MB, over the limit of 5 MB', or just 'over the limit of 5 MB' when the size is unknown."""
    if size is None or human_bytes(size) == human_bytes(limit):
        return f"over the limit of {human_bytes(limit)}"
    return f"{human_bytes(size)}, over the limit of {human_bytes(limit)}"


class _Folder:
    """A folder of the inventory's tree: its entries by casefolded name, a _Folder or a file's path."""

    __slots__ = ("children", "inside")

    def __init__(self, inside: str | None):
        self.children: dict[str, _Folder | str] = {}
        self.inside = inside  # the first path seen inside it, for messages


class _Inventory:
    """Paths and sizes seen so far, checked one at a time so that a reader stops at the first problem."""

    def __init__(self, limits: Limits | None, source: _Source, *, portable: bool = True):
        self.limits = limits
        self.source = source
        self.portable = portable
        self.paths: dict[str, str] = {}  # casefolded path -> path
        # The folders, as a tree of casefolded names: walking a path through it costs its length,
        # where looking up each of its folders by their whole path cost the square of it.
        self.tree = _Folder(None)
        self.folder_count = 0
        self.total = 0

    def refuse(self, code: str, message: str) -> ArchiveRejected:
        return ArchiveRejected(code, f"{self.source.subject} {message}; {self.source.outcome}.")

    def check_path(self, raw: object, shown: object = None) -> str:
        """The normalised path, or ArchiveRejected("unsafe_path") naming `shown` (by default `raw`)."""
        normal = unicodedata.normalize("NFC", raw) if isinstance(raw, str) else None
        problem = _path_problem(normal, portable=self.portable) if normal is not None else "is not text"
        if problem:
            raise self.refuse("unsafe_path", f"contains {_show(shown or raw)}, a path that {problem}")
        return normal

    def add_path(self, raw: object) -> str:
        path = self.check_path(raw)
        folded = path.casefold()
        if folded in self.paths:
            other = self.paths[folded]
            if other == path:
                raise self.refuse("duplicate_path", f"contains {_show(path)} twice")
            raise self.refuse(
                "duplicate_path",
                f"contains both {_show(other)} and {_show(path)}, which differ only in upper and lower case "
                "and would overwrite each other on Windows and macOS",
            )
        *folders, name = folded.split("/")
        node, known = self.tree, 0
        for folder in folders:
            child = node.children.get(folder)
            if child is None:
                break  # a new folder: nothing is inside it yet
            if isinstance(child, str):
                raise self._file_and_folder(child, path)
            node, known = child, known + 1
        else:
            existing = node.children.get(name)
            if isinstance(existing, _Folder):
                raise self._file_and_folder(path, existing.inside)
        if self.limits and len(self.paths) >= self.limits.max_files:
            limit = self.limits.max_files
            raise self.refuse("too_many_files", f"has more than {limit:,} files, the limit for one module")
        if self.limits and self.folder_count + len(folders) - known > self.limits.max_files:
            # Every folder is a row of the module's page, as every file is.
            limit = self.limits.max_files
            message = f"has more than {limit:,} folders, as many as the files one module may hold"
            raise self.refuse("too_many_folders", message)
        self._add_to_tree(node, folders[known:], name, path)
        self.paths[folded] = path
        return path

    def _add_to_tree(self, node: _Folder, new_folders: list[str], name: str, path: str) -> None:
        """Add `path` under `node`, the deepest of its folders already known, making the others."""
        for folder in new_folders:
            child = _Folder(path)
            node.children[folder] = child
            node = child
            self.folder_count += 1
        node.children[name] = path

    def _file_and_folder(self, file: str, inside: str) -> ArchiveRejected:
        return self.refuse(
            "duplicate_path",
            f"contains {_show(file)} as a file and also {_show(inside)}, which needs a folder of that name",
        )

    def check_file_size(self, path: str, size: int, *, exact: bool = True) -> None:
        limit = self.limits.max_file_bytes
        if size > limit:
            detail = _over(limit, size if exact else None)
            raise self.refuse("file_too_large", f"contains {_show(path)}, {detail} per file")

    def add_to_total(self, size: int, *, exact: bool = True) -> None:
        self.total += size
        limit = self.limits.max_total_bytes
        if self.total > limit:
            detail = _over(limit, self.total if exact else None)
            raise self.refuse("too_large", f"holds files that add up to {detail} for one module")

    def refuse_empty(self, what: str = "no files") -> ArchiveRejected:
        return self.refuse("empty", f"contains {what}")


def check_files(files: Mapping[str, bytes], limits: Limits) -> dict[str, bytes]:
    """Check files already in memory (browser editor, folder, API); return them with normalised paths.

    Refuses an empty set ("empty"), unsafe paths ("unsafe_path", see
    normalise_path), paths equal after normalisation or ignoring case, or a file
    whose name another path uses as a folder ("duplicate_path"), content over
    the limits ("too_many_files", "too_many_folders", "file_too_large", "too_large"), and a malformed
    stageboard.json at the root ("invalid_dependencies"). Every way of publishing
    ends here (through publishing.publish), so these rules hold for all of them.
    """
    inventory = _Inventory(limits, _FILES)
    if not files:
        raise inventory.refuse_empty()
    checked = {inventory.add_path(path): bytes(data) for path, data in files.items()}
    for path, data in checked.items():
        inventory.check_file_size(path, len(data))
    inventory.add_to_total(sum(len(data) for data in checked.values()))
    if DEPENDENCIES_FILE in checked:
        parse_dependencies(checked[DEPENDENCIES_FILE])
    return checked


def check_sizes(sizes: Mapping[str, int], limits: Limits, read: Callable[[str], bytes]) -> dict[str, str]:
    """`check_files` for content already stored, known by path -> size: normalised path -> path as given.

    The same refusals, in the same order, without holding the files: `read(path)` is
    asked only for a stageboard.json at the root, to check its dependencies.
    """
    inventory = _Inventory(limits, _FILES)
    if not sizes:
        raise inventory.refuse_empty()
    checked = {inventory.add_path(path): path for path in sizes}
    for path, given in checked.items():
        inventory.check_file_size(path, sizes[given])
    inventory.add_to_total(sum(sizes.values()))
    if DEPENDENCIES_FILE in checked:
        parse_dependencies(read(checked[DEPENDENCIES_FILE]))
    return checked


# ---------------------------------------------------------------------------
# Dependencies

# The file at a module's root in which it declares the modules it uses: {"uses": ["Catalog", "Payments"]}.
DEPENDENCIES_FILE = "stageboard.json"
_MAX_DEPENDENCIES_BYTES = 64 * 1024
_MAX_MODULE_NAME_CHARS = 100  # Module.name's max_length


def parse_dependencies(data: bytes) -> list[str]:
    """The module names a stageboard.json declares in "uses", or ArchiveRejected("invalid_dependencies").

    The file must be a JSON object (UTF-8, a byte-order mark allowed, at most 64 KB)
    whose optional "uses" is a list of module names: strings of 1 to 100
    characters without spaces around them. Other keys are allowed and ignored.
    Malformed files are refused with a message saying what is wrong, never
    raised as anything else: JSON nested too deep for the parser included.
    """
    if len(data) > _MAX_DEPENDENCIES_BYTES:
        raise _bad_dependencies(f"is {_over(_MAX_DEPENDENCIES_BYTES, len(data))}")
    try:
        declared = json.loads(
            data.decode("utf-8-sig"), object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except UnicodeDecodeError:
        raise _bad_dependencies("is not UTF-8 text") from None
    except RecursionError:
        raise _bad_dependencies("nests lists or objects too deeply to be read") from None
    except _DuplicateKey as error:
        raise _bad_dependencies(f"gives {error} twice in one object") from None
    except ValueError as error:
        raise _bad_dependencies(f"is not valid JSON ({error})") from None
    if not isinstance(declared, dict):
        raise _bad_dependencies(f"must hold a JSON object, like {_EXAMPLE}, not {_json_kind(declared)}")
    uses = declared.get("uses", [])
    if not isinstance(uses, list):
        kind = _json_kind(uses)
        raise _bad_dependencies(f'must give "uses" as a list of module names, like {_EXAMPLE}, not {kind}')
    for name in uses:
        if not isinstance(name, str):
            kind = _json_kind(name)
            raise _bad_dependencies(f'lists {kind} in "uses", where only module names (strings) belong')
        if not _could_name_a_module(name):
            raise _bad_dependencies(
                f'lists {_show(name)} in "uses", which is not a module name '
                f"(1 to {_MAX_MODULE_NAME_CHARS} characters, no spaces around it, "
                "no control or invisible direction characters)"
            )
    return list(uses)


def _could_name_a_module(name: str) -> bool:
    """Whether `name` could be a module's name.

    JSON escapes can spell what no form lets a module be called: a lone surrogate
    ("\\ud800") cannot even be written out as UTF-8, so a page naming it would fail,
    and PostgreSQL refuses a NUL. Every later reader (the deploy dialog) must get
    names it can show and look up.
    """
    if not name or name != name.strip() or len(name) > _MAX_MODULE_NAME_CHARS:
        return False
    if _CONTROL.search(name) or _DIRECTION_CONTROL.search(name):
        return False
    return not any(unicodedata.category(char) == "Cs" for char in name)


class _DuplicateKey(ValueError):
    """A key given twice in one JSON object: readers disagree on which one counts."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    unique = dict(pairs)
    if len(unique) < len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(json.dumps(key))
            seen.add(key)
    return unique


def _no_constant(name: str) -> object:
    """NaN and Infinity are not JSON (RFC 8259), though Python's reader accepts them."""
    raise ValueError(f"{name} is not a JSON value")


_EXAMPLE = '{"uses": ["Catalog", "Payments"]}'


def _bad_dependencies(problem: str) -> ArchiveRejected:
    return ArchiveRejected(
        "invalid_dependencies",
        f"The module's {DEPENDENCIES_FILE} {problem}; nothing was published. "
        "Fix the file, or remove it if the module uses no other module.",
    )


def _json_kind(value: object) -> str:
    """How a message names a JSON value: 'a number (5)', 'null', 'a list'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    return "a list" if isinstance(value, list) else "an object"


# ---------------------------------------------------------------------------
# Zips

_CHUNK_BYTES = 64 * 1024
# Below this an entry may compress as well as it likes: small very compressible files are normal.
_BOMB_FLOOR = _MB
_UTF8_NAME_FLAG = 0x800
_ENCRYPTED_FLAGS = 0x1 | 0x40  # traditional and strong encryption
_AES_METHOD = 99  # WinZip AES encryption, stored as a compression method
_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
_METHOD_NAMES = {9: "Deflate64", 12: "bzip2", 14: "LZMA", 93: "Zstandard", 95: "XZ", 98: "PPMd"}
_FILE_KINDS = {
    stat.S_IFDIR: "folder entry without a trailing '/'",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFIFO: "named pipe",
    stat.S_IFSOCK: "socket",
}
# What zipfile and zlib raise on damaged input; ArchiveRejected is a ValueError, so re-raise it first.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
    OverflowError,
)


def read_archive(source: bytes | BinaryIO, limits: Limits) -> dict[str, bytes]:
    """The files of a zip, by module path, after every check; never touches the disk.

    The zip's paths are the module's paths (no top-level folder is stripped);
    folder entries (names ending in '/') are skipped once their path is checked.
    Refused, all before anything is decompressed unless noted:
    a zip over `max_archive_bytes` ("archive_too_large"); not a zip ("not_a_zip");
    damaged, cut short, encrypted, or compressed with anything but stored or
    deflate ("corrupt_zip"; bad CRCs show while reading); unsafe or duplicate
    paths, which are refused as written and never repaired; symbolic links
    ("symlink") and devices, named pipes or sockets ("unsafe_path"), going by the
    Unix mode in the entry's external attributes; too many files; and, while
    reading in chunks, any entry past 1 MB that expands to more than
    `max_compression_ratio` times its compressed size ("zip_bomb"), or files past
    the per-file or total limits.

    Names without the zip's UTF-8 flag are read as UTF-8 when they decode as
    such (what Info-ZIP on Linux and macOS writes), else as cp437 (old DOS tools).
    """
    stream = _within_archive_limit(source, limits)
    inventory = _Inventory(limits, _ZIP)
    _within_entry_limit(stream, limits)
    try:
        archive = zipfile.ZipFile(stream)
    except _ZIP_ERRORS as error:
        raise _unreadable_zip(stream, error) from None
    with archive:
        entries = []
        folders = 0
        for info in archive.infolist():
            name = _entry_name(info)
            if name.endswith("/"):
                inventory.check_path(name[:-1], shown=name)
                folders += 1
                continue
            _check_entry(info, name)
            entries.append((inventory.add_path(name), info))
        if not entries:
            raise inventory.refuse_empty("only folders, no files" if folders else "no files")
        return {path: _read_entry(archive, info, path, inventory) for path, info in entries}


def _within_archive_limit(source: bytes | BinaryIO, limits: Limits) -> BinaryIO:
    """A seekable stream over the zip, once its size is known to be within the limit."""
    limit = limits.max_archive_bytes
    if isinstance(source, bytes | bytearray | memoryview):
        stream, size = io.BytesIO(source), memoryview(source).nbytes
    elif _seekable(source):
        source.seek(0, io.SEEK_END)
        stream, size = source, source.tell()
        source.seek(0)
    else:
        data = source.read(limit + 1)  # no size to ask for: read one byte past the limit, no more
        stream, size = io.BytesIO(data), (None if len(data) > limit else len(data))
    if size is None or size > limit:
        raise ArchiveRejected("archive_too_large", f"The zip is {_over(limit, size)}; nothing was published.")
    return stream


def _within_entry_limit(stream: BinaryIO, limits: Limits) -> None:
    """Refuse ("too_many_files") a zip whose central directory lists more entries than a module can need.

    Opening a zip lists every entry as an object before any check can run: a 40 MB zip of
    500,000 empty entries took 4 seconds and 270 MB. So the central directory is walked
    first as zipfile will walk it (by its size in bytes, not the count the end record
    claims), reading only each entry's length fields, and the walk stops past the bound:
    the module's files plus as many folders. Anything unreadable is left for zipfile to
    report as damaged.
    """
    bound = 2 * limits.max_files
    try:
        end = zipfile._EndRecData(stream)  # zipfile's own reading of the end record, zip64 included
        if not end:
            return
        size = end[zipfile._ECD_SIZE]
        start = end[zipfile._ECD_LOCATION] - size
        if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
            start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
        stream.seek(max(start, 0))
        directory = stream.read(size)
    except (OSError, ValueError, struct.error):
        return
    finally:
        stream.seek(0)
    entries, position = 0, 0
    while position + _CENTRAL_HEADER.size <= len(directory):
        signature, name, extra, comment = _CENTRAL_HEADER.unpack_from(directory, position)
        if signature != zipfile.stringCentralDir:
            return
        entries += 1
        if entries > bound:
            raise ArchiveRejected(
                "too_many_files",
                f"The zip holds more than {bound:,} entries (files and folders), more than a module of "
                f"{limits.max_files:,} files can need; nothing was published.",
            )
        position += _CENTRAL_HEADER.size + name + extra + comment


# The fields of a central directory entry the walk needs: its signature and the lengths of
# what follows its 46 fixed bytes (name, extra field, comment).
_CENTRAL_HEADER = struct.Struct("<4s24xHHH12x")


def _seekable(source: BinaryIO) -> bool:
    seekable = getattr(source, "seekable", None)
    return seekable() if callable(seekable) else hasattr(source, "seek") and hasattr(source, "tell")


def _unreadable_zip(stream: BinaryIO, error: Exception) -> ArchiveRejected:
    stream.seek(0)
    if stream.read(2) != b"PK":
        return ArchiveRejected("not_a_zip", "The file is not a zip archive; nothing was published.")
    # It starts like a zip, so it is a damaged one: most often an upload or a copy cut short.
    return ArchiveRejected(
        "corrupt_zip",
        f"The zip is damaged or incomplete, perhaps cut short in a copy ({error}); nothing was published.",
    )


def _entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as written in the zip.

    `orig_filename`, not `filename`: zipfile cuts names at a NUL and, on
    Windows, turns backslashes into '/', and both must be refused, not repaired.
    """
    name = info.orig_filename
    if info.flag_bits & _UTF8_NAME_FLAG:
        return name
    # No UTF-8 flag: zipfile decoded cp437 (lossless, every byte maps to one character). Many
    # tools write UTF-8 without setting the flag, and cp437 text is very unlikely to be valid UTF-8.
    try:
        return name.encode("cp437").decode("utf-8")
    except UnicodeError:
        return name


def _check_entry(info: zipfile.ZipInfo, name: str) -> None:
    """Refuse what is not a plain file zipfile can read: links, devices, encryption, odd compression."""
    # The Unix mode lives in the high 16 bits whatever system wrote the zip (p7zip marks itself as DOS).
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise ArchiveRejected(
            "symlink",
            f"The zip contains {_show(name)}, a symbolic link; a module holds only regular files, "
            "so nothing was published.",
        )
    if kind not in (0, stat.S_IFREG):
        what = _FILE_KINDS.get(kind, "special file")
        raise ArchiveRejected(
            "unsafe_path",
            f"The zip contains {_show(name)}, a {what} rather than a regular file; nothing was published.",
        )
    if info.flag_bits & _ENCRYPTED_FLAGS or info.compress_type == _AES_METHOD:
        raise ArchiveRejected(
            "corrupt_zip",
            f"The zip contains {_show(name)}, which is password-protected; Stageboard cannot read encrypted "
            "zips, so nothing was published. Zip the files again without a password.",
        )
    if info.compress_type not in _READABLE_METHODS:
        method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
        raise ArchiveRejected(
            "corrupt_zip",
            f"The zip contains {_show(name)}, compressed with {method}, which Stageboard cannot read; "
            "nothing was published. Zip the files again with ordinary (deflate) compression.",
        )


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, inventory: _Inventory) -> bytes:
    """An entry's bytes, read in chunks and counted as they come: the sizes in its headers may lie."""
    ratio = inventory.limits.max_compression_ratio
    chunks = []
    size = 0
    try:
        with archive.open(info) as entry:
            while chunk := entry.read(_CHUNK_BYTES):
                size += len(chunk)
                if size > _BOMB_FLOOR and size > ratio * info.compress_size:
                    raise inventory.refuse(
                        "zip_bomb",
                        f"contains {_show(path)}, which expands to more than {ratio:,} times its compressed "
                        "size, the mark of a zip bomb",
                    )
                inventory.check_file_size(path, size, exact=False)
                inventory.add_to_total(len(chunk), exact=False)
                chunks.append(chunk)
    except ArchiveRejected:
        raise
    except _ZIP_ERRORS as error:
        raise ArchiveRejected(
            "corrupt_zip",
            f"The zip is damaged: {_show(path)} cannot be read ({error}); nothing was published.",
        ) from None
    return b"".join(chunks)


def write_archive(files: Mapping[str, bytes]) -> bytes:
    """A zip of `files` that is the same bytes every time for the same files.

    Sorted paths, the timestamp 1980-01-01 00:00, permissions 0o644 marked as
    Unix whatever machine writes it, deflate at level 6. (The deflate stream is
    zlib's: the same zlib gives the same bytes.) Paths get the same checks as
    on the way in ("unsafe_path", "duplicate_path"), so a bad path can never be
    handed out in a download; the size limits and the rules on portable names
    (see normalise_path) do not apply, so older versions stay downloadable.
    """
    # Only what is unsafe anywhere: a version published before a portability rule stays downloadable.
    inventory = _Inventory(None, _VERSION, portable=False)
    checked = {inventory.add_path(path): bytes(data) for path, data in files.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(checked):
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3  # Unix, so that the mode below reads the same on every system
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, checked[path], compresslevel=6)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# Folders


def read_folder(root: str | os.PathLike, limits: Limits) -> dict[str, bytes]:
    """The files under `root`, by '/'-separated path relative to it, for the command line.

    Nothing is skipped: dotfiles and dot-folders (.git too) are part of the
    module. A symbolic link anywhere inside is refused ("symlink"), as are named
    pipes, sockets and devices ("unsafe_path"); `root` itself may be a link to a
    folder, since it was named on purpose. Reading stops at the first file past a
    limit. Then the same checks as check_files. Codes of its own: "not_a_folder"
    when `root` is not a folder, "unreadable" when a file cannot be read.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ArchiveRejected("not_a_folder", f"{_show(root)} is not a folder; nothing was published.")
    inventory = _Inventory(limits, _FOLDER)
    files = {}
    pending = [("", root)]
    while pending:
        prefix, folder = pending.pop()
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            relative = prefix + entry.name
            if _is_link(entry):
                raise inventory.refuse(
                    "symlink",
                    f"contains {_show(relative)}, a symbolic link (a module holds only regular files)",
                )
            if entry.is_dir(follow_symlinks=False):
                pending.append((relative + "/", entry.path))
            elif entry.is_file(follow_symlinks=False):
                path = inventory.add_path(relative)
                files[path] = _read_file(entry.path, path, inventory)
            else:
                raise inventory.refuse(
                    "unsafe_path", f"contains {_show(relative)}, which is not a regular file or folder"
                )
    if not files:
        raise inventory.refuse_empty()
    return files


def _is_link(entry: os.DirEntry) -> bool:
    if entry.is_symlink():
        return True
    # Windows junctions and other reparse points lead elsewhere just like links.
    if os.name == "nt":
        return bool(entry.stat(follow_symlinks=False).st_file_attributes & stat.FILE_ATTRIBUTE_REPARSE_POINT)
    return False


# Even if a link or a pipe takes the file's place after the folder was listed, the read neither
# follows the link nor blocks on the pipe.
_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
)


def _read_file(disk_path: str, path: str, inventory: _Inventory) -> bytes:
    limit = inventory.limits.max_file_bytes
    try:
        with open(os.open(disk_path, _OPEN_FLAGS), "rb") as file:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise inventory.refuse("unsafe_path", f"contains {_show(path)}, which is not a regular file")
            inventory.check_file_size(path, status.st_size)
            data = file.read(limit + 1)  # the size may change under us: never read more than the limit
    except OSError as error:
        reason = error.strerror or error
        message = f"contains {_show(path)}, which cannot be read ({reason})"
        raise inventory.refuse("unreadable", message) from None
    inventory.check_file_size(path, len(data), exact=False)
    inventory.add_to_total(len(data))
    return data
