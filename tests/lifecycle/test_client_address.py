"""The client's address: taken TRUSTED_PROXY_COUNT hops from the right, validated, never an error."""

import pytest
from django.test import RequestFactory
from django.urls import reverse

from lifecycle.audit import client_ip
from lifecycle.models import AuditEvent
from tests.config.test_settings import PRODUCTION, manage

PROXY = "10.0.0.2"


def address(forwarded=None, remote=PROXY):
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **meta))


def test_it_uses_the_connections_address_without_proxies(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert address("203.0.113.5") == PROXY


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        # One proxy appends the address it was reached from: anything left of it is the client's word.
        (1, "203.0.113.5", "203.0.113.5"),
        (1, "6.6.6.6, 203.0.113.5", "203.0.113.5"),
        (1, "6.6.6.6,203.0.113.5", "203.0.113.5"),
        (2, "6.6.6.6, 203.0.113.5, 10.0.0.1", "203.0.113.5"),
        (1, "2001:db8::1", "2001:db8::1"),
        (1, "2001:DB8:0:0::1", "2001:db8::1"),
    ],
)
def test_it_takes_the_address_that_many_hops_from_the_right(settings, hops, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = hops
    assert address(forwarded) == expected


@pytest.mark.parametrize(
    "forwarded",
    ["not-an-ip", "", ",", "203.0.113.5, not-an-ip", "999.1.1.1", "fe80::1%eth0", "1.2.3.4:80", "x" * 10_000],
)
def test_it_falls_back_to_the_connection_on_a_malformed_header(settings, forwarded):
    settings.TRUSTED_PROXY_COUNT = 1
    assert address(forwarded) == PROXY


def test_it_falls_back_when_the_request_bypassed_a_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    assert address("203.0.113.5") == PROXY
    assert address(None) == PROXY


@pytest.mark.parametrize("remote", ["", "unix:/run/gunicorn.sock", "not-an-ip"])
def test_it_gives_no_address_rather_than_a_wrong_one(settings, remote):
    settings.TRUSTED_PROXY_COUNT = 0
    assert address(remote=remote) is None


@pytest.mark.django_db
@pytest.mark.parametrize("forwarded", ["not-an-ip", "6.6.6.6, not-an-ip", "fe80::1%eth0"])
def test_it_never_breaks_a_login(client, viewer, settings, forwarded):
    """A malformed header made every login answer 500 on PostgreSQL (its inet column refused it)."""
    settings.TRUSTED_PROXY_COUNT = 1
    headers = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": forwarded}
    response = client.post(reverse("login"), {"username": "viewer", "password": "wrong"}, **headers)
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="login_failed").ip == PROXY
    response = client.post(reverse("login"), {"username": "viewer", "password": "pw-viewer"}, **headers)
    assert response.status_code == 302


@pytest.mark.django_db
def test_it_records_and_throttles_the_real_clients_address(client, viewer, settings):
    """A guesser cannot pick a fresh address for each try by writing one in front of the proxy's."""
    settings.TRUSTED_PROXY_COUNT = 1
    for index in range(5):
        client.post(
            reverse("login"),
            {"username": "viewer", "password": "wrong"},
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{index}, 198.51.100.66",
        )
    assert set(AuditEvent.objects.values_list("ip", flat=True)) == {"198.51.100.66"}
    response = client.post(
        reverse("login"),
        {"username": "viewer", "password": "pw-viewer"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="192.0.2.99, 198.51.100.66",
    )
    assert response.status_code == 429


def test_it_refuses_to_start_with_a_negative_proxy_count():
    result = manage("check", **{**PRODUCTION, "TRUSTED_PROXY_COUNT": "-1"})
    assert result.returncode != 0
    assert "environment variable TRUSTED_PROXY_COUNT is malformed" in result.stderr


def test_it_refuses_to_start_with_a_proxy_count_that_is_not_a_number():
    result = manage("check", **{**PRODUCTION, "TRUSTED_PROXY_COUNT": "two"})
    assert result.returncode != 0
    assert "environment variable TRUSTED_PROXY_COUNT is malformed" in result.stderr


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "0"),
        ({"TRUSTED_PROXY_COUNT": "2"}, "2"),
        # The old setting meant "one proxy in front"; it keeps meaning that.
        ({"TRUST_X_FORWARDED_FOR": "true"}, "1"),
        ({"TRUST_X_FORWARDED_FOR": "true", "TRUSTED_PROXY_COUNT": "0"}, "0"),
    ],
)
def test_it_reads_the_proxy_count(variables, expected):
    script = "from django.conf import settings; print(settings.TRUSTED_PROXY_COUNT)"
    result = manage("shell", "-c", script, **PRODUCTION, **variables)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
