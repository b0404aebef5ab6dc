"""Webhook delivery against real HTTP receivers on 127.0.0.1 (the tests set ALLOW_PRIVATE_WEBHOOKS).

The receiver is the example of docs/agent.md, read from there and run as is: it
verifies the signature and the timestamp, answers 202, then reports to the
callback URL of the live server with an agent token. Failing receivers (500, a
closed port, no answer, a redirect) leave their attempts on the deployment, which
ends with errors once the attempts are spent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import types
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from lifecycle.delivery import agent_tokens, confirming, webhooks
from lifecycle.delivery.desired import desired_state
from lifecycle.deploying.running import launch, run_deployment, start_deployment
from lifecycle.deploying.validation import validate
from lifecycle.models import Delivery, DeliveryAttempt, Deployment, Environment
from tests.factories import make_environments, publish_files, released_application

ROOT = Path(__file__).resolve().parents[2]
SECRET = "webhook-secret-for-tests"
WAIT = 30  # seconds a test waits for a receiver's thread before failing: never reached when it works


def example_receiver() -> types.ModuleType:
    """The `webhook_receiver.py` of docs/agent.md, compiled from the document itself."""
    text = (ROOT / "docs" / "agent.md").read_text()
    start = text.index("```python\n", text.index("#### An example receiver: `webhook_receiver.py`"))
    start += len("```python\n")
    code = text[start : text.index("\n```", start)]
    module = types.ModuleType("webhook_receiver")
    exec(compile(code, "docs/agent.md (webhook_receiver.py)", "exec"), module.__dict__)  # noqa: S102
    return module


receiver_code = example_receiver()


class Receiver:
    """The example receiver in a thread on 127.0.0.1; `deploy` waits until the test lets it go on.

    The report to the callback is made only after `go`: by then the deployment that
    POSTed has committed and recorded its attempt, as a real receiver's deployment
    takes longer than that.
    """

    def __init__(self, secret=SECRET, token="", succeeded=True, output="deployed"):
        self.events, self.headers, self.reports = [], [], []
        self.go, self.reported = threading.Event(), threading.Event()
        outer = self

        class Server(receiver_code.Receiver):
            def process_request(self, request, client_address):
                outer.connections += 1
                super().process_request(request, client_address)

            def check(self, timestamp, signature, body):
                refusal = super().check(timestamp, signature, body)
                if refusal is None:  # before the answer, so the test sees it once the POST returned
                    outer.events.append(json.loads(body))
                return refusal

            def apply(self, event):
                if not outer.go.wait(WAIT) or outer.closing:
                    return None  # the test is over: nobody listens at its callback any more
                status = super().apply(event)
                outer.reports.append(status)
                outer.reported.set()
                return status

        class Handler(receiver_code.Handler):
            def do_POST(self):
                outer.headers.append(dict(self.headers))
                super().do_POST()

            def log_message(self, *args):
                pass

        def deploy(event):
            return succeeded, output

        self.connections, self.closing = 0, False
        self.server = Server(("127.0.0.1", 0), secret, token, deploy)
        self.server.RequestHandlerClass = Handler
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/stageboard"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.closing = True
        self.go.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def setup(transactional_db):
    """Development to Production; Shop released everywhere as 0.3, then changed in Development."""
    environments = make_environments()
    application, modules, _ = released_application("Shop", environments, module_names=("Core", "Web"))
    for module in modules:
        publish_files(module, environments[0], {"main.py": f"# {module.name}\nprint('newer')\n"})
    user = User.objects.create_superuser("release-manager", password="x")
    return types.SimpleNamespace(environments=environments, application=application, user=user)


def make_webhook(environment, url, secret=SECRET):
    environment.delivery, environment.webhook_url, environment.webhook_secret = Delivery.WEBHOOK, url, secret
    environment.save(update_fields=["delivery", "webhook_url", "webhook_secret"])
    return environment


def deploy_into_qa(setup) -> Deployment:
    """Tag & Deploy Shop from Development into Quality Assurance, as the browser does (the worker runs it)."""
    dev, qa = setup.environments[0], Environment.objects.get(pk=setup.environments[1].pk)
    validation = validate(dev, qa, [setup.application])
    deployment = start_deployment(
        dev, qa, [setup.application], user=setup.user, fingerprint=validation.fingerprint
    )
    launch(deployment)
    deployment.refresh_from_db()
    return deployment


def attempts(deployment):
    return list(
        DeliveryAttempt.objects.filter(deployment=deployment).values_list("number", "status_code", "error")
    )


def log(deployment):
    return [line.message for line in deployment.log_lines.order_by("at", "id")]


def signed(body: bytes, secret=SECRET, timestamp=None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "Stageboard-Timestamp": timestamp,
        "Stageboard-Signature": webhooks.signature(secret, timestamp, body),
    }


def post(url, body, headers):
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# The whole loop: switch, signed POST, 202, the receiver's report to the callback.


@pytest.mark.parametrize(
    ("succeeded", "output", "status"),
    [
        (True, "deployed 2 modules", Deployment.Status.FINISHED),
        (False, "migration 0042 failed: column exists", Deployment.Status.ERRORS),
    ],
    ids=["succeeded", "failed"],
)
def test_the_receiver_verifies_the_post_and_its_report_ends_the_deployment(
    setup, receivers, live_server, settings, succeeded, output, status
):
    settings.SITE_URL = live_server.url
    qa = setup.environments[1]
    receiver = receivers(succeeded=succeeded, output=output)
    make_webhook(qa, receiver.url)
    _, receiver.server.token = agent_tokens.create(qa, "webhook receiver")

    deployment = deploy_into_qa(setup)

    # Switched, posted once, accepted: waiting for the receiver's report.
    assert deployment.status == Deployment.Status.WAITING
    assert attempts(deployment) == [(1, 202, "")]
    assert "Webhook accepted by 127.0.0.1 (HTTP 202)." in log(deployment)
    (event,) = receiver.events
    assert event == {
        "event": "deployment",
        "deployment": deployment.pk,
        "environment": "Quality Assurance",
        "state": desired_state(Environment.objects.get(pk=qa.pk)),
        "callback": f"{live_server.url}/api/v1/agent/deliveries/{deployment.pk}",
    }
    assert {"name": "Shop", "version": "0.4"}.items() <= event["state"]["applications"][0].items()
    (headers,) = receiver.headers
    assert headers["Content-Type"] == "application/json"
    assert abs(int(headers["Stageboard-Timestamp"]) - time.time()) < 300

    receiver.go.set()
    assert receiver.reported.wait(WAIT)
    assert receiver.reports == [200]
    deployment.refresh_from_db()
    assert deployment.status == status
    assert deployment.finished_at is not None
    assert any(output in line for line in log(deployment))
    # The same report again finds the deployment over.
    assert receiver_code.report(event["callback"], receiver.server.token, succeeded, output) == 409


def test_a_callback_with_another_environments_token_is_refused(setup, receivers, live_server, settings):
    settings.SITE_URL = live_server.url
    qa, production = setup.environments[1], setup.environments[3]
    make_webhook(production, "http://127.0.0.1:9/unused")
    _, other_token = agent_tokens.create(production, "production's receiver")
    receiver = receivers(token=other_token)
    make_webhook(qa, receiver.url)

    deployment = deploy_into_qa(setup)
    receiver.go.set()
    assert receiver.reported.wait(WAIT)

    assert receiver.reports[0] in (403, 404)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.WAITING


# Receivers that fail: every attempt is recorded, then the deployment ends with errors.


def one_shot_server(answer: bytes):
    """Answers the first request with `answer`, then closes its port: later attempts are refused."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen = []

    def serve():
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(WAIT)
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            seen.append(request)
            listener.close()  # before answering: the retry that follows finds the port closed
            connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}/hook", seen, thread


