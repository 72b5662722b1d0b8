"""What a manager pastes into Entra for a tenant, and the URLs the service provider answers on.

One place builds them, so the console page, the `sso_configure` command and the SAML config loader
can never disagree about the entity id or the reply URL. The host is always the tenant's stored
primary host; the scheme and port come from the request when there is one (a local trial on
http://contoso.localhost:8000), else from SSO_PUBLIC_SCHEME / SSO_PUBLIC_PORT (https, none).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from directory import selectors
from directory.models import Tenant

SAML_METADATA_PATH = "/saml2/metadata/"
SAML_ACS_PATH = "/saml2/acs/"
SAML_LOGIN_PATH = "/saml2/login/"
SAML_LOGOUT_SERVICE_PATH = "/saml2/ls/"
OIDC_CALLBACK_PATH = "/oidc/callback/"


def _request_port(request: HttpRequest) -> str:
    host = request.get_host()
    if host.count(":") == 1:
        candidate = host.rsplit(":", 1)[1]
        if candidate.isdigit() and candidate not in ("80", "443"):
            return f":{candidate}"
    return ""


def public_base_url(tenant: Tenant, request: HttpRequest | None = None) -> str:
    """`scheme://<tenant primary host>[:port]`, the host never taken from the request."""
    host = selectors.tenant_primary_host(tenant=tenant)
    if request is not None:
        return f"{request.scheme}://{host}{_request_port(request)}"
    scheme = getattr(settings, "SSO_PUBLIC_SCHEME", "https")
    port = getattr(settings, "SSO_PUBLIC_PORT", "")
    return f"{scheme}://{host}{f':{port}' if port else ''}"


@dataclass(frozen=True)
class SamlValues:
    """Entra's "Basic SAML Configuration" of the enterprise application, field by field."""

    entity_id: str
    """Identifier (Entity ID)."""
    reply_url: str
    """Reply URL (Assertion Consumer Service URL)."""
    sign_on_url: str
    """Sign on URL (SP-initiated sign-in starts here)."""
    logout_url: str
    """Logout Url (single logout)."""
    metadata_url: str
    """This service provider's metadata, for Entra's "Upload metadata file"."""


def saml_values(tenant: Tenant, request: HttpRequest | None = None) -> SamlValues:
    base = public_base_url(tenant, request)
    return SamlValues(
        entity_id=f"{base}{SAML_METADATA_PATH}",
        reply_url=f"{base}{SAML_ACS_PATH}",
        sign_on_url=f"{base}{SAML_LOGIN_PATH}",
        logout_url=f"{base}{SAML_LOGOUT_SERVICE_PATH}",
        metadata_url=f"{base}{SAML_METADATA_PATH}",
    )


def oidc_redirect_uri(tenant: Tenant, request: HttpRequest | None = None) -> str:
    """The redirect URI to register on the Entra app registration (Web platform)."""
    return f"{public_base_url(tenant, request)}{OIDC_CALLBACK_PATH}"
