"""Webhook delivery: a signed POST tells a receiver what should run in its environment.

A deployment into a `webhook` environment waits (Deployment.Status.WAITING) after
its switch; the task `lifecycle.tasks.deliver_webhook` calls `deliver` for its
first attempt. Each attempt POSTs the desired state to the environment's
webhook URL, signed with its secret (docs/agent.md, "Webhook delivery"), and is
recorded as a DeliveryAttempt shown on the deployment's page:

- a 2xx answer means the receiver took it; the deployment keeps waiting until
  the receiver reports to the callback URL (lifecycle.agent_api, then
  confirming.webhook_result);
- anything else (another status, a redirect, no answer, an address refused as
  server-side request forgery) is a failed attempt: the next one is enqueued with
  exponential backoff (5 s, 10 s, 20 s ... at most 5 minutes apart) until the
  delivery deadline, then the deployment ends with errors.

The HTTP exchange never runs inside a database transaction (a row or SQLite's
write lock would be held for seconds), and it connects to the very address the
SSRF guard checked (lifecycle.delivery.addresses), so a DNS answer that changes
in between cannot send it elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from lifecycle.delivery.addresses import AddressRefused, Destination, refuse_private
from lifecycle.delivery.desired import desired_state
from lifecycle.deploying import leases
from lifecycle.models import Delivery, DeliveryAttempt, Deployment, DeploymentLogLine

logger = logging.getLogger(__name__)

# Each read or write of the socket waits at most this long, and the whole exchange at most
# EXCHANGE_SECONDS (a receiver dripping its answer byte by byte must not hold a worker).
TIMEOUT_SECONDS = 10
EXCHANGE_SECONDS = 20
# Of the receiver's answer only this much is read: the status decides, the body is for the log.
ANSWER_BYTES = 4096
# Backoff between attempts: 5 s, 10 s, 20 s ... never more than 5 minutes.
FIRST_BACKOFF_SECONDS = 5
MAX_BACKOFF_SECONDS = 300
# A task backend that cannot defer (the ImmediateBackend of the tests runs a task at once,
# inline) gets this many attempts in a row, then the delivery gives up: waiting in between
# would block the request that enqueued it.
IMMEDIATE_ATTEMPTS = 3
USER_AGENT = "Stageboard-Webhook/1"
ERROR = DeploymentLogLine.Level.ERROR


class Refused(Exception):
    """An attempt that could not be made or was not accepted; the message is for the page and the log."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


