"""Webhook URLs that reach into our own network are refused (server-side request forgery), as a table."""

import re

import pytest
from django.test import override_settings

from lifecycle.delivery.addresses import AddressRefused, refuse_private

REFUSED = [
    ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
    ("http://127.1.2.3:8080/hook", "127.1.2.3 is a loopback address"),
    ("http://[::1]/hook", "::1 is a loopback address"),
    ("http://10.0.0.5/hook", "10.0.0.5 is a private address"),
    ("http://172.16.0.1/hook", "172.16.0.1 is a private address"),
    ("http://172.31.255.254/hook", "172.31.255.254 is a private address"),
    ("http://192.168.1.10/hook", "192.168.1.10 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
    ("http://[fc00::1]/hook", "fc00::1 is a unique local address"),
    ("http://[fd12:3456::1]/hook", "fd12:3456::1 is a unique local address"),
    ("http://0.0.0.0/hook", "0.0.0.0 is an unspecified address"),
    ("http://[::]/hook", "host :: is an unspecified address"),
    ("http://224.0.0.1/hook", "224.0.0.1 is a multicast address"),
    ("http://[ff02::1]/hook", "ff02::1 is a multicast address"),
    ("http://240.0.0.1/hook", "240.0.0.1 is a private address"),
    ("http://100.64.0.1/hook", "100.64.0.1 is a reserved address"),
    ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.1 is a loopback address inside an IPv6 address"),
    ("http://[::ffff:10.0.0.1]/hook", "::ffff:10.0.0.1 is a private address inside an IPv6 address"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "64:ff9b::a9fe:a9fe is a link-local address inside an IPv6 address"),
    ("http://[2002:c0a8:101::1]/hook", "2002:c0a8:101::1 is a private address inside an IPv6 address"),
    # Names are judged by what they resolve to, in any spelling the resolver accepts.
    ("http://localhost:8000/hook", "localhost resolves to (127.0.0.1|::1), which is a loopback address"),
    ("https://LOCALHOST/hook", "localhost resolves to (127.0.0.1|::1), which is a loopback address"),
    ("http://0x7f.1/hook", "0x7f.1 resolves to 127.0.0.1, which is a loopback address"),
    ("http://2130706433/hook", "2130706433 resolves to 127.0.0.1, which is a loopback address"),
    # Only http and https: no file reads, no gopher smuggling, no FTP.
    ("file:///etc/passwd", "must start with http:// or https://, not file:"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "must start with http:// or https://, not gopher:"),
    ("ftp://example.com/x", "must start with http:// or https://, not ftp:"),
    ("//example.com/hook", "must start with http:// or https://, not nothing:"),
    ("javascript:alert(1)", "must start with http:// or https://, not javascript:"),
    ("http:///hook", "names no host"),
    ("http://example.com:99999/hook", "invalid port"),
    ("", "is empty"),
]


@override_settings(ALLOW_PRIVATE_WEBHOOKS=False)
@pytest.mark.parametrize(("url", "message"), REFUSED, ids=[url or "empty" for url, _ in REFUSED])
def test_refused(url, message):
    with pytest.raises(AddressRefused) as refused:
        refuse_private(url)
    assert re.search(message, str(refused.value)), str(refused.value)
    if "resolves" in message or " is a" in message:
        assert "ALLOW_PRIVATE_WEBHOOKS" in str(refused.value)


@override_settings(ALLOW_PRIVATE_WEBHOOKS=False)
@pytest.mark.parametrize(
    ("url", "destination"),
    [
        ("http://8.8.8.8/hook?x=1", ("http", "8.8.8.8", 80, "/hook?x=1", ("8.8.8.8",))),
        ("https://1.1.1.1", ("https", "1.1.1.1", 443, "/", ("1.1.1.1",))),
        ("HTTPS://[2606:4700::1111]:8443/h", ("https", "2606:4700::1111", 8443, "/h", ("2606:4700::1111",))),
        # A mapped public IPv4 address is that public address.
        ("http://[::ffff:8.8.8.8]/", ("http", "::ffff:8.8.8.8", 80, "/", ("::ffff:808:808",))),
    ],
)
def test_public_addresses_pass(url, destination):
    checked = refuse_private(url)
    assert (checked.scheme, checked.host, checked.port, checked.target, checked.addresses) == destination


def test_allow_private_webhooks_lets_loopback_through():
    # The test settings set it (pyproject.toml): the receivers of these tests listen on 127.0.0.1.
    checked = refuse_private("http://localhost:8123/hook")
    assert checked.host == "localhost"
    assert "127.0.0.1" in checked.addresses or "::1" in checked.addresses
    assert refuse_private("http://10.0.0.5/hook").addresses == ("10.0.0.5",)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1/x"])
def test_allow_private_webhooks_never_allows_other_schemes(url):
    with pytest.raises(AddressRefused, match="must start with http:// or https://"):
        refuse_private(url, allow_private=True)


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(AddressRefused, match="nowhere.invalid cannot be resolved"):
        refuse_private("https://nowhere.invalid/hook")
