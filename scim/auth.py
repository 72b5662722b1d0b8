"""Bearer authentication for /scim/v2/: token → the tenant's provisioning service principal.

The tenant comes from the credential, never from the host or the URL (architecture.md, Tenancy).
Three credentials lead here: a secret token (Entra's "Secret Token" field), an OAuth access token
from the authorization-code grant (issued to the tenant's service principal by
oauth.validators), and a client-credentials token of a tenant-bound application. Every failure is
the same 401 with `WWW-Authenticate: Bearer`, so a caller learns nothing about other tenants.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.http import HttpRequest
from oauth2_provider.models import get_access_token_model

from directory import selectors
from directory.exceptions import NotFound as DomainNotFound
from directory.models import Tenant, User
from directory.services import Actor
from oauth.models import SCIM_SCOPE, SECRET_TOKEN_PREFIX, SecretToken, token_digest
from oauth.services import credential_mark_used
from scim.errors import Unauthorized

INVALID_TOKEN = "The bearer token is missing, invalid, expired or revoked."


@dataclass(frozen=True)
class SCIMPrincipal:
    tenant: Tenant
    service_principal: User
    actor: Actor


def bearer_token(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authentication required: send `Authorization: Bearer <token>`.")
    return token.strip()


def _from_secret_token(raw: str) -> tuple[Tenant, str, str]:
    token = SecretToken.objects.select_related("tenant").filter(digest=token_digest(raw)).first()
    if token is None or not token.is_valid():
        raise Unauthorized(INVALID_TOKEN)
    credential_mark_used(credential=token)
    return token.tenant, f"secret token {token.name} ({token.prefix}…)", f"secret-token:{token.pk}"


def _from_access_token(raw: str) -> tuple[Tenant, str, str]:
    access_token = (
        get_access_token_model()
        .objects.select_related("application", "application__tenant", "user", "user__tenant")
        .filter(token_checksum=hashlib.sha256(raw.encode("utf-8")).hexdigest())
        .first()
    )
    if access_token is None or not access_token.is_valid([SCIM_SCOPE]):
        raise Unauthorized(INVALID_TOKEN)
    application = access_token.application
    if application is None or not application.is_usable(None):
        raise Unauthorized(INVALID_TOKEN)
    user = access_token.user
    tenant: Tenant | None = application.tenant
    if user is not None:
        if user.role != User.Role.SERVICE or (tenant is not None and user.tenant_id != tenant.pk):
            raise Unauthorized(INVALID_TOKEN)
        tenant = user.tenant
    if tenant is None:
        raise Unauthorized(INVALID_TOKEN)
    credential_mark_used(credential=application)
    return tenant, f"OAuth application {application.name}", f"oauth-token:{access_token.pk}"


def authenticate(request: HttpRequest) -> SCIMPrincipal:
    raw = bearer_token(request)
    if raw.startswith(SECRET_TOKEN_PREFIX):
        tenant, label, credential = _from_secret_token(raw)
    else:
        tenant, label, credential = _from_access_token(raw)
    if not tenant.is_active or tenant.is_platform:
        raise Unauthorized(INVALID_TOKEN)
    host_tenant = getattr(request, "tenant", None)
    if host_tenant is not None and not host_tenant.is_platform and host_tenant.pk != tenant.pk:
        raise Unauthorized(INVALID_TOKEN)
    try:
        service_principal = selectors.service_principal_get(tenant=tenant)
    except DomainNotFound:
        raise Unauthorized(INVALID_TOKEN) from None
    actor = Actor.for_credential(service_principal=service_principal, label=label, credential=credential)
    return SCIMPrincipal(tenant=tenant, service_principal=service_principal, actor=actor)
