"""The agent-token scope, as a table: an agent token opens its six agent endpoints and nothing else.

Every URL pattern of the site, the admin and /api/v1 is found by walking the
resolver, so a new URL is in the table the day it is added. Each is requested
with GET and POST carrying an agent token, and answers exactly as it does with
no credentials at all: refused (401, 403, 404, or a redirect to a login page)
unless it is public by design (logging in and out, the favicon). A 405 refuses
a method before anything is read, so each URL must also refuse one of the two
methods for what it is. Then the agent endpoints themselves: a token works in
its own environment only, and a revoked one nowhere.
"""

import json
import re
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve

from lifecycle import tokens
from lifecycle.delivery import agent_tokens
from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.validation import validate
from lifecycle.models import (
    AgentToken,
    CurrentVersion,
    Deployment,
    DeploymentLogLine,
    Drift,
    LiveApplication,
)
from tests.delivery.agent_support import make_agent_environment
from tests.factories import make_application, make_user, publish_files, released_application
from tests.zips import make_zip

pytestmark = pytest.mark.django_db

AGENT_ENDPOINTS = {
    "api:agent-state": "GET",
    "api:agent-manifest": "GET",
    "api:agent-archive": "GET",
    "api:agent-reports": "POST",
    "api:agent-drift": "POST",
    "api:agent-delivery": "POST",
}
# Public by design: the same answer for everyone, token or not.
PUBLIC = {"favicon.ico", "login/", "logout/", "admin/login/", "admin/logout/", "api/v1/openapi.json"}
REFUSED = {401, 403, 404, 405}
LOGIN_PAGES = ("/login/", "/admin/login/")


@dataclass(frozen=True)
class UrlCase:
    route: str  # The pattern, as written, for the test id and PUBLIC.
    name: str | None
    callback: object


def _walk(resolver, prefix="", namespace=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern, prefix + _route(pattern.pattern), inner)
        else:
            name = f"{namespace}{pattern.name}" if pattern.name else None
            yield UrlCase(prefix + _route(pattern.pattern), name, pattern.callback)


def _route(pattern) -> str:
    text = str(pattern)
    # A regex piece (re_path): anchors dropped, so it reads as a route with <name> placeholders.
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", text)
    return text.removeprefix("^").removesuffix("$")


def _reachable(cases):
    """The first pattern of each route: a later one of the same route (the admin's own login,
    shadowed by the throttled one) is never reached."""
    seen = set()
    for case in cases:
        if case.route not in seen:
            seen.add(case.route)
            yield case


URLS = list(_reachable(_walk(get_resolver())))


def test_the_walk_finds_the_site_the_admin_and_the_api():
    names = {case.name for case in URLS}
    assert set(AGENT_ENDPOINTS) <= names
    assert {"lifecycle:pipeline", "api:publish", "admin:index", "tokens:list", "api:not-found"} <= names
    assert len(URLS) > 100