def test_a_500_then_a_closed_port_gives_up_after_three_attempts(setup):
    url, seen, thread = one_shot_server(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 21\r\n\r\ndatabase is read-only"
    )
    qa = make_webhook(setup.environments[1], url)

    deployment = deploy_into_qa(setup)
    thread.join(WAIT)

    assert len(seen) == 1
    assert seen[0].startswith(b"POST /hook HTTP/1.1\r\n")
    assert attempts(deployment) == [
        (1, 500, "The receiver answered HTTP 500: database is read-only"),
        (2, None, f"No connection to 127.0.0.1:{url.split(':')[2].split('/')[0]}: connection refused."),
        (3, None, f"No connection to 127.0.0.1:{url.split(':')[2].split('/')[0]}: connection refused."),
    ]
    assert deployment.status == Deployment.Status.ERRORS
    assert deployment.finished_at is not None
    lines = log(deployment)
    assert any("Webhook attempt 1 failed: The receiver answered HTTP 500" in line for line in lines)
    assert any("gave up after 3 attempts" in line for line in lines)
    assert DeliveryAttempt.objects.filter(deployment=deployment, url=url).count() == 3
    assert qa.pk == deployment.target_id


def test_retry_after_giving_up_posts_again_and_numbers_on(setup, receivers):
    listener = socket.create_server(("127.0.0.1", 0))
    closed_port = listener.getsockname()[1]
    listener.close()
    qa = make_webhook(setup.environments[1], f"http://127.0.0.1:{closed_port}/hook")
    deployment = deploy_into_qa(setup)
    assert deployment.status == Deployment.Status.ERRORS
    assert [a[0] for a in attempts(deployment)] == [1, 2, 3]

    # Still down: three attempts more (a Retry starts a new round of them), then errors again.
    confirming.retry(deployment, setup.user)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.ERRORS
    assert [a[0] for a in attempts(deployment)] == [1, 2, 3, 4, 5, 6]
    assert sum("gave up after 3 attempts" in line for line in log(deployment)) == 2

    receiver = receivers()
    make_webhook(qa, receiver.url)  # the receiver is up now
    confirming.retry(deployment, setup.user)

    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.WAITING
    assert attempts(deployment)[6:] == [(7, 202, "")]
    assert len(receiver.events) == 1


