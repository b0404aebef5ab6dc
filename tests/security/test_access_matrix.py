"""Who may do what: every action, for every persona, in every environment where it applies.

The personas (tests.security.LEVELS): no access, view, publish, deploy (Production view-only),
full, staff without environment access, and a viewer of Development only. The expected outcome
comes from the level table of the specification (view < publish < deploy < full) and those
levels, never from the code under test: allowed means a 2xx/3xx answer (exit code 0 for a
command) and the change made; refused means a 403 (exit code 3 for a command, a JSON 403 for the
API), or a 404 for what the user may not see, and nothing written at all. Hidden buttons are no
protection: every request is sent directly, browser forms, htmx fragments, the API and the admin
alike.
"""

from collections.abc import Iterator
from copy import copy
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q
from django.test import Client
from django.urls import NoReverseMatch, URLResolver, get_resolver, reverse

from lifecycle.models import AccessLevel, ApiToken, ApplicationTag, DeploymentPlan, Module
from lifecycle.tokens import create_token, revoke
from tests.factories import make_environments, make_user
from tests.security import (
    ACTIONS,
    ACTIONS_BY_NAME,
    ALLOWED,
    AUDIT_ACCOUNT_MARKERS,
    AUDIT_ENVIRONMENT_MARKERS,
    DEV,
    ENVIRONMENT_NAMES,
    FORBIDDEN,
    FULL,
    HIDDEN,
    LEVELS,
    NO_EFFECT,
    PERSONAS,
    PRE,
    PROD,
    QA,
    REFUSED,
    UNSEEN,
    Ctx,
    Levels,
    build_world,
    differences,
    expectation,
    production_only_version,
    record_audit_trail,
    send,
    shows_only_visible_audit_rows,
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
        "deploy-run-foreign-plan",
        "merge-forward",
        "admin-token-add",
        "admin-token-reassign",
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
        "drift-adopt",
        "drift-redeploy",
        "retry-deployment",
    }
    assert len(CASES) > 1000
    assert set(PERSONAS) == {
        "outsider",
        "viewer",
        "publisher",
        "developer",
        "release_manager",
        "staff_without_access",
        "dev_only",
    }


# Every URL of the console, with the actions of the matrix that request it.
URL_ACTIONS = {
    "lifecycle:pipeline": ["pipeline-page"],
    "lifecycle:application": ["application-page", "hidden-version-application-page"],
    "lifecycle:module": [
        "module-page",
        "module-file",
        "hidden-version-file",
        "hidden-version-module-page",
        "hidden-version-visible-file",
    ],
    "lifecycle:module-download": ["module-download", "hidden-version-download"],
    "lifecycle:module-upload": ["module-upload"],
    "lifecycle:editor": ["editor-page"],
    "lifecycle:editor-save": ["editor-save"],
    "lifecycle:editor-add": ["editor-add"],
    "lifecycle:editor-rename": ["editor-rename"],
    "lifecycle:editor-delete": ["editor-delete"],
    "lifecycle:editor-discard": ["editor-discard"],
    "lifecycle:editor-publish": ["editor-publish"],
    "hotfixes:diff": ["diff-page", "hidden-version-diff"],
    "lifecycle:deploy": ["deploy-page"],
    "lifecycle:deploy-run": ["deploy-run", "deploy-anyway", "deploy-run-foreign-plan"],
    "lifecycle:plan-save": ["plan-save"],
    "lifecycle:plan": ["plan-page"],
    "lifecycle:plan-delete": ["plan-delete"],
    "lifecycle:rollback": ["rollback", "rollback-page"],
    "lifecycle:deployments": ["deployments-page"],
    "lifecycle:deployment": ["deployment-page"],
    "lifecycle:deployment-retry": ["retry-deployment"],
    "lifecycle:block": ["block"],
    "lifecycle:unblock": ["unblock"],
    "lifecycle:audit": ["audit-page"],
    "lifecycle:audit-export": ["audit-export"],
    "hotfixes:list": ["hotfix-list", "hidden-version-hotfix-list"],
    "hotfixes:hotfix": ["hotfix-page"],
    "hotfixes:solve": ["mark-solved"],
    "hotfixes:propagate": ["propagate", "propagate-page"],
    "hotfixes:merge": ["merge", "merge-page", "merge-forward"],
    "hotfixes:compare": ["compare-page"],
    "hotfixes:compare-file": ["compare-file-page", "hidden-version-compare-file"],
    "hotfixes:drift": ["drift-page"],
    "hotfixes:drift-adopt": ["drift-adopt"],
    "hotfixes:drift-redeploy": ["drift-redeploy"],
    "tokens:list": ["tokens-page"],
    "tokens:create": ["token-create"],
    "tokens:revoke": ["token-revoke"],
    "api:publish": ["api-publish"],
    "api:environment-archive": ["api-environment-archive"],
    "api:version-archive": ["api-version-archive", "hidden-version-api-archive"],
    "api:application": ["api-application"],
}
# Public by design: logging in and out, the API's problem 404 for unknown URLs (its root too), and its
# OpenAPI schema, which describes the API and holds no data.
PUBLIC_URLS = {"login", "logout", "api:not-found", "api:api-root", "api:openapi-json"}
# For agent tokens only, never a user: their scope is a table of its own (tests/delivery/test_agent_scope.py).
AGENT_URLS = {
    "api:agent-state",
    "api:agent-manifest",
    "api:agent-archive",
    "api:agent-reports",
    "api:agent-drift",
    "api:agent-delivery",
}
# The admin's own URLs, outside the console's resolver walk, with the actions that request them.
ADMIN_ACTIONS = {"admin-token-add-page", "admin-token-add", "admin-token-reassign"}


