"""Single sign-on into a tenant with its Entra account: SAML 2.0 (one service provider per tenant)
and OpenID Connect. SSO links to users SCIM provisioned; it never creates one (sso.linking).

Everything here is written by sso.services only, inside one transaction with an Event per change.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F

from directory.models import Tenant, User

MAX_IDP_CERTIFICATES = 2
"""Entra signs with one certificate; a second one is kept during a rollover, never more."""


class SsoSettings(models.Model):
    """A tenant's single sign-on setup (one row per tenant, created on first write).

    SAML: the IdP (the customer's Entra enterprise application) is trusted only through what is
    stored here: its entity id (the issuer, `https://sts.windows.net/<tid>/`), its SSO/SLO URLs and
    at most two signing certificates, taken from uploaded metadata or from Entra's App Federation
    Metadata URL (fetched only from Microsoft's login hosts, sso.services.saml_metadata_fetch).

    `idp_certificates` is a list of `{"pem": ..., "not_after": ISO-8601, "sha256": hex}`.

    OIDC: `oidc_tenant_id` is Entra's `tid`; tokens are accepted only with that `tid` and the
    issuer `oidc_issuer` (blank: `https://login.microsoftonline.com/<tid>/v2.0`). The client
    secret is stored encrypted (directory.secrets), never shown again.

    Enforcement: with `enforce_sso` on, password sign-in is refused to everyone but the managers
    in `break_glass` (the emergency accounts Entra's gallery guidance asks for).
    """

    class NameIdPolicy(models.TextChoices):
        UPN = "upn", "User principal name (matched to userName)"
        OBJECT_ID = "objectid", "Entra object id (matched to externalId)"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="sso_settings")

    saml_enabled = models.BooleanField("SAML sign-in", default=False)
    idp_entity_id = models.CharField("IdP entity id", max_length=1024, blank=True)
    idp_sso_url = models.URLField("IdP sign-on URL", max_length=2048, blank=True)
    idp_slo_url = models.URLField("IdP logout URL", max_length=2048, blank=True)
    idp_metadata_xml = models.TextField("IdP metadata", blank=True)
    idp_metadata_url = models.URLField("App Federation Metadata URL", max_length=2048, blank=True)
    idp_metadata_fetched_at = models.DateTimeField(null=True, blank=True, editable=False)
    idp_certificates = models.JSONField("IdP signing certificates", default=list, blank=True)
    name_id_policy = models.CharField(
        "NameID", max_length=16, choices=NameIdPolicy.choices, default=NameIdPolicy.UPN
    )
    match_object_id_to_external_id = models.BooleanField(
        "Match the object id claim to externalId",
        default=False,
        help_text="Entra's provisioning maps objectId to externalId: the claim is matched first.",
    )
    allow_idp_initiated = models.BooleanField(
        "Allow IdP-initiated sign-in", default=False, help_text="Sign-in from the My Apps tile."
    )

    oidc_enabled = models.BooleanField("OpenID Connect sign-in", default=False)
    oidc_tenant_id = models.CharField("Entra tenant id (tid)", max_length=64, blank=True)
    oidc_client_id = models.CharField("Client id", max_length=255, blank=True)
    oidc_client_secret_encrypted = models.TextField(blank=True, editable=False)
    oidc_issuer = models.URLField("Issuer", max_length=2048, blank=True)

    enforce_sso = models.BooleanField("Require single sign-on", default=False)
    break_glass = models.ManyToManyField(
        User,
        blank=True,
        related_name="+",
        limit_choices_to={"role": User.Role.MANAGER},
        verbose_name="break-glass managers",
        help_text="Managers who may still sign in with a password while SSO is required.",
    )

    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "single sign-on settings"
        verbose_name_plural = "single sign-on settings"

    def __str__(self) -> str:
        return f"Single sign-on of {self.tenant}"

    @property
    def sso_available(self) -> bool:
        return self.saml_enabled or self.oidc_enabled

    @property
    def oidc_issuer_effective(self) -> str:
        if self.oidc_issuer:
            return self.oidc_issuer
        return f"https://login.microsoftonline.com/{self.oidc_tenant_id}/v2.0" if self.oidc_tenant_id else ""


class SamlAssertionSeen(models.Model):
    """The assertion replay cache: every accepted assertion's ID, kept until its `NotOnOrAfter`.

    A database table rather than a process cache, so a response replayed to another gunicorn worker
    (or a second ACS POST racing the first) meets the unique constraint and is refused.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    assertion_id = models.CharField(max_length=256)
    not_on_or_after = models.DateTimeField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "assertion_id"], name="%(app_label)s_%(class)s_unique_assertion_per_tenant"
            ),
        ]
        indexes = [models.Index(F("not_on_or_after"), name="sso_assertion_expiry")]

    def __str__(self) -> str:
        return self.assertion_id


class SamlRequest(models.Model):
    """An AuthnRequest this SP sent and is waiting for, kept server-side (security.md §1.6).

    djangosaml2 keeps outstanding request ids in its own `saml_session` cookie, SameSite=None,
    which browsers drop when it is not also Secure; the main session cookie is SameSite=Lax and so
    absent from Entra's cross-site POST to the ACS. Here the ACS checks `InResponseTo` against
    this table (one use, ten minutes), records who the response named, and sends the browser on
    to a same-site GET that finishes the sign-in only in the session that started it (the id is
    also kept in that session), which also stops a response being planted in another browser.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    request_id = models.CharField(max_length=128)
    next_path = models.CharField(max_length=2048, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    answered_at = models.DateTimeField(null=True, blank=True)
    name_id = models.TextField(blank=True, help_text="The NameID as pysaml2 codes it, for single logout.")
    session_index = models.CharField(max_length=256, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "request_id"], name="%(app_label)s_%(class)s_unique_request_per_tenant"
            ),
        ]
        indexes = [models.Index(F("expires_at"), name="sso_request_expiry")]

    def __str__(self) -> str:
        return self.request_id
