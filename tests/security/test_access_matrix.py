"""Who may do what: every action, for every persona, in every environment where it applies.

The expected outcome comes from the level table of the specification (view < publish < deploy
< full) and the personas' levels (tests.security.LEVELS), never from the code under test:
allowed means a 2xx/3xx answer (exit code 0 for a command) and the change made; refused means a
403 (exit code 3 for a command, a JSON 403 for the API) and nothing written at all. Hidden
buttons are no protection: every request is sent directly.
"""

import pytest
from django.urls import URLResolver, get_resolver, reverse

from lifecycle.models import AccessLevel
from lifecycle.tokens import create_token, revoke
from tests.factories import make_user
from tests.security import (
    ACTIONS,
    ACTIONS_BY_NAME,
    ENVIRONMENT_NAMES,
    LEVELS,
    PERSONAS,
    PRE,
    PROD,
    QA,
    Ctx,
    build_world,
    differences,
    send,
    snapshot,
)

pytestmark = pytest.mark.django_db


def _cases():
    for action in ACTIONS:
        variants = (False, True) if action.htmx else (False,)
        for htmx in variants:
            for index in action.environments:
                for persona in PERSONAS:
                    where = "-" if index is None else ENVIRONMENT_NAMES[index]
                    name = f"{action.name}{'-htmx' if htmx else ''}-{persona}-{where}"
                    yield pytest.param(action.name, persona, index, htmx, id=name)


CASES = list(_cases())


def test_the_matrix_covers_every_changing_action():
    changing = {action.name for action in ACTIONS if action.post}
    assert changing == {
        "editor-save",
        "editor-add",
        "editor-rename",
        "editor-delete",
        "editor-discard",
        "editor-publish",
        "module-upload",
        "api-publish",
        "command-publish",
        "deploy-run",
        "deploy-anyway",
        "plan-save",
        "plan-delete",
        "rollback",
        "block",
        "unblock",
        "mark-solved",
        "merge",
        "propagate",
        "token-create",
        "token-revoke",
    }
    assert len(CASES) > 400


# Every URL of the console, with the actions of the matrix that request it.
URL_ACTIONS = {
    "lifecycle:pipeline": ["pipeline-page"],
    "lifecycle:application": ["application-page"],
    "lifecycle:module": ["module-page"],
    "lifecycle:module-download": ["module-download"],
    "lifecycle:module-upload": ["module-upload"],
    "lifecycle:editor": ["editor-page"],
    "lifecycle:editor-save": ["editor-save"],
    "lifecycle:editor-add": ["editor-add"],
    "lifecycle:editor-rename": ["editor-rename"],
    "lifecycle:editor-delete": ["editor-delete"],
    "lifecycle:editor-discard": ["editor-discard"],
    "lifecycle:editor-publish": ["editor-publish"],
    "hotfixes:diff": ["diff-page"],
    "lifecycle:deploy": ["deploy-page"],
    "lifecycle:deploy-run": ["deploy-run", "deploy-anyway"],
    "lifecycle:plan-save": ["plan-save"],
    "lifecycle:plan": ["plan-page"],
    "lifecycle:plan-delete": ["plan-delete"],
    "lifecycle:rollback": ["rollback", "rollback-page"],
    "lifecycle:deployments": ["deployments-page"],
    "lifecycle:deployment": ["deployment-page"],
    "lifecycle:block": ["block"],
    "lifecycle:unblock": ["unblock"],
    "lifecycle:audit": ["audit-page"],
    "lifecycle:audit-export": ["audit-export"],
    "hotfixes:hotfix": ["hotfix-page"],
    "hotfixes:solve": ["mark-solved"],
    "hotfixes:propagate": ["propagate", "propagate-page"],
    "hotfixes:merge": ["merge", "merge-page"],
    "hotfixes:compare": ["compare-page"],
    "hotfixes:compare-file": ["compare-file-page"],
    "tokens:list": ["tokens-page"],
    "tokens:create": ["token-create"],
    "tokens:revoke": ["token-revoke"],
    "api:publish": ["api-publish"],
    "api:environment-archive": ["api-environment-archive"],
    "api:version-archive": ["api-version-archive"],
    "api:application": ["api-application"],
}
# Public by design: logging in and out, and the API's JSON 404 for unknown URLs.
PUBLIC_URLS = {"login", "logout", "api:not-found"}


