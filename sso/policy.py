"""Tenant-wide SSO rules: may this user sign in with a password, and what the sign-in page offers.

With `enforce_sso` on, password sign-in is refused to everyone except the tenant's break-glass
managers (Entra's gallery asks for an emergency bypass). The rule is applied in the password
backend itself (directory.backends), so the console's own login form obeys it too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest

from directory.models import Tenant, User
from sso.models import SsoSettings

SSO_REQUIRED_MESSAGE = (
    "Your organization requires single sign-on. Use “Sign in with Microsoft”; password sign-in "
    "is only for emergency access accounts."
)
SAML_LOGIN_PATH = "/saml2/login/"
OIDC_LOGIN_PATH = "/oidc/login/"


def _settings(tenant: Tenant | None) -> SsoSettings | None:
    if tenant is None or tenant.is_platform:
        return None
    return SsoSettings.objects.filter(tenant=tenant).first()


def password_sign_in_allowed(user: User) -> bool:
    """False when the user's tenant requires SSO and the user is not one of its active
    break-glass managers."""
    sso = _settings(user.tenant)
    if sso is None or not sso.enforce_sso or not sso.sso_available:
        return True
    return bool(
        user.is_active and user.role == User.Role.MANAGER and sso.break_glass.filter(pk=user.pk).exists()
    )


def sign_in_page_context(request: HttpRequest, next_path: str = "") -> dict[str, Any]:
    """What the tenant's sign-in page shows: the "Sign in with Microsoft" button (SAML first,
    else OpenID Connect) and whether password sign-in is for break-glass accounts only."""
    sso = _settings(getattr(request, "tenant", None))
    if sso is None or not sso.sso_available:
        return {"sso_login_url": "", "sso_login_path": "", "sso_next": "", "sso_enforced": False}
    path = SAML_LOGIN_PATH if sso.saml_enabled else OIDC_LOGIN_PATH
    query = f"?{urlencode({'next': next_path})}" if next_path else ""
    # The button is a GET form, and a browser replaces an action's query with the form's fields:
    # `next` travels as a hidden field (`sso_next`), not in the action.
    return {
        "sso_login_url": f"{path}{query}",
        "sso_login_path": path,
        "sso_next": next_path,
        "sso_enforced": sso.enforce_sso,
    }
