"""Browser-facing hardening for the sign-in, go-to-domain, consent and account pages, and a small
cache-based failure counter for the endpoints that take guesses."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self' 'nonce-{nonce}'; img-src 'self' https:; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def harden_response(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """RFC 9700 §4.16 / RFC 6749 §10.13: these pages must never render in a frame. They also hold
    one-time state (CSRF tokens, the authorization request), so they are not cached, and they send
    no Referer to other origins that could carry the authorization request's query onwards
    (same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on form posts and
    Django's CSRF origin check rightly refuses them). No script runs on them;
    the one inline style (the tenant colour) carries a per-response nonce."""
    nonce = getattr(request, "csp_nonce", None) or secrets.token_urlsafe(16)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.format(nonce=nonce)
    response["X-Frame-Options"] = "DENY"
    response["Referrer-Policy"] = "same-origin"
    response["Cache-Control"] = "no-store"
    return response


def secure_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.csp_nonce = secrets.token_urlsafe(16)  # type: ignore[attr-defined]
        return harden_response(request, view(request, *args, **kwargs))

    return wrapped


def client_ip(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "-"


class FailureCounter:
    """Counts failures per key in a fixed window in the shared cache (Redis in production).

    Not a precise limiter (DRF's maintainers make the same point about throttles), but enough to
    turn an online guessing attack into a trickle; the edge proxy keeps its own limits.
    """

    def __init__(self, name: str, *, limit: int, window_seconds: int) -> None:
        self.name = name
        self.limit = limit
        self.window_seconds = window_seconds

    def _key(self, key: str) -> str:
        return f"securelogin:failures:{self.name}:{key}"

    def blocked(self, key: str) -> bool:
        return int(cache.get(self._key(key), 0)) >= self.limit

    def record(self, key: str) -> None:
        cache_key = self._key(key)
        if cache.add(cache_key, 1, self.window_seconds):
            return
        try:
            cache.incr(cache_key)
        except ValueError:
            cache.set(cache_key, 1, self.window_seconds)


# Failed client authentications at the token, revocation and introspection endpoints, per client
# id and address (security.md check 19; ASVS 10.4.10).
CLIENT_AUTH_FAILURES = FailureCounter("client-auth", limit=10, window_seconds=300)
# Unknown organisations typed into the go-to-domain page, per address.
GO_TO_DOMAIN_FAILURES = FailureCounter("go-to-domain", limit=30, window_seconds=600)
