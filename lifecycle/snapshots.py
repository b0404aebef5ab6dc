"""Content addressing of module files. Pure Python, no Django.

A module version is a snapshot: a mapping of relative paths to bytes. Each
file is identified by the SHA-256 of its bytes, and the whole snapshot by a
tree hash over its sorted (path, file hash) pairs, so identical content is
recognised without comparing bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_hash(manifest: Mapping[str, str]) -> str:
    """Hash of a manifest (path -> content hash), independent of insertion order."""
    digest = hashlib.sha256()
    for path in sorted(manifest):
        digest.update(path.encode("utf-8"))
        digest.update(b"\0")
        digest.update(manifest[path].encode("ascii"))
        digest.update(b"\n")
    return digest.hexdigest()


def is_binary(data: bytes) -> bool:
    """Text is UTF-8 without NUL bytes; anything else is shown and merged as binary."""
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
