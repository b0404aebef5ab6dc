"""An outside reviewer's attacks on delivery (issue 10) that found defects, each test named for its attack."""

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse

from lifecycle.delivery import addresses, agent_tokens
from lifecycle.models import AccessLevel, AuditEvent, CurrentVersion, Delivery, Drift
from lifecycle.snapshots import content_hash, tree_hash
from tests.delivery.agent_support import (
    assert_error,
    drift_url,
    make_agent_environment,
    new_token,
    post_json,
    post_zip,
    reports_url,
)
from tests.factories import make_user, publish_files, released_application
from tests.zips import make_zip

pytestmark = pytest.mark.django_db

EDITED = {"main.py": b"# edited on the server\n"}


@pytest.fixture
def shop(environments):
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    production = make_agent_environment(environments[-1])
    return application, cart, production, new_token(production)


def _report(client, raw, application, module, applied, live):
    response = post_json(
        client,
        reports_url(),
        {
            "applications": [
                {"name": application.name, "applied": {module.name: applied}, "live": {module.name: live}}
            ]
        },
        raw,
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_a_drift_uploaded_after_a_newer_publish_cannot_be_adopted_over_it(client, shop):
    """The agent is asked for the drift of v1; v2 is published before its upload arrives.

    The files were edited on v1: kept as a drift "from v2", adopting them would publish v1's
    files plus the edit on top of v2, silently undoing v2.
    """
    application, cart, production, raw = shop
    v1 = CurrentVersion.objects.get(environment=production, module=cart).version
    edited = tree_hash({path: content_hash(data) for path, data in EDITED.items()})
    assert _report(client, raw, application, cart, v1.tree_hash, edited)["drift_uploads"] == [cart.name]
    publish_files(cart, production, {"main.py": "# v2: a fix published in Production\n"})

    response = post_zip(client, drift_url(cart.name), make_zip(EDITED), raw)

    assert_error(response, 409, "not_applied")
    assert not Drift.objects.exists()


def test_a_drift_upload_without_any_report_is_refused(client, shop):
    _, cart, _, raw = shop
    assert_error(post_zip(client, drift_url(cart.name), make_zip(EDITED), raw), 409, "not_applied")
    assert not Drift.objects.exists()


# The admin: the webhook's signing key and the agent tokens are Production's credentials.


def _staff(username, levels, *permissions):
    user = make_user(username, levels, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=permissions))
    return User.objects.get(pk=user.pk)


@pytest.mark.parametrize(
    ("level", "permissions"),
    [
        (AccessLevel.FULL, ("view_environment",)),  # reads the admin, may change nothing there
        (AccessLevel.VIEW, ("view_environment", "change_environment")),
        (None, ("view_environment", "change_environment")),
    ],
    ids=["view-only-staff-with-full-access", "staff-viewing-production", "staff-without-access"],
)
def test_staff_cannot_read_the_webhook_secret_to_forge_deliveries(client, environments, level, permissions):
    """Whoever holds the secret can sign a POST the receiver takes for Stageboard's."""
    production = environments[-1]
    production.delivery, production.webhook_url = Delivery.WEBHOOK, "https://receiver.example.com/hook"
    production.webhook_secret = "s3cret-signing-key-of-production"
    production.save()
    client.force_login(_staff("operator", {production: level} if level else {}, *permissions))

    page = client.get(reverse("admin:lifecycle_environment_change", args=[production.pk]))

    assert page.status_code == 200
    assert production.webhook_secret not in page.content.decode()


def test_staff_with_full_access_still_read_and_set_the_webhook_secret(client, environments):
    production = environments[-1]
    production.delivery, production.webhook_url = Delivery.WEBHOOK, "https://receiver.example.com/hook"
    production.webhook_secret = "s3cret-signing-key-of-production"
    production.save()
    client.force_login(
        _staff("owner", {production: AccessLevel.FULL}, "view_environment", "change_environment")
    )
    url = reverse("admin:lifecycle_environment_change", args=[production.pk])
    assert production.webhook_secret in client.get(url).content.decode()


def test_saving_a_webhook_environment_without_seeing_the_secret_keeps_it(client, environments):
    production = environments[-1]
    production.delivery, production.webhook_url = Delivery.WEBHOOK, "https://receiver.example.com/hook"
    production.webhook_secret = "s3cret-signing-key-of-production"
    production.save()
    client.force_login(
        _staff("operator", {production: AccessLevel.VIEW}, "view_environment", "change_environment")
    )
    data = {
        "name": production.name,
        "position": production.position,
        "is_production": "on",
        "delivery": Delivery.WEBHOOK,
        "webhook_url": "http://127.0.0.1:9/other-hook",
        "webhook_secret": "chosen-by-the-attacker",
        "access-TOTAL_FORMS": "0",
        "access-INITIAL_FORMS": "0",
    }
    response = client.post(reverse("admin:lifecycle_environment_change", args=[production.pk]), data)
    assert response.status_code == 302, response.content
    production.refresh_from_db()
    assert production.webhook_secret == "s3cret-signing-key-of-production"


def test_a_production_viewer_with_the_revoke_permission_cannot_cut_off_its_agents(client, environments):
    production = make_agent_environment(environments[-1])
    token, raw = agent_tokens.create(production, "prod-machine")
    staff = _staff("viewer-staff", {production: AccessLevel.VIEW}, "view_agenttoken", "change_agenttoken")

    with pytest.raises((PermissionDenied, Http404)):
        agent_tokens.revoke(token, staff)
    client.force_login(staff)
    client.post(
        reverse("admin:lifecycle_agenttoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [str(token.pk)]},
    )

    assert agent_tokens.authenticate(raw) == token
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.AGENT_TOKEN_REVOKED).exists()


def test_a_webhook_environment_saved_by_staff_who_cannot_see_its_secret_still_gets_one(client, environments):
    production = environments[-1]
    production.delivery, production.webhook_url = Delivery.WEBHOOK, "http://127.0.0.1:9/hook"
    production.save()
    client.force_login(
        _staff("operator", {production: AccessLevel.VIEW}, "view_environment", "change_environment")
    )
    data = {
        "name": production.name,
        "position": production.position,
        "is_production": "on",
        "delivery": Delivery.WEBHOOK,
        "webhook_url": production.webhook_url,
        "access-TOTAL_FORMS": "0",
        "access-INITIAL_FORMS": "0",
    }
    response = client.post(reverse("admin:lifecycle_environment_change", args=[production.pk]), data)
    assert response.status_code == 302, response.content
    production.refresh_from_db()
    assert len(production.webhook_secret) >= 32
    assert production.webhook_secret not in client.get(response["Location"]).content.decode()


# Webhook addresses.


@pytest.mark.parametrize("url", ["http://[fec0::1]/hook", "http://[feff:ffff::1]:8080/hook"])
def test_a_site_local_ipv6_webhook_is_refused_as_inside_our_network(url):
    """fec0::/10, the deprecated site-local range, still reaches the machines of networks that use it."""
    with pytest.raises(addresses.AddressRefused, match="site-local"):
        addresses.refuse_private(url, allow_private=False)