def deliver(deployment_id: int, attempt: int = 1) -> str:
    """Make attempt number `attempt` to deliver the deployment to its webhook; schedule the next on failure.

    Does nothing unless the deployment is waiting in a webhook environment and this
    attempt was not made yet (a task that runs twice makes one POST). Returns what
    happened, for the task's result.
    """
    if transaction.get_connection().in_atomic_block:
        # Called inside a transaction (tasks.enqueue defers to the commit, a direct caller may not):
        # what it delivers is not committed yet, and no HTTP call may hold a transaction open.
        transaction.on_commit(lambda: deliver(deployment_id, attempt))
        return "after commit"
    deployment = Deployment.objects.select_related("target").filter(pk=deployment_id).first()
    if deployment is None or deployment.status != Deployment.Status.WAITING:
        return "not waiting"
    environment = deployment.target
    if environment.delivery != Delivery.WEBHOOK:
        return "not a webhook environment"
    url = environment.webhook_url
    try:
        # The row claims the attempt's number before the POST: a task run twice, or by two workers at
        # once, finds it taken (one_delivery_attempt_per_number) and sends nothing.
        with transaction.atomic():
            record = DeliveryAttempt.objects.create(
                deployment=deployment, number=attempt, at=timezone.now(), url=url[:500]
            )
    except IntegrityError:
        return "already attempted"
    started = time.monotonic()
    try:
        destination = refuse_private(url)
        if not environment.webhook_secret:
            raise Refused(f"{environment.name} has no webhook secret: set one in the admin.")
        body = json.dumps(event(deployment), separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        status_code = post(destination, body, signed_headers(environment.webhook_secret, timestamp, body))
        error = ""
    except AddressRefused as refusal:
        status_code, error = None, str(refusal)
    except Refused as refusal:
        status_code, error = refusal.status_code, str(refusal)
    except Exception as unexpected:  # noqa: BLE001  (a bug must still end as a failed, retried attempt)
        logger.exception("Webhook attempt %s of deployment %s failed", attempt, deployment.pk)
        status_code, error = None, f"Stageboard failed sending it ({type(unexpected).__name__}); logged."
    record.status_code, record.error = status_code, error
    record.duration_ms = int((time.monotonic() - started) * 1000)
    record.save(update_fields=["status_code", "error", "duration_ms"])
    if not error:
        _log(deployment, f"Webhook accepted by {destination.host} (HTTP {status_code}).")
        return "accepted"
    return _after_failure(deployment, attempt, error)


def event(deployment: Deployment) -> dict:
    """The body of the POST: what should run in the deployment's environment, and where to answer."""
    environment = deployment.target
    return {
        "event": "deployment",
        "deployment": deployment.pk,
        "environment": environment.name,
        "state": desired_state(environment),
        "callback": callback_url(deployment),
    }


def callback_url(deployment: Deployment) -> str:
    return settings.SITE_URL + reverse("api:agent-delivery", args=[deployment.pk])


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """ "sha256=<hex>": HMAC-SHA256 of "<timestamp>.<body>" with the environment's webhook secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, timestamp: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Stageboard-Timestamp": timestamp,
        "Stageboard-Signature": signature(secret, timestamp, body),
    }


def backoff_seconds(attempt: int) -> int:
    """How long to wait after failed attempt number `attempt` (1, 2, 3...): 5, 10, 20 ... at most 300."""
    return min(FIRST_BACKOFF_SECONDS * 2 ** min(attempt - 1, 16), MAX_BACKOFF_SECONDS)


def post(destination: Destination, body: bytes, headers: dict[str, str]) -> int:
    """POST `body` to the checked destination; its 2xx status, or Refused saying why not.

    Connects to the addresses the guard checked (the next when one cannot be reached),
    sends the URL's host in the Host header and as the TLS server name (the certificate
    is verified against it), follows no redirect and reads at most ANSWER_BYTES of the answer.
    """
    unreachable: OSError | None = None
    for address in destination.addresses:
        try:
            return _post_to(destination, address, body, headers)
        except _Unreachable as error:
            unreachable = error.__cause__
    where = f"{destination.host}:{destination.port}"
    if isinstance(unreachable, TimeoutError):
        raise Refused(f"No connection to {where} within {TIMEOUT_SECONDS} s.")
    raise Refused(f"No connection to {where}: {_reason(unreachable)}.")


class _Unreachable(Exception):
    """This address took no connection: the host's next address may."""


def _post_to(destination: Destination, address: str, body: bytes, headers: dict[str, str]) -> int:
    connection = _connection(destination, address)
    expired = threading.Event()
    watchdog = threading.Timer(EXCHANGE_SECONDS, _cut, args=[connection, expired])
    watchdog.daemon = True
    watchdog.start()
    host = destination.host
    try:
        try:
            connection.connect()
        except ssl.SSLError:
            raise
        except OSError as error:
            raise _Unreachable() from error
        connection.request("POST", destination.target, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read(ANSWER_BYTES)
        status = response.status
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set():
            raise Refused(f"{host} took more than {EXCHANGE_SECONDS} s to answer.") from None
        raise Refused(_failure(host, error)) from None
    finally:
        watchdog.cancel()
        connection.close()
    if expired.is_set():
        # Cut in the middle of the headers or the body, http.client takes the end of input for
        # the end of the answer: a cut answer is no answer, whatever its status line said.
        raise Refused(f"{host} took more than {EXCHANGE_SECONDS} s to answer.")
    if 200 <= status < 300:
        return status
    raise Refused(_refusal(status, answer), status_code=status)


def _failure(host: str, error: Exception) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"The TLS certificate of {host} is not valid: {error.verify_message}."
    if isinstance(error, ssl.SSLError):
        return f"TLS with {host} failed: {error.reason or error}."
    if isinstance(error, TimeoutError):
        return f"{host} did not answer within {TIMEOUT_SECONDS} s."
    if isinstance(error, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return f"{host} closed the connection without answering."
    if isinstance(error, http.client.HTTPException):
        return f"{host} did not answer in HTTP ({type(error).__name__})."
    return f"Sending to {host} failed: {_reason(error)}."


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a given address; `host` is only what the Host header says."""

    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to a given address; `host` is the Host header, the TLS server name and the certificate's."""

    def __init__(self, host, port, address, timeout):
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self):
        # Held before the handshake, so the watchdog can cut a handshake that drags on too.
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.host)


