"""Agent tokens: one environment's credential for its agents and webhook receiver.

A token is `sba_` followed by 40 random URL-safe characters. As with personal
tokens (lifecycle/tokens.py), only its SHA-256 is stored and the raw token is
returned once, by `create`; authentication hashes what the client sent and
looks the hash up through the unique index, so nothing secret is compared
character by character.

An agent token belongs to an environment, not to a user: it carries nobody's
rights. It reads that environment's desired state and archives and writes its
reports and drift uploads (lifecycle/agent_api.py), and nothing else: the
personal-token API requires `sb_` and the site only knows sessions.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.utils import timezone

from lifecycle import access, audit
from lifecycle.models import AccessLevel, AgentToken, AuditEvent, Environment

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "sba_"
PREFIX_LENGTH = 12  # "sba_" and 8 random characters: enough to tell tokens apart in a list.
MAX_TOKEN_LENGTH = 200  # Anything longer is not one of ours; don't bother hashing it.
# Every request is a sign of life, but a poll every few seconds from hundreds of agents must not
# write a row each time: last_seen_at moves at most once a second (offline takes 3 intervals).
LAST_SEEN_RESOLUTION = timedelta(seconds=1)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create(environment: Environment, name: str, *, user=None) -> tuple[AgentToken, str]:
    """Make a token for `environment`'s agents; return it and the raw token, never available again.

    `user` is the staff member making it: they need the permission to add agent
    tokens and full access to the environment, since the token reads all it
    runs and its reports finish its deployments. None is the system acting, as
    `manage.py agent_token` does. An environment whose delivery is `record` has
    no agents, so it gets no token.
    """
    if user is not None:
        if not user.has_perm("lifecycle.add_agenttoken"):
            raise PermissionDenied("You may not create agent tokens.")
        access.require(user, environment, AccessLevel.VIEW)  # An environment they cannot see: 404.
        access.require(user, environment, AccessLevel.FULL)
    if not environment.delivers:
        raise ValueError(
            f"{environment.name} delivers nothing to machines (its delivery is 'record'), so it has no "
            "agents. Set its delivery to 'agent' or 'webhook' in the admin first."
        )
    name = (name or "").strip()
    if not name:
        raise ValueError("Give the token a name, such as the machine it is for.")
    max_length = AgentToken._meta.get_field("name").max_length
    if len(name) > max_length:
        raise ValueError(f"An agent token's name has at most {max_length} characters.")
    if "\x00" in name:
        raise ValueError("An agent token's name cannot hold a NUL character.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(30)
    token = AgentToken.objects.create(
        environment=environment,
        name=name,
        prefix=raw[:PREFIX_LENGTH],
        token_hash=hash_token(raw),
        created_by=user if user is not None and user.is_authenticated else None,
    )
    logger.info("Agent token %s (%s) created for %s", token.pk, token.prefix, environment.name)
    audit.record(
        AuditEvent.Action.AGENT_TOKEN_CREATED,
        user=user,
        environment=environment,
        summary=f"Agent token {name!r} ({token.prefix}…) created for {environment.name}",
        after={"token": token.prefix, "name": name, "environment": environment.name},
    )
    return token, raw


def authenticate(raw: str) -> AgentToken | None:
    """The active agent token `raw`, with its environment, in one query; None for anything else.

    It also renews the token's sign of life, at most once a second, with an
    UPDATE that matches nothing when another request renewed it meanwhile.
    """
    if not raw or len(raw) > MAX_TOKEN_LENGTH or not raw.startswith(TOKEN_PREFIX):
        return None
    # The unique index finds at most one row: no ORDER BY (which .first() would add) on the hot path.
    found = (
        AgentToken.objects.select_related("environment")
        .filter(token_hash=hash_token(raw), revoked_at__isnull=True)
        .order_by()[:1]
    )
    token = next(iter(found), None)
    if token is None:
        return None
    now = timezone.now()
    if token.last_seen_at is None or now - token.last_seen_at >= LAST_SEEN_RESOLUTION:
        AgentToken.objects.filter(
            Q(last_seen_at__isnull=True) | Q(last_seen_at__lte=now - LAST_SEEN_RESOLUTION), pk=token.pk
        ).update(last_seen_at=now)
        token.last_seen_at = now
    return token


def revoke(token: AgentToken, by_user) -> bool:
    """Revoke `token` for good: staff allowed to change agent tokens, with full access to its environment.

    Full access, as to make one: revoking stops the environment's deliveries (its deployments then
    end with errors), which a viewer of Production must not be able to do. Returns False when it was
    already revoked (the first revocation time is kept).
    """
    if not by_user.has_perm("lifecycle.change_agenttoken"):
        raise PermissionDenied("You may not revoke agent tokens.")
    access.require(by_user, token.environment, AccessLevel.VIEW)  # An environment they cannot see: 404.
    access.require(by_user, token.environment, AccessLevel.FULL)
    updated = AgentToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db(fields=["revoked_at"])
    if updated:
        environment = token.environment
        logger.info("Agent token %s (%s) revoked by %s", token.pk, token.prefix, by_user.get_username())
        audit.record(
            AuditEvent.Action.AGENT_TOKEN_REVOKED,
            user=by_user,
            environment=environment,
            summary=f"Agent token {token.name!r} ({token.prefix}…) of {environment.name} revoked",
            before={"token": token.prefix, "revoked": False},
            after={"token": token.prefix, "revoked": True},
        )
    return bool(updated)