def test_a_wrong_secret_is_refused_by_the_example_receiver(setup, receivers):
    receiver = receivers(secret="the receiver's secret")
    make_webhook(setup.environments[1], receiver.url, secret="another secret")

    deployment = deploy_into_qa(setup)

    assert [a[:2] for a in attempts(deployment)] == [(1, 401), (2, 401), (3, 401)]
    assert attempts(deployment)[0][2] == "The receiver answered HTTP 401: the signature does not match"
    assert receiver.events == []
    assert deployment.status == Deployment.Status.ERRORS


def test_a_redirect_is_not_followed(setup, receivers):
    target = receivers()
    url, seen, thread = one_shot_server(
        f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target.url}\r\nContent-Length: 0\r\n\r\n".encode()
    )
    make_webhook(setup.environments[1], url)

    deployment = deploy_into_qa(setup)
    thread.join(WAIT)

    assert attempts(deployment)[0] == (1, 307, "The receiver answered HTTP 307 (redirects are not followed).")
    assert target.connections == 0


def test_a_receiver_that_never_answers_is_cut_off(setup, monkeypatch):
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.2)
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does) and never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    make_webhook(setup.environments[1], url)
    try:
        deployment = deploy_into_qa(setup)
    finally:
        listener.close()
    assert [a[1:] for a in attempts(deployment)] == [(None, "127.0.0.1 did not answer within 0.2 s.")] * 3


