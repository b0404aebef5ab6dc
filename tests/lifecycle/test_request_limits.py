"""What the server reads of a request: form limits that fit the module limits, and chunked API uploads."""

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as live_settings
from django.test.client import ClientHandler, RequestFactory
from django.urls import reverse

from lifecycle.models import CurrentVersion, ModuleVersion
from lifecycle.tokens import create_token
from tests.editor_forms import editor_fields
from tests.factories import make_application
from tests.zips import make_zip

ROOT = Path(__file__).resolve().parents[2]
FILES = {"main.py": b"print('chunked')\n", "lib/util.py": b"x = 1\n"}


def test_the_form_limit_fits_a_file_at_the_module_limit_sent_by_a_browser():
    # A browser sends every line break of a textarea as CRLF: an LF-only file can double.
    assert live_settings.DATA_UPLOAD_MAX_MEMORY_SIZE >= 2 * live_settings.MODULE_MAX_FILE_BYTES


@pytest.mark.django_db
def test_a_form_over_the_request_limit_gets_a_413_page(client, developer, environments, settings):
    _, (module,) = make_application("Shop", ["Cart"])
    dev = environments[0]
    client.force_login(developer)
    fields = editor_fields(client, module, dev)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = client.post(
        reverse("lifecycle:editor-add", args=[module.pk, dev.pk]),
        {**fields, "path": "big.py", "content": "x" * 20_000},
    )
    assert response.status_code == 413
    html = response.content.decode()
    assert "This request is too large" in html
    assert "over the 9.8 KB Stageboard reads from one request, so nothing was saved" in html
    assert "at most 5 MB" in html


@pytest.mark.django_db
def test_an_api_request_over_the_limit_gets_a_problem(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = client.post(
        "/api/v1/modules/Cart/environments/Development/versions",
        "a=" + "x" * 200,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "request_too_large"


@pytest.mark.django_db
def test_other_bad_requests_stay_400(client):
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400


@pytest.mark.django_db
def test_an_api_request_django_cannot_parse_gets_a_problem_400(client):
    """A multipart body without its boundary fails while a middleware reads the form: still a problem."""
    response = client.post(
        "/api/v1/modules/Cart/environments/Development/versions", b"x", content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "bad_request"


# Chunked uploads: no Content-Length, so Django's request stream reads nothing.


def chunked_environ(path, body, token, *, terminated=True):
    """A WSGI environ as a server passes a de-chunked body: wsgi.input, no CONTENT_LENGTH."""
    environ = RequestFactory()._base_environ(
        PATH_INFO=path,
        REQUEST_METHOD="POST",
        CONTENT_TYPE="application/zip",
        HTTP_TRANSFER_ENCODING="chunked",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(body)
    if terminated:
        environ["wsgi.input_terminated"] = True  # as gunicorn says of the bodies it de-chunks
    return environ


@pytest.mark.django_db
def test_it_reads_a_chunked_upload_through_the_wsgi_stack(developer, environments):
    _, (module,) = make_application("Shop", ["Cart"])
    _, token = create_token(developer, "ci")
    path = f"/api/v1/modules/{module.name}/environments/{environments[0].name}/versions"
    response = ClientHandler()(chunked_environ(path, make_zip(FILES), token))
    assert response.status_code == 201, response.content
    version = CurrentVersion.objects.get(module=module).version
    assert {f.path: bytes(f.blob.data) for f in version.files.select_related("blob")} == FILES


@pytest.mark.django_db
def test_a_chunked_upload_over_the_limit_is_refused_without_reading_it_all(developer, environments, settings):
    settings.MODULE_MAX_ARCHIVE_BYTES = 1000
    _, (module,) = make_application("Shop", ["Cart"])
    _, token = create_token(developer, "ci")
    body = io.BytesIO(b"PK" + b"x" * 100_000)
    environ = chunked_environ(f"/api/v1/modules/{module.name}/environments/Development/versions", b"", token)
    environ["wsgi.input"] = body
    response = ClientHandler()(environ)
    assert response.status_code == 413
    assert body.tell() <= 1001
    assert not ModuleVersion.objects.exists()


@pytest.mark.django_db
def test_a_server_that_cannot_end_a_chunked_body_asks_for_a_length(developer, environments):
    _, (module,) = make_application("Shop", ["Cart"])
    _, token = create_token(developer, "ci")
    path = f"/api/v1/modules/{module.name}/environments/Development/versions"
    response = ClientHandler()(chunked_environ(path, make_zip(FILES), token, terminated=False))
    assert response.status_code == 411
    assert "Content-Length" in json.loads(response.content)["detail"]
    assert not ModuleVersion.objects.exists()


# The real thing: curl-like chunked upload to gunicorn, which de-chunks the body.

SETUP = """
from lifecycle.models import AccessLevel
from lifecycle.tokens import create_token
from tests.factories import make_application, make_environments, make_user
dev = make_environments()[0]
user = make_user("ci", {dev: AccessLevel.PUBLISH})
make_application("Shop", ["Cart"])
print(create_token(user, "ci")[1])
"""


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def gunicorn(tmp_path):
    """gunicorn serving Stageboard on a database of its own, and a token that may publish to Development."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUNICORN")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DEBUG="false",
        SECRET_KEY="chunked-upload-test-secret-key-0123456789-abcdefghij",
        HTTPS="false",
        STATIC_MANIFEST="false",
        ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    token = subprocess.run(
        [*manage, "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--config",
                "/dev/null",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_answering(port, process, log)
        yield port, token
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def _wait_until_answering(port, process, log):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/login/")
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer: {log.read_text(errors='replace')}")


def test_gunicorn_reads_a_chunked_upload(gunicorn):
    port, token = gunicorn
    data = make_zip(FILES)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    # A body given as an iterable, with no Content-Length: http.client sends it chunked.
    connection.request(
        "POST",
        "/api/v1/modules/Shop-Cart/environments/Development/versions?comment=chunked",
        body=iter([data[:100], data[100:]]),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 201, body
    assert body["version"] == 1 and body["created"] is True


@pytest.mark.django_db
def test_a_form_with_more_fields_than_django_reads_gets_a_page_that_says_so(client, developer, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    client.force_login(developer)
    response = client.post(reverse("hotfixes:merge"), {f"take-file-1-{n}": "on" for n in range(20)})
    assert response.status_code == 413
    html = response.content.decode()
    assert "more than 10 fields" in html and "nothing was saved" in html
