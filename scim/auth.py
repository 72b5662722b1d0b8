"""Bearer authentication for /scim/v2/: token → the tenant's provisioning service principal.

The tenant comes from the credential, never from the host or the URL (architecture.md, Tenancy).
Three credentials lead here: a secret token (Entra's "Secret Token" field), an OAuth access token
from the authorization-code grant (issued to the tenant's service principal by
oauth.validators), and a client-credentials token of a tenant-bound application. Every failure is
the same 401 with `WWW-Authenticate: Bearer`, so a caller learns nothing about other tenants.

Cost: one query on a cold cache, none on a warm one. The credential, its tenant and the tenant's
service principal come back as one row (the principal through a join on the tenant's users, of
which at most one is the service principal by constraint). A successful answer is kept in a
bounded per-process cache (directory.cache) keyed by the token's SHA-256, for at most
`SCIM_CREDENTIAL_CACHE_SECONDS` (default 5) and never past the credential's own expiry, which is
checked again on every hit. Revoking a token, disabling an application, deactivating a tenant or
changing its service principal clears the cache at once in the process that did it (model signals,
below and in directory.cache); another process (another gunicorn worker or node, `manage.py`, a
direct database update) stops accepting the credential within that many seconds. `last_used` is
still written at most once a minute per credential (oauth.services.credential_stamp_used).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db.models import FilteredRelation, Q
from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from directory.cache import ProcessCache, field_paths, invalidate_on_change, model_from_row
from directory.models import Tenant, User
from directory.services import Actor
from oauth.models import SCIM_SCOPE, SECRET_TOKEN_PREFIX, Application, SecretToken, token_digest
from oauth.services import credential_stamp_used
from scim.errors import Unauthorized

INVALID_TOKEN = "The bearer token is missing, invalid, expired or revoked."

AccessToken = get_access_token_model()


@dataclass(frozen=True)
class SCIMPrincipal:
    tenant: Tenant
    service_principal: User
    actor: Actor


@dataclass(frozen=True)
class CachedCredential:
    """What a successful lookup leaves in the cache: plain values only, turned into fresh model
    instances for each request (`principal`), so no request shares an instance with another."""

    tenant_row: tuple[Any, ...]
    service_principal_row: tuple[Any, ...]
    label: str
    credential: str
    expires: datetime | None
    used_model: type[SecretToken] | type[Application]
    used_pk: int
    last_used: datetime | None

    @property
    def tenant_id(self) -> int:
        return self.tenant_row[TENANT_PK_INDEX]

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now

    def principal(self) -> SCIMPrincipal:
        tenant = model_from_row(Tenant, self.tenant_row)
        service_principal = model_from_row(User, self.service_principal_row)
        service_principal.tenant = tenant
        actor = Actor.for_credential(
            service_principal=service_principal, label=self.label, credential=self.credential
        )
        return SCIMPrincipal(tenant=tenant, service_principal=service_principal, actor=actor)


TENANT_FIELDS = field_paths(Tenant)
USER_FIELDS = field_paths(User)
TENANT_PK_INDEX = TENANT_FIELDS.index(Tenant._meta.pk.attname)
USER_PK_INDEX = USER_FIELDS.index(User._meta.pk.attname)
TENANT_ACTIVE_INDEX = TENANT_FIELDS.index("is_active")
TENANT_PLATFORM_INDEX = TENANT_FIELDS.index("is_platform")

_credentials: ProcessCache[CachedCredential] = ProcessCache("scim-credential")

# A revoked secret token is saved; a revoked OAuth token is deleted (DOT, also through its /revoke/
# endpoint and refresh-family revocation); a disabled application is saved. Created rows need no
# clear: failures are never cached.
invalidate_on_change(SecretToken)
invalidate_on_change(AccessToken)
invalidate_on_change(Application)


def bearer_token(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authentication required: send `Authorization: Bearer <token>`.")
    return token.strip()


def _service_principal_join(tenant_path: str) -> FilteredRelation:
    """The tenant's users narrowed to its service principal: a LEFT JOIN that yields at most one
    row (users_one_service_principal_per_tenant), so the principal comes with the credential."""
    return FilteredRelation(
        f"{tenant_path}__users", condition=Q(**{f"{tenant_path}__users__role": User.Role.SERVICE})
    )


def _split(row: tuple[Any, ...], *widths: int) -> list[tuple[Any, ...]]:
    parts, start = [], 0
    for width in widths:
        parts.append(tuple(row[start : start + width]))
        start += width
    return parts


def _lookup_secret_token(digest: str, now: datetime) -> CachedCredential | None:
    row = (
        SecretToken.objects.filter(digest=digest)
        .annotate(provisioning=_service_principal_join("tenant"))
        .values_list(
            "pk",
            "name",
            "prefix",
            "expires",
            "revoked",
            "last_used",
            *field_paths(Tenant, "tenant__"),
            *field_paths(User, "provisioning__"),
        )
        .first()
    )
    if row is None:
        return None
    (pk, name, prefix, expires, revoked, last_used), tenant_row, sp_row = _split(
        row, 6, len(TENANT_FIELDS), len(USER_FIELDS)
    )
    if revoked is not None or (expires is not None and expires <= now):
        return None
    if sp_row[USER_PK_INDEX] is None:
        return None
    return CachedCredential(
        tenant_row=tenant_row,
        service_principal_row=sp_row,
        label=f"secret token {name} ({prefix}…)",
        credential=f"secret-token:{pk}",
        expires=expires,
        used_model=SecretToken,
        used_pk=pk,
        last_used=last_used,
    )


def _lookup_access_token(digest: str, now: datetime) -> CachedCredential | None:
    """DOT's checks (expiry, scope, Application.is_usable) on one row: the token, its application
    and that application's tenant and service principal, and its user with the user's tenant."""
    row = (
        AccessToken.objects.filter(token_checksum=digest)
        .annotate(app_provisioning=_service_principal_join("application__tenant"))
        .values_list(
            "pk",
            "expires",
            "scope",
            "application_id",
            "application__name",
            "application__disabled",
            "application__last_used",
            "user_id",
            *field_paths(Tenant, "application__tenant__"),
            *field_paths(User, "app_provisioning__"),
            *field_paths(Tenant, "user__tenant__"),
            *field_paths(User, "user__"),
        )
        .first()
    )
    if row is None:
        return None
    tenants, users = len(TENANT_FIELDS), len(USER_FIELDS)
    head, app_tenant, app_sp, user_tenant, user_row = _split(row, 8, tenants, users, tenants, users)
    pk, expires, scope, application_id, app_name, app_disabled, app_last_used, user_id = head
    if expires is None or expires <= now or SCIM_SCOPE not in scope.split():
        return None
    if application_id is None or app_disabled:
        return None
    app_tenant_id = app_tenant[TENANT_PK_INDEX]
    if app_tenant_id is not None and not app_tenant[TENANT_ACTIVE_INDEX]:
        return None
    if user_id is not None:
        # The authorization-code grant: the token's user must be a service principal, and then it
        # is its tenant's one service principal.
        if user_row[USER_FIELDS.index("role")] != User.Role.SERVICE:
            return None
        if app_tenant_id is not None and user_tenant[TENANT_PK_INDEX] != app_tenant_id:
            return None
        tenant_row, sp_row = user_tenant, user_row
    else:
        if app_tenant_id is None or app_sp[USER_PK_INDEX] is None:
            return None
        tenant_row, sp_row = app_tenant, app_sp
    return CachedCredential(
        tenant_row=tenant_row,
        service_principal_row=sp_row,
        label=f"OAuth application {app_name}",
        credential=f"oauth-token:{pk}",
        expires=expires,
        used_model=Application,
        used_pk=application_id,
        last_used=app_last_used,
    )


def _credential(raw: str) -> tuple[tuple[str, str], CachedCredential]:
    """The credential for `raw`, from the cache or one query; Unauthorized if there is none or it
    expired (also while cached)."""
    is_secret = raw.startswith(SECRET_TOKEN_PREFIX)
    digest = token_digest(raw) if is_secret else hashlib.sha256(raw.encode("utf-8")).hexdigest()
    key = ("secret" if is_secret else "oauth", digest)
    now = timezone.now()
    cached = _credentials.get(key)
    if cached is not None:
        if cached.expired(now):
            _credentials.discard(key)
            raise Unauthorized(INVALID_TOKEN)
        return key, cached
    generation = _credentials.generation
    found = _lookup_secret_token(digest, now) if is_secret else _lookup_access_token(digest, now)
    if found is None:
        raise Unauthorized(INVALID_TOKEN)
    if not found.tenant_row[TENANT_ACTIVE_INDEX] or found.tenant_row[TENANT_PLATFORM_INDEX]:
        raise Unauthorized(INVALID_TOKEN)
    max_age = (found.expires - now).total_seconds() if found.expires is not None else None
    _credentials.put(key, found, generation=generation, max_age=max_age)
    return key, found


def authenticate(request: HttpRequest) -> SCIMPrincipal:
    key, credential = _credential(bearer_token(request))
    host_tenant = getattr(request, "tenant", None)
    if host_tenant is not None and not host_tenant.is_platform and host_tenant.pk != credential.tenant_id:
        raise Unauthorized(INVALID_TOKEN)
    stamped = credential_stamp_used(
        model=credential.used_model, pk=credential.used_pk, last_used=credential.last_used
    )
    if stamped is not None:
        _credentials.replace(key, replace(credential, last_used=stamped))
    return credential.principal()
