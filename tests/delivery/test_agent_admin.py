"""The admin: an environment's delivery, its webhook and its agent tokens (made once, listed, revoked)."""

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from lifecycle.delivery import agent_tokens
from lifecycle.models import AccessLevel, AgentToken, AuditEvent, Delivery, Environment
from tests.delivery.agent_support import make_agent_environment
from tests.factories import make_user

pytestmark = pytest.mark.django_db

RAW = re.compile(r"sba_[A-Za-z0-9_-]{40}")


@pytest.fixture
def root(client):
    user = User.objects.create_superuser("root", password="x")
    client.force_login(user)
    return user


def change_url(environment):
    return reverse("admin:lifecycle_environment_change", args=[environment.pk])


def create_url(environment):
    return reverse("admin:lifecycle_environment_agent_token", args=[environment.pk])


def form_data(environment, **changes):
    data = {
        "name": environment.name,
        "position": environment.position,
        "is_production": "on" if environment.is_production else "",
        "delivery": environment.delivery,
        "webhook_url": environment.webhook_url,
        "webhook_secret": environment.webhook_secret,
        "access-TOTAL_FORMS": "0",
        "access-INITIAL_FORMS": "0",
    }
    return data | changes


def staff_with(username, levels, *permissions):
    user = make_user(username, levels, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    return User.objects.get(pk=user.pk)


# The environment's delivery.


def test_the_change_form_shows_the_delivery_and_a_way_to_make_a_token(client, root, environments):
    page = client.get(change_url(environments[-1])).content.decode()
    for field in ('name="delivery"', 'name="webhook_url"', 'name="webhook_secret"'):
        assert field in page
    assert create_url(environments[-1]) in page
    assert "0 active" in page


def test_a_webhook_environment_gets_a_secret_made_for_it(client, root, environments):
    production = environments[-1]
    data = form_data(production, delivery="webhook", webhook_url="https://127.0.0.1:9443/deploy")
    response = client.post(change_url(production), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    production.refresh_from_db()
    assert production.delivery == Delivery.WEBHOOK
    assert len(production.webhook_secret) >= 40
    secret = production.webhook_secret
    # Kept when saved again with it; never copied into the append-only audit trail.
    client.post(change_url(production), form_data(production, name="Prod"))
    production.refresh_from_db()
    assert production.webhook_secret == secret and production.name == "Prod"
    for event in AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_CHANGE):
        assert secret not in str(event.before) + str(event.after) + event.summary
        assert "webhook_secret" not in (event.after or {})


def test_a_typed_secret_is_kept(client, root, environments):
    production = environments[-1]
    data = form_data(
        production, delivery="webhook", webhook_url="https://127.0.0.1:9443/", webhook_secret="s3cret"
    )
    assert client.post(change_url(production), data).status_code == 302
    production.refresh_from_db()
    assert production.webhook_secret == "s3cret"


def test_a_webhook_environment_needs_a_url(client, root, environments):
    production = environments[-1]
    response = client.post(change_url(production), form_data(production, delivery="webhook"))
    assert response.status_code == 200
    assert "A webhook environment needs the URL" in response.content.decode()
    production.refresh_from_db()
    assert production.delivery == Delivery.RECORD and production.webhook_secret == ""


def test_an_agent_environment_needs_neither(client, root, environments):
    production = environments[-1]
    assert client.post(change_url(production), form_data(production, delivery="agent")).status_code == 302
    production.refresh_from_db()
    assert (production.delivery, production.webhook_url, production.webhook_secret) == ("agent", "", "")


def test_the_list_still_edits_positions(client, root, environments):
    data = {
        "form-TOTAL_FORMS": str(len(environments)),
        "form-INITIAL_FORMS": str(len(environments)),
        "_save": "1",
    }
    for index, environment in enumerate(environments):
        data[f"form-{index}-id"] = str(environment.pk)
        data[f"form-{index}-position"] = str(10 + index)
        data[f"form-{index}-is_production"] = "on" if environment.is_production else ""
    make_agent_environment(environments[-1], Delivery.WEBHOOK)  # No URL: the list's form does not judge it.
    response = client.post(reverse("admin:lifecycle_environment_changelist"), data)
    assert response.status_code == 302
    assert sorted(Environment.objects.values_list("position", flat=True)) == [10, 11, 12, 13]


# Making a token on the environment's page.


def test_staff_make_a_token_shown_once(client, root, environments):
    production = make_agent_environment(environments[-1])
    assert "Create the token" in client.get(create_url(production)).content.decode()
    response = client.post(create_url(production), {"name": "web-1"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    raw = RAW.search(page).group(0)
    assert "shown only now" in page
    token = agent_tokens.authenticate(raw)
    assert token.environment == production and token.name == "web-1" and token.created_by == root
    event = AuditEvent.objects.get(action=AuditEvent.Action.AGENT_TOKEN_CREATED)
    assert event.username == "root" and event.environment == "Production"
    # Never again: neither the form nor the environment's page nor the list shows it.
    for url in (
        create_url(production),
        change_url(production),
        reverse("admin:lifecycle_agenttoken_changelist"),
    ):
        assert raw not in client.get(url).content.decode()
    assert "1 active" in client.get(change_url(production)).content.decode()


def test_an_environment_that_only_records_gets_no_token(client, root, environments):
    response = client.post(create_url(environments[-1]), {"name": "web-1"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "its delivery is" in page and not RAW.search(page)
    assert not AgentToken.objects.exists()


def test_the_form_needs_a_name(client, root, environments):
    production = make_agent_environment(environments[-1])
    response = client.post(create_url(production), {"name": "  "})
    assert response.status_code == 200 and not RAW.search(response.content.decode())
    assert not AgentToken.objects.exists()


def test_making_a_token_needs_the_permission_and_full_access(client, environments):
    production = make_agent_environment(environments[-1])
    full = {environment: AccessLevel.FULL for environment in environments}
    cases = [
        (staff_with("no-permission", full, "view_environment", "change_environment"), 403),
        (staff_with("deployer", {production: AccessLevel.DEPLOY}, "view_environment", "add_agenttoken"), 403),
        (staff_with("no-view", full, "add_agenttoken"), 404),  # May not see the environment in the admin.
    ]
    for user, status in cases:
        client.force_login(user)
        response = client.post(create_url(production), {"name": "web-1"})
        assert response.status_code == status, user
        assert not RAW.search(response.content.decode())
    assert not AgentToken.objects.exists()
    client.force_login(staff_with("maker", full, "view_environment", "add_agenttoken"))
    assert RAW.search(client.post(create_url(production), {"name": "web-1"}).content.decode())


def test_a_user_who_is_not_staff_is_sent_to_the_login(client, environments, release_manager):
    production = make_agent_environment(environments[-1])
    client.force_login(release_manager)
    response = client.post(create_url(production), {"name": "web-1"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not AgentToken.objects.exists()


def test_the_form_is_protected_against_cross_site_requests(root, environments):
    production = make_agent_environment(environments[-1])
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(root)
    assert browser.post(create_url(production), {"name": "web-1"}).status_code == 403
    assert not AgentToken.objects.exists()


# The list of tokens: listed and revoked, never made, edited or deleted there.


def test_tokens_are_listed_without_their_hash(client, root, environments):
    production = make_agent_environment(environments[-1])
    token, _ = agent_tokens.create(production, "web-1")
    page = client.get(reverse("admin:lifecycle_agenttoken_changelist")).content.decode()
    assert token.prefix in page and "web-1" in page
    assert token.token_hash not in page
    detail = client.get(reverse("admin:lifecycle_agenttoken_change", args=[token.pk])).content.decode()
    assert token.token_hash not in detail and 'name="_save"' not in detail


def test_tokens_are_never_added_changed_or_deleted_there(client, root, environments):
    production = make_agent_environment(environments[-1])
    token, raw = agent_tokens.create(production, "web-1")
    assert client.get(reverse("admin:lifecycle_agenttoken_add")).status_code == 403
    assert client.post(reverse("admin:lifecycle_agenttoken_add"), {"name": "x"}).status_code == 403
    client.post(reverse("admin:lifecycle_agenttoken_change", args=[token.pk]), {"name": "renamed"})
    delete = client.post(reverse("admin:lifecycle_agenttoken_delete", args=[token.pk]), {"post": "yes"})
    assert delete.status_code == 403
    token.refresh_from_db()
    assert token.name == "web-1" and agent_tokens.authenticate(raw) == token


def test_staff_revoke_tokens_from_the_list(client, root, environments):
    production = make_agent_environment(environments[-1])
    token, raw = agent_tokens.create(production, "web-1")
    response = client.post(
        reverse("admin:lifecycle_agenttoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [str(token.pk)]},
    )
    assert response.status_code == 302
    assert agent_tokens.authenticate(raw) is None
    event = AuditEvent.objects.get(action=AuditEvent.Action.AGENT_TOKEN_REVOKED)
    assert event.username == "root" and event.environment == "Production"


def test_staff_see_only_the_tokens_of_environments_they_can_view(client, environments):
    qa, production = make_agent_environment(environments[1]), make_agent_environment(environments[-1])
    agent_tokens.create(qa, "qa-machine")
    hidden, raw = agent_tokens.create(production, "prod-machine")
    staff = staff_with("qa-staff", {qa: AccessLevel.FULL}, "view_agenttoken", "change_agenttoken")
    client.force_login(staff)
    page = client.get(reverse("admin:lifecycle_agenttoken_changelist")).content.decode()
    assert "qa-machine" in page and "prod-machine" not in page
    client.post(
        reverse("admin:lifecycle_agenttoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [str(hidden.pk)]},
    )
    assert agent_tokens.authenticate(raw) is not None
