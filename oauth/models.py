"""SCIM credentials: OAuth applications (swapped DOT model), their secrets, and secret tokens.

Every credential resolves to one tenant, and acts as that tenant's provisioning service principal,
never as the manager who approved it: deprovisioning that manager through SCIM must not cut
provisioning off (libraries.md trap 15).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from oauth2_provider.models import AbstractApplication

SECRET_TOKEN_PREFIX = "slt_"
SCIM_SCOPE = "scim"
API_SCOPES = ("directory:read", "events:read")
"""Scopes of the read-only directory API (/api/v1/). A client holds either `scim` (provisioning) or
API scopes, never both: a read-only API client must not be able to write over SCIM."""
DEFAULT_CLIENT_SECRET_LIFETIME_DAYS = 730


def token_digest(raw: str) -> str:
    """Secret tokens are high-entropy random strings, so one SHA-256 is the right hash: it lets the
    database find the row by an indexed equality instead of trying a slow hash per row."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_secret_token() -> str:
    return SECRET_TOKEN_PREFIX + secrets.token_urlsafe(32)


def client_secret_lifetime() -> timedelta:
    """Entra's gallery rule: client secrets expire after one to three years (entra-scim.md §5.5)."""
    days = getattr(settings, "OAUTH_CLIENT_SECRET_LIFETIME_DAYS", DEFAULT_CLIENT_SECRET_LIFETIME_DAYS)
    return timedelta(days=max(365, min(1095, int(days))))


def default_client_secret_expiry() -> datetime:
    return timezone.now() + client_secret_lifetime()


class Application(AbstractApplication):
    """DOT's Application plus the tenant it provisions (empty for platform-wide clients such as the
    Entra gallery registration, whose tokens get their tenant from the approving manager)."""

    tenant = models.ForeignKey(
        "directory.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="applications"
    )
    disabled = models.BooleanField(default=False)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used = models.DateTimeField(null=True, blank=True)
    allowed_scopes = models.CharField(
        max_length=200,
        default=SCIM_SCOPE,
        help_text="Space-separated scopes this client may be granted: `scim`, or API scopes.",
    )
    client_secret_expires = models.DateTimeField(
        null=True,
        blank=True,
        default=default_client_secret_expiry,
        help_text="After this moment the application's own secret is refused (invalid_client).",
    )

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"

    def is_usable(self, request: object) -> bool:
        """Checked by DOT on client authentication and on every bearer validation."""
        if self.disabled:
            return False
        return self.tenant_id is None or self.tenant.is_active

    @property
    def scope_list(self) -> list[str]:
        return self.allowed_scopes.split()

    @property
    def is_api_client(self) -> bool:
        return any(scope in API_SCOPES for scope in self.scope_list)

    def own_secret_is_valid(self) -> bool:
        return bool(self.client_secret) and (
            self.client_secret_expires is None or self.client_secret_expires > timezone.now()
        )


def api_client_q() -> models.Q:
    """`Application.is_api_client` as a query condition: the client holds at least one API scope."""
    condition = models.Q()
    for scope in API_SCOPES:
        condition |= models.Q(allowed_scopes__contains=scope)
    return condition


class ApiClient(Application):
    """The console's view of the API clients among the applications (same table, same rows), so
    they get a page of their own (oauth/admin_api_clients.py) next to the provisioning clients."""

    class Meta:
        proxy = True
        verbose_name = "API client"
        verbose_name_plural = "API clients"


class SecretToken(models.Model):
    """A long-lived bearer token for Entra's "Secret Token" field (non-gallery apps).

    Stored as a SHA-256 digest only; `prefix` lets managers recognise a token without revealing it.
    """

    tenant = models.ForeignKey("directory.Tenant", on_delete=models.CASCADE, related_name="secret_tokens")
    name = models.CharField(max_length=200, default="Secret token")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["tenant", "-created"], name="oauth_sectoken_tenant_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_valid(self) -> bool:
        now = timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now)


class ClientSecret(models.Model):
    """An additional client secret of an Application, so a client can hold two active secrets while
    rotating (entra-scim.md §5.5). Hashed with Django's password hasher, like DOT's own secret."""

    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, on_delete=models.CASCADE, related_name="secrets"
    )
    hashed_secret = models.CharField(max_length=255, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.prefix}…"

    def is_valid(self) -> bool:
        now = timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now)


class Consent(models.Model):
    """One manager's approval of an application for their tenant, and the tokens it led to.

    The authorization-code grant issues its tokens to the tenant's service principal, so the token
    rows cannot say who approved them; this row does, and it outlives the manager (SET_NULL, with
    the name kept in `approver_label`), so deprovisioning that manager leaves provisioning running
    (libraries.md trap 15). `code_digest` is the SHA-256 of the authorization code: when a used code
    is presented again, the tokens of `token_family` are revoked (RFC 6749 §4.1.2, security.md
    check 15).
    """

    tenant = models.ForeignKey("directory.Tenant", on_delete=models.CASCADE, related_name="consents")
    application = models.ForeignKey(
        settings.OAUTH2_PROVIDER_APPLICATION_MODEL, on_delete=models.CASCADE, related_name="consents"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approver_label = models.CharField(max_length=255, blank=True)
    scope = models.TextField(blank=True)
    code_digest = models.CharField(max_length=64, unique=True, editable=False)
    token_family = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    exchanged = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["tenant", "-created"], name="oauth_consent_tenant_created")]

    def __str__(self) -> str:
        return f"{self.application.name} approved by {self.approver_label or 'a former manager'}"

    @property
    def is_active(self) -> bool:
        return self.revoked is None and self.exchanged is not None