def _connection(destination: Destination, address: str) -> http.client.HTTPConnection:
    kind = _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
    return kind(destination.host, destination.port, address, TIMEOUT_SECONDS)


def _cut(connection, expired: threading.Event) -> None:
    """The exchange took too long: shut the socket, which wakes the worker's blocked read."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _refusal(status: int, answer: bytes) -> str:
    text = " ".join(answer.decode("utf-8", "replace").split())[:200]
    message = f"The receiver answered HTTP {status}"
    if 300 <= status < 400:
        message += " (redirects are not followed)"
    return f"{message}: {text}" if text else f"{message}."


def _reason(error: Exception | None) -> str:
    if error is None:
        return "no address"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _after_failure(deployment: Deployment, attempt: int, error: str) -> str:
    """Log the failed attempt and enqueue the next one, or give up when it would come too late."""
    # Imported here: lifecycle.tasks imports the deployment code, which imports the delivery modules.
    from lifecycle import tasks

    wait = backoff_seconds(attempt)
    deadline = deployment.delivery_deadline or (
        deployment.started_at + timedelta(seconds=settings.DELIVERY_TIMEOUT_SECONDS)
    )
    # Attempts since the switch or the last Retry (which sets a new deadline and numbers on).
    made = DeliveryAttempt.objects.filter(
        deployment=deployment, at__gte=deadline - timedelta(seconds=settings.DELIVERY_TIMEOUT_SECONDS)
    ).count()
    next_at = timezone.now() + timedelta(seconds=wait)
    defers = tasks.deliver_webhook.get_backend().supports_defer
    if next_at >= deadline or (not defers and made >= IMMEDIATE_ATTEMPTS):
        _log(deployment, f"Webhook attempt {attempt} failed: {_sentence(error)}", ERROR)
        give_up(deployment, max(made, 1), error)
        return "gave up"
    if defers:
        _log(
            deployment,
            f"Webhook attempt {attempt} failed: {_sentence(error)} Next attempt in {wait} s.",
            DeploymentLogLine.Level.WARNING,
        )
        tasks.enqueue(tasks.deliver_webhook, deployment.pk, attempt + 1, run_after=next_at)
    else:
        _log(
            deployment,
            f"Webhook attempt {attempt} failed: {_sentence(error)} Trying again now.",
            DeploymentLogLine.Level.WARNING,
        )
        tasks.enqueue(tasks.deliver_webhook, deployment.pk, attempt + 1)
    return "failed"


def give_up(deployment: Deployment, attempts: int, error: str) -> bool:
    """End the waiting deployment with errors: no attempt was accepted, and no more will be made."""
    noun = "attempt" if attempts == 1 else "attempts"
    return leases.conclude(
        deployment,
        Deployment.Status.ERRORS,
        f"Finished with errors: the webhook of {deployment.target.name} gave up after {attempts} {noun} "
        f"(the last: {error.rstrip('.')}). "
        "Retry delivers it again; Roll back returns to the previous version.",
        from_statuses=(Deployment.Status.WAITING,),
    )


def _sentence(text: str) -> str:
    return text if text.endswith(".") else f"{text}."


def _log(deployment, message, level=DeploymentLogLine.Level.INFO):
    DeploymentLogLine.objects.create(deployment=deployment, at=timezone.now(), level=level, message=message)
