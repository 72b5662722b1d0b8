"""End, not just ignore, the sessions of users who may no longer sign in."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse


class EndedSessionMiddleware:
    """A session whose user SCIM deactivated or deleted (or whose tenant was deactivated) already
    loads as anonymous: the backends' `get_user` refuses such users. This also flushes it, so a
    later reactivation does not bring the old session back, and SSO state kept in the session
    (the SAML NameID for single logout) goes with it. Requests without a session cost nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        if session is not None and SESSION_KEY in session and not request.user.is_authenticated:
            session.flush()
        return self.get_response(request)
