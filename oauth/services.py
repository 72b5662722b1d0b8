"""Writers of SCIM credential state. Like directory.services: keyword-only, tenant and actor
explicit, one transaction, an Event per change, never a secret in the log."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from directory.exceptions import InvalidValue, TenantMismatch
from directory.models import Tenant
from directory.services import Actor, event_record
from oauth.models import SecretToken, new_secret_token, token_digest


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
