"""The OAuth validator: where DOT asks "may this happen?", SecureLogin answers per tenant.

Decisions that live here and not in a view, because a view can be bypassed (the consent POST
trusts its hidden `client_id`, `skip_authorization` skips the form; libraries.md trap 14):

- An authorization code is only issued to an active manager of an active, non-platform tenant,
  on that tenant's own host; a tenant-bound application only to its own tenant's managers.
- The code and every token made from it belong to the tenant's provisioning service principal,
  not to the manager, so deprovisioning the manager leaves provisioning running (trap 15); the
  manager is recorded in a Consent row and the event log.
- Codes are stored as SHA-256 digests like the tokens; a code redeemed twice revokes the tokens
  of the first exchange (RFC 6749 §4.1.2); a `code_verifier` without a stored challenge is a
  PKCE downgrade and refused (RFC 9700 §4.8); a redirect_uri differing from the authorization
  request's is `invalid_grant` (RFC 6749 §5.2).
- Client authentication accepts the application's own secret until it expires, or any active
  additional ClientSecret, by HTTP Basic or in the body (client_secret_basic / _post).
- Client credentials need a tenant-bound application; the token acts for its service principal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any
from urllib.parse import unquote_plus

from django.contrib.auth.hashers import check_password
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors

from directory import selectors
from directory.exceptions import NotFound
from directory.models import Tenant, User
from directory.tenancy import normalise_host
from oauth import services
from oauth.models import Application, ClientSecret

AccessToken = get_access_token_model()
Grant = get_grant_model()
RefreshToken = get_refresh_token_model()


def code_digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def is_active_manager(user: Any, tenant: Tenant | None) -> bool:
    """The people who may connect provisioning for a tenant: its active managers."""
    return bool(
        tenant is not None
        and isinstance(user, User)
        and user.is_active
        and user.role == User.Role.MANAGER
        and user.tenant_id == tenant.id
        and tenant.is_active
        and not tenant.is_platform
    )


class TenantOAuth2Validator(OAuth2Validator):
    # ------------------------------------------------------------------ client authentication

    @staticmethod
    def _basic_credentials(request: Request) -> tuple[str, str] | None:
        header = request.headers.get("HTTP_AUTHORIZATION") or request.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value:
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            return None
        # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
        return unquote_plus(client_id), unquote_plus(secret)

    @staticmethod
    def _body_credentials(request: Request) -> tuple[str, str] | None:
        client_id = getattr(request, "client_id", None)
        secret = getattr(request, "client_secret", None)
        if not client_id or not secret:
            return None
        return client_id, secret

    def _secret_matches(self, application: Application, secret: str) -> bool:
        if not secret:
            return False
        if application.own_secret_is_valid() and self._check_secret(secret, application.client_secret):
            return True
        now = timezone.now()
        candidates = ClientSecret.objects.filter(application=application, revoked__isnull=True).filter(
            Q(expires__isnull=True) | Q(expires__gt=now)
        )
        for candidate in candidates:
            if check_password(secret, candidate.hashed_secret):
                services.credential_mark_used(credential=candidate)
                return True
        return False

    def authenticate_client(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        """client_secret_basic, or else client_secret_post; one method per request (RFC 6749
        §2.3: a client MUST NOT use more than one), so a failed Basic header is not retried with
        body parameters that might name another client."""
        credentials = self._basic_credentials(request) or self._body_credentials(request)
        if credentials is not None:
            client_id, secret = credentials
            application = self._load_application(client_id, request)
            if application is not None and self._secret_matches(application, secret):
                return True
        request.client = None
        return False

    # ------------------------------------------------------------------------- grant types

    def validate_grant_type(
        self,
        client_id: str,
        grant_type: str,
        client: Application,
        request: Request,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        if grant_type not in ("authorization_code", "client_credentials", "refresh_token"):
            return False
        if not super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs):
            return False
        if grant_type == "client_credentials":
            tenant = client.tenant
            return tenant is not None and tenant.is_active and not tenant.is_platform
        return True

    def get_default_scopes(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> list[str]:
        """A client that names no scope gets all it may hold: `scim` for provisioning clients (what
        Entra's requests, which carry no scope, need), its API scopes for an API client."""
        client = getattr(request, "client", None)
        if isinstance(client, Application):
            return client.scope_list
        return super().get_default_scopes(client_id, request, *args, **kwargs)

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """Only scopes the client was registered with (RFC 6749 §3.3): an API client asking for
        `scim`, or a provisioning client asking for `directory:read`, gets `invalid_scope`."""
        if not super().validate_scopes(client_id, scopes, client, request, *args, **kwargs):
            return False
        return isinstance(client, Application) and set(scopes) <= set(client.scope_list)

    def validate_user(self, *args: Any, **kwargs: Any) -> bool:
        """The password grant is not offered (RFC 9700 §2.4)."""
        return False

    # ----------------------------------------------------------------- authorization codes

    def _host_tenant(self, request: Request) -> Tenant | None:
        host = request.headers.get("HTTP_HOST") or request.headers.get("SERVER_NAME") or ""
        return selectors.tenant_for_host(host=normalise_host(host))

    def _consenting_tenant(self, request: Request) -> Tenant:
        """Who may turn this authorization request into a code, checked at the moment the code is
        made, which covers the consent POST, skip_authorization and approval_prompt=auto alike."""
        user = request.user
        application: Application = request.client
        host_tenant = self._host_tenant(request)
        reason = ""
        if not isinstance(user, User):
            reason = "Not signed in."
        elif host_tenant is None or user.tenant_id != host_tenant.id:
            reason = "Signed in to another tenant than the one serving this page."
        elif not is_active_manager(user, host_tenant):
            reason = "Only an active manager of the tenant may authorize provisioning."
        elif application.tenant_id is not None and application.tenant_id != host_tenant.id:
            reason = "The application belongs to another tenant."
        elif not application.is_usable(request):
            reason = "The application is disabled."
        if reason:
            if host_tenant is not None:
                services.authorization_refused(
                    tenant=host_tenant,
                    user=user if isinstance(user, User) else None,
                    application=application,
                    reason=reason,
                )
            raise errors.AccessDeniedError(state=request.state, request=request)
        return host_tenant  # type: ignore[return-value]

    def _create_authorization_code(self, request: Request, code: dict[str, Any], expires: Any = None) -> Any:
        manager = request.user
        tenant = self._consenting_tenant(request)
        try:
            service_principal = selectors.service_principal_get(tenant=tenant)
        except NotFound:
            raise errors.AccessDeniedError(state=request.state, request=request) from None
        digest = code_digest(code["code"])
        request.user = service_principal
        try:
            grant = super()._create_authorization_code(request, {**code, "code": digest}, expires)
        finally:
            request.user = manager
        services.consent_record(
            tenant=tenant, manager=manager, application=request.client, code_digest=digest, scope=grant.scope
        )
        return grant

    def _grant(self, code: str, client: Any, *, lock: bool = False) -> Any:
        queryset = Grant.objects.select_related("user", "user__tenant").filter(
            code=code_digest(code), application=client
        )
        if lock and transaction.get_connection().in_atomic_block:
            queryset = queryset.select_for_update(of=("self",))
        return queryset.first()

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        grant = self._grant(code, client, lock=True)
        if grant is None:
            services.code_replayed(application=client, code_digest=code_digest(code))
            return False
        if grant.is_expired():
            return False
        if getattr(request, "code_verifier", None) and not grant.code_challenge:
            return False
        user = grant.user
        if user.role != User.Role.SERVICE or not user.tenant.is_active or user.tenant.is_platform:
            return False
        request.scopes = grant.scope.split(" ")
        request.user = user
        if grant.nonce:
            request.nonce = grant.nonce
        return True

    def confirm_redirect_uri(
        self, client_id: str, code: str, redirect_uri: str, client: Any, *args: Any, **kwargs: Any
    ) -> bool:
        grant = self._grant(code, client)
        if grant is None or not grant.redirect_uri_allowed(redirect_uri):
            request = kwargs.get("request") or (args[0] if args else None)
            raise errors.InvalidGrantError(
                description="The redirect_uri differs from the one of the authorization request.",
                request=request,
            )
        return True

    def get_code_challenge(self, code: str, request: Request) -> str | None:
        grant = self._grant(code, request.client)
        return (grant.code_challenge or None) if grant is not None else None

    def get_code_challenge_method(self, code: str, request: Request) -> str | None:
        grant = self._grant(code, request.client)
        return (grant.code_challenge_method or None) if grant is not None else None

    def get_authorization_code_scopes(
        self, client_id: str, code: str, redirect_uri: str, request: Request
    ) -> list[str]:
        grant = self._grant(code, request.client)
        return grant.scope.split() if grant is not None and grant.scope else []

    def get_authorization_code_nonce(
        self, client_id: str, code: str, redirect_uri: str, request: Request
    ) -> str | None:
        grant = self._grant(code, request.client)
        return (grant.nonce or None) if grant is not None else None

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Request, *args: Any, **kwargs: Any
    ) -> None:
        deleted, _ = Grant.objects.filter(code=code_digest(code), application=request.client).delete()
        if not deleted:
            raise errors.InvalidGrantError(request=request)

    def _check_and_set_request_resource(self, request: Request) -> None:
        """DOT looks the grant up by `request.code`; ours is stored as a digest."""
        if request.grant_type != "authorization_code":
            super()._check_and_set_request_resource(request)
            return
        raw = request.code
        request.code = code_digest(raw)
        try:
            super()._check_and_set_request_resource(request)
        finally:
            request.code = raw

    # ------------------------------------------------------------------------------ tokens

    def _create_access_token(
        self, expires: Any, request: Request, token: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        if request.grant_type == "client_credentials":
            # DOT leaves client-credentials tokens without a user; ours act for the service principal
            # of the application's tenant, like every other SCIM credential.
            request.user = selectors.service_principal_get(tenant=request.client.tenant)
        return super()._create_access_token(expires, request, token, *args, **kwargs)

    def _create_refresh_token(
        self, request: Request, refresh_token_code: str, access_token: Any, previous_refresh_token: Any
    ) -> Any:
        refresh_token = super()._create_refresh_token(
            request, refresh_token_code, access_token, previous_refresh_token
        )
        request.securelogin_token_family = refresh_token.token_family
        return refresh_token

    def save_bearer_token(self, token: dict[str, Any], request: Request, *args: Any, **kwargs: Any) -> Any:
        result = super().save_bearer_token(token, request, *args, **kwargs)
        user = request.user
        tenant = user.tenant if isinstance(user, User) else request.client.tenant
        if tenant is not None:
            services.token_issued(
                tenant=tenant,
                application=request.client,
                grant_type=request.grant_type,
                scope=token.get("scope", ""),
                expires_in=int(token.get("expires_in") or 0),
                code_digest=code_digest(request.code) if request.grant_type == "authorization_code" else "",
                token_family=getattr(request, "securelogin_token_family", None),
            )
        return result

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        checksum = hashlib.sha256(refresh_token.encode("utf-8")).hexdigest()
        presented = (
            RefreshToken.objects.filter(token_checksum=checksum)
            .order_by(F("revoked").desc(nulls_first=True))
            .values("revoked", "token_family")
            .first()
        )
        family = presented["token_family"] if presented is not None else None
        family_was_live = presented is not None and services.token_family_is_live(family)
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            if presented is not None and presented["revoked"] is not None and family:
                # DOT has just revoked the family (REFRESH_TOKEN_REUSE_PROTECTION); record why.
                services.token_family_compromised(
                    token_family=family, reason="refresh token reused", was_live=family_was_live
                )
            return False
        user = request.user
        if not isinstance(user, User) or user.role != User.Role.SERVICE:
            return False
        if not user.tenant.is_active or user.tenant.is_platform:
            return False
        return client.tenant_id is None or client.tenant_id == user.tenant_id

    @staticmethod
    def _token_owner(checksum: str, application: Any) -> tuple[bool, User | None, Any]:
        access = (
            AccessToken.objects.select_related("user", "user__tenant")
            .filter(token_checksum=checksum, application=application)
            .first()
        )
        if access is not None:
            family = (
                RefreshToken.objects.filter(access_token=access)
                .values_list("token_family", flat=True)
                .first()
            )
            return True, access.user, family
        refresh = (
            RefreshToken.objects.select_related("user", "user__tenant")
            .filter(token_checksum=checksum, application=application, revoked__isnull=True)
            .first()
        )
        if refresh is not None:
            return True, refresh.user, refresh.token_family
        return False, None, None

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: Request, *args: Any, **kwargs: Any
    ) -> None:
        """RFC 7009, limited to the authenticated client's own tokens (DOT), plus a log row and the
        end of the consent the token belonged to."""
        application = request.client
        found, user, family = False, None, None
        if getattr(application, "pk", None) is not None:
            found, user, family = self._token_owner(
                hashlib.sha256(token.encode("utf-8")).hexdigest(), application
            )
        super().revoke_token(token, token_type_hint, request, *args, **kwargs)
        if found:
            services.token_revoked(application=application, user=user, token_family=family)
