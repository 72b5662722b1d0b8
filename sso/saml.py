"""The SAML 2.0 service provider of a tenant: djangosaml2's per-request config, and the checks
pysaml2 does not make on its own (security.md §1.5, §1.6).

pysaml2 verifies the signature with xmlsec1 against the configured certificates only (never the
KeyInfo sent along), the audience, the validity window (with `accepted_time_diff` of skew) and,
unless IdP-initiated sign-in is allowed, `InResponseTo`. It does *not* refuse RSA-SHA1, a wrong
SubjectConfirmation Recipient, a missing Destination, or an unknown `InResponseTo` once
unsolicited responses are allowed; `precheck_response` and `validate_response` do.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from defusedxml import ElementTree
from django.http import Http404, HttpRequest
from django.utils import timezone
from djangosaml2.conf import get_config
from djangosaml2.overrides import Saml2Client
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import SPConfig
from saml2.ident import code
from saml2.response import AuthnResponse
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, SCM_BEARER
from saml2.time_util import str_to_time

from directory.models import Tenant
from sso import entra_values
from sso.metadata import idp_metadata_for_config
from sso.models import SamlRequest, SsoSettings

ACCEPTED_CLOCK_SKEW_SECONDS = 120
SAML_RESPONSE_MAX_BYTES = 256 * 1024

OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
NAME_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"

NS_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
NS_ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DSIG = "http://www.w3.org/2000/09/xmldsig#"
ALLOWED_SIGNATURE_METHODS = frozenset(
    {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    }
)
ALLOWED_DIGEST_METHODS = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)


class SamlRefused(Exception):
    """A SAML message this SP will not act on. `reason` goes to the log and the provisioning log;
    `public` is what the person is told (never the internals); `status` is a 4xx."""

    def __init__(self, reason: str, *, public: str = "", status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.public = public or "The sign-in response from Microsoft could not be accepted."
        self.status = status


# ------------------------------------------------------------------------------------------ config


def saml_settings_for(request: HttpRequest) -> SsoSettings:
    """The SAML settings of the request host's tenant; 404 on the root host, for an unknown
    tenant or while SAML is off, so no SP exists there at all."""
    tenant: Tenant | None = getattr(request, "tenant", None)
    if tenant is None or tenant.is_platform or not tenant.is_active:
        raise Http404("No SAML service provider here.")
    sso = getattr(request, "_sso_settings", None)
    if sso is None:
        sso = SsoSettings.objects.filter(tenant=tenant).first()
        request._sso_settings = sso  # type: ignore[attr-defined]
    if sso is None or not sso.saml_enabled or not sso.idp_entity_id or not sso.idp_certificates:
        raise Http404("SAML is not enabled for this tenant.")
    return sso


def sp_config_dict(tenant: Tenant, sso: SsoSettings, request: HttpRequest | None) -> dict[str, Any]:
    """pysaml2's SP configuration for one tenant: its own entity id, ACS and logout service on its
    host, and exactly one trusted IdP, written from the stored fields."""
    values = entra_values.saml_values(tenant, request)
    return {
        "entityid": values.entity_id,
        "xmlsec_binary": shutil.which("xmlsec1") or "/usr/bin/xmlsec1",
        "allow_unknown_attributes": True,
        "accepted_time_diff": ACCEPTED_CLOCK_SKEW_SECONDS,
        "metadata": {"inline": [idp_metadata_for_config(sso)]},
        "service": {
            "sp": {
                "name": tenant.brand_name,
                "endpoints": {
                    "assertion_consumer_service": [(values.reply_url, BINDING_HTTP_POST)],
                    "single_logout_service": [
                        (values.logout_url, BINDING_HTTP_REDIRECT),
                        (values.logout_url, BINDING_HTTP_POST),
                    ],
                },
                # The IdP's choice of NameID (Entra's "Unique User Identifier": the UPN by
                # default, or user.objectid); no transient ids, which would match nobody.
                "name_id_policy_format": NAMEID_FORMAT_UNSPECIFIED,
                "name_id_format_allow_create": False,
                "allow_unsolicited": sso.allow_idp_initiated,
                "want_assertions_signed": True,
                "want_response_signed": False,
                "authn_requests_signed": False,
                "logout_requests_signed": False,
                "only_use_keys_in_metadata": True,
            },
        },
    }


def sso_config_loader(request: HttpRequest) -> SPConfig:
    """djangosaml2's SAML_CONFIG_LOADER: the config of the request host's tenant."""
    sso = saml_settings_for(request)
    conf = SPConfig()
    conf.load(sp_config_dict(request.tenant, sso, request))  # type: ignore[attr-defined]
    return conf


def saml_client(request: HttpRequest) -> Saml2Client:
    return Saml2Client(get_config(None, request))


# ------------------------------------------------------------------------------ outstanding ids


class OutstandingRequests(Mapping[str, str]):
    """pysaml2's `outstanding` dict, read from SamlRequest rows of one tenant: only ids that are
    unexpired and not yet answered are known, so a second response to one request is unsolicited."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self._found: dict[str, str | None] = {}

    def _lookup(self, key: object) -> str | None:
        if not isinstance(key, str):
            return None
        if key not in self._found:
            row = (
                SamlRequest.objects.filter(
                    tenant=self.tenant,
                    request_id=key,
                    answered_at__isnull=True,
                    expires_at__gt=timezone.now(),
                )
                .only("next_path")
                .first()
            )
            self._found[key] = row.next_path if row is not None else None
        return self._found[key]

    def __contains__(self, key: object) -> bool:
        return self._lookup(key) is not None

    def __getitem__(self, key: str) -> str:
        value = self._lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter([k for k, v in self._found.items() if v is not None])

    def __len__(self) -> int:
        return len(list(iter(self)))


