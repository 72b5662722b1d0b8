"""Password sign-in resolved per tenant: (request.tenant, userName, password)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from directory.models import User
from directory.selectors import lowered


class TenantModelBackend(ModelBackend):
    """userName is unique per tenant only, so the tenant of the request host is part of the key.
    Service principals never sign in; inactive users neither (ModelBackend.user_can_authenticate)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        tenant = getattr(request, "tenant", None)
        if tenant is None or username is None or password is None or not tenant.is_active:
            return None
        user = (
            User.objects.select_related("tenant")
            .filter(tenant=tenant, username__lower=lowered(username))
            .exclude(role=User.Role.SERVICE)
            .first()
        )
        if user is None:
            # Spend the same hashing time as a real check, so timing does not reveal unknown names.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            if not password_sign_in_allowed(user):
                # The tenant requires SSO and this is no break-glass manager: refused on every
                # password form (the console's too); the sign-in page says why.
                if request is not None:
                    request.sso_password_refused = True  # type: ignore[attr-defined]
                return None
            return user
        return None

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(user.is_active and user.role != User.Role.SERVICE and user.tenant.is_active)

    def get_user(self, user_id: Any) -> User | None:
        user = User.objects.select_related("tenant").filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return bool(user_obj.is_active and user_obj.is_staff)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return bool(user_obj.is_active and user_obj.is_staff)


def password_sign_in_allowed(user: User) -> bool:
    from sso.policy import password_sign_in_allowed as allowed

    return allowed(user)


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """Lockouts count per tenant: `alice` at contoso is not `alice` at fabrikam."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    tenant = getattr(request, "tenant", None)
    return f"{tenant.slug if tenant else '-'}:{str(username).lower()}"
