"""The only writers of single sign-on state. Like directory.services: keyword-only, `tenant=` and
`actor=` explicit, one transaction, an Event per change, never a secret in the log.

The console page and the `sso_configure` command call `sso_settings_update`, `saml_metadata_set`
and `saml_metadata_fetch`; the SAML and OIDC views call `sign_in_record`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from directory.exceptions import InvalidValue, TenantMismatch
from directory.models import Event, Tenant, User
from directory.secrets import encrypt
from directory.services import Actor, event_record
from sso import metadata
from sso.models import SamlAssertionSeen, SamlRequest, SsoSettings
from sso.oidc import check_issuer as check_oidc_issuer

UNSET: Any = object()
SECRET_SET = "(set)"
"""What an Event records for the OIDC client secret: that one was set, never the value."""

SIGN_IN = "user.sign_in"
SIGN_IN_REFUSED = "user.sign_in_refused"
SIGN_IN_METHODS = ("password", "saml", "oidc")

SAML_NEEDS_IDP = (
    "SAML needs the IdP's entity id, sign-on URL and a signing certificate: upload or fetch its metadata."
)
OIDC_NEEDS_CLIENT = "OpenID Connect needs the Entra tenant id, a client id and a client secret."
ENFORCE_NEEDS_SSO = "Single sign-on can only be required once SAML or OpenID Connect is on."
BREAK_GLASS_MANAGERS_ONLY = "Break-glass accounts must be active managers of this tenant."
PLATFORM_HAS_NO_SSO = "The platform tenant has no single sign-on."

SCALAR_FIELDS = (
    "saml_enabled",
    "idp_entity_id",
    "idp_sso_url",
    "idp_slo_url",
    "idp_metadata_url",
    "name_id_policy",
    "match_object_id_to_external_id",
    "allow_idp_initiated",
    "oidc_enabled",
    "oidc_tenant_id",
    "oidc_client_id",
    "oidc_issuer",
    "enforce_sso",
)
BOOL_FIELDS = frozenset(
    {"saml_enabled", "match_object_id_to_external_id", "allow_idp_initiated", "oidc_enabled", "enforce_sso"}
)


def sso_settings_for(tenant: Tenant) -> SsoSettings:
    """The tenant's settings row, unsaved (all off) when it has never been written."""
    found = SsoSettings.objects.filter(tenant=tenant).first()
    return found if found is not None else SsoSettings(tenant=tenant)


def _lock_settings(tenant: Tenant) -> SsoSettings:
    if tenant.is_platform:
        raise InvalidValue(PLATFORM_HAS_NO_SSO)
    SsoSettings.objects.get_or_create(tenant=tenant)
    return SsoSettings.objects.select_for_update().get(tenant=tenant)


def _clean_scalar(name: str, value: Any) -> Any:
    if name in BOOL_FIELDS:
        if not isinstance(value, bool):
            raise InvalidValue(f"{name} must be true or false.", field=name)
        return value
    if not isinstance(value, str):
        raise InvalidValue(f"{name} must be a string.", field=name)
    value = value.strip()
    if name in ("idp_sso_url", "idp_slo_url"):
        return metadata.check_idp_url(value, field_name=name)
    if name == "idp_metadata_url":
        return metadata.check_metadata_url(value) if value else ""
    if name == "name_id_policy" and value not in SsoSettings.NameIdPolicy.values:
        raise InvalidValue("NameID is the UPN or the object id.", field=name)
    if name == "oidc_issuer":
        value = check_oidc_issuer(value)  # https on a Microsoft login host (sso.oidc)
    max_length = SsoSettings._meta.get_field(name).max_length
    if max_length and len(value) > max_length:
        raise InvalidValue(f"{name} is longer than {max_length} characters.", field=name)
    return value


def _check_break_glass(tenant: Tenant, users: Iterable[User]) -> list[User]:
    chosen = list(users)
    for user in chosen:
        if user.tenant_id != tenant.id:
            raise TenantMismatch(BREAK_GLASS_MANAGERS_ONLY, field="break_glass")
        if user.role != User.Role.MANAGER or not user.is_active:
            raise InvalidValue(BREAK_GLASS_MANAGERS_ONLY, field="break_glass")
    return chosen


