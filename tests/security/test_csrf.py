"""CSRF: every POST of the console needs the token; the JSON API is exempt but takes only token auth.

The token is taken from a page the way a browser gets it: the hidden form field that
`{% csrf_token %}` renders, and the `X-CSRFToken` header that base.html gives every htmx
request (`hx-headers` on <body>).
"""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from lifecycle.tokens import create_token
from tests.security import (
    ACTIONS,
    QA,
    Ctx,
    build_world,
    differences,
    send,
    snapshot,
)
from tests.zips import make_zip

pytestmark = pytest.mark.django_db

# Every browser POST someone may do (what nobody may do is refused whatever the token).
POSTS = [action for action in ACTIONS if action.post and action.kind == "browser" and action.csrf]


def page_tokens(client):
    """(form field token, htmx header token) as a page hands them to the browser."""
    html = client.get(reverse("lifecycle:pipeline")).content.decode()
    field = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    header = re.search(r"hx-headers='([^']+)'", html)
    assert field and header, "the page gives no CSRF token"
    return field.group(1), json.loads(header.group(1))["X-CSRFToken"]


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


def _ctx(action, environments, user, client, tmp_path):
    index = (
        None
        if action.environments == (None,)
        else (QA if QA in action.environments else action.environments[0])
    )
    ctx = build_world(Ctx(environments, user, client, tmp_path, index))
    if action.setup:
        action.setup(ctx)
    return ctx


def _cases():
    for action in POSTS:
        yield pytest.param(action.name, "none", False, id=f"{action.name}-without-token")
        yield pytest.param(action.name, "field", False, id=f"{action.name}-form-field")
        yield pytest.param(action.name, "header", action.htmx, id=f"{action.name}-htmx-header")


@pytest.mark.parametrize(("action_name", "token_in", "htmx"), list(_cases()))
def test_every_post_needs_the_csrf_token(
    action_name, token_in, htmx, environments, release_manager, csrf_client, tmp_path
):
    (action,) = [a for a in POSTS if a.name == action_name]
    csrf_client.force_login(release_manager)
    field, header = page_tokens(csrf_client)
    ctx = _ctx(action, environments, release_manager, csrf_client, tmp_path)
    before = snapshot()
    token = {"none": None, "field": field, "header": header}[token_in]
    response = send(ctx, action.request(ctx), htmx=htmx, csrf=token, csrf_in=token_in)
    changed = differences(before, snapshot())
    if token is None:
        assert response.status_code == 403
        assert b"CSRF" in response.content
        assert changed == []
    else:
        assert response.status_code < 400, response.content[:300]
        assert set(action.writes) <= set(changed)


def test_the_covered_posts(environments):
    assert len(POSTS) == 22  # every browser POST of the access matrix


def test_a_token_from_another_origin_is_refused(environments, release_manager, csrf_client):
    csrf_client.force_login(release_manager)
    field, _ = page_tokens(csrf_client)
    before = snapshot()
    response = csrf_client.post(
        reverse("tokens:create"),
        {"name": "CI", "csrfmiddlewaretoken": field},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert differences(before, snapshot()) == []


def test_a_token_from_another_session_is_refused(environments, release_manager, developer, tmp_path):
    """A token read from someone else's page does not work with your cookie."""
    theirs = Client(enforce_csrf_checks=True)
    theirs.force_login(developer)
    field, _ = page_tokens(theirs)
    mine = Client(enforce_csrf_checks=True)
    mine.force_login(release_manager)
    page_tokens(mine)  # my own CSRF cookie
    before = snapshot()
    response = mine.post(reverse("tokens:create"), {"name": "CI", "csrfmiddlewaretoken": field})
    assert response.status_code == 403
    assert differences(before, snapshot()) == []


def test_logging_out_needs_the_token(release_manager, csrf_client, environments):
    csrf_client.force_login(release_manager)
    field, _ = page_tokens(csrf_client)
    assert csrf_client.post(reverse("logout")).status_code == 403
    assert csrf_client.get(reverse("tokens:list")).status_code == 200  # still logged in
    assert csrf_client.post(reverse("logout"), {"csrfmiddlewaretoken": field}).status_code == 302
    assert csrf_client.get(reverse("tokens:list")).status_code == 302  # logged out


def test_logging_in_needs_the_token(release_manager, csrf_client):
    response = csrf_client.post(
        reverse("login"), {"username": "release-manager", "password": "pw-release-manager"}
    )
    assert response.status_code == 403
    assert "_auth_user_id" not in csrf_client.session
    html = csrf_client.get(reverse("login")).content.decode()
    field = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = csrf_client.post(
        reverse("login"),
        {"username": "release-manager", "password": "pw-release-manager", "csrfmiddlewaretoken": field},
    )
    assert response.status_code == 302


# ---------------------------------------------------------------------------
# The API: exempt from CSRF, because it never reads the session


def _publish(client, module, environment, **headers):
    url = reverse("api:publish", args=[module.name, environment.name])
    body = make_zip({"main.py": "print('api')\n"})
    return client.post(url, body, content_type="application/zip", headers=headers)


def test_the_api_takes_a_token_without_csrf(environments, release_manager, csrf_client, tmp_path):
    ctx = build_world(Ctx(environments, release_manager, csrf_client, tmp_path))
    _, raw = create_token(release_manager, "ci")
    before = snapshot()
    response = _publish(csrf_client, ctx.module, environments[0], Authorization=f"Bearer {raw}")
    assert response.status_code == 201
    assert {"versions", "current"} <= set(differences(before, snapshot()))
    assert not response.cookies  # no session, no CSRF cookie


@pytest.mark.parametrize("with_csrf", [False, True], ids=["session-only", "session-and-csrf-token"])
def test_the_api_ignores_a_session_cookie(with_csrf, environments, release_manager, csrf_client, tmp_path):
    ctx = build_world(Ctx(environments, release_manager, csrf_client, tmp_path))
    csrf_client.force_login(release_manager)
    _, header = page_tokens(csrf_client)
    before = snapshot()
    headers = {"X-CSRFToken": header} if with_csrf else {}
    response = _publish(csrf_client, ctx.module, environments[0], **headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert differences(before, snapshot()) == []
    reading = csrf_client.get(reverse("api:application", args=[ctx.application.name]))
    assert reading.status_code == 401