def test_a_receiver_that_drips_its_answer_is_cut_off(setup, monkeypatch):
    """Each byte within the read timeout, the whole answer never: the exchange has its own limit."""
    monkeypatch.setattr(webhooks, "EXCHANGE_SECONDS", 0.5)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        listener.settimeout(WAIT)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\n")
                while not stop.is_set():
                    try:
                        connection.sendall(b"X-Slow: a\r\n")
                    except OSError:
                        break
                    stop.wait(0.05)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    make_webhook(setup.environments[1], f"http://127.0.0.1:{listener.getsockname()[1]}/hook")
    try:
        deployment = deploy_into_qa(setup)
    finally:
        stop.set()
        listener.close()
    assert [a[1:] for a in attempts(deployment)] == [(None, "127.0.0.1 took more than 0.5 s to answer.")] * 3
    assert deployment.status == Deployment.Status.ERRORS


# Server-side request forgery: checked again at every send, and the connection goes where the check looked.


def test_a_private_address_is_refused_at_the_send_without_connecting(setup, receivers, settings):
    receiver = receivers()
    make_webhook(setup.environments[1], receiver.url)  # saved while private webhooks were allowed
    settings.ALLOW_PRIVATE_WEBHOOKS = False

    deployment = deploy_into_qa(setup)

    assert receiver.connections == 0
    (first, *_) = attempts(deployment)
    assert first[:2] == (1, None)
    assert "The webhook host 127.0.0.1 is a loopback address" in first[2]
    assert deployment.status == Deployment.Status.ERRORS


def test_the_connection_goes_to_the_address_checked(setup, receivers, hooks_example_test):
    """The name is resolved once, by the guard; the Host header still names it."""
    receiver = receivers()
    port = receiver.server.server_address[1]
    make_webhook(setup.environments[1], f"http://hooks.example.test:{port}/hooks/stageboard")

    deployment = deploy_into_qa(setup)

    assert attempts(deployment) == [(1, 202, "")]
    assert hooks_example_test == ["hooks.example.test"]
    assert receiver.headers[0]["Host"] == f"hooks.example.test:{port}"


