"""Agent tokens: hashed, shown once, revocable, scoped to one environment; never a personal token."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse

from lifecycle import tokens
from lifecycle.delivery import agent_tokens
from lifecycle.models import AccessLevel, AgentToken, AuditEvent, Delivery
from tests.delivery.agent_support import bearer, make_agent_environment
from tests.factories import make_user

pytestmark = pytest.mark.django_db

RAW_AGENT_TOKEN = re.compile(r"sba_[A-Za-z0-9_-]{40}")


@pytest.fixture
def production(environments):
    return make_agent_environment(environments[-1])


def staff_with(username, levels, *permissions):
    user = make_user(username, levels, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    return User.objects.get(pk=user.pk)  # Fresh, so its permission cache holds the new ones.


def test_it_creates_a_token_and_stores_only_its_hash(production):
    token, raw = agent_tokens.create(production, "  web-1  ")
    stored = AgentToken.objects.get(pk=token.pk)
    assert RAW_AGENT_TOKEN.fullmatch(raw)
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert stored.prefix == raw[:12]
    assert stored.name == "web-1"
    assert stored.environment == production
    assert raw not in {str(value) for value in AgentToken.objects.values().get().values()}
    event = AuditEvent.objects.get(action=AuditEvent.Action.AGENT_TOKEN_CREATED)
    assert event.environment == "Production" and stored.prefix in event.summary
    assert raw not in str(event.after) and raw not in event.summary


def test_it_makes_a_different_token_each_time(production):
    assert agent_tokens.create(production, "one")[1] != agent_tokens.create(production, "two")[1]


@pytest.mark.parametrize("delivery", [Delivery.AGENT, Delivery.WEBHOOK])
def test_agent_and_webhook_environments_get_tokens(environments, delivery):
    environment = make_agent_environment(environments[1], delivery)
    token, raw = agent_tokens.create(environment, "receiver")
    assert agent_tokens.authenticate(raw) == token


def test_an_environment_that_only_records_gets_none(environments):
    with pytest.raises(ValueError, match="its delivery is 'record'"):
        agent_tokens.create(environments[-1], "web-1")
    assert not AgentToken.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "web\x001"])
def test_it_refuses_a_bad_name(production, name):
    with pytest.raises(ValueError):
        agent_tokens.create(production, name)
    assert not AgentToken.objects.exists()


def test_it_authenticates_the_token_with_its_environment_in_one_query(production, django_assert_num_queries):
    token, raw = agent_tokens.create(production, "web-1")
    AgentToken.objects.filter(pk=token.pk).update(last_seen_at=None)
    found = agent_tokens.authenticate(raw)
    assert found == token
    with django_assert_num_queries(0):
        assert found.environment.name == "Production"
    with django_assert_num_queries(1):  # Seen less than a second ago: the lookup, no write.
        agent_tokens.authenticate(raw)


def test_it_renews_the_sign_of_life_at_most_once_a_second(production):
    token, raw = agent_tokens.create(production, "web-1")
    assert AgentToken.objects.get(pk=token.pk).last_seen_at is None
    agent_tokens.authenticate(raw)
    first = AgentToken.objects.get(pk=token.pk).last_seen_at
    assert first is not None
    agent_tokens.authenticate(raw)
    assert AgentToken.objects.get(pk=token.pk).last_seen_at == first
    AgentToken.objects.filter(pk=token.pk).update(last_seen_at=first - timedelta(seconds=2))
    agent_tokens.authenticate(raw)
    assert AgentToken.objects.get(pk=token.pk).last_seen_at >= first


@pytest.mark.parametrize(
    "raw",
    ["", "sba_", "sba_not-a-token", "sba_" + "x" * 300, "Bearer sba_x", "sb_" + "x" * 40, "SBA_" + "x" * 40],
)
def test_it_refuses_what_is_not_an_agent_token(production, raw):
    agent_tokens.create(production, "web-1")
    assert agent_tokens.authenticate(raw) is None


def test_a_long_value_is_not_even_looked_up(production, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert agent_tokens.authenticate("sba_" + "x" * 500) is None


def test_it_refuses_a_personal_token(production, developer):
    _, personal = tokens.create_token(developer, "CI")
    assert agent_tokens.authenticate(personal) is None


def test_the_personal_token_api_refuses_an_agent_token(production, client, django_assert_num_queries):
    """'sba_' begins with 'sb': the personal tokens' prefix check is exact, and nothing is looked up."""
    _, raw = agent_tokens.create(production, "web-1")
    assert tokens.TOKEN_PREFIX == "sb_" and not raw.startswith(tokens.TOKEN_PREFIX)
    with django_assert_num_queries(0):
        assert tokens.authenticate(raw) is None
    # Even a personal token row holding an agent token's hash would not be found through it.
    developer = make_user("dev-with-twin")
    tokens.ApiToken.objects.create(
        user=developer, name="twin", prefix=raw[:12], token_hash=tokens.hash_token(raw)
    )
    assert tokens.authenticate(raw) is None
    response = client.get(reverse("api:application", args=["Anything"]), headers=bearer(raw))
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_a_revoked_token_is_refused_and_revoked_once(production, environments):
    root = User.objects.create_superuser("root", password="x")
    token, raw = agent_tokens.create(production, "web-1")
    assert agent_tokens.revoke(token, root) is True
    assert token.revoked_at is not None
    assert agent_tokens.authenticate(raw) is None
    first = token.revoked_at
    assert agent_tokens.revoke(token, root) is False
    assert token.revoked_at == first
    events = AuditEvent.objects.filter(action=AuditEvent.Action.AGENT_TOKEN_REVOKED)
    assert [(e.username, e.environment) for e in events] == [("root", "Production")]


def test_revoking_needs_the_permission(production):
    token, raw = agent_tokens.create(production, "web-1")
    staff = staff_with("staff", {production: AccessLevel.FULL})
    with pytest.raises(PermissionDenied):
        agent_tokens.revoke(token, staff)
    assert agent_tokens.authenticate(raw) is not None
    allowed = staff_with("revoker", {production: AccessLevel.FULL}, "change_agenttoken")
    assert agent_tokens.revoke(token, allowed) is True


def test_making_one_needs_the_permission_and_full_access(production, environments):
    full = {environment: AccessLevel.FULL for environment in environments}
    without_permission = staff_with("no-permission", full)
    with pytest.raises(PermissionDenied):
        agent_tokens.create(production, "web-1", user=without_permission)
    deployer = staff_with("deployer", {production: AccessLevel.DEPLOY}, "add_agenttoken")
    with pytest.raises(PermissionDenied):
        agent_tokens.create(production, "web-1", user=deployer)
    blind = staff_with("blind", {environments[0]: AccessLevel.FULL}, "add_agenttoken")
    with pytest.raises(Http404):
        agent_tokens.create(production, "web-1", user=blind)
    assert not AgentToken.objects.exists()
    maker = staff_with("maker", full, "add_agenttoken")
    token, _ = agent_tokens.create(production, "web-1", user=maker)
    assert token.created_by == maker
    assert AuditEvent.objects.get(action=AuditEvent.Action.AGENT_TOKEN_CREATED).username == "maker"
