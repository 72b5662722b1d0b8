"""Where a webhook may point: the SSRF guard, one rule for registration and for every send.

HTTPS only, and every address the host resolves to must be public: no private, loopback,
link-local (cloud metadata lives at 169.254.169.254), shared, multicast, reserved or unspecified
address, over IPv4 or IPv6. `WEBHOOK_ALLOW_PRIVATE=1` (tests and local trials only) lifts the
address rule and also allows plain `http://` to loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from directory.exceptions import InvalidValue


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidValue(f"The webhook host {host!r} does not resolve.", field="url") from exc
    return sorted({str(info[4][0]) for info in infos})


def webhook_url_check(url: str, *, resolve_host: bool = True) -> list[str]:
    """The addresses `url` may be sent to, or InvalidValue saying why not. `resolve_host=False`
    checks the URL's form only (a host that does not resolve yet may be registered; every send
    checks again)."""
    allow_private = bool(getattr(settings, "WEBHOOK_ALLOW_PRIVATE", False))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidValue("The webhook URL is not a valid URL.", field="url") from exc
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidValue("The webhook URL needs a host.", field="url")
    if parts.username or parts.password:
        raise InvalidValue("The webhook URL must not carry credentials.", field="url")
    loopback_http = allow_private and parts.scheme == "http" and host in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not loopback_http:
        raise InvalidValue("Webhook URLs must use https://.", field="url")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not allow_private and not _is_public(literal):
        raise InvalidValue("Webhook URLs must not point at private or local addresses.", field="url")
    if not resolve_host:
        return []
    addresses = resolve(host, port)
    if not allow_private:
        for address in addresses:
            if not _is_public(ipaddress.ip_address(address.split("%")[0])):
                raise InvalidValue(
                    "The webhook host resolves to a private or local address.", field="url"
                )
    return addresses