@pytest.fixture
def world(environments, release_manager):
    """Production (A) and Quality Assurance (B) deliver by agent; a deployment waits for A.

    Shop-Cart runs a version in A that B does not run, and Solo-Core runs in A only.
    """
    dev, qa, pre, production = environments
    application, (cart,), tag = released_application("Shop", environments, module_names=("Cart",))
    a, b = make_agent_environment(production), make_agent_environment(qa)
    publish_files(cart, pre, {"main.py": "next"}, user=release_manager)
    validation = validate(pre, a, [application])
    deployment = start_deployment(
        pre, a, [application], user=release_manager, fingerprint=validation.fingerprint
    )
    run_deployment(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.WAITING
    _, (solo,) = make_application("Solo")
    publish_files(solo, a, {"solo.py": "only in A"}, user=release_manager)
    _, personal = tokens.create_token(release_manager, "personal")
    revoked, revoked_raw = agent_tokens.create(a, "old machine")
    agent_tokens.revoke(revoked, make_user("root", is_superuser=True, is_staff=True))
    return {
        "a": a,
        "b": b,
        "cart": cart,
        "solo": solo,
        "application": application,
        "tag": tag,
        "deployment": deployment,
        "token_a": agent_tokens.create(a, "web-1")[1],
        "token_b": agent_tokens.create(b, "qa-1")[1],
        "revoked": revoked_raw,
        "personal": personal,
        "version_a": CurrentVersion.objects.get(environment=a, module=cart).version,
    }


def _samples(world) -> dict[str, str]:
    """A value for each name a URL pattern takes, real where the world has one."""
    cart, version = world["cart"], world["version_a"]
    return {
        "module_id": str(cart.pk),
        "environment_id": str(world["a"].pk),
        "application_id": str(world["application"].pk),
        "tag_id": str(world["tag"].pk),
        "deployment_id": str(world["deployment"].pk),
        "number": str(version.number),
        "old": "1",
        "new": str(version.number),
        "token_id": "1",
        "hotfix_id": "1",
        "drift_id": "1",
        "plan_id": "1",
        "module_name": cart.name,
        "environment_name": world["a"].name,
        "application_name": world["application"].name,
        "object_id": "1",
        "content_type_id": "1",
        "id": "1",
        "app_label": "lifecycle",
        "url": "nothing-here/",
        "path": "nothing-here",
    }


def _url(case: UrlCase, world) -> str:
    samples = _samples(world)

    def sample(match):
        name = match.group(2)
        assert name in samples, f"Add a sample value for <{name}> of {case.route} to _samples."
        return samples[name]

    url = "/" + re.sub(r"<(?:(\w+):)?(\w+)>", sample, case.route)
    assert resolve(url).func == case.callback, f"{url} does not reach the view of {case.route}"
    return url


def _answer(method, url, raw=None):
    """A fresh client each time: no cookie, no session, only the header (if any)."""
    headers = {"Authorization": f"Bearer {raw}"} if raw else {}
    response = Client().generic(method, url, headers=headers)
    location = response.get("Location", "")
    return response.status_code, location


def _refused(status, location) -> bool:
    return status in REFUSED or (status == 302 and location.startswith(LOGIN_PAGES))


@pytest.mark.parametrize(
    "case", [case for case in URLS if case.name not in AGENT_ENDPOINTS], ids=lambda case: case.route or "/"
)
def test_an_agent_token_opens_nothing_else(world, case):
    url = _url(case, world)
    statuses = []
    for method in ("GET", "POST"):
        with_token = _answer(method, url, world["token_a"])
        anonymous = _answer(method, url)
        assert with_token == anonymous, f"{method} {url}: the agent token changed the answer"
        if case.route not in PUBLIC:
            assert _refused(*with_token), f"{method} {url} answered {with_token} to an agent token"
        statuses.append(with_token[0])
    if case.route not in PUBLIC:
        assert statuses != [405, 405], f"{url} refuses both methods before checking anything"


# The agent endpoints themselves.


def _agent_request(client, name, world, raw, module=None):
    module = module or world["cart"]
    version = CurrentVersion.objects.get(environment=world["a"], module=module).version
    headers = {"Authorization": f"Bearer {raw}"}
    urls = {
        "api:agent-state": "/api/v1/agent/state",
        "api:agent-manifest": f"/api/v1/agent/modules/{module.name}/versions/{version.number}/manifest",
        "api:agent-archive": f"/api/v1/agent/modules/{module.name}/versions/{version.number}/archive",
        "api:agent-reports": "/api/v1/agent/reports",
        "api:agent-drift": f"/api/v1/agent/drift/{module.name}",
        "api:agent-delivery": f"/api/v1/agent/deliveries/{world['deployment'].pk}",
    }
    url = urls[name]
    assert resolve(url).url_name == name.removeprefix("api:")
    if name == "api:agent-reports":
        report = {
            "applications": [
                {
                    "name": "Shop",
                    "deployment": world["deployment"].pk,
                    "applied": {world["cart"].name: version.tree_hash},
                    "log": ["written by this token"],
                }
            ]
        }
        return client.post(url, json.dumps(report), content_type="application/json", headers=headers)
    if name == "api:agent-drift":
        # An agent uploads a drift once its report said it applied the version current in its environment.
        token = AgentToken.objects.filter(token_hash=agent_tokens.hash_token(raw)).first()
        there = token and CurrentVersion.objects.filter(environment=token.environment, module=module).first()
        if there:
            report = {
                "applications": [
                    {"name": module.application.name, "applied": {module.name: there.version.tree_hash}}
                ]
            }
            client.post(
                "/api/v1/agent/reports", json.dumps(report), content_type="application/json", headers=headers
            )
        return client.post(
            url, make_zip({"main.py": b"drifted"}), content_type="application/zip", headers=headers
        )
    if name == "api:agent-delivery":
        body = json.dumps({"status": "failed", "output": "from this token"})
        return client.post(url, body, content_type="application/json", headers=headers)
    return client.get(url, headers=headers)


ALLOWED = {
    "api:agent-state": 200,
    "api:agent-manifest": 200,
    "api:agent-archive": 200,
    "api:agent-reports": 200,
    "api:agent-drift": 201,
    "api:agent-delivery": 200,
}


@pytest.mark.parametrize("name", list(AGENT_ENDPOINTS))
def test_a_token_works_in_its_own_environment(client, world, name):
    response = _agent_request(client, name, world, world["token_a"])
    assert response.status_code == ALLOWED[name], response.content
    if name == "api:agent-state":
        assert response.json()["environment"] == world["a"].name


@pytest.mark.parametrize("name", list(AGENT_ENDPOINTS))
@pytest.mark.parametrize("who", ["revoked", "personal", "none", "garbage"])
def test_a_revoked_token_or_any_other_credential_opens_none_of_them(client, world, name, who):
    raw = {
        "revoked": world["revoked"],
        "personal": world["personal"],
        "none": "",
        "garbage": "sba_" + "x" * 40,
    }
    lines = DeploymentLogLine.objects.count()
    response = _agent_request(client, name, world, raw[who])
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "unauthorized"
    assert "Bearer" in response["WWW-Authenticate"]
    assert not LiveApplication.objects.exists() and not Drift.objects.exists()
    assert DeploymentLogLine.objects.count() == lines
    world["deployment"].refresh_from_db()
    assert world["deployment"].status == Deployment.Status.WAITING


def test_revoking_a_token_closes_it_at_once(client, world):
    assert _agent_request(client, "api:agent-state", world, world["token_a"]).status_code == 200
    agent_tokens.revoke(agent_tokens.authenticate(world["token_a"]), make_user("admin", is_superuser=True))
    assert _agent_request(client, "api:agent-state", world, world["token_a"]).status_code == 401


def test_a_token_of_b_reads_b_not_a(client, world):
    state = _agent_request(client, "api:agent-state", world, world["token_b"]).json()
    assert state["environment"] == world["b"].name
    assert [module["name"] for app in state["applications"] for module in app["modules"]] == [
        world["cart"].name
    ]
    assert state["applications"][0]["modules"][0]["version"] != world["version_a"].number


@pytest.mark.parametrize("name", ["api:agent-manifest", "api:agent-archive", "api:agent-drift"])
@pytest.mark.parametrize("module", ["cart", "solo"])
def test_a_token_of_b_cannot_read_or_upload_what_runs_only_in_a(client, world, name, module):
    """A's version of Shop-Cart, and Solo-Core which runs only in A, are not there for B."""
    response = _agent_request(client, name, world, world["token_b"], module=world[module])
    if name == "api:agent-drift" and module == "cart":
        # Shop-Cart runs in B too: the upload is B's own drift, never A's.
        assert response.status_code == 201
        assert list(Drift.objects.values_list("environment", flat=True)) == [world["b"].pk]
        return
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    assert world["a"].name not in response.json()["error"]["message"]
    assert not Drift.objects.exists()


def test_a_token_of_b_cannot_report_for_a(client, world):
    lines = world["deployment"].log_lines.count()
    response = _agent_request(client, "api:agent-reports", world, world["token_b"])
    assert response.status_code == 200
    # Recorded as B's report on Shop, which runs in B; A's deployment is neither linked nor logged.
    assert list(LiveApplication.objects.values_list("environment", "deployment")) == [(world["b"].pk, None)]
    assert world["deployment"].log_lines.count() == lines
    world["deployment"].refresh_from_db()
    assert world["deployment"].status == Deployment.Status.WAITING


def test_a_token_of_b_cannot_answer_for_a_deployment_into_a(client, world):
    response = _agent_request(client, "api:agent-delivery", world, world["token_b"])
    assert response.status_code == 404
    world["deployment"].refresh_from_db()
    assert world["deployment"].status == Deployment.Status.WAITING


def test_a_token_of_an_environment_that_stopped_delivering_does_nothing(client, world):
    world["a"].delivery = "record"
    world["a"].save(update_fields=["delivery"])
    response = _agent_request(client, "api:agent-state", world, world["token_a"])
    assert response.status_code == 403 and response.json()["error"]["code"] == "not_delivering"
    assert AgentToken.objects.filter(environment=world["a"], revoked_at__isnull=True).exists()
