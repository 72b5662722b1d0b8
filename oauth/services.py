"""Writers of SCIM credential state. Like directory.services: keyword-only, tenant and actor
explicit, one transaction, an Event per change, never a secret in the log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_access_token_model, get_refresh_token_model, revoke_access_token
from oauth2_provider.settings import oauth2_settings

from directory.exceptions import InvalidValue, TenantMismatch
from directory.models import Event, Tenant, User
from directory.services import Actor, event_record
from oauth.models import (
    API_SCOPES,
    SCIM_SCOPE,
    Application,
    ClientSecret,
    Consent,
    SecretToken,
    client_secret_lifetime,
    new_secret_token,
    token_digest,
)

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


@transaction.atomic
def secret_token_issue(
    *, tenant: Tenant, actor: Actor, name: str = "Secret token", expires_days: int | None = None
) -> tuple[SecretToken, str]:
    """Mint a long-lived bearer token for the tenant's provisioning service principal. Returns the
    row and the raw token, which exists only in this return value: the database keeps its digest."""
    if tenant.is_platform:
        raise InvalidValue("The platform tenant has no SCIM directory.")
    if expires_days is not None and expires_days <= 0:
        raise InvalidValue("Expiry must be a positive number of days.", field="expires_days")
    raw = new_secret_token()
    token = SecretToken.objects.create(
        tenant=tenant,
        name=name.strip() or "Secret token",
        digest=token_digest(raw),
        prefix=raw[:8],
        created_by=actor.user if actor.user is not None and actor.user.role != "service" else None,
        expires=timezone.now() + timedelta(days=expires_days) if expires_days else None,
    )
    event_record(
        tenant=tenant,
        actor=actor,
        action="credential.secret_token_issue",
        resource_type="SecretToken",
        resource_id=str(token.pk),
        resource_label=str(token),
        changes={"expires": [None, token.expires.isoformat() if token.expires else None]},
    )
    return token, raw


@transaction.atomic
def secret_token_revoke(*, tenant: Tenant, actor: Actor, token: SecretToken) -> SecretToken:
    if token.tenant_id != tenant.id:
        raise TenantMismatch("That token belongs to another tenant.")
    locked = SecretToken.objects.select_for_update().get(pk=token.pk, tenant=tenant)
    if locked.revoked is not None:
        return locked
    locked.revoked = timezone.now()
    locked.save(update_fields=["revoked"])
    event_record(
        tenant=tenant,
        actor=actor,
        action="credential.secret_token_revoke",
        resource_type="SecretToken",
        resource_id=str(locked.pk),
        resource_label=str(locked),
    )
    return locked


# --------------------------------------------------------------------------- OAuth applications


ALLOWED_GRANTS = (Application.GRANT_AUTHORIZATION_CODE, Application.GRANT_CLIENT_CREDENTIALS)
MAX_ACTIVE_SECRETS = 2
MAX_SECRET_DAYS = 1095


def _platform_tenant() -> Tenant:
    return Tenant.objects.get(is_platform=True)


def _event_tenant(application: Application) -> Tenant:
    """Tenant-bound things log to their tenant; platform-wide clients log to the platform tenant."""
    return application.tenant if application.tenant_id is not None else _platform_tenant()


def _check_application_scope(tenant: Tenant, application: Application) -> None:
    """A tenant's manager manages the tenant's applications; platform-wide clients are managed from
    the platform tenant only. Anything else is another tenant's credential."""
    if application.tenant_id is None:
        if not tenant.is_platform:
            raise TenantMismatch("That application is managed by the platform operators.")
    elif application.tenant_id != tenant.id:
        raise TenantMismatch("That application belongs to another tenant.")


def _application_event(
    *, application: Application, actor: Actor, action: str, changes: dict[str, Any] | None = None
) -> None:
    event_record(
        tenant=_event_tenant(application),
        actor=actor,
        action=action,
        resource_type="OAuthApplication",
        resource_id=str(application.pk),
        resource_label=application.name,
        changes=changes or {},
    )


