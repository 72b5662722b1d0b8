"""Resolve `request.tenant` once per request, from the Host header and stored hosts only.

The Host → tenant answer is kept in a bounded per-process cache (directory.cache): a warm request
resolves its tenant with no query. A tenant or host changed in this process is seen by the next
request; one changed elsewhere within `SCIM_CREDENTIAL_CACHE_SECONDS` (default 5).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound

from directory import selectors
from directory.cache import ProcessCache, field_paths, model_from_row
from directory.models import Tenant

_tenant_rows_by_host: ProcessCache[tuple[object, ...]] = ProcessCache("tenant-for-host")


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
        tenant = tenant_for_host_cached(host)
        if tenant is None:
            return HttpResponseNotFound("Unknown host.", content_type="text/plain")
        request.tenant = tenant  # type: ignore[attr-defined]
        return self.get_response(request)


def tenant_for_host_cached(host: str) -> Tenant | None:
    """`selectors.tenant_for_host` through the per-process cache. The key says whether the host is
    a root host too, so a changed `SECURELOGIN_BASE_DOMAIN` never meets an entry made under the old
    one. Unknown hosts are not cached: a flood of random Host headers cannot evict real tenants."""
    key = (host, host in root_hosts())
    row = _tenant_rows_by_host.get(key)
    if row is not None:
        return model_from_row(Tenant, row)
    generation = _tenant_rows_by_host.generation
    tenant = selectors.tenant_for_host(host=host)
    if tenant is not None:
        values = tuple(getattr(tenant, name) for name in field_paths(Tenant))
        _tenant_rows_by_host.put(key, values, generation=generation)
    return tenant


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