# ------------------------------------------------------------------------------------ pre-checks


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def decode_response(encoded: str) -> bytes:
    if len(encoded) > SAML_RESPONSE_MAX_BYTES * 4 // 3 + 4:
        raise SamlRefused("SAMLResponse is too large.")
    try:
        return base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise SamlRefused("SAMLResponse is not base64.") from exc


def precheck_response(xml: bytes) -> None:
    """Structural checks before pysaml2 sees the document, so signature wrapping has nowhere to
    hide: one Response holding exactly one Assertion (no encrypted ones, none nested elsewhere),
    no duplicate IDs, the assertion's own enveloped signature pointing at it, and only SHA-2
    signature and digest algorithms anywhere (RSA-SHA1 is refused)."""
    try:
        root = ElementTree.fromstring(xml, forbid_dtd=True)
    except Exception as exc:  # defusedxml raises parse and security errors alike
        raise SamlRefused(f"SAMLResponse is not acceptable XML ({type(exc).__name__}).") from exc
    if root.tag != _q(NS_PROTOCOL, "Response"):
        raise SamlRefused("The message is not a SAML Response.")
    status = root.find(f"{_q(NS_PROTOCOL, 'Status')}/{_q(NS_PROTOCOL, 'StatusCode')}")
    if status is not None and status.get("Value") != STATUS_SUCCESS:
        # Entra's own refusal, e.g. AADSTS50105 when the user is not assigned to the application.
        message = root.findtext(f"{_q(NS_PROTOCOL, 'Status')}/{_q(NS_PROTOCOL, 'StatusMessage')}") or ""
        raise SamlRefused(
            f"The IdP answered {status.get('Value')}: {message[:300]}",
            public="Microsoft did not sign you in. If you should have access, ask your administrator "
            "to assign you to this application in Microsoft Entra ID.",
            status=403,
        )
    assertions = list(root.iter(_q(NS_ASSERTION, "Assertion")))
    if list(root.iter(_q(NS_ASSERTION, "EncryptedAssertion"))):
        raise SamlRefused("Encrypted assertions are not configured for this service provider.")
    if len(assertions) != 1:
        raise SamlRefused(f"The response holds {len(assertions)} assertions, not one.")
    assertion = assertions[0]
    if assertion not in list(root):
        raise SamlRefused("The assertion is not a direct child of the response.")
    ids = [el.get("ID") for el in root.iter() if el.get("ID") is not None]
    if len(ids) != len(set(ids)):
        raise SamlRefused("The response repeats an ID.")
    own = [child for child in assertion if child.tag == _q(NS_DSIG, "Signature")]
    if len(own) != 1:
        raise SamlRefused("The assertion is not signed.")
    references = list(own[0].iter(_q(NS_DSIG, "Reference")))
    if len(references) != 1 or references[0].get("URI") != f"#{assertion.get('ID')}":
        raise SamlRefused("The assertion's signature does not cover the assertion.")
    for method in root.iter(_q(NS_DSIG, "SignatureMethod")):
        if method.get("Algorithm") not in ALLOWED_SIGNATURE_METHODS:
            raise SamlRefused(f"Signature algorithm {method.get('Algorithm')} is not accepted (SHA-2 only).")
    for method in root.iter(_q(NS_DSIG, "DigestMethod")):
        if method.get("Algorithm") not in ALLOWED_DIGEST_METHODS:
            raise SamlRefused(f"Digest algorithm {method.get('Algorithm')} is not accepted (SHA-2 only).")


