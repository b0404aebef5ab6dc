"""Login throttling: count every attempt before its password is checked, and refuse guessing.

The policy (docs/security.md) is built so that a guesser cannot lock a person out:

- one username from one address: `LOGIN_FAILURES_ALLOWED` failures within
  `LOGIN_FAILURE_WINDOW_MINUTES` lock that pair until the window has passed;
  the same person from any other address is not concerned;
- one address, whatever the usernames: `LOGIN_ADDRESS_FAILURES_ALLOWED`
  failures lock the address (guessing many accounts from one place);
- one username from everywhere: past `LOGIN_USERNAME_FAILURES_BEFORE_SLOWDOWN`
  failures, attempts from addresses the user has not logged in from lately are
  evaluated at most one per few seconds, the wait doubling up to a minute. It
  slows a guesser with many addresses to a crawl but never locks the account,
  and the user's own recent addresses are spared it.

An attempt counts as a failure from the moment it is admitted; a successful
login takes it back. Each counter is a row locked while it is read and
raised, so thirty attempts sent at once are counted one after another and at
most the allowed number reach the password check.
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from lifecycle.models import LoginAttempt

Scope = LoginAttempt.Scope

# An address the user logged in from within this time is spared the username's slowdown.
KNOWN_ADDRESS_DAYS = 30
LONGEST_SLOWDOWN_SECONDS = 60


def admit(username: str, address: str | None) -> str | None:
    """Count one attempt to log in as `username` from `address`; return why it is refused, or None.

    `username` must be exactly what authentication will receive (the login
    form's cleaned value). A refused attempt is not counted: its password is
    never checked.
    """
    now = timezone.now()
    address = address or ""
    _forget_stale(now)
    with transaction.atomic():
        # Always locked in this order (pair, address, username), so two attempts never deadlock.
        counters = [_counter(Scope.PAIR, username, address, now)]
        if address:
            counters.append(_counter(Scope.ADDRESS, "", address, now))
        counters.append(_counter(Scope.USERNAME, username, "", now))
        refusal = _refusal(*counters, now=now)
        if refusal is None:
            for counter in counters:
                counter.failures += 1
                counter.last_attempt_at = now
                counter.save(update_fields=["failures", "window_started_at", "last_attempt_at"])
    return refusal


def succeeded(username: str, address: str | None) -> None:
    """The attempt admitted last was the right password: take it back and remember the address."""
    now = timezone.now()
    address = address or ""
    with transaction.atomic():
        LoginAttempt.objects.filter(scope=Scope.PAIR, username=username, address=address).update(
            failures=0, window_started_at=now, last_success_at=now
        )
        taken_back = Q(scope=Scope.USERNAME, username=username)
        if address:
            taken_back |= Q(scope=Scope.ADDRESS, address=address)
        LoginAttempt.objects.filter(taken_back, failures__gt=0).update(failures=F("failures") - 1)


def _counter(scope, username, address, now) -> LoginAttempt:
    """The locked counter of one key, its window restarted when the last one has passed."""
    counter, _ = LoginAttempt.objects.select_for_update().get_or_create(
        scope=scope,
        username=username,
        address=address,
        defaults={"window_started_at": now, "last_attempt_at": now},
    )
    if now - counter.window_started_at >= _window():
        counter.failures = 0
        counter.window_started_at = now
    return counter


def _refusal(pair, *others, now) -> str | None:
    per_username = others[-1]
    locked = [pair] if pair.failures >= settings.LOGIN_FAILURES_ALLOWED else []
    if len(others) == 2 and others[0].failures >= settings.LOGIN_ADDRESS_FAILURES_ALLOWED:
        locked.append(others[0])
    if locked:
        until = max(counter.window_started_at for counter in locked) + _window()
        minutes = max(1, math.ceil((until - now).total_seconds() / 60))
        return (
            f"Too many failed logins. Try again in {minutes} minute{'s' if minutes != 1 else ''}, "
            "or ask an administrator."
        )
    slowdown = _slowdown(per_username.failures)
    if not slowdown or _is_known(pair, now):
        return None
    wait = slowdown - (now - per_username.last_attempt_at).total_seconds()
    if wait > 0:
        seconds = math.ceil(wait)
        return (
            "Too many failed logins for this username from elsewhere. "
            f"Try again in {seconds} second{'s' if seconds != 1 else ''}."
        )
    return None


def _slowdown(failures: int) -> float:
    """Seconds between two evaluated attempts of a username with this many failures: 2, 4, 8 … 60."""
    beyond = failures - settings.LOGIN_USERNAME_FAILURES_BEFORE_SLOWDOWN
    if beyond < 0:
        return 0
    return min(2.0 ** min(beyond + 1, 16), LONGEST_SLOWDOWN_SECONDS)


def _is_known(pair, now) -> bool:
    last_success = pair.last_success_at
    return last_success is not None and now - last_success < timedelta(days=KNOWN_ADDRESS_DAYS)


def _window() -> timedelta:
    return timedelta(minutes=settings.LOGIN_FAILURE_WINDOW_MINUTES)


def _forget_stale(now) -> None:
    """Drop counters whose window has passed, except the addresses users logged in from lately."""
    with transaction.atomic():
        # Rows another attempt holds are left for next time: waiting for them could deadlock.
        stale = (
            LoginAttempt.objects.filter(
                Q(last_attempt_at__lt=now - timedelta(days=KNOWN_ADDRESS_DAYS))
                | Q(last_attempt_at__lt=now - _window(), last_success_at__isnull=True)
            )
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        LoginAttempt.objects.filter(pk__in=list(stale)).delete()
