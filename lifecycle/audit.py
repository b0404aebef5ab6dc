"""Recording the audit trail: one call per action, wherever it happens.

The request's user and address reach the domain code through a context
variable set by AuditMiddleware, so publish, deploy and merge record where
they came from without every caller passing the request along. The command
line records its user and no address.
"""

from __future__ import annotations

import contextvars

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.utils import timezone

from lifecycle.models import AuditEvent

_client_ip: contextvars.ContextVar[str | None] = contextvars.ContextVar("stageboard_client_ip", default=None)


def client_ip(request) -> str | None:
    """The client's address: the proxy's X-Forwarded-For only when the proxy is trusted."""
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _client_ip.set(client_ip(request))
        try:
            return self.get_response(request)
        finally:
            _client_ip.reset(token)


def _name(value):
    return getattr(value, "name", value) or ""


def record(
    action, *, user=None, environment=None, application=None, summary, before=None, after=None, ip=None
):
    """Append one event to the trail."""
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return AuditEvent.objects.create(
        at=timezone.now(),
        action=action,
        user=user if authenticated else None,
        username=user.get_username() if authenticated else (user if isinstance(user, str) else ""),
        ip=ip or _client_ip.get(),
        environment=_name(environment)[:60],
        application=_name(application)[:100],
        summary=summary,
        before=before,
        after=after,
    )


@receiver(user_login_failed)
def record_login_failure(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    record(
        AuditEvent.Action.LOGIN_FAILED,
        user=username,
        summary=f"Failed login as {username!r}",
        ip=client_ip(request) if request is not None else None,
    )