def _check_consistent(sso: SsoSettings) -> None:
    if sso.saml_enabled and not (sso.idp_entity_id and sso.idp_sso_url and sso.idp_certificates):
        raise InvalidValue(SAML_NEEDS_IDP, field="saml_enabled")
    if sso.oidc_enabled and not (
        sso.oidc_tenant_id and sso.oidc_client_id and sso.oidc_client_secret_encrypted
    ):
        raise InvalidValue(OIDC_NEEDS_CLIENT, field="oidc_enabled")
    if sso.enforce_sso and not sso.sso_available:
        raise InvalidValue(ENFORCE_NEEDS_SSO, field="enforce_sso")


def _certificate_summary(entries: Sequence[dict[str, str]]) -> list[str]:
    return [f"{e['sha256'][:16]}… until {e['not_after'][:10]}" for e in entries]


def _record(tenant: Tenant, actor: Actor, action: str, sso: SsoSettings, changes: dict[str, Any]) -> None:
    event_record(
        tenant=tenant,
        actor=actor,
        action=action,
        resource_type="SsoSettings",
        resource_id=str(sso.pk),
        resource_label="Single sign-on",
        changes=changes,
    )


@transaction.atomic
def sso_settings_update(
    *,
    tenant: Tenant,
    actor: Actor,
    saml_enabled: bool = UNSET,
    idp_entity_id: str = UNSET,
    idp_sso_url: str = UNSET,
    idp_slo_url: str = UNSET,
    idp_certificates: Sequence[str] = UNSET,
    idp_metadata_url: str = UNSET,
    name_id_policy: str = UNSET,
    match_object_id_to_external_id: bool = UNSET,
    allow_idp_initiated: bool = UNSET,
    oidc_enabled: bool = UNSET,
    oidc_tenant_id: str = UNSET,
    oidc_client_id: str = UNSET,
    oidc_client_secret: str = UNSET,
    oidc_issuer: str = UNSET,
    enforce_sso: bool = UNSET,
    break_glass: Iterable[User] = UNSET,
) -> SsoSettings:
    """Change the given settings; those not given stay. `idp_certificates` takes PEM or base64
    certificates (the "Certificate (Base64)" download of Entra), at most two unexpired ones.
    The settings must make sense together afterwards (SAML on needs an IdP, enforcement needs a
    protocol on). Nothing changes → no event."""
    sso = _lock_settings(tenant)
    given = {
        "saml_enabled": saml_enabled,
        "idp_entity_id": idp_entity_id,
        "idp_sso_url": idp_sso_url,
        "idp_slo_url": idp_slo_url,
        "idp_metadata_url": idp_metadata_url,
        "name_id_policy": name_id_policy,
        "match_object_id_to_external_id": match_object_id_to_external_id,
        "allow_idp_initiated": allow_idp_initiated,
        "oidc_enabled": oidc_enabled,
        "oidc_tenant_id": oidc_tenant_id,
        "oidc_client_id": oidc_client_id,
        "oidc_issuer": oidc_issuer,
        "enforce_sso": enforce_sso,
    }
    changes: dict[str, Any] = {}
    for name, value in given.items():
        if value is UNSET:
            continue
        value = _clean_scalar(name, value)
        old = getattr(sso, name)
        if old != value:
            changes[name] = [old, value]
            setattr(sso, name, value)
    if idp_certificates is not UNSET:
        entries = metadata.certificates_clean(list(idp_certificates)) if idp_certificates else []
        old_fps = [e["sha256"] for e in sso.idp_certificates]
        if [e["sha256"] for e in entries] != old_fps:
            changes["idp_certificates"] = [
                _certificate_summary(sso.idp_certificates),
                _certificate_summary(entries),
            ]
            sso.idp_certificates = entries
    if oidc_client_secret is not UNSET:
        if not isinstance(oidc_client_secret, str):
            raise InvalidValue("The client secret must be a string.", field="oidc_client_secret")
        secret = oidc_client_secret.strip()
        sso.oidc_client_secret_encrypted = encrypt(secret) if secret else ""
        changes["oidc_client_secret"] = [SECRET_SET, SECRET_SET if secret else None]
    new_break_glass: list[User] | None = None
    if break_glass is not UNSET:
        new_break_glass = _check_break_glass(tenant, break_glass)
        old_names = sorted(u.username for u in sso.break_glass.all())
        new_names = sorted(u.username for u in new_break_glass)
        if old_names != new_names:
            changes["break_glass"] = [old_names, new_names]
        else:
            new_break_glass = None
    if not changes:
        return sso
    _check_consistent(sso)
    sso.save()
    if new_break_glass is not None:
        sso.break_glass.set(new_break_glass)
    _record(tenant, actor, "sso.settings_update", sso, changes)
    return sso