def url_exists(name) -> bool:
    try:
        reverse(name)
    except NoReverseMatch:
        return False
    return True


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
    names = set(_url_names(get_resolver()))
    still_missing = {action.url_name for action in ACTIONS if action.url_name} - names
    assert names == set(URL_ACTIONS) - still_missing | PUBLIC_URLS | AGENT_URLS
    assert {name for names in URL_ACTIONS.values() for name in names} | ADMIN_ACTIONS | {
        "command-publish",
        "command-download",
    } == set(ACTIONS_BY_NAME)


@dataclass
class Outcome:
    """What one request (or command) answered."""

    status: int  # the exit code for a command
    body: bytes = b""
    problem: bool = False  # An RFC 9457 problem, as the API answers every refusal.
    login: str | None = None  # the login page it sent the user to, if any
    hx_redirect: bool = False

    def __str__(self):
        where = f", sent to {self.login}" if self.login else ""
        return f"status {self.status}{where}: {self.body[:300]!r}"


def _outcome(ctx, action, htmx) -> Outcome:
    if action.kind == "command":
        return Outcome(action.command(ctx))
    response = send(ctx, action.request(ctx), htmx=htmx)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    login = None
    if 300 <= response.status_code < 400 and response.url.startswith(("/admin/login/", reverse("login"))):
        login = response.url
    return Outcome(
        response.status_code,
        body,
        problem=response.get("Content-Type") == "application/problem+json",
        login=login,
        hx_redirect="HX-Redirect" in response,
    )


