"""Editing a module in the browser: a draft kept in the database until it is published.

A draft starts from the version current in the environment (its base) and
holds a manifest of path -> content hash; file contents go to the blob store
as they are saved, so a draft survives a refused publish, a closed tab or a
request landing on another server.

One person may have the draft open in two tabs. Every change of the draft
(save, add, rename, delete) bumps `Draft.revision` under a row lock, and every
form says which draft and revision its page showed, and a save which content
of the file: a save of a file changed since, a publish or discard of a draft
changed since, and anything posted for a draft published or discarded since,
is refused with StaleDraft, never applied over the other tab's work.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from lifecycle.archives import ArchiveRejected, human_bytes, normalise_path
from lifecycle.line_endings import keep_line_endings, textarea_text
from lifecycle.models import Blob, CurrentVersion, Draft
from lifecycle.publishing import PublishResult, content_limits, publish, store_blobs

REPLACEMENT_CHARACTER = "\ufffd"


class DraftError(ValueError):
    """An edit that cannot be made; the message says why."""


class StaleDraft(Exception):
    """The form was made from a page that no longer shows the draft as it is; the message says what changed.

    Another tab (or window) of the same person saved, renamed or deleted a file
    of the draft, or published or discarded it, after the page was loaded.
    Nothing was changed.
    """


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


# Which draft a form was made for, and whether it is still as the form's page showed it.


_UNSAID = (
    "This form does not say which draft, and which change of it, it was made from, so it may come "
    "from a page loaded before your draft changed."
)


def find_draft(user, module, environment, draft_id: int | None) -> Draft:
    """The user's draft that a posted form names, or StaleDraft when it is gone or is another one.

    Never starts a draft: a save for a draft published or discarded meanwhile
    must not silently become a new draft from the version now current.
    """
    draft = Draft.objects.filter(user=user, module=module, environment=environment).first()
    if draft_id is None:
        raise StaleDraft(_UNSAID)
    if draft is None or draft.pk != draft_id:
        raise StaleDraft(_gone(module, environment))
    return draft


def _gone(module, environment) -> str:
    current = (
        CurrentVersion.objects.filter(module=module, environment=environment)
        .select_related("version", "changed_by")
        .first()
    )
    now = ""
    if current is not None:
        who = current.changed_by.get_username() if current.changed_by else "someone"
        now = f" {module.name} v{current.version.number} is current there now (made current by {who})."
    return (
        f"Your draft of {module.name} in {environment.name} was published or discarded after this page "
        f"was loaded, perhaps in another tab.{now}"
    )


def _locked(draft: Draft) -> Draft:
    """The draft's row, locked until the transaction ends, so that two requests cannot both pass a check."""
    locked = Draft.objects.select_for_update().filter(pk=draft.pk).first()
    if locked is None:
        raise StaleDraft(_gone(draft.module, draft.environment))
    return locked


def _check_file(locked: Draft, path: str, revision: int | None, from_hash: str | None) -> str:
    """The file's content hash, once it is the content the form was made from."""
    digest = locked.manifest.get(path)
    if digest is None:
        if revision is not None and revision != locked.revision:
            raise StaleDraft(f"{path} was renamed or deleted in your draft after this page was loaded.")
        raise DraftError(f"{path} is not in your draft any more; it may have been renamed or deleted.")
    if from_hash is None:
        raise StaleDraft(
            f"This form does not say which content of {path} it was made from, so it may come from a page "
            "loaded before the file changed."
        )
    if digest != from_hash:
        raise StaleDraft(
            f"{path} was changed in your draft after this page was loaded, perhaps in another tab."
        )
    return digest


def _check_revision(locked: Draft, revision: int | None) -> None:
    if revision is None:
        raise StaleDraft(_UNSAID)
    if revision != locked.revision:
        raise StaleDraft(
            "Your draft was changed after this page was loaded, perhaps in another tab "
            f"(this page showed change {revision}, the draft is at change {locked.revision})."
        )


def _store(locked: Draft, draft: Draft) -> None:
    """Write the locked draft's manifest as its next revision, and show it on `draft`, the caller's copy."""
    locked.revision += 1
    locked.save(update_fields=["manifest", "revision", "updated_at"])
    draft.manifest, draft.revision, draft.updated_at = locked.manifest, locked.revision, locked.updated_at


# Text from a browser form.


