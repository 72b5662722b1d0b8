"""Sign-in bookkeeping shared by every way in: password sign-ins recorded like SSO ones, the
account page's recent sign-ins, and which sign-out a session needs."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from directory.models import Tenant, User
from directory.selectors import user_by_username
from oauth.security import client_ip
from sso import services
from sso.selectors import sign_in_events

RECENT_SIGN_INS = 10
PASSWORD_REFUSED_REASON = "Password sign-in refused: the tenant requires single sign-on."
SAML_SIGN_OUT_PATH = "/saml2/logout/"
SIGN_OUT_PATH = "/logout/"


def _tenant(request: HttpRequest) -> Tenant | None:
    tenant = getattr(request, "tenant", None)
    return tenant if tenant is not None and not tenant.is_platform else None


def password_sign_in_recorded(request: HttpRequest, user: User | None) -> None:
    tenant = _tenant(request)
    if tenant is None or user is None:
        return
    request.session["sso_method"] = "password"
    services.sign_in_record(
        tenant=tenant,
        actor=services.sign_in_actor(user, "password"),
        user=user,
        method="password",
        address=client_ip(request),
        succeeded=True,
    )


def password_sign_in_refused(request: HttpRequest, username: str) -> None:
    """Only for the enforcement refusal (the password was right, the policy says SSO): wrong
    passwords are django-axes' business and are not logged per attempt here."""
    tenant = _tenant(request)
    if tenant is None:
        return
    user = user_by_username(tenant=tenant, username=username) if username else None
    services.sign_in_record(
        tenant=tenant,
        actor=services.sign_in_actor(user, "password"),
        user=user,
        method="password",
        address=client_ip(request),
        succeeded=False,
        reason=PASSWORD_REFUSED_REASON,
        subject=username,
    )


def recent_sign_ins(request: HttpRequest, user: Any) -> list[dict[str, Any]]:
    tenant = _tenant(request)
    if tenant is None or not isinstance(user, User):
        return []
    return [
        {
            "when": event.created,
            "method": (event.changes or {}).get("method", ""),
            "address": (event.changes or {}).get("address", ""),
            "succeeded": event.result == event.Result.SUCCESS,
        }
        for event in sign_in_events(tenant=tenant, user=user)[:RECENT_SIGN_INS]
    ]


def sign_out_path(request: HttpRequest) -> str:
    """SAML sessions sign out through single logout; every other session through /logout/."""
    return SAML_SIGN_OUT_PATH if request.session.get("sso_saml") else SIGN_OUT_PATH
