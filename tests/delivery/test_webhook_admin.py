"""The admin refuses a webhook URL that reaches into our own network, with the guard's own message."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from lifecycle.models import AuditEvent, Delivery, Environment

pytestmark = pytest.mark.django_db

REFUSED = [
    ("http://127.0.0.1:8000/hook", "127.0.0.1 is a loopback address"),
    ("http://[::1]/hook", "::1 is a loopback address"),
    ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
    ("http://172.16.0.9/hook", "172.16.0.9 is a private address"),
    ("http://192.168.0.10/hook", "192.168.0.10 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
    ("http://[fc00::1]/hook", "fc00::1 is a unique local address"),
    ("http://0.0.0.0/hook", "0.0.0.0 is an unspecified address"),
    ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is a loopback address inside an IPv6 address"),
    ("http://localhost:8000/hook", "localhost resolves to"),
    ("ftp://example.com/hook", "must start with http:// or https://, not ftp:"),
]


@pytest.fixture
def admin_client(client, environments):
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


def change_data(environment, **changes):
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
    data.update(changes)
    return data


def saved(environment):
    return Environment.objects.filter(pk=environment.pk).values("delivery", "webhook_url").get()


@pytest.mark.parametrize(("url", "message"), REFUSED, ids=[url for url, _ in REFUSED])
def test_the_change_form_refuses_a_private_webhook_url(admin_client, environments, settings, url, message):
    settings.ALLOW_PRIVATE_WEBHOOKS = False
    qa = environments[1]
    before, audited = saved(qa), AuditEvent.objects.count()

    response = admin_client.post(
        reverse("admin:lifecycle_environment_change", args=[qa.pk]),
        change_data(qa, delivery=Delivery.WEBHOOK, webhook_url=url, webhook_secret="s"),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors["webhook_url"]), errors
    assert "server-side request forgery" in response.content.decode() or "ftp" in url
    assert saved(qa) == before
    assert AuditEvent.objects.count() == audited


def test_the_add_form_refuses_a_private_webhook_url(admin_client, environments, settings):
    settings.ALLOW_PRIVATE_WEBHOOKS = False
    response = admin_client.post(
        reverse("admin:lifecycle_environment_add"),
        {
            "name": "Staging",
            "position": "9",
            "delivery": Delivery.WEBHOOK,
            "webhook_url": "http://169.254.169.254/latest/meta-data/",
            "webhook_secret": "",
            "access-TOTAL_FORMS": "0",
            "access-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "169.254.169.254 is a link-local address" in response.content.decode()
    assert not Environment.objects.filter(name="Staging").exists()


def test_a_public_webhook_url_is_saved(admin_client, environments, settings):
    settings.ALLOW_PRIVATE_WEBHOOKS = False
    qa = environments[1]
    response = admin_client.post(
        reverse("admin:lifecycle_environment_change", args=[qa.pk]),
        change_data(qa, delivery=Delivery.WEBHOOK, webhook_url="https://8.8.8.8/hooks/stageboard"),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert saved(qa) == {"delivery": Delivery.WEBHOOK, "webhook_url": "https://8.8.8.8/hooks/stageboard"}


def test_allow_private_webhooks_lets_the_admin_save_a_loopback_url(admin_client, environments):
    # The test settings set ALLOW_PRIVATE_WEBHOOKS (pyproject.toml), as a single-machine demo would.
    qa = environments[1]
    response = admin_client.post(
        reverse("admin:lifecycle_environment_change", args=[qa.pk]),
        change_data(qa, delivery=Delivery.WEBHOOK, webhook_url="http://127.0.0.1:9000/hook"),
    )
    assert response.status_code == 302
    assert saved(qa)["webhook_url"] == "http://127.0.0.1:9000/hook"
