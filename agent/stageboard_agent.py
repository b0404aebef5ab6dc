#!/usr/bin/env python3
"""The Stageboard agent: delivers an environment's deployments to the machine it runs on.

    python3 stageboard_agent.py --server URL --token-file FILE --root DIR \
        [--hook CMD] [--hook-timeout 300] [--interval 5] [--once]

One file, Python 3.9 or later, the standard library only: copy it to a server and
run it (docs/agent.md explains install, the systemd unit, hooks and the layout on
disk; its section "The protocol" is the contract with Stageboard).

Each pass asks Stageboard for the environment's desired state (an unchanged state
costs one 304), writes what changed into DIR/<application>/releases/<name>/,
switches DIR/<application>/current to it, runs the hook, and reports what it
applied and what it finds in `current` now, which is how drift is seen.

The writer trusts nothing it is given: names, manifests and archives from the
server, and whatever is already on disk. Every file and folder is opened relative
to a folder it already holds open (dir_fd) with O_NOFOLLOW, so a symlink planted
anywhere under DIR is refused, never followed, and nothing is written outside DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import http.client
import io
import json
import os
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

AGENT_VERSION = "1"
STATE_FILE = ".stageboard-agent.json"
LOCK_FILE = ".stageboard-agent.lock"
KEEP_RELEASES = 5
HOOK_OUTPUT_BYTES = 4096
# A hook that outlives --hook-timeout is killed (its whole process group) and reported with this
# status, the one a shell gives a process killed by SIGKILL, whatever the hook was doing.
HOOK_TIMEOUT_STATUS = -9
MAX_BACKOFF_SECONDS = 60.0
HTTP_TIMEOUT_SECONDS = 30.0
MAX_JSON_BYTES = 64 * 1024 * 1024
# What Stageboard accepts in one report (lifecycle/delivery/reports.py): more is refused whole.
MAX_LOG_LINES = 200
MAX_LOG_LINE_CHARS = 500
MAX_VERSION_CHARS = 40
_CHUNK = 1024 * 1024
# Modules downloaded at the same time: a 500-module deployment is not 1,000 requests one after another.
DOWNLOAD_WORKERS = 4

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# O_NONBLOCK: a fifo swapped in for a file after it was listed must not block the open.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_DRIVE_LETTER = re.compile(r"[A-Za-z]:")
_RELEASE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
_MAX_NAME_BYTES = 255
_MAX_PATH_CHARS = 4096


class Refused(Exception):
    """Something the agent will not do (a hostile name, manifest or archive, a planted symlink).

    The message says why, for the log and the report; nothing was switched.
    """


class ServerUnavailable(Exception):
    """Stageboard could not be reached or gave an answer that cannot be used: retried with backoff."""


class ServerRefused(Exception):
    """Stageboard answered a 4xx: the request is wrong (a revoked token, a version no longer served)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------
# Hashing (the same algorithm as lifecycle/snapshots.py; docs/agent.md "The protocol")