def _secret_days(expires_days: int | None) -> timedelta:
    if expires_days is None:
        return client_secret_lifetime()
    if not 1 <= expires_days <= MAX_SECRET_DAYS:
        raise InvalidValue(f"A client secret lives 1 to {MAX_SECRET_DAYS} days.", field="expires_days")
    return timedelta(days=expires_days)


def _hash_secret(raw: str) -> str:
    return make_password(raw, hasher=oauth2_settings.CLIENT_SECRET_HASHER)


@transaction.atomic
def application_create(
    *,
    tenant: Tenant | None,
    actor: Actor,
    name: str,
    grant_type: str = Application.GRANT_AUTHORIZATION_CODE,
    redirect_uris: Sequence[str] = (),
    client_type: str = Application.CLIENT_CONFIDENTIAL,
    secret_expires_days: int | None = None,
    scopes: Sequence[str] = (SCIM_SCOPE,),
) -> tuple[Application, str]:
    """Register an OAuth client and return it with its raw secret, which exists only in this return
    value (DOT stores a PBKDF2 hash).

    `tenant=None` makes a platform-wide client such as the Entra gallery registration: any tenant's
    manager may authorize it, and its tokens act for that tenant's service principal. Client
    credentials carry no user to take a tenant from, so that grant needs a tenant-bound client.
    """
    if tenant is not None and tenant.is_platform:
        tenant = None
    name = name.strip()
    if not name:
        raise InvalidValue("An application needs a name.", field="name")
    if grant_type not in ALLOWED_GRANTS:
        raise InvalidValue(
            "The grant type is authorization-code or client-credentials.", field="authorization_grant_type"
        )
    if grant_type == Application.GRANT_CLIENT_CREDENTIALS and tenant is None:
        raise InvalidValue(
            "A client-credentials application must belong to a tenant.", field="authorization_grant_type"
        )
    uris = [u.strip() for u in redirect_uris if u and u.strip()]
    if grant_type == Application.GRANT_AUTHORIZATION_CODE and not uris:
        raise InvalidValue("An authorization-code application needs a redirect URI.", field="redirect_uris")
    if client_type not in (Application.CLIENT_CONFIDENTIAL, Application.CLIENT_PUBLIC):
        raise InvalidValue("The client type is confidential or public.", field="client_type")
    scope_list = _clean_scopes(scopes, grant_type=grant_type, tenant=tenant)
    raw = generate_client_secret()
    application = Application(
        tenant=tenant,
        name=name,
        authorization_grant_type=grant_type,
        client_type=client_type,
        redirect_uris=" ".join(uris),
        client_secret=raw,
        client_secret_expires=timezone.now() + _secret_days(secret_expires_days),
        allowed_scopes=" ".join(scope_list),
    )
    try:
        application.full_clean(exclude=["client_secret", "user"])
    except ValidationError as exc:
        messages = "; ".join(m for ms in exc.message_dict.values() for m in ms)
        raise InvalidValue(messages or "The application is not valid.") from None
    application.save()
    _application_event(
        application=application,
        actor=actor,
        action="credential.application_create",
        changes={
            "name": [None, application.name],
            "grant": [None, grant_type],
            "redirect_uris": [None, uris],
            "client_id": [None, application.client_id],
            "scopes": [None, scope_list],
        },
    )
    return application, raw


def _clean_scopes(scopes: Sequence[str], *, grant_type: str, tenant: Tenant | None) -> list[str]:
    """`scim` alone (provisioning), or API scopes alone on a tenant's client-credentials client:
    the directory API is read by the tenant's own software, never by a browser flow."""
    chosen = list(dict.fromkeys(s.strip() for s in scopes if s and s.strip()))
    if chosen == [SCIM_SCOPE]:
        return chosen
    if not chosen or any(scope not in API_SCOPES for scope in chosen):
        raise InvalidValue(
            f"Scopes are `{SCIM_SCOPE}`, or one or both of {', '.join(API_SCOPES)}.", field="scopes"
        )
    if grant_type != Application.GRANT_CLIENT_CREDENTIALS or tenant is None:
        raise InvalidValue("An API client is a tenant's client-credentials application.", field="scopes")
    return chosen


