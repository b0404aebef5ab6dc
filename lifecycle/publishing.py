"""Publishing a new module version into an environment.

The one path by which new content enters Stageboard: the browser editor, zip
upload, command line, API, merges and the demo loader all end here, so the
same content always becomes the same stored version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from lifecycle import access, audit, hooks
from lifecycle.archives import ArchiveRejected, Limits, check_files
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
    by_hash = {manifest[path]: files[path] for path in files}
    existing = set(Blob.objects.filter(hash__in=by_hash).values_list("hash", flat=True))
    missing = [
        Blob(hash=digest, data=data, size=len(data), is_binary=is_binary(data))
        for digest, data in by_hash.items()
        if digest not in existing
    ]
    # ignore_conflicts: another publish may store the same content at the same moment.
    Blob.objects.bulk_create(missing, ignore_conflicts=True, batch_size=200)
    return manifest


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
    manifest = store_blobs(files)
    highest = module.versions.aggregate(highest=Max("number"))["highest"] or 0
    version = ModuleVersion.objects.create(
        module=module,
        number=highest + 1,
        parent=parent,
        merged_from=merged_from,
        merged_all=merged_all,
        tree_hash=tree_hash(manifest),
        file_count=len(manifest),
        total_size=sum(len(data) for data in files.values()),
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
    revisions.bump([environment.pk])


def publish(
    module: Module,
    environment: Environment,
    files: Mapping[str, bytes],
    *,
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
    """
    if user is not None:
        access.require(user, environment, AccessLevel.PUBLISH)
    check_comment(comment)
    files = check_files(files, content_limits())
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
        manifest = {path: content_hash(data) for path, data in files.items()}
        # A merge is recorded even when its files equal the target's: the link is the history.
        if merged_from is None and previous is not None and previous.tree_hash == tree_hash(manifest):
            return PublishResult(version=previous, created=False, previous=previous)
        version = create_version(
            module,
            files,
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