def text_bytes(path: str, original: bytes | None, text: str) -> bytes:
    """The bytes to store for `text` posted from a textarea, replacing `original` (None for a new file).

    Refused (DraftError) rather than changed silently: a file that cannot make the
    round trip through a textarea (not UTF-8, or mixed line endings, see
    textarea_text), and text holding U+FFFD replacement characters the file did
    not have: they stand for bytes that were not UTF-8 and were lost on the way.
    """
    before = ""
    if original is not None:
        before = textarea_text(original)
        if before is None:
            raise DraftError(
                f"{path} is not UTF-8 text with one kind of line ending, so it cannot be edited as text "
                "without changing its bytes. Replace it by uploading a file instead."
            )
    if text.count(REPLACEMENT_CHARACTER) > before.count(REPLACEMENT_CHARACTER):
        raise DraftError(
            f"The text sent for {path} holds U+FFFD replacement characters (\ufffd), the mark of bytes "
            "that were not UTF-8 and were lost on the way; saving it would change the file. "
            "Upload the file instead."
        )
    try:
        return keep_line_endings(original, text)
    except UnicodeEncodeError:
        raise DraftError(f"The text sent for {path} is not valid Unicode.") from None


# The changes of a draft.


def save_file(draft: Draft, path: str, data: bytes, *, revision: int | None, from_hash: str | None) -> None:
    """Replace a file of the draft by `data`, if it still holds the content the form was made from."""
    _replace(draft, path, revision, from_hash, lambda original: data)


def save_text(draft: Draft, path: str, text: str, *, revision: int | None, from_hash: str | None) -> None:
    """Save text edited in the browser, with the file's line endings (see text_bytes)."""
    _replace(draft, path, revision, from_hash, lambda original: text_bytes(path, original, text))


def _replace(draft, path, revision, from_hash, make_data: Callable[[bytes], bytes]) -> None:
    if revision is None:
        raise StaleDraft(_UNSAID)
    with transaction.atomic():
        locked = _locked(draft)
        digest = _check_file(locked, path, revision, from_hash)
        data = make_data(bytes(read_file(digest).data))
        _check_size(path, data)
        locked.manifest[path] = store_blobs({path: data})[path]
        _store(locked, draft)


def add_file(draft: Draft, path: str, data: bytes) -> str:
    """Add a new file; it cannot overwrite anything, so it needs no revision."""
    path = _clean_path(path)
    _check_size(path, data)
    with transaction.atomic():
        locked = _locked(draft)
        if _taken(locked, path):
            raise DraftError(
                f"{path} already exists in this module, or a file is in the way of its folder "
                "(names are compared ignoring case)."
            )
        if len(locked.manifest) >= content_limits().max_files:
            raise DraftError(f"A module may hold at most {content_limits().max_files} files.")
        locked.manifest[path] = store_blobs({path: data})[path]
        _store(locked, draft)
    return path


def rename_file(draft: Draft, path: str, new_path: str, *, revision: int | None = None) -> str:
    """Rename a file; its content goes with it, so only a file gone since the page was loaded is stale."""
    new_path = _clean_path(new_path)
    with transaction.atomic():
        locked = _locked(draft)
        if path not in locked.manifest:
            _check_file(locked, path, revision, None)
        if new_path == path:
            return path
        if _taken(locked, new_path, ignoring=path):
            raise DraftError(
                f"{new_path} already exists in this module, or a file is in the way of its folder "
                "(names are compared ignoring case)."
            )
        locked.manifest[new_path] = locked.manifest.pop(path)
        _store(locked, draft)
    return new_path


def delete_file(
    draft: Draft, path: str, *, revision: int | None = None, from_hash: str | None = None
) -> None:
    """Delete a file; with `from_hash` (as every form sends), only if it holds the content the page showed."""
    with transaction.atomic():
        locked = _locked(draft)
        if path not in locked.manifest or from_hash is not None:
            _check_file(locked, path, revision, from_hash)
        del locked.manifest[path]
        _store(locked, draft)


def read_file(digest: str) -> Blob:
    return Blob.objects.get(hash=digest)


def draft_files(draft: Draft) -> dict[str, bytes]:
    data = dict(Blob.objects.filter(hash__in=set(draft.manifest.values())).values_list("hash", "data"))
    return {path: bytes(data[digest]) for path, digest in draft.manifest.items()}


def publish_draft(draft: Draft, comment: str, *, revision: int | None) -> PublishResult:
    """Publish the draft as its page showed it (`revision`).

    Refused with StaleDraft if the draft changed since the page was loaded, and
    with StaleEdit if the module changed in the environment since the draft
    began. On success (or "no changes") the draft is gone; on refusal it stays,
    untouched.
    """
    with transaction.atomic():
        locked = _locked(draft)
        _check_revision(locked, revision)
        result = publish(
            locked.module,
            locked.environment,
            draft_files(locked),
            user=locked.user,
            comment=comment,
            based_on=locked.base_version,
            check_stale=True,
        )
        locked.delete()
    return result


def discard_draft(draft: Draft, *, revision: int | None) -> None:
    """Throw the draft away, unless it changed since the page was loaded: that work would go with it."""
    with transaction.atomic():
        _check_revision(_locked(draft), revision)
        Draft.objects.filter(pk=draft.pk).delete()