def api_client_create(
    *, tenant: Tenant, actor: Actor, name: str, scopes: Sequence[str] = API_SCOPES
) -> tuple[Application, str]:
    """A client of the read-only directory API (/api/v1/): client credentials, API scopes only."""
    if tenant.is_platform:
        raise InvalidValue("API clients belong to a customer tenant.")
    return application_create(
        tenant=tenant,
        actor=actor,
        name=name,
        grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        scopes=scopes,
    )


def _lock_application(tenant: Tenant, application: Application) -> Application:
    _check_application_scope(tenant, application)
    return Application.objects.select_for_update().get(pk=application.pk)


def _active_secret_count(application: Application) -> int:
    now = timezone.now()
    extra = (
        ClientSecret.objects.filter(application=application, revoked__isnull=True)
        .filter(Q(expires__isnull=True) | Q(expires__gt=now))
        .count()
    )
    return extra + (1 if application.own_secret_is_valid() else 0)


@transaction.atomic
def client_secret_create(
    *, tenant: Tenant, actor: Actor, application: Application, expires_days: int | None = None
) -> tuple[ClientSecret, str]:
    """Add a secret so the client can rotate without downtime: at most two are active at a time
    (entra-scim.md §5.5: "multiple active secrets", "expire after 1 to 3 years")."""
    locked = _lock_application(tenant, application)
    if _active_secret_count(locked) >= MAX_ACTIVE_SECRETS:
        raise InvalidValue(
            "An application holds at most two active secrets; revoke the older one first.", field="secrets"
        )
    raw = generate_client_secret()
    secret = ClientSecret.objects.create(
        application=locked,
        hashed_secret=_hash_secret(raw),
        prefix=raw[:6],
        created_by=actor.user if actor.user is not None and actor.user.role != "service" else None,
        expires=timezone.now() + _secret_days(expires_days),
    )
    _application_event(
        application=locked,
        actor=actor,
        action="credential.client_secret_create",
        changes={"secret": [None, f"{secret.prefix}…"], "expires": [None, secret.expires.isoformat()]},
    )
    return secret, raw


@transaction.atomic
def client_secret_revoke(
    *, tenant: Tenant, actor: Actor, application: Application, secret: ClientSecret | None = None
) -> None:
    """Revoke one additional secret, or (secret=None) the application's own secret, which is then
    replaced by an unknown random value so no hash of a once-valid secret stays usable."""
    locked = _lock_application(tenant, application)
    if secret is None:
        if not locked.own_secret_is_valid():
            return
        locked.client_secret = generate_client_secret()
        locked.client_secret_expires = timezone.now()
        locked.save(update_fields=["client_secret", "client_secret_expires", "updated"])
        label = "application secret"
    else:
        row = ClientSecret.objects.select_for_update().filter(pk=secret.pk, application=locked).first()
        if row is None:
            raise TenantMismatch("That secret belongs to another application.")
        if row.revoked is not None:
            return
        row.revoked = timezone.now()
        row.save(update_fields=["revoked"])
        label = f"{row.prefix}…"
    _application_event(
        application=locked, actor=actor, action="credential.client_secret_revoke", changes={"secret": label}
    )


@transaction.atomic
def application_secret_reset(*, tenant: Tenant, actor: Actor, application: Application) -> str:
    """Replace the application's own secret with a fresh one and a fresh expiry; returns it raw.
    Additional secrets stay as they are."""
    locked = _lock_application(tenant, application)
    raw = generate_client_secret()
    locked.client_secret = raw
    locked.client_secret_expires = timezone.now() + client_secret_lifetime()
    locked.save(update_fields=["client_secret", "client_secret_expires", "updated"])
    _application_event(
        application=locked,
        actor=actor,
        action="credential.client_secret_reset",
        changes={"expires": [None, locked.client_secret_expires.isoformat()]},
    )
    return raw


