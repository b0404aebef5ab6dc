"""Recording the audit trail: one call per action, wherever it happens, and who may read it.

The request's user and address reach the domain code through context
variables set by AuditMiddleware, so publish, deploy and merge record where
they came from without every caller passing the request along. The command
line records its user and no address.
"""

from __future__ import annotations

import contextvars
import ipaddress

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.utils import timezone

from lifecycle import access
from lifecycle.models import AuditEvent

_client_ip: contextvars.ContextVar[str | None] = contextvars.ContextVar("stageboard_client_ip", default=None)
# The request itself, not its user: the API sets request.user only once the view runs.
_request: contextvars.ContextVar = contextvars.ContextVar("stageboard_request", default=None)


def _valid_ip(value) -> str | None:
    """`value` as a normalised IP address, or None when it is not one the database can store."""
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return None
    if getattr(address, "scope_id", None):  # "fe80::1%eth0": PostgreSQL's inet refuses the zone.
        return None
    return str(address)


def client_ip(request) -> str | None:
    """The client's address, as far as it can be trusted; never an error.

    With TRUSTED_PROXY_COUNT = n > 0, n proxies each append the address they
    were reached from to X-Forwarded-For, so the n-th entry from the right was
    written by our outermost proxy: everything left of it came from the client
    and may be made up. A header with fewer entries (the request bypassed a
    proxy) or a malformed entry falls back to the connection's address.
    """
    remote = _valid_ip(request.META.get("REMOTE_ADDR", ""))
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return remote
    forwarded = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < hops or not forwarded[-hops]:
        return remote
    return _valid_ip(forwarded[-hops]) or remote


def acting_user():
    """The signed-in user of the request being served, or None outside a request (command line)."""
    request = _request.get()
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ip_token = _client_ip.set(client_ip(request))
        request_token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(request_token)
            _client_ip.reset(ip_token)


def _name(value):
    return getattr(value, "name", value) or ""


def record(
    action, *, user=None, environment=None, application=None, summary, before=None, after=None, ip=None
):
    """Append one event to the trail. `user` is who acted: a user, or nobody (None)."""
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


def visible_to(user, events=None):
    """The audit rows `user` may read, the one filter of the audit page, its export and the admin.

    A row of an environment shows only to those who can view that environment.
    Account events (logins, tokens, users and groups: every row without an
    environment) tell who may do what and from where: superusers only.
    """
    events = AuditEvent.objects.all() if events is None else events
    if user.is_superuser and user.is_active:
        return events
    names = [environment.name for environment in access.visible_environments(user)]
    return events.filter(environment__in=names)


@receiver(user_login_failed)
def record_login_failure(sender, credentials, request=None, **kwargs):
    # Whoever failed is unknown: the name they tried goes in the summary, never in the user column.
    attempted = str(credentials.get("username", ""))[:150]
    record(
        AuditEvent.Action.LOGIN_FAILED,
        summary=f"Failed login as {attempted!r}",
        after={"username": attempted},
        ip=client_ip(request) if request is not None else None,
    )
