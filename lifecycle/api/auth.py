"""Personal API tokens for /api/v1: `Authorization: Bearer sb_…` acts as the token's owner.

The view then sees the owner as `request.user` (and the ApiToken as `request.auth`), so it
checks exactly the owner's access, now, through the same domain functions as the browser.
Sessions are never consulted and no cookie is set, so there is nothing for CSRF to protect.

A read-only token may only read: anything but GET and HEAD answers 403 `read_only_token`.
An expired token answers 401 like an unknown one, and says it expired.
"""

from __future__ import annotations

from datetime import UTC

from django.contrib.auth.models import AnonymousUser
from ninja.security import HttpBearer

from lifecycle import tokens
from lifecycle.api.problems import BEARER_CHALLENGE, Problem

READING_METHODS = {"GET", "HEAD"}


class TokenAuth(HttpBearer):
    def __call__(self, request):
        # Sessions never count: a browser signed in without a token is as anonymous as curl.
        request.user = AnonymousUser()
        return super().__call__(request)

    def authenticate(self, request, token: str):
        found = tokens.find(token.strip())
        if found is None:
            raise _invalid("The API token is not valid: it is mistyped, revoked, or its user is deactivated.")
        if found.is_expired:
            expired = found.expires_at.astimezone(UTC)
            raise _invalid(
                f"The API token {found.prefix}… expired on {expired:%Y-%m-%d %H:%M} UTC. "
                "Create a new one on your API tokens page."
            )
        if found.read_only and request.method not in READING_METHODS:
            raise Problem(
                403,
                "read_only_token",
                f"The API token {found.prefix}… is read-only: it may only read (GET), not {request.method}.",
            )
        request.user = found.user
        return found


def _invalid(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        detail,
        headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_token"'},
    )


token_auth = TokenAuth()