@transaction.atomic
def application_redirect_uri_add(
    *, tenant: Tenant, actor: Actor, application: Application, uri: str
) -> Application:
    """Register one more redirect URI (exact match, RFC 9700 §4.1.3); a URI already present is a no-op."""
    uri = uri.strip()
    if not uri:
        raise InvalidValue("A redirect URI cannot be empty.", field="redirect_uris")
    locked = _lock_application(tenant, application)
    uris = locked.redirect_uris.split()
    if uri in uris:
        return locked
    locked.redirect_uris = " ".join([*uris, uri])
    locked.save(update_fields=["redirect_uris", "updated"])
    _application_event(
        application=locked,
        actor=actor,
        action="credential.application_update",
        changes={"redirect_uris": [uris, [*uris, uri]]},
    )
    return locked


@transaction.atomic
def application_disable(*, tenant: Tenant, actor: Actor, application: Application) -> Application:
    """Disable a client: DOT refuses it at the token endpoint and on every bearer check
    (Application.is_usable), and its tokens are deleted so nothing it holds keeps working."""
    locked = _lock_application(tenant, application)
    if locked.disabled:
        return locked
    locked.disabled = True
    locked.save(update_fields=["disabled", "updated"])
    revoked = _revoke_tokens(AccessToken.objects.filter(application=locked))
    Consent.objects.filter(application=locked, revoked__isnull=True).update(
        revoked=timezone.now(), revoked_reason="application disabled"
    )
    _application_event(
        application=locked,
        actor=actor,
        action="credential.application_disable",
        changes={"disabled": [False, True], "tokens_revoked": revoked},
    )
    return locked


# ------------------------------------------------------------------------- consents and tokens


def _revoke_tokens(access_tokens: QuerySet[Any]) -> int:
    """Revoke access tokens with their refresh tokens (RFC 7009 §2.1), family by family."""
    count = access_tokens.count()
    families = set(
        RefreshToken.objects.filter(access_token__in=access_tokens)
        .exclude(token_family=None)
        .values_list("token_family", flat=True)
    )
    for family in families:
        RefreshToken.revoke_family(family)
    for token in list(access_tokens):
        revoke_access_token(token)
    return count


@transaction.atomic
def consent_record(
    *, tenant: Tenant, manager: User, application: Application, code_digest: str, scope: str
) -> Consent:
    """The manager allowed the application: kept as a Consent row (who, when, which code) and an
    event, because the tokens themselves will belong to the service principal."""
    consent = Consent.objects.create(
        tenant=tenant,
        application=application,
        approved_by=manager,
        approver_label=manager.username[:255],
        scope=scope,
        code_digest=code_digest,
    )
    if application.tenant_id is not None:
        Application.objects.filter(pk=application.pk).update(approved_by=manager)
    event_record(
        tenant=tenant,
        actor=Actor.manager(manager),
        action="credential.authorize",
        resource_type="OAuthConsent",
        resource_id=str(consent.pk),
        resource_label=application.name,
        changes={"application": application.client_id, "scope": scope},
    )
    return consent


def authorization_refused(
    *, tenant: Tenant, user: User | None, application: Application | None, reason: str
) -> None:
    """A refused authorization (wrong tenant, not a manager, declined) goes to the provisioning log
    of the tenant it happened at, so managers see attempts against their tenant."""
    if tenant.is_platform:
        return
    event_record(
        tenant=tenant,
        actor=Actor.manager(user) if user is not None else Actor.system("anonymous"),
        action="credential.authorize",
        result=Event.Result.FAILURE,
        resource_type="OAuthApplication",
        resource_id=str(application.pk) if application is not None else "",
        resource_label=application.name if application is not None else "",
        detail=reason,
    )


