"""Editing a module in the browser: a draft kept in the database until it is published.

A draft starts from the version current in the environment (its base) and
holds a manifest of path -> content hash; file contents go to the blob store
as they are saved, so a draft survives a refused publish, a closed tab or a
request landing on another server.
"""

from __future__ import annotations

from django.db import transaction

from lifecycle.archives import ArchiveRejected, human_bytes, normalise_path
from lifecycle.models import Blob, CurrentVersion, Draft
from lifecycle.publishing import PublishResult, content_limits, publish, store_blobs


class DraftError(ValueError):
    """An edit that cannot be made; the message says why."""


def current_version(module, environment):
    row = (
        CurrentVersion.objects.filter(module=module, environment=environment)
        .select_related("version")
        .first()
    )
    return row.version if row else None


def open_draft(user, module, environment) -> Draft:
    """The user's draft of the module in the environment, started from the current version if new."""
    draft = Draft.objects.filter(user=user, module=module, environment=environment).first()
    if draft is not None:
        return draft
    base = current_version(module, environment)
    with transaction.atomic():
        draft, _ = Draft.objects.get_or_create(
            user=user,
            module=module,
            environment=environment,
            defaults={"base_version": base, "manifest": base.manifest() if base else {}},
        )
    return draft


def base_manifest(draft: Draft) -> dict[str, str]:
    return draft.base_version.manifest() if draft.base_version else {}


def file_statuses(draft: Draft, base: dict[str, str]) -> dict[str, str]:
    """path -> "added", "changed" or "" for the draft's files, plus "deleted" for base files it dropped."""
    statuses = {}
    for path, digest in draft.manifest.items():
        if path not in base:
            statuses[path] = "added"
        elif base[path] != digest:
            statuses[path] = "changed"
        else:
            statuses[path] = ""
    for path in base.keys() - draft.manifest.keys():
        statuses[path] = "deleted"
    return dict(sorted(statuses.items()))


def keep_line_endings(original: bytes | None, edited: str) -> bytes:
    """Browsers submit textareas with CRLF line endings; keep LF files LF."""
    if original is None or b"\r\n" not in original:
        edited = edited.replace("\r\n", "\n")
    return edited.encode("utf-8")


def _check_size(path: str, data: bytes) -> None:
    limit = content_limits().max_file_bytes
    if len(data) > limit:
        raise DraftError(
            f"{path} is {human_bytes(len(data))}, over the limit of {human_bytes(limit)} per file."
        )


def _clean_path(path: str) -> str:
    try:
        return normalise_path(path)
    except ArchiveRejected as error:
        raise DraftError(str(error)) from None


def _taken(draft: Draft, path: str, ignoring: str | None = None) -> bool:
    """Whether `path` clashes with a file of the draft: the same name ignoring case, or one of the two
    used as the other's folder (`main.py` and `main.py/inner.py` cannot both be checked out)."""
    folded = path.casefold()
    for existing in draft.manifest:
        if existing == ignoring:
            continue
        other = existing.casefold()
        if other == folded or other.startswith(folded + "/") or folded.startswith(other + "/"):
            return True
    return False


def save_file(draft: Draft, path: str, data: bytes) -> None:
    if path not in draft.manifest:
        raise DraftError(f"{path} is not in your draft any more; it may have been renamed or deleted.")
    _check_size(path, data)
    draft.manifest[path] = store_blobs({path: data})[path]
    draft.save(update_fields=["manifest", "updated_at"])


def add_file(draft: Draft, path: str, data: bytes) -> str:
    path = _clean_path(path)
    if _taken(draft, path):
        raise DraftError(
            f"{path} already exists in this module, or a file is in the way of its folder "
            "(names are compared ignoring case)."
        )
    _check_size(path, data)
    if len(draft.manifest) >= content_limits().max_files:
        raise DraftError(f"A module may hold at most {content_limits().max_files} files.")
    draft.manifest[path] = store_blobs({path: data})[path]
    draft.save(update_fields=["manifest", "updated_at"])
    return path


def rename_file(draft: Draft, path: str, new_path: str) -> str:
    if path not in draft.manifest:
        raise DraftError(f"{path} is not in your draft.")
    new_path = _clean_path(new_path)
    if new_path == path:
        return path
    if _taken(draft, new_path, ignoring=path):
        raise DraftError(
            f"{new_path} already exists in this module, or a file is in the way of its folder "
            "(names are compared ignoring case)."
        )
    draft.manifest[new_path] = draft.manifest.pop(path)
    draft.save(update_fields=["manifest", "updated_at"])
    return new_path


def delete_file(draft: Draft, path: str) -> None:
    if path not in draft.manifest:
        raise DraftError(f"{path} is not in your draft.")
    del draft.manifest[path]
    draft.save(update_fields=["manifest", "updated_at"])


def read_file(digest: str) -> Blob:
    return Blob.objects.get(hash=digest)


def draft_files(draft: Draft) -> dict[str, bytes]:
    data = dict(Blob.objects.filter(hash__in=set(draft.manifest.values())).values_list("hash", "data"))
    return {path: bytes(data[digest]) for path, digest in draft.manifest.items()}


def publish_draft(draft: Draft, comment: str) -> PublishResult:
    """Publish the draft; refused with StaleEdit if the module changed since the draft began.

    On success (or "no changes") the draft is gone; on refusal it stays, untouched.
    """
    result = publish(
        draft.module,
        draft.environment,
        draft_files(draft),
        user=draft.user,
        comment=comment,
        based_on=draft.base_version,
        check_stale=True,
    )
    draft.delete()
    return result
