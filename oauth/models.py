"""SCIM credentials: OAuth applications (swapped DOT model), their secrets, and secret tokens.

Every credential resolves to one tenant, and acts as that tenant's provisioning service principal,
never as the manager who approved it: deprovisioning that manager through SCIM must not cut
provisioning off (libraries.md trap 15).
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from oauth2_provider.models import AbstractApplication

SECRET_TOKEN_PREFIX = "slt_"


def token_digest(raw: str) -> str:
    """Secret tokens are high-entropy random strings, so one SHA-256 is the right hash: it lets the
    database find the row by an indexed equality instead of trying a slow hash per row."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_secret_token() -> str:
    return SECRET_TOKEN_PREFIX + secrets.token_urlsafe(32)


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

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"

    def is_usable(self, request: object) -> bool:
        """Checked by DOT on client authentication and on every bearer validation."""
        if self.disabled:
            return False
        return self.tenant_id is None or self.tenant.is_active


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