def _matches(expected, action, outcome: Outcome, htmx) -> bool:
    """Whether the outcome is the one expected, in the way this kind of action answers."""
    status = outcome.status
    if action.kind == "command":
        wanted = {ALLOWED: (0,), FORBIDDEN: (3,), HIDDEN: (4,), UNSEEN: (3, 4)}  # lifecycle/cli.py's codes
        return status != 0 if expected == REFUSED else status in wanted[expected]
    if expected == NO_EFFECT:
        return status < 500
    if expected == REFUSED:
        return 400 <= status < 500
    if action.kind == "api":
        if expected == ALLOWED:
            return 200 <= status < 300
        return outcome.problem and status in {FORBIDDEN: (403,), HIDDEN: (404,), UNSEEN: (403, 404)}[expected]
    if expected == ALLOWED:
        if htmx and action.name.startswith("deploy"):
            # htmx follows HX-Redirect to the deployment page, instead of a 302.
            return status == 200 and outcome.hx_redirect
        return 200 <= status < 400 and outcome.login is None
    if action.kind == "admin" and expected == FORBIDDEN:
        # The admin sends users who are not staff to its login page; staff get a 403, or a 404
        # where the page does not exist.
        return status in (403, 404) or (outcome.login or "").startswith("/admin/login/")
    return status in {FORBIDDEN: (403,), HIDDEN: (404,), UNSEEN: (403, 404)}[expected]


@dataclass
class World:
    """The pipeline, the application and one user per persona, shared by every case of the matrix."""

    environments: list
    module: Module
    tag: ApplicationTag
    users: dict  # persona -> user
    sessions: dict  # persona -> the key of a session logged in as them
    tmp: Path  # each case has a folder under it, made only when a command needs one
    cases: Iterator[int] = field(default_factory=count)


def _persona_users(environments):
    users = {}
    for persona, levels in LEVELS.items():
        given = {e: level for e, level in zip(environments, levels, strict=True) if level}
        users[persona] = make_user(persona.replace("_", "-"), given, is_staff=levels.staff)
    # A typical operator of the admin: view, add and change on the console's models and on users,
    # through a group that gives no environment access.
    operators = Group.objects.create(name="operators")
    operators.permissions.set(
        Permission.objects.filter(
            Q(content_type__app_label__in=["lifecycle", "hotfixes"]) | Q(content_type__model="user"),
            codename__regex=r"^(view|add|change)_",
        )
    )
    for persona, levels in LEVELS.items():
        if levels.staff:
            users[persona].groups.add(operators)
    return users