def tree_hash(manifest: dict[str, str]) -> str:
    """SHA-256 over the files sorted by path: the UTF-8 path, NUL, the file's SHA-256 in hex, a newline."""
    digest = hashlib.sha256()
    for path in sorted(manifest):
        digest.update(path.encode("utf-8"))
        digest.update(b"\0")
        digest.update(manifest[path].encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


def combined_hash(modules: dict[str, str]) -> str:
    """One hash for an application's modules (name -> tree hash), by the tree-hash rule: names the release."""
    return tree_hash(modules)


def irregular_hash(kind: str, detail: str = "") -> str:
    """What stands for something in `current` that is not a regular file: never equal to a file's hash.

    A symlink, a fifo or a device cannot be read as module content, so it is
    counted by what it is; any module holding one differs from what was deployed.
    """
    return hashlib.sha256(
        f"stageboard-agent irregular {kind}\0{detail}".encode("utf-8", "replace")
    ).hexdigest()


# ---------------------------------------------------------------------------
# Names and paths given by the server


def check_name(name: object, what: str) -> str:
    """`name` if it can be one folder name under DIR, or Refused saying why.

    Application and module names become folders: DIR/<application>/…/<module>.
    """
    if not isinstance(name, str) or not name:
        raise Refused(f"{what} {name!r} is not a usable name")
    problem = _component_problem(name)
    if problem is None and "/" in name:
        problem = "contains '/'"
    if problem is None and name.startswith(".stageboard-agent"):
        problem = "is the name of the agent's own files"
    if problem:
        raise Refused(f"{what} {_show(name)} {problem}; the agent writes only plain folder names")
    return name


def check_path(path: object) -> str:
    """A manifest path if it stays inside its module's folder, or Refused saying why."""
    if not isinstance(path, str) or not path:
        raise Refused(f"the manifest holds {path!r}, which is not a file path")
    if len(path) > _MAX_PATH_CHARS:
        raise Refused(f"the manifest holds a path longer than {_MAX_PATH_CHARS} characters")
    if path.startswith("/"):
        raise Refused(f"the manifest holds {_show(path)}, an absolute path")
    if _DRIVE_LETTER.match(path):
        raise Refused(f"the manifest holds {_show(path)}, which starts with a drive letter")
    for component in path.split("/"):
        problem = _component_problem(component)
        if problem:
            raise Refused(f"the manifest holds {_show(path)}, a path whose part {_show(component)} {problem}")
    return path


def _component_problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "climbs folders"
    if "\\" in name:
        return "contains a backslash"
    if _CONTROL.search(name):
        return "contains a control character (NUL, a line break...)"
    if _DRIVE_LETTER.match(name):
        return "starts with a drive letter"
    try:
        if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
            return f"is longer than {_MAX_NAME_BYTES} bytes"
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    return None


def release_name(version: str, modules: dict[str, str]) -> str:
    """`<version>-<first 8 of the combined tree hash>`, the version made safe as a folder name."""
    safe = _RELEASE_NAME_UNSAFE.sub("_", unicodedata.normalize("NFKD", version or ""))[:64] or "untagged"
    if safe.startswith("."):
        safe = "v" + safe
    return f"{safe}-{combined_hash(modules)[:8]}"


def _show(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


# ---------------------------------------------------------------------------
# Manifests and archives


def check_manifest(
    manifest: object, module: str, version: int, expected_tree_hash: str
) -> dict[str, tuple[str, int]]:
    """The manifest's files as {path: (sha256, size)}, or Refused.

    It must name the module and version asked for, list safe distinct paths
    (no file also used as a folder), and its files must hash to the tree hash
    the desired state gave.
    """
    if not isinstance(manifest, dict):
        raise Refused(f"the manifest of {module} v{version} is not a JSON object")
    if manifest.get("module") != module or manifest.get("version") != version:
        raise Refused(
            f"the manifest asked for {module} v{version} describes "
            f"{manifest.get('module')!r} v{manifest.get('version')!r}"
        )
    listed = manifest.get("files")
    if not isinstance(listed, list):
        raise Refused(f"the manifest of {module} v{version} has no list of files")
    files: dict[str, tuple[str, int]] = {}
    folders = set()
    for entry in listed:
        if not isinstance(entry, dict):
            raise Refused(f"the manifest of {module} v{version} holds an entry that is not an object")
        path = check_path(entry.get("path"))
        sha, size = entry.get("sha256"), entry.get("size")
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise Refused(f"the manifest gives {_show(path)} no SHA-256 (64 lowercase hex digits)")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise Refused(f"the manifest gives {_show(path)} no size")
        if path in files:
            raise Refused(f"the manifest lists {_show(path)} twice")
        files[path] = (sha, size)
        parts = path.split("/")
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
    clash = sorted(folders & set(files))
    if clash:
        raise Refused(f"the manifest uses {_show(clash[0])} both as a file and as a folder")
    computed = tree_hash({path: sha for path, (sha, _) in files.items()})
    if computed != expected_tree_hash or manifest.get("tree_hash") != expected_tree_hash:
        raise Refused(
            f"the manifest of {module} v{version} does not hash to the tree hash of the desired state "
            f"({computed[:12]} computed, {str(manifest.get('tree_hash'))[:12]} stated, "
            f"{expected_tree_hash[:12]} desired)"
        )
    return files


def verify_archive(data: bytes, files: dict[str, tuple[str, int]], shown: str) -> dict[str, bytes]:
    """The archive's files as {path: bytes}, each checked against the manifest, or Refused whole.

    The entries must be exactly the manifest's paths (folder entries for their
    folders are tolerated), regular files (a symlink entry is refused), not
    encrypted, and each of the manifest's size and SHA-256.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise Refused(f"the archive of {shown} is not a readable zip ({error})") from None
    folders = {
        "/".join(path.split("/")[:depth]) + "/" for path in files for depth in range(1, path.count("/") + 1)
    }
    entries: dict[str, zipfile.ZipInfo] = {}
    with archive:
        for info in archive.infolist():
            name = info.filename
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise Refused(f"the archive of {shown} holds {_show(name)} as a symlink")
            if name.endswith("/") and name in folders and kind in (0, stat.S_IFDIR):
                continue
            if kind not in (0, stat.S_IFREG):
                raise Refused(f"the archive of {shown} holds {_show(name)}, which is not a regular file")
            if name in entries:
                raise Refused(f"the archive of {shown} holds {_show(name)} twice")
            if info.flag_bits & 0x1:
                raise Refused(f"the archive of {shown} holds {_show(name)} encrypted")
            entries[name] = info
        extra = sorted(set(entries) - set(files))
        missing = sorted(set(files) - set(entries))
        if extra or missing:
            details = []
            if extra:
                details.append(
                    f"{len(extra)} entr{'y' if len(extra) == 1 else 'ies'} not in the manifest, "
                    f"such as {_show(extra[0])}"
                )
            if missing:
                details.append(
                    f"{len(missing)} file{'' if len(missing) == 1 else 's'} of the manifest missing, "
                    f"such as {_show(missing[0])}"
                )
            raise Refused(f"the archive of {shown} does not match its manifest: {' and '.join(details)}")
        contents: dict[str, bytes] = {}
        for path, (sha, size) in files.items():
            try:
                with archive.open(entries[path]) as member:
                    content = member.read(size + 1)
            except (
                zipfile.BadZipFile,
                NotImplementedError,
                RuntimeError,
                OSError,
                EOFError,
                ValueError,
            ) as error:
                raise Refused(f"the archive of {shown} holds {_show(path)} unreadable ({error})") from None
            if len(content) != size:
                raise Refused(
                    f"the archive of {shown} holds {_show(path)} of another size than the manifest says"
                )
            if hashlib.sha256(content).hexdigest() != sha:
                raise Refused(
                    f"the archive of {shown} holds {_show(path)} whose SHA-256 does not match the manifest"
                )
            contents[path] = content
    return contents


# ---------------------------------------------------------------------------
# Folders under DIR, opened relative to each other, never through a symlink


class Dir:
    """A folder held open by descriptor; `shown` names it in messages (relative to DIR)."""

    def __init__(self, fd: int, shown: str):
        self.fd = fd
        self.shown = shown

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def child_shown(self, name: str) -> str:
        return f"{self.shown}/{name}" if self.shown else name

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def open_dir(self, name: str, create: bool = False) -> Dir:
        """The folder `name` inside this one; Refused if it is a symlink or not a folder."""
        shown = self.child_shown(name)
        for _ in range(2):
            try:
                return Dir(os.open(name, _DIR_FLAGS, dir_fd=self.fd), shown)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=self.fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise Refused(self._not_a_folder(name)) from None
                raise
        raise Refused(f"{shown} could not be made")

    def _not_a_folder(self, name: str) -> str:
        found = self.lstat(name)
        if found is not None and stat.S_ISLNK(found.st_mode):
            return f"{self.child_shown(name)} is a symlink; the agent never follows links under its root"
        return f"{self.child_shown(name)} is not a folder"

    def write_file(self, path: str, content_chunks, mode: int = 0o644) -> str:
        """Create `path` (relative, checked) from the chunks, making its folders; return its SHA-256."""
        *folders, name = path.split("/")
        opened: list[Dir] = []
        try:
            parent = self
            for folder in folders:
                parent = parent.open_dir(folder, create=True)
                opened.append(parent)
            fd = os.open(name, _CREATE_FLAGS, mode, dir_fd=parent.fd)
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for chunk in content_chunks:
                    digest.update(chunk)
                    out.write(chunk)
            return digest.hexdigest()
        finally:
            for folder in opened:
                folder.close()

    def read_chunks(self, path: str):
        """The bytes of regular file `path` in chunks; Refused when a part of it is a link or irregular."""
        *folders, name = path.split("/")
        opened: list[Dir] = []
        try:
            parent = self
            for folder in folders:
                parent = parent.open_dir(folder)
                opened.append(parent)
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=parent.fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.EMLINK):
                    raise Refused(f"{parent.child_shown(name)} is a symlink") from None
                raise
            with os.fdopen(fd, "rb") as source:
                if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                    raise Refused(f"{parent.child_shown(name)} is not a regular file")
                os.set_blocking(source.fileno(), True)
                while True:
                    chunk = source.read(_CHUNK)
                    if not chunk:
                        break
                    yield chunk
        finally:
            for folder in opened:
                folder.close()

    def scan(self) -> tuple[dict[str, str], dict[str, str]]:
        """Every entry below this folder: ({path: sha256} of regular files, {path: hash} of anything else).

        Walks without following symlinks: a symlink (to a file or a folder), a fifo,
        a socket or a device is recorded by irregular_hash and never read through.
        """
        files: dict[str, str] = {}
        irregular: dict[str, str] = {}
        stack: list[tuple[Dir, str]] = [(Dir(os.dup(self.fd), self.shown), "")]
        while stack:
            folder, prefix = stack.pop()
            with folder:
                with os.scandir(folder.fd) as entries:
                    listed = sorted(entries, key=lambda entry: entry.name)
                for entry in listed:
                    path = prefix + entry.name
                    if entry.is_symlink():
                        try:
                            target = os.readlink(entry.name, dir_fd=folder.fd)
                        except OSError:
                            target = "?"
                        irregular[path] = irregular_hash("symlink", target)
                    elif entry.is_dir(follow_symlinks=False):
                        try:
                            stack.append((folder.open_dir(entry.name), path + "/"))
                        except Refused:
                            irregular[path] = irregular_hash("replaced")
                    elif entry.is_file(follow_symlinks=False):
                        try:
                            digest = hashlib.sha256()
                            for chunk in folder.read_chunks(entry.name):
                                digest.update(chunk)
                            files[path] = digest.hexdigest()
                        except (Refused, OSError):
                            irregular[path] = irregular_hash("unreadable")
                    else:
                        irregular[path] = irregular_hash(_kind(entry))
        return files, irregular

    def remove_tree(self, name: str) -> None:
        """Delete `name` inside this folder and all it holds, never following a symlink."""
        found = self.lstat(name)
        if found is None:
            return
        if not stat.S_ISDIR(found.st_mode):
            os.unlink(name, dir_fd=self.fd)
            return
        with self.open_dir(name) as inside:
            with os.scandir(inside.fd) as entries:
                names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
            for child, is_dir in names:
                if is_dir:
                    inside.remove_tree(child)
                else:
                    os.unlink(child, dir_fd=inside.fd)
        os.rmdir(name, dir_fd=self.fd)


def _kind(entry: os.DirEntry) -> str:
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError:
        return "vanished"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "other"


def open_root(root: str) -> Dir:
    """DIR itself (made when missing). The operator names it, so a symlink as DIR is followed, once."""
    os.makedirs(root, exist_ok=True)
    return Dir(os.open(root, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC), "")


# ---------------------------------------------------------------------------
# The hook


def run_hook(command: str, env: dict[str, str], cwd: str, timeout: float) -> dict[str, object]:
    """Run `command` with /bin/sh in its own process group: {"exit_status": int, "output": last 4 KB}.

    stdout and stderr are one stream; only its last HOOK_OUTPUT_BYTES are kept,
    however much the hook writes. A hook still running after `timeout` seconds is
    killed with its whole process group and reported as HOOK_TIMEOUT_STATUS.
    """
    tail = bytearray()
    try:
        # The operator's own command line, given with --hook, as a shell runs it.
        process = subprocess.Popen(  # noqa: S602
            command,
            shell=True,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except (OSError, ValueError) as error:
        # ValueError: a NUL in the command or in a value of its environment (a version name, say).
        return {"exit_status": 127, "output": f"[stageboard-agent] the hook could not start: {error}"}

    def read() -> None:
        fd = process.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            tail.extend(chunk)
            if len(tail) > HOOK_OUTPUT_BYTES:
                del tail[: len(tail) - HOOK_OUTPUT_BYTES]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    timed_out = False
    try:
        status = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        status = HOOK_TIMEOUT_STATUS
    # A grandchild that left the process group may hold the pipe open: do not wait for it forever.
    reader.join(timeout=5)
    process.stdout.close()
    data = bytes(tail)
    # The cut may fall inside a UTF-8 character: drop its continuation bytes rather than show garbage.
    while data and len(data) >= HOOK_OUTPUT_BYTES and 0x80 <= data[0] < 0xC0:
        data = data[1:]
    output = data.decode("utf-8", "replace")
    if timed_out:
        note = f"\n[stageboard-agent] the hook ran longer than {timeout:g} s and was killed"
        output = (output + note)[-HOOK_OUTPUT_BYTES:]
    return {"exit_status": status, "output": output}


# ---------------------------------------------------------------------------
# Talking to Stageboard


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the agent's token to wherever it points: refused instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirected to {newurl}; not followed", headers, fp)


class Client:
    """The agent API of one Stageboard (docs/agent.md "The protocol"), with one agent token."""

    def __init__(self, server: str, token: str, timeout: float = HTTP_TIMEOUT_SECONDS):
        self.base = server.rstrip("/") + "/api/v1/agent/"
        self.token = token
        self.timeout = timeout
        self.opener = urllib.request.build_opener(_NoRedirects)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        limit: int = MAX_JSON_BYTES,
    ) -> tuple[int, dict[str, str], bytes]:
        # The scheme is http or https: main() refuses any other --server.
        request = urllib.request.Request(self.base + path, data=body, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("User-Agent", f"stageboard-agent/{AGENT_VERSION}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                data = response.read(limit + 1)
                status, answer_headers = response.status, dict(response.headers.items())
        except urllib.error.HTTPError as error:
            if error.code == 304:
                return 304, dict(error.headers.items()) if error.headers else {}, b""
            message = _error_message(error)
            if error.code >= 500 or error.code in (408, 429):
                raise ServerUnavailable(f"{method} {path}: {error.code} {message}") from None
            raise ServerRefused(error.code, f"{method} {path}: {error.code} {message}") from None
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise ServerUnavailable(f"{method} {path}: {reason}") from None
        if len(data) > limit:
            raise ServerUnavailable(f"{method} {path}: the answer is larger than {limit} bytes")
        return status, answer_headers, data

    def json(self, method: str, path: str, payload: object = None, headers: dict[str, str] | None = None):
        body = None
        all_headers = dict(headers or {})
        if payload is not None:
            body = json.dumps(payload).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        status, answer_headers, data = self.request(method, path, body, all_headers)
        if status == 304:
            return status, answer_headers, None
        try:
            return status, answer_headers, json.loads(data.decode("utf-8")) if data else None
        except (UnicodeDecodeError, ValueError) as error:
            raise ServerUnavailable(f"{method} {path}: the answer is not JSON ({error})") from None

    def state(self, etag: str | None):
        """(304, None, None) when unchanged since `etag`, else (200, new ETag, the desired state)."""
        headers = {"If-None-Match": etag} if etag else {}
        status, answer_headers, data = self.json("GET", "state", headers=headers)
        etag_header = {name.lower(): value for name, value in answer_headers.items()}.get("etag")
        return status, etag_header, data

    def manifest(self, module: str, version: int):
        return self.json("GET", f"modules/{_quote(module)}/versions/{version}/manifest")[2]

    def archive(self, module: str, version: int, limit: int) -> bytes:
        return self.request("GET", f"modules/{_quote(module)}/versions/{version}/archive", limit=limit)[2]

    def report(self, payload: dict):
        return self.json("POST", "reports", payload)[2]

    def drift(self, module: str, zipped: bytes):
        return self.request("POST", f"drift/{_quote(module)}", zipped, {"Content-Type": "application/zip"})


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        body = error.read(64 * 1024)
        return str(json.loads(body.decode("utf-8"))["error"]["message"])
    except Exception:  # noqa: BLE001  any unreadable error body: the reason phrase will do
        return str(error.reason)


# ---------------------------------------------------------------------------
# The desired state


def check_state(state: object) -> list[dict]:
    """The applications of a desired state, their shape checked; ServerUnavailable when it has none."""
    if not isinstance(state, dict) or not isinstance(state.get("applications"), list):
        raise ServerUnavailable("the desired state has no list of applications")
    applications = []
    for app in state["applications"]:
        if (
            not isinstance(app, dict)
            or not isinstance(app.get("name"), str)
            or not isinstance(app.get("modules"), list)
        ):
            raise ServerUnavailable("the desired state holds an application without a name or modules")
        for module in app["modules"]:
            if (
                not isinstance(module, dict)
                or not isinstance(module.get("name"), str)
                or not isinstance(module.get("version"), int)
                or not isinstance(module.get("tree_hash"), str)
            ):
                raise ServerUnavailable(f"the desired state of {app['name']} holds a malformed module")
        applications.append(app)
    return applications


def desired_modules(app: dict) -> dict[str, str]:
    return {module["name"]: module["tree_hash"] for module in app["modules"]}


# ---------------------------------------------------------------------------
# The agent


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_log(message: str) -> None:
    line = " ".join(message.split("\n"))
    print(f"{_now()} stageboard-agent: {line}", file=sys.stderr, flush=True)


class Agent:
    def __init__(
        self,
        server: str,
        token: str,
        root: str,
        hook: str | None = None,
        hook_timeout: float = 300,
        interval: float = 5,
        http_timeout: float = HTTP_TIMEOUT_SECONDS,
        log: Callable[[str], None] = default_log,
        client: Client | None = None,
    ):
        self.client = client or Client(server, token, http_timeout)
        self.root_path = os.path.abspath(root)
        self.hook = hook
        self.hook_timeout = hook_timeout
        self.interval = interval
        self.log = log
        self.stopping = threading.Event()
        self.agent_name = f"stageboard-agent/{AGENT_VERSION} on {socket.gethostname()}"[:200]
        self.root = open_root(self.root_path)
        self.state = self._load_state()

    def close(self) -> None:
        self.root.close()

    # --- the loop

    def run(self, once: bool = False, sleep: Callable[[float], None] | None = None, passes: int = 0) -> int:
        """Pass after pass until stopped; backs off exponentially (up to 60 s) while passes fail.

        `once`: one pass, exit status 0 when it succeeded, 1 when not. `passes` (tests)
        stops after that many.
        """
        sleep = sleep or self.stopping.wait
        failures = 0
        done = 0
        while not self.stopping.is_set():
            ok = self.run_pass()
            done += 1
            if once:
                return 0 if ok else 1
            if passes and done >= passes:
                return 0 if ok else 1
            failures = 0 if ok else failures + 1
            delay = backoff(failures, self.interval)
            if failures:
                self.log(f"retrying in {delay:.1f} s")
            sleep(delay)
        self.log("stopped")
        return 0

    def run_pass(self) -> bool:
        """One pass; True when Stageboard was reached and every application is applied. Never raises."""
        try:
            return self._pass()
        except (ServerUnavailable, ServerRefused) as error:
            self.log(f"Stageboard: {error}")
            return False
        except Exception as error:  # noqa: BLE001  the loop survives anything one pass meets
            self.log(f"the pass failed unexpectedly: {type(error).__name__}: {error}")
            return False

    def _pass(self) -> bool:
        status, etag, desired = self.client.state(self.state.get("etag"))
        if status == 304:
            return self._report_if_changed()
        applications = check_state(desired)
        environment = desired.get("environment") if isinstance(desired.get("environment"), str) else ""
        all_applied, failed = True, False
        for app in applications:
            if self.stopping.is_set():
                all_applied = False
                break
            if self._unusable_names(app):
                # No folder can be made for it, whatever the next pass does: not a reason to back off and
                # delay every other application of the environment. It stays refused, said once.
                all_applied = False
                continue
            if not self.apply(app, environment, self.client):
                all_applied, failed = False, True
        self.state["desired"] = {app["name"]: app.get("deployment") for app in applications}
        # An etag is kept only when everything is applied: otherwise the next pass asks again (no 304).
        self.state["etag"] = etag if all_applied else None
        self._save_state()
        reported = self._report([app["name"] for app in applications])
        return not failed and reported

    def _unusable_names(self, app: dict) -> bool:
        """True when `app` or one of its modules cannot be a folder name; noted once per reason."""
        record = self._record(app["name"]) if isinstance(app.get("name"), str) else {}
        try:
            check_name(app["name"], "the application")
            for module in app["modules"]:
                check_name(module["name"], "the module")
        except Refused as error:
            reason = f"{app['name']} not applied: {error}"
            if record.get("unusable") != reason:
                record["unusable"] = reason
                self._note(record, reason)
                self._save_state()
            return True
        record.pop("unusable", None)
        return False

    # --- applying one application

    def apply(self, app: dict, environment: str, source) -> bool:
        """Bring DIR/<application> to the desired `app` when it differs from what was last applied.

        `source` gives manifests and archives (the Client). True when applied (or
        nothing to do); False when refused, the previous release staying current.
        """
        name = app["name"]
        record = self._record(name)
        modules = desired_modules(app)
        generation = app.get("generation") or 0
        version = app.get("version") if isinstance(app.get("version"), str) else ""
        unchanged = record.get("applied") == modules and record.get("generation") == generation
        if unchanged and record.get("release"):
            # Nothing to write. A new version label alone (the same files tagged, say) is taken as it is:
            # no new release and no hook, which would restart what runs for no change of files.
            if record.get("deployment") != app.get("deployment") or record.get("version") != version:
                record.update(deployment=app.get("deployment"), version=version)
                self._save_state()
            return True
        try:
            check_name(name, "the application")
            for module in modules:
                check_name(module, "the module")
            if len(modules) != len(app["modules"]):
                raise Refused("the desired state lists a module twice")
            release, hook = self._write_release(name, version, app, modules, environment, source, record)
        except (Refused, ServerRefused, ServerUnavailable, OSError) as error:
            reason = f"{name} {version} not applied: {error}; the previous release stays current"
            self._note(record, reason)
            self._save_state()
            return False
        record.update(
            version=version,
            generation=generation,
            deployment=app.get("deployment"),
            applied=modules,
            release=release,
        )
        if hook is not None:
            record["unreported_hook"] = hook
        self._save_state()
        return True

    def _write_release(self, name, version, app, modules, environment, source, record):
        release = release_name(version, modules)
        app_dir = self.root.open_dir(name, create=True)
        with app_dir, app_dir.open_dir("releases", create=True) as releases:
            for leftover in os.listdir(releases.fd):
                if leftover.startswith(".tmp-"):
                    releases.remove_tree(leftover)  # a pass that was killed while writing
            current = self._current(app_dir, releases)
            building = f".tmp-{release}-{os.getpid()}-{random.randrange(16**8):08x}"
            os.mkdir(building, 0o755, dir_fd=releases.fd)
            try:
                with releases.open_dir(building) as new:
                    to_download = []
                    for module in app["modules"]:
                        if self.stopping.is_set():
                            raise Refused("the agent is stopping")
                        with new.open_dir(module["name"], create=True) as target:
                            if current is None or not self._copy_unchanged(
                                record, module, current, target, generation=app.get("generation") or 0
                            ):
                                to_download.append(module)
                    self._download(record, to_download, new, source)
                final = release
                suffix = 1
                while releases.lstat(final) is not None:
                    # The same content applied again (Retry, Redeploy): a fresh folder, the old one kept.
                    suffix += 1
                    final = f"{release}.{suffix}"
                os.rename(building, final, src_dir_fd=releases.fd, dst_dir_fd=releases.fd)
            except BaseException:
                releases.remove_tree(building)
                raise
            finally:
                if current is not None:
                    current.close()
            with releases.open_dir(final) as written:
                os.utime(written.fd)  # the retention keeps the newest by this time
            self._switch(app_dir, final)
            self._note(record, f"switched current to {final}")
            self._prune(releases, final, record)
        hook = None
        if self.hook:
            hook = self._run_hook(name, version, environment, app.get("deployment"), final, record)
        return final, hook

    def _download(self, record, modules: list[dict], new: Dir, source) -> None:
        """Fetch the manifests and archives of `modules` (a few at a time), then check and write each.

        An archive is written only once it matched its manifest whole; the first
        refusal stops the others (the caller removes the unfinished release).
        """

        def fetch(module: dict):
            if self.stopping.is_set():
                raise Refused("the agent is stopping")
            name, number = module["name"], module["version"]
            files = check_manifest(source.manifest(name, number), name, number, module["tree_hash"])
            total = sum(size for _, size in files.values())
            # A zip is never much larger than what it holds; far larger is not this manifest's archive.
            return files, source.archive(name, number, limit=2 * total + 1024 * (len(files) + 1024))

        workers = min(DOWNLOAD_WORKERS, len(modules))
        if workers <= 1:
            fetched = map(fetch, modules)
            pool = None
        else:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download")
            fetched = pool.map(fetch, modules)
        try:
            for module, (files, data) in zip(modules, fetched):
                name, number = module["name"], module["version"]
                contents = verify_archive(data, files, f"{name} v{number}")
                with new.open_dir(name) as target:
                    for path, content in contents.items():
                        target.write_file(path, [content])
                self._note(record, f"downloaded {name} v{number} ({len(files)} files)")
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _copy_unchanged(self, record, module: dict, current: Dir, target: Dir, *, generation: int) -> bool:
        """Copy current/<module> into the new release when it still hashes as desired. True when done.

        A module edited on the machine (drift) whose desired files and generation did not change
        since it was written is copied as found: a release made for another module (adopting that
        one's drift, say) must not silently overwrite a fix nobody decided about yet. Stageboard
        keeps showing its drift; Redeploy (a new generation) or a new version of it replaces it.
        """
        module_name, wanted = module["name"], module["tree_hash"]
        written = (record.get("applied") or {}).get(module_name)
        try:
            with current.open_dir(module_name) as existing:
                files, irregular = existing.scan()
                differs = irregular or tree_hash(files) != wanted
                kept_drift = not irregular and written == wanted and record.get("generation") == generation
                if differs and not kept_drift:
                    if written == wanted:
                        # Only then is it news: a new version of the module differs from the old one's files.
                        self._note(
                            record, f"{module_name} on disk differs from the version deployed; downloading it"
                        )
                    return False
                for path, sha in files.items():
                    if target.write_file(path, existing.read_chunks(path)) != sha:
                        raise Refused(f"{existing.child_shown(path)} changed while it was copied")
        except FileNotFoundError:
            return False
        except Refused as error:
            self._note(
                record, f"{module_name} cannot be copied from the current release ({error}); downloading it"
            )
            self._clear(target)
            return False
        if differs:
            self._note(
                record,
                f"kept {module_name} as found on disk: it differs from the version deployed (drift: "
                "adopt it or redeploy over it in Stageboard)",
            )
        else:
            self._note(record, f"kept {module_name} ({len(files)} files, unchanged)")
        return True

    @staticmethod
    def _clear(folder: Dir) -> None:
        with os.scandir(folder.fd) as entries:
            names = [entry.name for entry in entries]
        for name in names:
            folder.remove_tree(name)

    def _current(self, app_dir: Dir, releases: Dir) -> Dir | None:
        """The release `current` points to, opened; None when there is none (or it points elsewhere)."""
        name = self._current_name(app_dir)
        if name is None:
            return None
        try:
            return releases.open_dir(name)
        except (FileNotFoundError, Refused):
            return None

    @staticmethod
    def _current_name(app_dir: Dir) -> str | None:
        """The release folder named by the link DIR/<application>/current, read as text, never followed."""
        try:
            target = os.readlink("current", dir_fd=app_dir.fd)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno == errno.EINVAL:
                raise Refused(f"{app_dir.child_shown('current')} is not a symlink; move it away") from None
            raise
        prefix = "releases/"
        name = target[len(prefix) :] if target.startswith(prefix) else ""
        try:
            check_name(name, "current's release")
        except Refused:
            return None
        return None if name.startswith(".") else name

    @staticmethod
    def _switch(app_dir: Dir, release: str) -> None:
        """Point `current` at releases/<release> in one step: a new link renamed over the old one."""
        found = app_dir.lstat("current")
        if found is not None and not stat.S_ISLNK(found.st_mode):
            raise Refused(f"{app_dir.child_shown('current')} is not a symlink; move it away")
        temporary = f".current-{os.getpid()}-{random.randrange(16**8):08x}"
        os.symlink(f"releases/{release}", temporary, dir_fd=app_dir.fd)
        try:
            os.replace(temporary, "current", src_dir_fd=app_dir.fd, dst_dir_fd=app_dir.fd)
        except BaseException:
            os.unlink(temporary, dir_fd=app_dir.fd)
            raise

    def _prune(self, releases: Dir, current: str, record) -> None:
        """Keep the KEEP_RELEASES newest release folders (and always the current one); delete the others."""
        found = []
        for name in os.listdir(releases.fd):
            if name.startswith("."):
                continue
            info = releases.lstat(name)
            if info is not None and stat.S_ISDIR(info.st_mode):
                found.append((info.st_mtime_ns, name))
        found.sort(reverse=True)
        kept = {name for _, name in found[:KEEP_RELEASES]} | {current}
        for _, name in found:
            if name not in kept:
                releases.remove_tree(name)
                self._note(record, f"deleted the old release {name}")

    def _run_hook(self, name, version, environment, deployment, release, record) -> dict[str, object]:
        release_dir = os.path.join(self.root_path, name, "releases", release)
        env = dict(os.environ)
        env.update(
            STAGEBOARD_APPLICATION=name,
            STAGEBOARD_VERSION=version,
            STAGEBOARD_ENVIRONMENT=environment,
            STAGEBOARD_RELEASE_DIR=release_dir,
            STAGEBOARD_DEPLOYMENT="" if deployment is None else str(deployment),
        )
        self._note(record, f"running the hook for {name} {version}")
        result = run_hook(self.hook, env, release_dir, self.hook_timeout)
        status = result["exit_status"]
        if status == HOOK_TIMEOUT_STATUS and "was killed" in str(result["output"]):
            self._note(record, f"the hook timed out after {self.hook_timeout:g} s (exit status {status})")
        else:
            self._note(record, f"the hook exited with status {status}")
        return result

    # --- what is in current now

    def live(self, name: str, modules) -> dict[str, str]:
        """{module: tree hash of DIR/<application>/current/<module>}, read without following links.

        A module that is missing hashes as an empty tree; one whose folder (or
        `current`, or the release) is a symlink or not a folder, or that holds
        anything but regular files and folders, gets a hash no deployed version has.
        """
        live: dict[str, str] = {}
        try:
            app_dir = self.root.open_dir(check_name(name, "the application"))
        except FileNotFoundError:
            return {module: tree_hash({}) for module in modules}
        except Refused:
            return {module: irregular_hash("application") for module in modules}
        with app_dir:
            try:
                release = self._current_name(app_dir)
                releases = app_dir.open_dir("releases")
            except (Refused, FileNotFoundError):
                release = None
            if release is None:
                return {module: irregular_hash("current") for module in modules}
            with releases:
                try:
                    current = releases.open_dir(release)
                except (Refused, FileNotFoundError):
                    return {module: irregular_hash("release") for module in modules}
                with current:
                    for module in modules:
                        try:
                            with current.open_dir(check_name(module, "the module")) as folder:
                                files, irregular = folder.scan()
                            live[module] = tree_hash({**files, **irregular})
                        except FileNotFoundError:
                            live[module] = tree_hash({})
                        except Refused:
                            live[module] = irregular_hash("module")
        return live

    def drift_zip(self, name: str, module: str) -> bytes | None:
        """The regular files of current/<module> as a zip, or None when it holds none (or cannot be read)."""
        with self.root.open_dir(name) as app_dir, app_dir.open_dir("releases") as releases:
            release = self._current_name(app_dir)
            if release is None:
                return None
            with releases.open_dir(release) as current, current.open_dir(module) as folder:
                files, _ = folder.scan()
                if not files:
                    return None
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                    for path in sorted(files):
                        info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
                        info.external_attr = (stat.S_IFREG | 0o644) << 16
                        info.compress_type = zipfile.ZIP_DEFLATED
                        archive.writestr(info, b"".join(folder.read_chunks(path)))
                return buffer.getvalue()

    # --- reports

    def _report_entries(self, names: list[str]) -> tuple[list[dict], dict[str, dict]]:
        entries = []
        signature = {}
        desired = self.state.get("desired") or {}
        for name in names:
            record = self._record(name)
            applied = record.get("applied") or {}
            live = self.live(name, sorted(applied))
            deployment = desired.get(name, record.get("deployment"))
            entries.append(
                {
                    "name": name,
                    "deployment": deployment,
                    "generation": record.get("generation", 0),
                    "version": record.get("version", "")[:MAX_VERSION_CHARS],
                    "applied": applied,
                    "live": live,
                    "hook": record.get("unreported_hook"),
                    "log": list(record.get("unreported_log") or []),
                }
            )
            signature[name] = {"deployment": deployment, "applied": applied, "live": live}
        return entries, signature

    def _report_if_changed(self) -> bool:
        """On an unchanged state: report only when what is on disk, or unsent, changed since the last one."""
        names = sorted(self.state.get("desired") or {})
        if not names:
            return True
        entries, signature = self._report_entries(names)
        unsent = any(entry["hook"] is not None or entry["log"] for entry in entries)
        if not unsent and signature == self.state.get("reported"):
            return True
        return self._send(entries, signature)

    def _report(self, names: list[str]) -> bool:
        entries, signature = self._report_entries(names)
        return self._send(entries, signature)

    def _send(self, entries: list[dict], signature: dict[str, dict]) -> bool:
        # The interval is reported in whole seconds: Stageboard counts three missed ones as offline.
        interval = max(1, int(round(self.interval)))
        answer = self.client.report({"interval": interval, "agent": self.agent_name, "applications": entries})
        for entry in entries:
            record = self._record(entry["name"])
            record.pop("unreported_hook", None)
            record["unreported_log"] = []
        drifted = ", ".join(
            f"{e['name']}/{m}" for e in entries for m, h in e["live"].items() if e["applied"].get(m) != h
        )
        self.log(f"reported {len(entries)} application(s)" + (f"; drift in {drifted}" if drifted else ""))
        uploads = answer.get("drift_uploads") if isinstance(answer, dict) else None
        uploaded = True
        for module in uploads if isinstance(uploads, list) else []:
            if self.stopping.is_set():
                uploaded = False
                break
            if isinstance(module, str):
                uploaded = self._upload_drift(module, entries) and uploaded
        # What was reported is remembered only once its drift is uploaded: a failed upload is retried.
        self.state["reported"] = signature if uploaded else None
        self._save_state()
        return True

    def _upload_drift(self, module: str, entries: list[dict]) -> bool:
        owner = next((entry["name"] for entry in entries if module in entry["applied"]), None)
        if owner is None:
            self.log(f"Stageboard asked for the drift of {module}, which no application here has")
            return True
        try:
            zipped = self.drift_zip(check_name(owner, "the application"), check_name(module, "the module"))
        except (Refused, OSError) as error:
            self.log(f"the drift of {module} cannot be read: {error}")
            return True
        if zipped is None:
            self.log(f"{module} has no files in current to upload as its drift")
            return True
        try:
            self.client.drift(module, zipped)
        except ServerRefused as error:
            self.log(f"Stageboard refused the drift of {module}: {error}")
            return True
        except ServerUnavailable as error:
            self.log(f"uploading the drift of {module} failed: {error}")
            return False
        self.log(f"uploaded the drift of {module} ({len(zipped)} bytes)")
        return True

    # --- local state: DIR/.stageboard-agent.json

    def _record(self, name: str) -> dict:
        return self.state.setdefault("applications", {}).setdefault(name, {})

    def _note(self, record: dict, line: str) -> None:
        """Log `line` and keep it for the next report (it goes to the deployment's live log)."""
        self.log(line)
        lines = record.setdefault("unreported_log", [])
        lines.append(line[:MAX_LOG_LINE_CHARS])
        del lines[:-MAX_LOG_LINES]

    def _load_state(self) -> dict:
        try:
            fd = os.open(STATE_FILE, _READ_FLAGS, dir_fd=self.root.fd)
        except FileNotFoundError:
            return {}
        except OSError as error:
            self.log(f"{STATE_FILE} cannot be read ({error}); starting afresh")
            return {}
        try:
            with os.fdopen(fd, "rb") as source:
                if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                    raise ValueError("not a regular file")
                os.set_blocking(source.fileno(), True)
                state = json.loads(source.read(MAX_JSON_BYTES).decode("utf-8"))
            if not isinstance(state, dict) or not isinstance(state.get("applications", {}), dict):
                raise ValueError("not an object")
            return state
        except (OSError, ValueError) as error:
            self.log(f"{STATE_FILE} is unreadable ({error}); starting afresh")
            return {}

    def _save_state(self) -> None:
        """Written to a new file renamed over the old one: a crash leaves the old or the new, never half."""
        temporary = f"{STATE_FILE}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=self.root.fd)
        fd = os.open(temporary, _CREATE_FLAGS, 0o600, dir_fd=self.root.fd)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(self.state, out, indent=1, sort_keys=True)
        os.replace(temporary, STATE_FILE, src_dir_fd=self.root.fd, dst_dir_fd=self.root.fd)


def backoff(failures: int, interval: float, cap: float = MAX_BACKOFF_SECONDS, jitter: float = 0.1) -> float:
    """The wait before the next pass: the interval, doubled per failed pass in a row, at most `cap`.

    Up to `jitter` of it is random, so that many agents do not all retry at the same moment.
    """
    delay = interval if failures <= 0 else min(cap, interval * 2 ** (failures - 1))
    return delay * (1 - jitter * random.random())


# ---------------------------------------------------------------------------
# The command line


def read_token(path: str, log: Callable[[str], None]) -> str:
    info = os.stat(path)
    if info.st_mode & stat.S_IROTH:
        log(f"warning: {path} can be read by every user of this machine; chmod 600 it")
    with open(path, encoding="utf-8") as source:
        token = source.read().strip()
    if not token:
        raise ValueError(f"{path} is empty")
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stageboard_agent.py",
        description="Deliver a Stageboard environment's deployments to this machine.",
    )
    parser.add_argument(
        "--server", required=True, help="Stageboard's address, like https://stageboard.example.com"
    )
    parser.add_argument(
        "--token-file", required=True, help="a file holding the environment's agent token (sba_…)"
    )
    parser.add_argument("--root", required=True, help="the folder the applications are written into")
    parser.add_argument("--hook", help="a shell command run after each application is switched")
    parser.add_argument(
        "--hook-timeout", type=float, default=300, help="seconds before the hook is killed (300)"
    )
    parser.add_argument("--interval", type=float, default=5, help="seconds between passes (5)")
    parser.add_argument(
        "--once", action="store_true", help="one pass, then exit: 0 when it succeeded, 1 when not"
    )
    args = parser.parse_args(argv)
    if args.interval <= 0 or args.hook_timeout <= 0:
        parser.error("--interval and --hook-timeout must be positive")
    if not args.server.startswith(("http://", "https://")):
        parser.error("--server must start with http:// or https://")
    host = urllib.parse.urlsplit(args.server).hostname or ""
    if args.server.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
        default_log("warning: --server is plain HTTP; the agent token travels unencrypted")
    try:
        token = read_token(args.token_file, default_log)
    except (OSError, ValueError) as error:
        default_log(f"cannot read the token: {error}")
        return 2
    try:
        agent = Agent(
            args.server,
            token,
            args.root,
            hook=args.hook,
            hook_timeout=args.hook_timeout,
            interval=args.interval,
        )
    except OSError as error:
        default_log(f"cannot use --root {args.root}: {error}")
        return 2
    lock = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | _CLOEXEC, 0o600, dir_fd=agent.root.fd)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        default_log(f"another agent is already running on {agent.root_path}")
        return 2

    def stop(signum, frame) -> None:
        if agent.stopping.is_set():
            raise KeyboardInterrupt
        default_log(f"received {signal.Signals(signum).name}; stopping after the current action")
        agent.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    mode = "one pass" if args.once else f"every {args.interval:g} s"
    default_log(f"delivering from {args.server} into {agent.root_path}, {mode}")
    try:
        return agent.run(once=args.once)
    except KeyboardInterrupt:
        default_log("stopped at once")
        return 130
    finally:
        agent.close()
        os.close(lock)


if __name__ == "__main__":
    sys.exit(main())