# --------------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class AssertedIdentity:
    """What a validated response says, reduced to what linking and logout need."""

    assertion_id: str
    not_on_or_after: datetime
    in_response_to: str
    name_id: str
    name_id_coded: str
    upn: str
    object_id: str
    session_index: str


def _first(ava: Mapping[str, Any], name: str) -> str:
    values = ava.get(name) or []
    return str(values[0]).strip() if values else ""


def _as_datetime(value: str) -> datetime:
    return datetime.fromtimestamp(calendar.timegm(str_to_time(value)), tz=UTC)


def validate_response(
    response: AuthnResponse, *, sso: SsoSettings, acs_url: str, outstanding: OutstandingRequests
) -> AssertedIdentity:
    """The checks pysaml2 leaves to the SP, after it verified signature, audience and time."""
    message = response.response
    if (message.destination or "") != acs_url:
        raise SamlRefused("The response's Destination is not this service provider's reply URL.")
    assertion = response.assertion
    if assertion is None:
        raise SamlRefused("The response carries no assertion.")
    issuers = [getattr(message.issuer, "text", None), getattr(assertion.issuer, "text", None)]
    if issuers[1] is None or any(i is not None and i.strip() != sso.idp_entity_id for i in issuers):
        raise SamlRefused("The response was issued by another identity provider.", status=403)
    in_response_to = message.in_response_to or ""
    if in_response_to:
        if in_response_to not in outstanding:
            raise SamlRefused("The response answers a request that is unknown, expired or answered.")
    elif not sso.allow_idp_initiated:
        raise SamlRefused(
            "Unsolicited (IdP-initiated) response, and IdP-initiated sign-in is off.",
            public="Sign-in from the Microsoft My Apps portal is not enabled for this organization. "
            "Start from this sign-in page instead.",
            status=403,
        )
    bearer_until: list[datetime] = []
    for confirmation in assertion.subject.subject_confirmation:
        data = confirmation.subject_confirmation_data
        if confirmation.method != SCM_BEARER or data is None:
            raise SamlRefused("Only bearer subject confirmation is accepted.")
        if (data.recipient or "") != acs_url:
            raise SamlRefused("The assertion's Recipient is not this service provider's reply URL.")
        if (data.in_response_to or "") != in_response_to:
            raise SamlRefused("The assertion answers another request than the response.")
        if not data.not_on_or_after:
            raise SamlRefused("The assertion's subject confirmation has no NotOnOrAfter.")
        bearer_until.append(_as_datetime(data.not_on_or_after))
    if not bearer_until:
        raise SamlRefused("The assertion has no subject confirmation.")
    conditions = assertion.conditions
    if conditions is None or not conditions.audience_restriction:
        raise SamlRefused("The assertion names no audience.")
    until = max(bearer_until)
    if conditions.not_on_or_after:
        until = max(until, _as_datetime(conditions.not_on_or_after))
    name_id = response.name_id
    name_id_text = (getattr(name_id, "text", "") or "").strip()
    ava = response.ava or {}
    if sso.name_id_policy == SsoSettings.NameIdPolicy.OBJECT_ID:
        object_id = name_id_text
        upn = _first(ava, UPN_CLAIM) or _first(ava, NAME_CLAIM)
    else:
        upn = name_id_text
        object_id = _first(ava, OBJECT_ID_CLAIM)
    statements = assertion.authn_statement or []
    return AssertedIdentity(
        assertion_id=assertion.id,
        not_on_or_after=until,
        in_response_to=in_response_to,
        name_id=name_id_text,
        name_id_coded=code(name_id) if name_id is not None else "",
        upn=upn,
        object_id=object_id,
        session_index=(statements[0].session_index or "") if statements else "",
    )