@pytest.fixture(scope="class")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Built once for the whole matrix; each case runs in its own savepoint inside this transaction
    (pytest-django's per-test atomic nests in it), so whatever a case writes is rolled back."""
    with django_db_blocker.unblock(), transaction.atomic():
        environments = make_environments()
        ctx = build_world(Ctx(environments, None, None, None))
        users = _persona_users(environments)
        sessions = {}
        for persona, user in users.items():
            client = Client()
            client.force_login(user)
            sessions[persona] = client.cookies[settings.SESSION_COOKIE_NAME].value
        yield World(environments, ctx.module, ctx.tag, users, sessions, tmp_path_factory.mktemp("matrix"))
        transaction.set_rollback(True)


def _ctx(world, persona, client, index):
    """The case's own copies of the shared records, so that nothing a case sets on them reaches the next."""
    module = copy(world.module)
    module.application = copy(world.module.application)
    return Ctx(
        [copy(environment) for environment in world.environments],
        copy(world.users[persona]),
        client,
        world.tmp / f"case-{next(world.cases)}",
        index,
        module.application,
        module,
        copy(world.tag),
    )


class TestAccess:
    @pytest.mark.parametrize(("action_name", "persona", "index", "htmx"), CASES)
    def test_access(self, action_name, persona, index, htmx, world, client):
        action = ACTIONS_BY_NAME[action_name]
        if action.url_name and not url_exists(action.url_name):
            pytest.skip(f"{action.url_name} does not exist yet (being added for issue 9)")
        ctx = _ctx(world, persona, client, index)
        client.cookies[settings.SESSION_COOKIE_NAME] = world.sessions[persona]  # logged in as the persona
        if action.setup:
            action.setup(ctx)
        levels = LEVELS[persona]
        expected = expectation(action.rule, levels, index)

        before = snapshot()
        outcome = _outcome(ctx, action, htmx)
        changed = differences(before, snapshot())

        assert _matches(expected, action, outcome, htmx), (
            f"{persona}: {action.name} should be {expected}, got {outcome}"
        )
        if expected == ALLOWED:
            assert set(action.writes) <= set(changed), (
                f"{action.name} did not write {action.writes}: {changed}"
            )
        else:
            assert changed == [], f"a refused {action.name} wrote {changed}"
        if action.check and expected == ALLOWED:
            action.check(ctx, levels, outcome.body)


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
        ("get", reverse("hotfixes:drift", args=[1])),
        ("post", reverse("hotfixes:drift-adopt", args=[1])),
        ("post", reverse("hotfixes:drift-redeploy", args=[1])),
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
    assert response.json()["code"] == "unauthorized"
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
# Beyond the personas


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


def test_a_plan_whose_source_the_user_cannot_see_does_not_exist_for_them(environments, client, tmp_path):
    """Deploy on Quality Assurance, nothing else: someone's plan from Development is a 404, kept whole."""
    dev, qa = environments[DEV], environments[QA]
    owner = make_user("planner", {e: AccessLevel.FULL for e in environments})
    user = make_user("qa-deployer", {qa: AccessLevel.DEPLOY})
    build_world(Ctx(environments, owner, client, tmp_path, QA))
    plan = DeploymentPlan.objects.create(name="Nightly", source=dev, target=qa, created_by=owner)
    client.force_login(user)
    before = snapshot()
    assert client.get(reverse("lifecycle:plan", args=[plan.pk])).status_code == 404
    assert client.post(reverse("lifecycle:plan-delete", args=[plan.pk])).status_code == 404
    assert differences(before, snapshot()) == []


def _audit_body(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("name", ["lifecycle:audit", "lifecycle:audit-export"])
def test_full_access_to_one_environment_reads_only_its_audit_rows(name, environments, client, tmp_path):
    user = make_user("dev-lead", {environments[DEV]: AccessLevel.FULL})
    ctx = build_world(Ctx(environments, user, client, tmp_path))
    record_audit_trail(ctx)
    client.force_login(user)
    shows_only_visible_audit_rows(ctx, Levels((FULL, 0, 0, 0)), _audit_body(client, name))


@pytest.mark.parametrize("name", ["lifecycle:audit", "lifecycle:audit-export"])
def test_superusers_read_every_audit_row_and_the_account_events(
    name, environments, client, tmp_path, django_user_model
):
    root = django_user_model.objects.create_superuser("root", password="x")
    ctx = build_world(Ctx(environments, root, client, tmp_path))
    record_audit_trail(ctx)
    client.force_login(root)
    body = _audit_body(client, name)
    for marker in AUDIT_ENVIRONMENT_MARKERS + AUDIT_ACCOUNT_MARKERS:
        assert marker.encode() in body, marker


@pytest.mark.parametrize("method", ["get", "post"])
def test_not_even_a_superuser_makes_a_token_for_someone_else_in_the_admin(
    method, environments, developer, client, django_user_model
):
    """Tokens are made by their owner on the profile page; the admin lists and revokes them."""
    root = django_user_model.objects.create_superuser("root", password="x")
    client.force_login(root)
    before = snapshot()
    data = {"user": developer.pk, "name": "minted"}
    response = getattr(client, method)("/admin/lifecycle/apitoken/add/", data)
    assert response.status_code in (403, 404), response.status_code
    assert differences(before, snapshot()) == []
    assert not ApiToken.objects.filter(user=developer).exists()


def test_the_editor_does_not_tell_what_production_runs_to_a_user_who_cannot_see_it(
    environments, client, tmp_path
):
    """A hotfix in an environment that differs from Production is worth a warning, but only to
    users who may view Production: to others it would tell what Production runs."""
    user = make_user("qa-publisher", {environments[QA]: AccessLevel.PUBLISH})
    ctx = build_world(Ctx(environments, user, client, tmp_path, QA))
    production_only_version(ctx)
    client.force_login(user)
    response = client.get(reverse("lifecycle:editor", args=[ctx.module.pk, ctx.env.pk]))
    assert response.status_code == 200
    assert b"Production" not in response.content