def _url_names(resolver, prefix=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace != "admin":
                yield from _url_names(
                    pattern, f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
                )
        elif pattern.name:
            yield prefix + pattern.name


def test_every_url_of_the_console_is_in_the_matrix():
    """A new URL must be added to the matrix (or declared public) before it ships."""
    assert set(_url_names(get_resolver())) == set(URL_ACTIONS) | PUBLIC_URLS
    assert {name for names in URL_ACTIONS.values() for name in names} | {
        "command-publish",
        "command-download",
    } == set(ACTIONS_BY_NAME)


def _outcome(ctx, action, htmx):
    """(allowed?, refused?, detail) of running the action once."""
    if action.kind == "command":
        code = action.command(ctx)
        return code == 0, code == 3, f"exit code {code}"
    response = send(ctx, action.request(ctx), htmx=htmx)
    status = response.status_code
    if action.kind == "api":
        refused = status == 403 and response["Content-Type"] == "application/json"
        return 200 <= status < 300, refused, f"status {status}: {response.content[:300]!r}"
    if htmx and action.name.startswith("deploy"):
        # htmx follows HX-Redirect to the deployment page, instead of a 302.
        return status == 200 and "HX-Redirect" in response, status == 403, f"status {status}"
    if 300 <= status < 400 and response.url.startswith(reverse("login")):
        return False, False, f"sent to the login page: {response.url}"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return 200 <= status < 400, status == 403, f"status {status}: {body[:300]!r}"


@pytest.mark.parametrize(("action_name", "persona", "index", "htmx"), CASES)
def test_access(action_name, persona, index, htmx, request, environments, client, tmp_path):
    action = ACTIONS_BY_NAME[action_name]
    user = request.getfixturevalue(persona)
    client.force_login(user)
    ctx = build_world(Ctx(environments, user, client, tmp_path, index))
    if action.setup:
        action.setup(ctx)
    expected = action.rule(LEVELS[persona], index)

    before = snapshot()
    allowed, refused, detail = _outcome(ctx, action, htmx)
    after = snapshot()

    changed = differences(before, after)
    if expected:
        assert allowed, f"{persona} should be allowed to {action.name}: {detail}"
        assert set(action.writes) <= set(changed), f"{action.name} did not write {action.writes}: {changed}"
    else:
        assert refused, f"{persona} should be refused {action.name} with a 403: {detail}"
        assert changed == [], f"a refused {action.name} wrote {changed}"


# ---------------------------------------------------------------------------
# Anonymous


def _anonymous_urls(ctx):
    """Every browser URL with what it needs in the path; the API answers 401 instead."""
    a, m, e, t = ctx.application.pk, ctx.module.pk, ctx.env.pk, ctx.tag.pk
    module = [m, e]
    return [
        ("get", reverse("lifecycle:pipeline")),
        ("get", reverse("lifecycle:audit")),
        ("get", reverse("lifecycle:audit-export")),
        ("get", reverse("lifecycle:application", args=[a])),
        ("get", reverse("lifecycle:module", args=module)),
        ("get", reverse("lifecycle:module-download", args=[*module, 1])),
        ("post", reverse("lifecycle:module-upload", args=module)),
        ("get", reverse("lifecycle:editor", args=module)),
        *[
            ("post", reverse(f"lifecycle:editor-{name}", args=module))
            for name in ("save", "add", "rename", "delete", "discard", "publish")
        ],
        ("get", reverse("hotfixes:diff", args=[m, 1, 1])),
        ("get", reverse("lifecycle:deploy")),
        ("post", reverse("lifecycle:deploy-run")),
        ("post", reverse("lifecycle:plan-save")),
        ("get", reverse("lifecycle:plan", args=[1])),
        ("post", reverse("lifecycle:plan-delete", args=[1])),
        ("get", reverse("lifecycle:rollback", args=[a, t])),
        ("post", reverse("lifecycle:rollback", args=[a, t])),
        ("get", reverse("lifecycle:deployments")),
        ("get", reverse("lifecycle:deployment", args=[1])),
        ("post", reverse("lifecycle:block", args=[a, e])),
        ("post", reverse("lifecycle:unblock", args=[a, e])),
        ("get", reverse("hotfixes:hotfix", args=[1])),
        ("post", reverse("hotfixes:solve", args=[1])),
        ("get", reverse("hotfixes:propagate", args=[1])),
        ("post", reverse("hotfixes:propagate", args=[1])),
        ("get", reverse("hotfixes:merge")),
        ("post", reverse("hotfixes:merge")),
        ("get", reverse("hotfixes:compare")),
        ("get", reverse("hotfixes:compare-file")),
        ("get", reverse("tokens:list")),
        ("post", reverse("tokens:create")),
        ("post", reverse("tokens:revoke", args=[1])),
    ]


def test_anonymous_users_are_sent_to_the_login_page(environments, client, tmp_path):
    ctx = build_world(Ctx(environments, None, client, tmp_path, 1))
    before = snapshot()
    for method, url in _anonymous_urls(ctx):
        response = getattr(client, method)(url, {"reason": "x", "name": "x", "path": "main.py"})
        assert response.status_code == 302, (method, url, response.status_code)
        assert response.url.startswith(reverse("login") + "?next="), (method, url, response.url)
    assert differences(before, snapshot()) == []


def test_the_login_page_is_public(client, db):
    assert client.get(reverse("login")).status_code == 200


@pytest.mark.parametrize(
    ("method", "name", "args", "body"),
    [
        ("post", "api:publish", ["App-Core", "Development"], b"PK"),
        ("get", "api:environment-archive", ["App-Core", "Development"], None),
        ("get", "api:version-archive", ["App-Core", 1], None),
        ("get", "api:application", ["App"], None),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer sb_not-a-real-token", "Basic dXNlcjpwYXNz", "Token sb_x"]
)
def test_the_api_answers_401_without_a_valid_token(
    method, name, args, body, authorization, environments, client
):
    build_world(Ctx(environments, None, client, None))
    headers = {"Authorization": authorization} if authorization else {}
    before = snapshot()
    if method == "post":
        response = client.post(
            reverse(name, args=args), body, content_type="application/zip", headers=headers
        )
    else:
        response = client.get(reverse(name, args=args), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert "Bearer" in response["WWW-Authenticate"]
    assert differences(before, snapshot()) == []


def test_a_revoked_token_or_a_deactivated_user_is_refused(environments, developer, client):
    build_world(Ctx(environments, developer, client, None))
    revoked, revoked_raw = create_token(developer, "old")
    revoke(revoked, developer)
    url = reverse("api:application", args=["App"])
    assert client.get(url, headers={"Authorization": f"Bearer {revoked_raw}"}).status_code == 401
    _, raw = create_token(developer, "current")
    assert client.get(url, headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    developer.is_active = False
    developer.save()
    assert client.get(url, headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_a_token_acts_as_its_user_not_as_the_session(environments, developer, release_manager, client):
    """A release manager's session does not lend its access to a developer's token."""
    ctx = build_world(Ctx(environments, developer, client, None))
    client.force_login(release_manager)
    _, raw = create_token(developer, "ci")
    before = snapshot()
    response = client.post(
        reverse("api:publish", args=[ctx.module.name, "Production"]),
        b"PK",
        content_type="application/zip",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 403
    assert differences(before, snapshot()) == []


# ---------------------------------------------------------------------------
# Beyond the four personas


def test_propagating_is_refused_whole_when_one_earlier_environment_is_not_allowed(
    environments, client, tmp_path
):
    """Publish in Quality Assurance but only view in Development: nothing is merged, not even into QA."""
    dev, qa, pre, prod = environments
    user = make_user("qa-lead", {dev: AccessLevel.VIEW, qa: AccessLevel.PUBLISH, pre: AccessLevel.VIEW})
    client.force_login(user)
    ctx = build_world(Ctx(environments, user, client, tmp_path, PRE))
    action = ACTIONS_BY_NAME["propagate"]
    action.setup(ctx)
    before = snapshot()
    response = send(ctx, action.request(ctx))
    assert response.status_code == 403
    assert differences(before, snapshot()) == []


def test_a_user_who_sees_one_environment_cannot_deploy_at_all(environments, client, tmp_path):
    user = make_user("qa-only", {environments[QA]: AccessLevel.FULL})
    client.force_login(user)
    ctx = build_world(Ctx(environments, user, client, tmp_path, QA))
    action = ACTIONS_BY_NAME["deploy-run"]
    action.setup(ctx)
    before = snapshot()
    assert send(ctx, action.request(ctx)).status_code == 403
    assert differences(before, snapshot()) == []


def test_a_superuser_may_do_what_full_access_allows(environments, client, tmp_path, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="x")
    client.force_login(root)
    ctx = build_world(Ctx(environments, root, client, tmp_path, PROD))
    for name in ("deploy-anyway", "block"):
        action = ACTIONS_BY_NAME[name]
        if action.setup:
            action.setup(ctx)
        before = snapshot()
        assert send(ctx, action.request(ctx)).status_code == 302
        assert set(action.writes) <= set(differences(before, snapshot()))


def test_a_403_page_says_why(environments, outsider, viewer, client):
    client.force_login(outsider)
    assert b"Ask an administrator" in client.get(reverse("lifecycle:pipeline")).content
    ctx = build_world(Ctx(environments, viewer, client, None, PROD))
    client.force_login(viewer)
    response = client.post(reverse("lifecycle:block", args=[ctx.application.pk, ctx.env.pk]), {"reason": "x"})
    assert response.status_code == 403
    assert b"You need full access to Production" in response.content