def _credential_actor(*, tenant: Tenant, application: Application) -> Actor:
    service_principal = User.objects.filter(tenant=tenant, role=User.Role.SERVICE).first()
    if service_principal is None:
        return Actor.system(f"OAuth application {application.name}")
    return Actor.for_credential(
        service_principal=service_principal,
        label=f"OAuth application {application.name}",
        credential=f"oauth-application:{application.pk}",
    )


@transaction.atomic
def token_issued(
    *,
    tenant: Tenant,
    application: Application,
    grant_type: str,
    scope: str,
    expires_in: int,
    code_digest: str = "",
    token_family: object = None,
) -> None:
    """Bookkeeping for a token response: the consent learns which token family it started (for
    code-replay revocation), last-used times move, and the log gets one row. No token value is
    stored or logged."""
    now = timezone.now()
    Application.objects.filter(pk=application.pk).update(last_used=now)
    if grant_type == "authorization_code" and code_digest:
        Consent.objects.filter(code_digest=code_digest, application=application).update(
            token_family=token_family, exchanged=now, last_used=now
        )
    elif grant_type == "refresh_token" and token_family:
        Consent.objects.filter(token_family=token_family).update(last_used=now)
    event_record(
        tenant=tenant,
        actor=_credential_actor(tenant=tenant, application=application),
        action="credential.token_refresh" if grant_type == "refresh_token" else "credential.token_issue",
        resource_type="OAuthApplication",
        resource_id=str(application.pk),
        resource_label=application.name,
        changes={"grant_type": grant_type, "scope": scope, "expires_in": expires_in},
    )


def token_family_is_live(token_family: object) -> bool:
    return (
        bool(token_family)
        and RefreshToken.objects.filter(token_family=token_family, revoked__isnull=True).exists()
    )


@transaction.atomic
def token_family_compromised(*, token_family: object, reason: str, was_live: bool | None = None) -> None:
    """A used authorization code or an already-rotated refresh token came back: whoever holds the
    family's tokens may not be the client, so all of them go (RFC 6749 §4.1.2, RFC 9700 §4.14).

    Logged once, when live tokens were actually revoked; a client retrying with tokens that are
    already dead adds no rows. `was_live` is for callers that revoked the family already (DOT's
    refresh-token reuse protection runs before we hear of it)."""
    if not token_family:
        return
    if was_live is None:
        was_live = token_family_is_live(token_family)
    rows = list(
        RefreshToken.objects.filter(token_family=token_family)
        .select_related("user", "user__tenant", "application")
        .order_by("id")[:1]
    )
    RefreshToken.revoke_family(token_family)
    now = timezone.now()
    Consent.objects.filter(token_family=token_family, revoked__isnull=True).update(
        revoked=now, revoked_reason=reason
    )
    if was_live and rows and rows[0].user is not None and not rows[0].user.tenant.is_platform:
        application = rows[0].application
        event_record(
            tenant=rows[0].user.tenant,
            actor=_credential_actor(tenant=rows[0].user.tenant, application=application),
            action="credential.revoke",
            result=Event.Result.FAILURE,
            resource_type="OAuthApplication",
            resource_id=str(application.pk),
            resource_label=application.name,
            detail=f"Token family revoked: {reason}.",
        )


def code_replayed(*, application: Application, code_digest: str) -> bool:
    """Called when an unknown code is redeemed. If it is a code this client already exchanged,
    revoke what the first exchange produced. Scoped to the client, so another client presenting a
    stolen code cannot revoke anything."""
    consent = (
        Consent.objects.filter(code_digest=code_digest, application=application)
        .exclude(token_family=None)
        .first()
    )
    if consent is None:
        return False
    token_family_compromised(token_family=consent.token_family, reason="authorization code replayed")
    return True


