"""Personal API tokens: made by their owner, stored only as a hash, revoked but never reused.

A token is `sb_` followed by 40 random URL-safe characters. Only its SHA-256 is
stored, so a leaked database does not leak tokens; the raw token is returned
once, by `create_token`, and never again. Authentication hashes what the client
sent and looks the hash up through the unique index: nothing secret is compared
character by character, so response times say nothing about a valid token.

A token acts with all its owner's rights, so nobody makes one for someone
else: that would hand the owner's rights to whoever made it. The owner makes
it on their API tokens page; the admin only lists and revokes.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from lifecycle import audit
from lifecycle.models import ApiToken, AuditEvent

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "sb_"
PREFIX_LENGTH = 12  # "sb_" and 9 random characters: enough to tell tokens apart in a list.
MAX_TOKEN_LENGTH = 200  # Anything longer is not one of ours; don't bother hashing it.
# last_used_at is a hint for people, not an audit log: one write a minute per token is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(owner, name: str, *, read_only: bool = False, expires_at=None) -> tuple[ApiToken, str]:
    """`owner` makes themselves a token; return it and the raw token, which is never available again.

    A `read_only` token may only read (the API answers 403 to anything but GET and HEAD); from
    `expires_at` on (a moment in the future, or None for never) it answers 401.

    The owner is the one acting: within a request, anyone else signed in is
    refused, whichever page, form or endpoint calls this.
    """
    actor = audit.acting_user()
    if actor is not None and actor.pk != owner.pk:
        raise PermissionDenied(
            "Nobody makes an API token for someone else: its owner makes it on their API tokens page."
        )
    name = (name or "").strip()
    if not name:
        raise ValueError("Give the token a name, so you can recognise it later.")
    max_length = ApiToken._meta.get_field("name").max_length
    if len(name) > max_length:
        raise ValueError(f"A token name has at most {max_length} characters.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("The expiry date must be in the future.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(30)
    token = ApiToken.objects.create(
        user=owner,
        name=name,
        prefix=raw[:PREFIX_LENGTH],
        token_hash=hash_token(raw),
        read_only=read_only,
        expires_at=expires_at,
    )
    logger.info("API token %s (%s) created by its owner %s", token.pk, token.prefix, owner.get_username())
    audit.record(
        AuditEvent.Action.TOKEN_CREATED,
        user=owner,
        summary=f"API token {name!r} ({token.prefix}…) created by its owner {owner.get_username()}",
        after={
            "token": token.prefix,
            "name": name,
            "owner": owner.get_username(),
            "read_only": read_only,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return token, raw


def authenticate(raw: str):
    """The active user owning the active, unexpired token `raw`, or None."""
    token = find(raw)
    if token is None or token.is_expired:
        return None
    return token.user


def find(raw: str) -> ApiToken | None:
    """The unrevoked token `raw` of an active user, expired or not (the caller says which), or None.

    Using an unexpired token records when it was last used.
    """
    if not raw or len(raw) > MAX_TOKEN_LENGTH or not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None or token.is_expired:
        return token
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def revoke(token: ApiToken, by_user) -> bool:
    """Revoke `token` for good. Its owner may, and staff allowed to change tokens.

    Returns False when it was already revoked (the first revocation time is kept).
    """
    if token.user_id != by_user.pk and not by_user.has_perm("lifecycle.change_apitoken"):
        raise PermissionDenied("You can only revoke your own tokens.")
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    if updated:
        logger.info("API token %s (%s) revoked by %s", token.pk, token.prefix, by_user.get_username())
        audit.record(
            AuditEvent.Action.TOKEN_REVOKED,
            user=by_user,
            summary=f"API token {token.name!r} ({token.prefix}…) of {token.user.get_username()} revoked",
            before={"token": token.prefix, "revoked": False},
            after={"token": token.prefix, "revoked": True},
        )
    return bool(updated)