@pytest.fixture
def tls_receiver(receivers, tmp_path):
    """The example receiver over TLS, with a self-signed certificate for hooks.example.test."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: it makes the test's certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=hooks.example.test"]
        + ["-addext", "subjectAltName=DNS:hooks.example.test"],
        check=True,
        capture_output=True,
    )
    receiver = receivers()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    receiver.cert = cert
    return receiver


@pytest.fixture
def hooks_example_test(monkeypatch):
    """hooks.example.test resolves to 127.0.0.1; the names it was asked for are listed."""
    real, asked = socket.getaddrinfo, []

    def resolve(host, *args, **kwargs):
        if host == "hooks.example.test":
            asked.append(host)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return asked


def test_https_is_verified_against_the_urls_host_over_the_checked_address(
    setup, tls_receiver, hooks_example_test, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_receiver.cert))  # trust the test's certificate
    port = tls_receiver.server.server_address[1]
    make_webhook(setup.environments[1], f"https://hooks.example.test:{port}/hooks/stageboard")

    deployment = deploy_into_qa(setup)

    assert attempts(deployment) == [(1, 202, "")]
    assert hooks_example_test == ["hooks.example.test"]
    assert tls_receiver.headers[0]["Host"] == f"hooks.example.test:{port}"
    assert "Webhook accepted by hooks.example.test (HTTP 202)." in log(deployment)


def test_an_untrusted_certificate_is_a_failed_attempt(setup, tls_receiver, hooks_example_test):
    port = tls_receiver.server.server_address[1]
    make_webhook(setup.environments[1], f"https://hooks.example.test:{port}/hooks/stageboard")

    deployment = deploy_into_qa(setup)

    (first, *_) = attempts(deployment)
    assert first[:2] == (1, None)
    assert first[2].startswith("The TLS certificate of hooks.example.test is not valid: self-signed")
    assert tls_receiver.events == []


def test_a_certificate_for_another_name_is_a_failed_attempt(setup, tls_receiver, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_receiver.cert))
    port = tls_receiver.server.server_address[1]
    make_webhook(setup.environments[1], f"https://127.0.0.1:{port}/hooks/stageboard")

    deployment = deploy_into_qa(setup)

    (first, *_) = attempts(deployment)
    assert first[2].startswith("The TLS certificate of 127.0.0.1 is not valid: IP address mismatch")
    assert tls_receiver.events == []


# Retries are deferred by a backend that can wait, and stop at the deadline.


@pytest.fixture
def database_tasks(settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def waiting_deployment(setup, url):
    """A deployment into QA switched by the worker, its first webhook attempt enqueued, not made."""
    make_webhook(setup.environments[1], url)
    dev, qa = setup.environments[0], setup.environments[1]
    validation = validate(dev, qa, [setup.application])
    deployment = start_deployment(
        dev, qa, [setup.application], user=setup.user, fingerprint=validation.fingerprint
    )
    return run_deployment(deployment.pk)


def deliveries_enqueued():
    return [
        (row.args_kwargs["args"], row.run_after)
        for row in DBTaskResult.objects.filter(task_path="lifecycle.tasks.deliver_webhook").order_by(
            "enqueued_at"
        )
    ]


def test_a_failed_attempt_enqueues_the_next_after_its_backoff(setup, database_tasks):
    url, seen, thread = one_shot_server(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    deployment = waiting_deployment(setup, url)
    assert deployment.status == Deployment.Status.WAITING
    assert [args for args, _ in deliveries_enqueued()] == [[deployment.pk, 1]]

    before = timezone.now()
    assert webhooks.deliver(deployment.pk, 1) == "failed"
    after = timezone.now()
    thread.join(WAIT)

    assert attempts(deployment) == [(1, 503, "The receiver answered HTTP 503.")]
    (_, first), (args, run_after) = deliveries_enqueued()
    assert args == [deployment.pk, 2]
    assert before + timedelta(seconds=5) <= run_after <= after + timedelta(seconds=5)
    assert "Webhook attempt 1 failed: The receiver answered HTTP 503. Next attempt in 5 s." in log(deployment)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.WAITING

    # The same attempt run twice (a worker retried the task) posts nothing more.
    assert webhooks.deliver(deployment.pk, 1) == "already attempted"
    assert len(attempts(deployment)) == 1

    # Attempt 2 finds the port closed; the deadline is nearer than its backoff: it gives up.
    Deployment.objects.filter(pk=deployment.pk).update(
        delivery_deadline=timezone.now() + timedelta(seconds=9)
    )
    assert webhooks.deliver(deployment.pk, 2) == "gave up"
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.ERRORS
    assert len(deliveries_enqueued()) == 2
    assert any("gave up after 2 attempts" in line for line in log(deployment))


def test_a_bug_while_sending_is_a_failed_attempt_not_one_forever_in_flight(
    setup, database_tasks, receivers, monkeypatch
):
    receiver = receivers()
    deployment = waiting_deployment(setup, receiver.url)

    def broken(deployment):
        raise RuntimeError("a bug building the body")

    monkeypatch.setattr(webhooks, "event", broken)
    assert webhooks.deliver(deployment.pk, 1) == "failed"
    ((number, status_code, error),) = attempts(deployment)
    assert (number, status_code) == (1, None) and "RuntimeError" in error
    assert receiver.connections == 0
    assert [args for args, _ in deliveries_enqueued()][-1] == [deployment.pk, 2]  # Retried, as any failure.


def test_nothing_is_posted_for_a_deployment_no_longer_waiting(setup, database_tasks, receivers):
    receiver = receivers()
    deployment = waiting_deployment(setup, receiver.url)
    Deployment.objects.filter(pk=deployment.pk).update(status=Deployment.Status.FINISHED)

    assert webhooks.deliver(deployment.pk, 1) == "not waiting"
    assert receiver.connections == 0
    assert attempts(deployment) == []


def test_an_attempt_another_worker_claimed_is_not_posted_twice(setup, database_tasks, receivers):
    """Two workers running the same attempt at once: the attempt's row is claimed before the POST."""
    receiver = receivers()
    deployment = waiting_deployment(setup, receiver.url)
    # What the other worker wrote the moment before it posted.
    DeliveryAttempt.objects.create(deployment=deployment, number=1, at=timezone.now(), url=receiver.url)

    assert webhooks.deliver(deployment.pk, 1) == "already attempted"
    assert receiver.connections == 0
    # Two claims made at the same moment cannot both be written: the database refuses the second.
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliveryAttempt.objects.create(deployment=deployment, number=1, at=timezone.now(), url="x")


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 5), (2, 10), (3, 20), (4, 40), (5, 80), (6, 160), (7, 300), (8, 300), (500, 300)],
)
def test_backoff_doubles_up_to_five_minutes(attempt, seconds):
    assert webhooks.backoff_seconds(attempt) == seconds


