"""Publishing a new module version into an environment.

The one path by which new content enters Stageboard: the browser editor, zip
upload, command line, API, merges and the demo loader all end here, so the
same content always becomes the same stored version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from lifecycle import access, audit, hooks
from lifecycle.archives import ArchiveRejected, Limits, check_files, check_sizes
from lifecycle.delivery import revisions
from lifecycle.models import (
    AccessLevel,
    AuditEvent,
    Blob,
    CurrentVersion,
    Environment,
    Module,
    ModuleChange,
    ModuleFile,
    ModuleVersion,
)
from lifecycle.snapshots import content_hash, is_binary, tree_hash


class StaleEdit(Exception):
    """The module changed in the environment after the edit began."""

    def __init__(self, module: Module, environment: Environment, current: CurrentVersion | None):
        self.current = current
        if current is None:
            message = f"{module.name} has no version in {environment.name} any more."
        else:
            who = current.changed_by.get_username() if current.changed_by else "someone"
            message = (
                f"{module.name} changed in {environment.name} while you were editing: "
                f"{who} made version {current.version.number} current."
            )
        super().__init__(message)


# As the publish forms of the browser and the API; the command line gets the same rule here.
MAX_COMMENT = 2000


def check_comment(comment: str) -> None:
    """Refuse (ArchiveRejected "invalid_comment") a comment no way of publishing may store.

    Over MAX_COMMENT characters; a NUL, which PostgreSQL cannot store; text that is not
    valid Unicode, as a terminal that is not UTF-8 hands the command line 'café'
    ('caf\\udce9', Python's surrogateescape), which cannot be written to the database.
    """
    if len(comment) > MAX_COMMENT:
        raise ArchiveRejected(
            "invalid_comment", f"A comment has at most {MAX_COMMENT} characters; nothing was published."
        )
    if "\x00" in comment or not _is_unicode(comment):
        raise ArchiveRejected(
            "invalid_comment",
            "The comment holds a NUL character or text that is not valid Unicode (was it typed in a "
            "terminal that is not set to UTF-8?); nothing was published.",
        )


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class PublishResult:
    version: ModuleVersion
    created: bool  # False when the content was identical to the current version: "no changes".
    previous: ModuleVersion | None


def content_limits() -> Limits:
    """The configured limits on module content, the same for every way of publishing."""
    return Limits(
        max_files=settings.MODULE_MAX_FILES,
        max_file_bytes=settings.MODULE_MAX_FILE_BYTES,
        max_total_bytes=settings.MODULE_MAX_TOTAL_BYTES,
        max_archive_bytes=settings.MODULE_MAX_ARCHIVE_BYTES,
        max_compression_ratio=settings.MODULE_MAX_COMPRESSION_RATIO,
    )


def store_blobs(files: Mapping[str, bytes]) -> dict[str, str]:
    """Store each distinct content once; return the manifest (path -> content hash)."""
    manifest = {path: content_hash(data) for path, data in files.items()}
    _store({manifest[path]: files[path] for path in files})
    return manifest


def _store(by_hash: Mapping[str, bytes]) -> None:
    """Store the contents (content hash -> bytes) not stored yet."""
    if not by_hash:
        return
    existing = set(Blob.objects.filter(hash__in=by_hash).values_list("hash", flat=True))
    missing = [
        Blob(hash=digest, data=data, size=len(data), is_binary=is_binary(data))
        for digest, data in by_hash.items()
        if digest not in existing
    ]
    # ignore_conflicts: another publish may store the same content at the same moment.
    Blob.objects.bulk_create(missing, ignore_conflicts=True, batch_size=200)


@dataclass(frozen=True)
class CheckedManifest:
    manifest: dict[str, str]  # normalised path -> content hash
    new: dict[str, bytes]  # content hash -> bytes, for the contents the manifest names that came with it
    total_size: int


def check_manifest(manifest: Mapping[str, str], blobs: Iterable[bytes], limits: Limits) -> CheckedManifest:
    """Check a module given as a manifest (path -> content hash) plus the contents not stored yet.

    Content already stored never leaves the database: its size comes from Blob.size,
    in one query. The same refusals as check_files (ArchiveRejected), and
    "unknown_content" for a hash that is neither stored nor among `blobs`. A blob
    is known by the hash of its bytes, computed here, never by a hash it claims.
    """
    if len(manifest) > limits.max_files:  # before a query names them all
        raise ArchiveRejected(
            "too_many_files",
            f"The module has more than {limits.max_files:,} files, the limit for one module; "
            "nothing was published.",
        )
    new = {}
    for data in blobs:
        data = bytes(data)
        new[content_hash(data)] = data
    problem = next(
        (path for path, digest in manifest.items() if not isinstance(digest, str) or not _HASH.match(digest)),
        None,
    )
    if problem is not None:
        raise ArchiveRejected(
            "unknown_content", f"{problem!r} is not named by a content hash; nothing was published."
        )
    stored = dict(
        Blob.objects.filter(hash__in=set(manifest.values()) - new.keys()).values_list("hash", "size")
    )
    unknown = next(
        (path for path, digest in manifest.items() if digest not in stored and digest not in new), None
    )
    if unknown is not None:
        raise ArchiveRejected(
            "unknown_content",
            f"{unknown!r} names content {manifest[unknown][:12]}… that is not stored; nothing was published.",
        )
    sizes = {path: stored[d] if d in stored else len(new[d]) for path, d in manifest.items()}

    def read(path):  # only for a stageboard.json at the root
        digest = manifest[path]
        return new[digest] if digest in new else bytes(Blob.objects.get(hash=digest).data)

    paths = check_sizes(sizes, limits, read)
    checked = {path: manifest[given] for path, given in paths.items()}
    used = set(checked.values())
    return CheckedManifest(
        manifest=checked,
        new={digest: data for digest, data in new.items() if digest in used},
        total_size=sum(sizes.values()),
    )


_HASH = re.compile(r"[0-9a-f]{64}\Z")


def create_version(
    module: Module,
    files: Mapping[str, bytes],
    *,
    parent: ModuleVersion | None,
    user=None,
    comment: str = "",
    environment: Environment | None = None,
    merged_from: ModuleVersion | None = None,
    merged_all: bool = True,
) -> ModuleVersion:
    """Make a new immutable version of `module`. Call inside a transaction holding the module lock."""
    return create_version_from_manifest(
        module,
        store_blobs(files),
        total_size=sum(len(data) for data in files.values()),
        parent=parent,
        user=user,
        comment=comment,
        environment=environment,
        merged_from=merged_from,
        merged_all=merged_all,
    )


def create_version_from_manifest(
    module: Module,
    manifest: Mapping[str, str],
    *,
    total_size: int,
    parent: ModuleVersion | None,
    new: Mapping[str, bytes] | None = None,
    user=None,
    comment: str = "",
    environment: Environment | None = None,
    merged_from: ModuleVersion | None = None,
    merged_all: bool = True,
) -> ModuleVersion:
    """`create_version` from a checked manifest (check_manifest): only the `new` contents are written.

    Call inside a transaction holding the module lock.
    """
    _store(new or {})
    highest = module.versions.aggregate(highest=Max("number"))["highest"] or 0
    version = ModuleVersion.objects.create(
        module=module,
        number=highest + 1,
        parent=parent,
        merged_from=merged_from,
        merged_all=merged_all,
        tree_hash=tree_hash(manifest),
        file_count=len(manifest),
        total_size=total_size,
        comment=comment,
        published_in=environment,
        created_by=user,
    )
    ModuleFile.objects.bulk_create(
        [ModuleFile(version=version, path=path, blob_id=digest) for path, digest in sorted(manifest.items())],
        batch_size=500,
    )
    return version


def make_current(
    environment: Environment,
    module: Module,
    version: ModuleVersion,
    *,
    kind: str,
    user=None,
    comment: str = "",
    previous: ModuleVersion | None = None,
) -> None:
    now = timezone.now()
    CurrentVersion.objects.update_or_create(
        environment=environment,
        module=module,
        defaults={"version": version, "changed_at": now, "changed_by": user},
    )
    ModuleChange.objects.create(
        environment=environment,
        module=module,
        previous_version=previous,
        version=version,
        kind=kind,
        user=user,
        at=now,
        comment=comment,
    )
    revisions.bump([environment.pk], [module.application_id])


def publish(
    module: Module,
    environment: Environment,
    files: Mapping[str, bytes] | None = None,
    *,
    manifest: Mapping[str, str] | None = None,
    blobs: Iterable[bytes] = (),
    user=None,
    comment: str = "",
    based_on: ModuleVersion | None = None,
    check_stale: bool = False,
    merged_from: ModuleVersion | None = None,
    merged_all: bool = True,
) -> PublishResult:
    """Publish `files` as the module's new version in `environment`.

    With `check_stale`, `based_on` is the version the edit started from and the
    publish is refused (StaleEdit) if another version became current since.
    Publishing into any environment but the first opens or extends a hotfix.
    With a `user`, it needs `publish` access there (PermissionDenied otherwise);
    without one it is the system acting (the demo loader). Bad paths or content
    over the limits, and a comment that cannot be stored (check_comment), raise
    ArchiveRejected before anything is written.

    The content is either `files` (path -> bytes), or a `manifest` (path -> content
    hash) with `blobs`, the contents it names that may not be stored yet: then what
    is stored already is neither read nor hashed again (see check_manifest).
    """
    if (files is None) == (manifest is None):
        raise TypeError("publish takes files or a manifest, one of them.")
    if user is not None:
        access.require(user, environment, AccessLevel.PUBLISH)
    check_comment(comment)
    if manifest is None:
        files = check_files(files, content_limits())
        checked = CheckedManifest({path: content_hash(data) for path, data in files.items()}, {}, 0)
    else:
        checked = check_manifest(manifest, blobs, content_limits())
    with transaction.atomic():
        # Lock the module: version numbers are per module, whichever environment publishes.
        Module.objects.select_for_update().get(pk=module.pk)
        current = (
            CurrentVersion.objects.select_for_update(of=("self",))
            .select_related("version", "changed_by", "environment", "module")
            .filter(environment=environment, module=module)
            .first()
        )
        previous = current.version if current else None
        if check_stale and previous != based_on:
            raise StaleEdit(module, environment, current)
        # A merge is recorded even when its files equal the target's: the link is the history.
        if merged_from is None and previous is not None and previous.tree_hash == tree_hash(checked.manifest):
            return PublishResult(version=previous, created=False, previous=previous)
        if manifest is None:
            _store({digest: files[path] for path, digest in checked.manifest.items()})
        total = checked.total_size if manifest is not None else sum(len(data) for data in files.values())
        version = create_version_from_manifest(
            module,
            checked.manifest,
            total_size=total,
            new=checked.new,
            parent=previous,
            user=user,
            comment=comment,
            environment=environment,
            merged_from=merged_from,
            merged_all=merged_all,
        )
        make_current(
            environment,
            module,
            version,
            kind=ModuleChange.Kind.MERGE if merged_from else ModuleChange.Kind.PUBLISH,
            user=user,
            comment=comment,
            previous=previous,
        )
        if merged_from is None:
            audit.record(
                AuditEvent.Action.PUBLISH,
                user=user,
                environment=environment,
                application=module.application,
                summary=f"Published {module.name} v{version.number} to {environment.name}",
                before={"module": module.name, "version": previous.number if previous else None},
                after={"module": module.name, "version": version.number, "tree_hash": version.tree_hash},
            )
        # Inside the transaction: the hotfixes app opens or extends a hotfix, or nothing is published.
        hooks.version_published.send(
            sender=ModuleVersion,
            module=module,
            environment=environment,
            version=version,
            previous=previous,
            user=user,
            merged_from=merged_from,
        )
        return PublishResult(version=version, created=True, previous=previous)
