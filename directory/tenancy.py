"""Resolve `request.tenant` once per request, from the Host header and stored hosts only."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound

from directory import selectors


def normalise_host(raw_host: str) -> str:
    """The Host header as stored hosts are written: lower-case, no port, no trailing dot (the port
    goes first, so `contoso.example.:8000` is `contoso.example` too)."""
    host = raw_host.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


class TenantMiddleware:
    """Sets `request.tenant`. Unknown hosts get a plain 404 before any view runs; nothing is ever
    redirected to a host taken from the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        host = normalise_host(request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", ""))
        tenant = selectors.tenant_for_host(host=host)
        if tenant is None:
            return HttpResponseNotFound("Unknown host.", content_type="text/plain")
        request.tenant = tenant  # type: ignore[attr-defined]
        return self.get_response(request)


class TenantSessionGuardMiddleware:
    """A session belongs to the tenant it signed in to. Cookies are host-only already; this makes
    the rule hold even behind a misconfigured proxy or a shared cookie domain."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        tenant = getattr(request, "tenant", None)
        if user is not None and user.is_authenticated and tenant is not None and user.tenant_id != tenant.id:
            logout(request)
        return self.get_response(request)


def root_hosts() -> set[str]:
    extra = getattr(settings, "SECURELOGIN_EXTRA_ROOT_HOSTS", [])
    return {settings.SECURELOGIN_BASE_DOMAIN, *extra}


def tenant_primary_host(slug: str) -> str:
    return f"{slug}.{settings.SECURELOGIN_BASE_DOMAIN}"