def _apply_metadata(sso: SsoSettings, parsed: metadata.IdpMetadata, xml: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, value in (
        ("idp_entity_id", parsed.entity_id),
        ("idp_sso_url", parsed.sso_url),
        ("idp_slo_url", parsed.slo_url),
    ):
        if getattr(sso, name) != value:
            changes[name] = [getattr(sso, name), value]
            setattr(sso, name, value)
    if [e["sha256"] for e in sso.idp_certificates] != [e["sha256"] for e in parsed.certificates]:
        changes["idp_certificates"] = [
            _certificate_summary(sso.idp_certificates),
            _certificate_summary(parsed.certificates),
        ]
        sso.idp_certificates = parsed.certificates
    if sso.idp_metadata_xml != xml:
        changes["idp_metadata_xml"] = ["(previous)", f"sha256 {metadata.sha256_hex(xml.encode())[:16]}…"]
        sso.idp_metadata_xml = xml
    return changes


@transaction.atomic
def saml_metadata_set(*, tenant: Tenant, actor: Actor, xml: str | bytes) -> SsoSettings:
    """Trust the IdP an uploaded metadata file describes (Entra's "Federation Metadata XML"):
    its entity id, sign-on and logout URLs and its (at most two, unexpired) signing certificates.
    A file that does not parse, names no or several IdPs, or has no usable certificate changes
    nothing."""
    parsed = metadata.parse_idp_metadata(xml)
    text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
    sso = _lock_settings(tenant)
    changes = _apply_metadata(sso, parsed, text.lstrip("\ufeff").strip())
    if not changes:
        return sso
    sso.save()
    _record(tenant, actor, "sso.saml_metadata_set", sso, changes)
    return sso


def saml_metadata_fetch(*, tenant: Tenant, actor: Actor, url: str | None = None) -> SsoSettings:
    """Fetch the IdP metadata from the tenant's App Federation Metadata URL (or `url`, which is
    then stored) and trust what it describes, as `saml_metadata_set`. Runs daily for every tenant
    with a URL (`manage.py sso_refresh_metadata`) and on demand.

    The network request happens outside any transaction. A failure (refused URL, timeout, too
    large, not metadata) keeps the stored IdP, records a failed `sso.saml_metadata_fetch` event
    and raises InvalidValue."""
    if tenant.is_platform:
        raise InvalidValue(PLATFORM_HAS_NO_SSO)
    target = (url if url is not None else sso_settings_for(tenant).idp_metadata_url).strip()
    if not target:
        raise InvalidValue("No App Federation Metadata URL is set.", field="idp_metadata_url")
    try:
        target = metadata.check_metadata_url(target)
        body = metadata.fetch_metadata(target)
        parsed = metadata.parse_idp_metadata(body)
    except InvalidValue as exc:
        with transaction.atomic():
            event_record(
                tenant=tenant,
                actor=actor,
                action="sso.saml_metadata_fetch",
                resource_type="SsoSettings",
                resource_label="Single sign-on",
                result=Event.Result.FAILURE,
                detail=exc.message,
                changes={"url": target[:300]},
            )
        raise
    with transaction.atomic():
        sso = _lock_settings(tenant)
        changes = _apply_metadata(sso, parsed, body.decode("utf-8").lstrip("\ufeff").strip())
        if sso.idp_metadata_url != target:
            changes["idp_metadata_url"] = [sso.idp_metadata_url, target]
            sso.idp_metadata_url = target
        sso.idp_metadata_fetched_at = timezone.now()
        sso.save()
        _record(tenant, actor, "sso.saml_metadata_fetch", sso, {"url": target, **changes})
    return sso


METADATA_MAX_AGE = timedelta(hours=24)


def saml_metadata_refresh_stale(
    *, actor: Actor, max_age: timedelta = METADATA_MAX_AGE, now: datetime | None = None
) -> tuple[int, int]:
    """Fetch again the metadata of every active tenant whose App Federation Metadata URL was last
    fetched more than `max_age` ago (or never), so a certificate Entra adds for a rollover is trusted
    before Entra signs with it. Returns (refreshed, failed); a failure keeps the stored IdP, is
    logged by `saml_metadata_fetch`, and is tried again on the next call. The background worker
    (`run_webhook_worker`) calls this every hour; `manage.py sso_refresh_metadata` forces it."""
    cutoff = (now or timezone.now()) - max_age
    stale = (
        SsoSettings.objects.select_related("tenant")
        .exclude(idp_metadata_url="")
        .filter(tenant__is_active=True, tenant__is_platform=False)
        .filter(Q(idp_metadata_fetched_at__isnull=True) | Q(idp_metadata_fetched_at__lt=cutoff))
        .order_by("pk")
    )
    refreshed = failed = 0
    for row in stale:
        try:
            saml_metadata_fetch(tenant=row.tenant, actor=actor)
        except InvalidValue:
            failed += 1
        else:
            refreshed += 1
    return refreshed, failed


# ------------------------------------------------------------------------------------- sign-ins


def sign_in_actor(user: User | None, method: str) -> Actor:
    """Who acted in a sign-in event: the person signing in (or `method` when nobody was matched)."""
    return Actor(type=Event.ActorType.SYSTEM, user=user, label=user.username if user else method)


@transaction.atomic
def sign_in_record(
    *,
    tenant: Tenant,
    actor: Actor,
    user: User | None,
    method: str,
    address: str,
    succeeded: bool,
    reason: str = "",
    subject: str = "",
) -> Event:
    """One provisioning-log row per sign-in or refused sign-in: who (the user, or the asserted
    `subject` when nobody was matched), how (password/saml/oidc), from where (address) and the
    result with the reason. Never a password, assertion or token."""
    if method not in SIGN_IN_METHODS:
        raise InvalidValue(f"Unknown sign-in method {method!r}.", field="method")
    return event_record(
        tenant=tenant,
        actor=actor,
        action=SIGN_IN if succeeded else SIGN_IN_REFUSED,
        resource_type="User",
        resource_id=str(user.scim_id) if user is not None else "",
        resource_label=(user.username if user is not None else subject)[:255],
        changes={"method": method, "address": address[:64]},
        result=Event.Result.SUCCESS if succeeded else Event.Result.FAILURE,
        detail=reason[:500],
    )


# --------------------------------------------------------------------------- SAML protocol state


SAML_REQUEST_LIFETIME = timedelta(minutes=10)
SAML_ANSWER_LIFETIME = timedelta(minutes=2)


def saml_request_open(*, tenant: Tenant, request_id: str, next_path: str) -> SamlRequest:
    """Remember an AuthnRequest we sent (server-side; see SamlRequest)."""
    return SamlRequest.objects.create(
        tenant=tenant,
        request_id=request_id[:128],
        next_path=next_path[:2048],
        expires_at=timezone.now() + SAML_REQUEST_LIFETIME,
    )


def saml_request_answer(
    *, tenant: Tenant, request_id: str, user: User, name_id: str, session_index: str
) -> bool:
    """Mark the request answered by a validated response for `user`, once: False when it is
    unknown, expired or already answered (a second response to one request is a replay)."""
    now = timezone.now()
    updated = SamlRequest.objects.filter(
        tenant=tenant, request_id=request_id, answered_at__isnull=True, expires_at__gt=now
    ).update(user=user, answered_at=now, name_id=name_id, session_index=session_index[:256])
    return updated == 1


def saml_request_take(*, tenant: Tenant, request_ids: Sequence[str]) -> SamlRequest | None:
    """The newest answered request among the ids this browser session started, removed so it is
    used once; None when there is none (another browser, or too late)."""
    if not request_ids:
        return None
    since = timezone.now() - SAML_ANSWER_LIFETIME
    with transaction.atomic():
        row = (
            SamlRequest.objects.select_for_update()
            .select_related("user", "user__tenant")
            .filter(
                tenant=tenant, request_id__in=list(request_ids), user__isnull=False, answered_at__gt=since
            )
            .order_by("-answered_at")
            .first()
        )
        if row is None:
            return None
        SamlRequest.objects.filter(pk=row.pk).delete()
    return row


def saml_assertion_remember(*, tenant: Tenant, assertion_id: str, not_on_or_after: datetime) -> bool:
    """Add an accepted assertion to the replay cache; False when it was seen before (by any
    worker: the unique constraint decides)."""
    try:
        with transaction.atomic():
            SamlAssertionSeen.objects.create(
                tenant=tenant, assertion_id=assertion_id[:256], not_on_or_after=not_on_or_after
            )
    except IntegrityError:
        return False
    return True


def saml_state_prune(*, now: datetime | None = None) -> int:
    """Drop replay-cache rows past their NotOnOrAfter (plus the allowed clock skew) and expired
    outstanding requests; two indexed deletes."""
    now = now or timezone.now()
    seen, _ = SamlAssertionSeen.objects.filter(not_on_or_after__lt=now - timedelta(minutes=5)).delete()
    requests, _ = SamlRequest.objects.filter(expires_at__lt=now - SAML_ANSWER_LIFETIME).delete()
    return seen + requests
