"""Who is calling /api/v1/: an OAuth client-credentials token of one tenant's API client.

The tenant comes from the credential, exactly as for SCIM, never from the host or the URL; on a
tenant's own host a token of another tenant is refused. django-oauth-toolkit's DRF authentication
validates the bearer token (expiry, revocation, the application's `is_usable`); this class adds
the tenant rule and gives the view `request.auth` as an `ApiCredential`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from directory.models import Tenant
from oauth.models import Application
from oauth.services import credential_mark_used

INVALID_TOKEN = "The bearer token is missing, invalid, expired or revoked."


@dataclass(frozen=True)
class ApiCredential:
    tenant: Tenant
    application: Application
    scopes: frozenset[str]


class TenantApiAuthentication(OAuth2Authentication):
    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[Any, ApiCredential] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        _user, token = result
        application = token.application
        tenant: Tenant | None = application.tenant if application is not None else None
        if (
            application is None
            or not application.is_api_client
            or tenant is None
            or tenant.is_platform
            or not tenant.is_active
        ):
            raise AuthenticationFailed(INVALID_TOKEN)
        host_tenant = getattr(request._request, "tenant", None)
        if host_tenant is not None and not host_tenant.is_platform and host_tenant.pk != tenant.pk:
            raise AuthenticationFailed(INVALID_TOKEN)
        credential_mark_used(credential=application)
        scopes = frozenset(token.scope.split())
        return None, ApiCredential(tenant=tenant, application=application, scopes=scopes)