# The example receiver's checks, request by request.


@pytest.fixture
def bare_receiver(receivers, db):
    return receivers()


def test_the_example_receiver_accepts_a_fresh_signed_request(bare_receiver):
    body = json.dumps({"event": "ping", "callback": "http://127.0.0.1:9/"}).encode()
    assert post(bare_receiver.url, body, signed(body)) == (202, "accepted")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda body: signed(body, secret="not the secret"), "the signature does not match"),
        (lambda body: signed(body + b" "), "the signature does not match"),
        (lambda body: signed(body, timestamp=int(time.time()) - 301), "more than 5 minutes away"),
        (lambda body: signed(body, timestamp=int(time.time()) + 301), "more than 5 minutes away"),
        (
            lambda body: {**signed(body), "Stageboard-Signature": "sha256=" + "0" * 64},
            "the signature does not match",
        ),
        (lambda body: {**signed(body), "Stageboard-Timestamp": ""}, "no Stageboard-Timestamp header"),
        (lambda body: {"Content-Type": "application/json"}, "no Stageboard-Timestamp header"),
    ],
    ids=[
        "wrong-secret",
        "body-changed",
        "old-timestamp",
        "future-timestamp",
        "forged",
        "no-timestamp",
        "unsigned",
    ],
)
def test_the_example_receiver_refuses(bare_receiver, headers, reason):
    body = json.dumps({"event": "deployment", "callback": "http://127.0.0.1:9/"}).encode()
    status, text = post(bare_receiver.url, body, headers(body))
    assert status == 401
    assert reason in text
    assert bare_receiver.events == []


def test_the_example_receiver_refuses_a_replay_within_the_window(bare_receiver):
    body = json.dumps({"event": "ping", "callback": "http://127.0.0.1:9/"}).encode()
    headers = signed(body)
    assert post(bare_receiver.url, body, headers)[0] == 202
    assert post(bare_receiver.url, body, headers) == (401, "this request was received before (a replay)")


def test_a_signature_is_hmac_sha256_of_the_timestamp_dot_body():
    body = b'{"event":"deployment"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.signature("k", "1700000000", body) == f"sha256={expected}"
    assert receiver_code.verify("k", "1700000000", f"sha256={expected}", body, now=1700000000) is None
    assert receiver_code.verify("k", "1700000000", f"sha256={expected}", body, now=1700000301) is not None


# The deployment's page lists the attempts.


def test_the_deployment_page_lists_the_attempts(setup, client):
    url, _, thread = one_shot_server(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nnope")
    make_webhook(setup.environments[1], url)
    deployment = deploy_into_qa(setup)
    thread.join(WAIT)
    client.force_login(setup.user)

    page = client.get(reverse("lifecycle:deployment", args=[deployment.pk])).content.decode()

    assert "Delivery attempts" in page
    assert "HTTP 500" in page
    assert "The receiver answered HTTP 500: nope" in page
    assert "connection refused" in page
    assert page.count('class="delivery-attempt') == 3
    # The log's refresh brings the attempts too.
    url = reverse("lifecycle:deployment", args=[deployment.pk])
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment.content.decode().count('class="delivery-attempt') == 3