@transaction.atomic
def consent_revoke(*, tenant: Tenant, actor: Actor, consent: Consent) -> Consent:
    """A manager disconnects one authorization: its refresh and access tokens stop working now."""
    if consent.tenant_id != tenant.id:
        raise TenantMismatch("That authorization belongs to another tenant.")
    locked = Consent.objects.select_for_update().get(pk=consent.pk, tenant=tenant)
    if locked.revoked is not None:
        return locked
    if locked.token_family:
        RefreshToken.revoke_family(locked.token_family)
    locked.revoked = timezone.now()
    locked.revoked_reason = "revoked by a manager"
    locked.save(update_fields=["revoked", "revoked_reason"])
    event_record(
        tenant=tenant,
        actor=actor,
        action="credential.revoke",
        resource_type="OAuthConsent",
        resource_id=str(locked.pk),
        resource_label=locked.application.name,
        changes={"approved_by": locked.approver_label},
    )
    return locked


@transaction.atomic
def tenant_oauth_tokens_revoke(
    *, tenant: Tenant, actor: Actor, application: Application | None = None
) -> int:
    """ "Disconnect provisioning": every OAuth token acting for the tenant's service principal (and
    every token of the tenant's own applications) is revoked; optionally only one application's."""
    if tenant.is_platform:
        raise InvalidValue("The platform tenant holds no SCIM credentials.")
    tokens = AccessToken.objects.filter(Q(user__tenant=tenant) | Q(application__tenant=tenant))
    if application is not None:
        if application.tenant_id not in (None, tenant.id):
            raise TenantMismatch("That application belongs to another tenant.")
        tokens = tokens.filter(application=application)
    count = _revoke_tokens(tokens)
    consents = Consent.objects.filter(tenant=tenant, revoked__isnull=True)
    if application is not None:
        consents = consents.filter(application=application)
    consents.update(revoked=timezone.now(), revoked_reason="revoked by a manager")
    event_record(
        tenant=tenant,
        actor=actor,
        action="credential.revoke",
        resource_type="OAuthApplication",
        resource_id=str(application.pk) if application is not None else "",
        resource_label=application.name if application is not None else "all OAuth tokens",
        changes={"tokens_revoked": count},
    )
    return count


def token_revoked(*, application: Application, user: User | None, token_family: object) -> None:
    """RFC 7009 revocation by the client itself: log it and end the consent it belonged to."""
    if token_family:
        Consent.objects.filter(token_family=token_family, revoked__isnull=True).update(
            revoked=timezone.now(), revoked_reason="revoked by the client"
        )
    tenant = user.tenant if user is not None else application.tenant
    if tenant is None or tenant.is_platform:
        return
    event_record(
        tenant=tenant,
        actor=_credential_actor(tenant=tenant, application=application),
        action="credential.revoke",
        resource_type="OAuthApplication",
        resource_id=str(application.pk),
        resource_label=application.name,
        detail="Revoked by the client (RFC 7009).",
    )


LAST_USED_RESOLUTION = timedelta(minutes=1)


def credential_stamp_used(
    *,
    model: type[SecretToken] | type[Application] | type[ClientSecret],
    pk: int,
    last_used: datetime | None,
) -> datetime | None:
    """Record that a request used credential `pk`, at most once a minute: the console shows "last
    used" and the dashboard "last request from Entra", and neither needs a write per request.
    Bookkeeping, not a change, so no Event.

    `last_used` is what the caller knows (a row, or scim.auth's per-process cache, which must store
    the returned time). The UPDATE is conditional too, so several processes with their own cached
    values still write the row at most once a minute between them. Returns the time written, or
    None when no write was due."""
    now = timezone.now()
    threshold = now - LAST_USED_RESOLUTION
    if last_used is not None and last_used >= threshold:
        return None
    model.objects.filter(pk=pk).filter(Q(last_used__isnull=True) | Q(last_used__lt=threshold)).update(
        last_used=now
    )
    return now


def credential_mark_used(*, credential: SecretToken | Application | ClientSecret) -> None:
    """`credential_stamp_used` for a loaded row, which then carries the new time."""
    stamped = credential_stamp_used(model=type(credential), pk=credential.pk, last_used=credential.last_used)
    if stamped is not None:
        credential.last_used = stamped
