"""The short way through the middleware stack for requests that are machine-to-machine only."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse


class BearerOnlyPathMiddleware:
    """Requests under `BEARER_ONLY_PATH_PREFIXES` (SCIM) go from here straight to URL resolution and
    the view.

    A SCIM client authenticates every request with its bearer token and never holds a session
    cookie, a CSRF token or a form, so the layers below this one (sessions, CSRF, authentication,
    the session guards, messages, clickjacking, axes' sign-in lockout) do nothing for it; on the hot
    SCIM lookups they were a third of the CPU (docs/benchmarks.md, "The middleware stack"). The
    layers above it still run for every request: SecurityMiddleware (HTTPS redirect, HSTS, nosniff)
    and TenantMiddleware (`request.tenant`, the unknown-host 404). The view runs inside the same
    exception-to-response conversion Django wraps around every layer, with no view, exception or
    template-response middleware of its own, which is what the skipped layers would have added.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefixes = tuple(settings.BEARER_ONLY_PATH_PREFIXES)
        views_only = BaseHandler()
        views_only._view_middleware = []
        views_only._template_response_middleware = []
        views_only._exception_middleware = []
        self.get_view_response = convert_exception_to_response(views_only._get_response)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.prefixes):
            return self.get_view_response(request)
        return self.get_response(request)
