"""Where a webhook may go: refuse addresses inside our own network (server-side request forgery).

A webhook URL is typed by staff, but the POST is made by the server, from inside
its network: to 127.0.0.1 it would reach the console's own ports, to
169.254.169.254 a cloud's metadata service (with its credentials), to 10.x the
machines behind the firewall. So the host is resolved and *every* address it
resolves to must be public; the caller then connects to the address checked here
(`Destination.addresses`), never resolving the name a second time, so a DNS answer
that changes between the check and the connection (rebinding) cannot slip a
private address in (docs/security.md, "Webhooks").

Only the standard library: the one setting, ALLOW_PRIVATE_WEBHOOKS, is read when
the caller does not say (tests and single-machine demos set it).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}
# NAT64's well-known prefix (RFC 6052): 64:ff9b::a.b.c.d reaches the IPv4 address a.b.c.d.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(ValueError):
    """A webhook URL that must not be called; the message says why, for the admin form and the log."""


@dataclass(frozen=True)
class Destination:
    """A checked webhook URL: connect to one of `addresses`, and say `host` in the Host header and TLS SNI."""

    scheme: str
    host: str
    port: int
    target: str  # the path and query, as sent in the request line
    addresses: tuple[str, ...]  # every address the host resolved to, each checked, in the resolver's order


def refuse_private(url: str, *, allow_private: bool | None = None) -> Destination:
    """The destination of `url`, or AddressRefused when it is not http(s) or reaches a non-public address.

    Resolves the host (socket.getaddrinfo) and refuses it when any of its addresses is
    loopback, private, link-local, unique-local, site-local, multicast, unspecified, reserved or
    otherwise not public, an IPv6 address that embeds such an IPv4 address included,
    unless `allow_private` (by default settings.ALLOW_PRIVATE_WEBHOOKS).
    """
    if allow_private is None:
        allow_private = _private_allowed()
    parts = _split(url)
    scheme, host = parts.scheme.lower(), parts.hostname
    try:
        port = parts.port or SCHEMES[scheme]
    except ValueError as error:
        raise AddressRefused(f"The webhook URL has an invalid port: {error}.") from None
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise AddressRefused(f"The webhook host {host} cannot be resolved ({_reason(error)}).") from None
    addresses = list(dict.fromkeys(_address(info[4][0]) for info in found))
    if not addresses:
        raise AddressRefused(f"The webhook host {host} resolves to no address.")
    if not allow_private:
        for address in addresses:
            kind = non_public_kind(address)
            if kind is not None:
                named = host if _is_literal(host) else f"{host} resolves to {address}, which"
                raise AddressRefused(
                    f"The webhook host {named} is {kind}: Stageboard does not call into its own "
                    "network (server-side request forgery). Use a public address, or set "
                    "ALLOW_PRIVATE_WEBHOOKS for a receiver on a private network."
                )
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Destination(
        scheme=scheme, host=host, port=port, target=target, addresses=tuple(str(a) for a in addresses)
    )


def non_public_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """ "a loopback address" and the like when a webhook must not go to `address`; None when public."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        kind = non_public_kind(embedded)
        return f"{kind} inside an IPv6 address" if kind else None
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "a unique local address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        # fec0::/10: deprecated, yet Python counts it global; a network that still uses it routes it inside.
        return "a site-local address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _embedded_ipv4(address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64), judged in its place."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _split(url: str):
    if not isinstance(url, str) or not url.strip():
        raise AddressRefused("The webhook URL is empty.")
    try:
        parts = urlsplit(url.strip())
    except ValueError as error:
        raise AddressRefused(f"The webhook URL is malformed: {error}.") from None
    if parts.scheme.lower() not in SCHEMES:
        raise AddressRefused(
            f"The webhook URL must start with http:// or https://, not {parts.scheme or 'nothing'}:."
        )
    if not parts.hostname:
        raise AddressRefused("The webhook URL names no host.")
    return parts


def _address(text: str):
    # getaddrinfo gives an IPv6 link-local address with its zone ("fe80::1%eth0").
    return ipaddress.ip_address(text.split("%", 1)[0])


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def _private_allowed() -> bool:
    from django.conf import settings

    return bool(settings.ALLOW_PRIVATE_WEBHOOKS)
