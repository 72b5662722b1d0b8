"""The Entra IdP's metadata: parsed and checked with pysaml2, fetched only from Microsoft's login
hosts, and turned back into the small metadata document the per-tenant SP config trusts.

What the SP trusts is what `SsoSettings` stores (entity id, SSO/SLO URLs, at most two signing
certificates), never the uploaded document as a whole: `idp_metadata_for_config` writes a fresh
EntityDescriptor from those fields, so an extra entity or key hidden in an upload is never trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.attribute_converter import ac_factory
from saml2.mdstore import InMemoryMetaData

from directory.exceptions import InvalidValue
from sso.models import MAX_IDP_CERTIFICATES, SsoSettings

METADATA_MAX_BYTES = 1024 * 1024
METADATA_FETCH_TIMEOUT_SECONDS = 10.0
MIN_RSA_BITS = 2048

# Entra's login hosts: the public cloud, US Government (and its DoD endpoint) and China (21Vianet).
MICROSOFT_LOGIN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login-us.microsoftonline.com",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})

METADATA_INVALID = "The file is not SAML metadata of an identity provider: {detail}"
METADATA_URL_REFUSED = (
    "The metadata URL must be https:// on a Microsoft login host "
    "(login.microsoftonline.com or a sovereign cloud's)."
)
METADATA_TOO_LARGE = "The metadata is larger than 1 MiB."
METADATA_FETCH_FAILED = "The metadata could not be fetched: {detail}"


@dataclass
class IdpMetadata:
    entity_id: str
    sso_url: str
    slo_url: str
    certificates: list[dict[str, str]] = field(default_factory=list)


def local_idp_allowed() -> bool:
    """SSO_ALLOW_LOCAL_IDP=1: tests and local trials only (a pysaml2 IdP on 127.0.0.1)."""
    return bool(getattr(settings, "SSO_ALLOW_LOCAL_IDP", False))


def _is_local_http(url: str) -> bool:
    parts = urlsplit(url)
    return local_idp_allowed() and parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS


def check_idp_url(url: str, *, field_name: str) -> str:
    """IdP sign-on and logout URLs, where browsers are sent: https:// (http:// to loopback only
    when SSO_ALLOW_LOCAL_IDP is on), no credentials in the URL."""
    url = (url or "").strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidValue(f"{url!r} is not a valid URL.", field=field_name) from exc
    if parts.username or parts.password or not parts.hostname:
        raise InvalidValue(f"{url!r} is not a valid URL.", field=field_name)
    if parts.scheme != "https" and not _is_local_http(url):
        raise InvalidValue("IdP URLs must start with https://.", field=field_name)
    return url


# ------------------------------------------------------------------------------------ certificates


def _load_certificate(value: str) -> x509.Certificate:
    text = value.strip()
    try:
        if "-----BEGIN" in text:
            return x509.load_pem_x509_certificate(text.encode("ascii"))
        der = base64.b64decode("".join(text.split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidValue(
            "A signing certificate is not a valid X.509 certificate.", field="idp_certificates"
        ) from exc


def certificate_entry(value: str) -> dict[str, str]:
    """One stored certificate: PEM, expiry and SHA-256 fingerprint (what Entra's console shows as
    the thumbprint is SHA-1; SHA-256 is shown here and in the log)."""
    cert = _load_certificate(value)
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidValue(
                f"A signing certificate has a {key.key_size}-bit RSA key; at least 2048 bits are needed.",
                field="idp_certificates",
            )
    elif not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidValue("A signing certificate must hold an RSA or EC key.", field="idp_certificates")
    pem = cert.public_bytes(encoding=_pem_encoding()).decode("ascii")
    return {
        "pem": pem,
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
        "subject": cert.subject.rfc4514_string()[:200],
    }


def _pem_encoding() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


def certificates_clean(values: list[str], *, now: datetime | None = None) -> list[dict[str, str]]:
    """Unexpired certificates, newest expiry first, no duplicates, at most two (a rollover)."""
    now = now or datetime.now(UTC)
    entries: dict[str, dict[str, str]] = {}
    expired = 0
    for value in values:
        entry = certificate_entry(value)
        if datetime.fromisoformat(entry["not_after"]) <= now:
            expired += 1
            continue
        entries.setdefault(entry["sha256"], entry)
    if not entries:
        detail = "it has expired" if expired else "there is none"
        raise InvalidValue(f"No usable signing certificate: {detail}.", field="idp_certificates")
    ordered = sorted(entries.values(), key=lambda e: e["not_after"], reverse=True)
    if len(ordered) > MAX_IDP_CERTIFICATES:
        raise InvalidValue(
            f"At most {MAX_IDP_CERTIFICATES} signing certificates are trusted at a time (a rollover); "
            f"the metadata lists {len(ordered)} valid ones.",
            field="idp_certificates",
        )
    return ordered


def certificate_base64(entry: dict[str, str]) -> str:
    lines = [line for line in entry["pem"].strip().splitlines() if not line.startswith("-----")]
    return "".join(lines)


# ---------------------------------------------------------------------------------------- parsing


def _first_location(md: InMemoryMetaData, entity_id: str, service: str) -> str:
    for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST):
        found = md.service(entity_id, "idpsso_descriptor", service, binding) or []
        for srv in found:
            if srv.get("location"):
                return str(srv["location"])
    return ""


def parse_idp_metadata(xml: str | bytes) -> IdpMetadata:
    """Read an IdP's entity id, sign-on and logout URLs and signing certificates with pysaml2
    (defusedxml underneath). Exactly one identity provider must be described."""
    if isinstance(xml, bytes):
        if len(xml) > METADATA_MAX_BYTES:
            raise InvalidValue(METADATA_TOO_LARGE, field="idp_metadata_xml")
        try:
            xml = xml.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidValue(
                METADATA_INVALID.format(detail="not UTF-8."), field="idp_metadata_xml"
            ) from exc
    if len(xml.encode("utf-8")) > METADATA_MAX_BYTES:
        raise InvalidValue(METADATA_TOO_LARGE, field="idp_metadata_xml")
    xml = xml.lstrip("\ufeff").strip()
    if not xml:
        raise InvalidValue(METADATA_INVALID.format(detail="it is empty."), field="idp_metadata_xml")
    md = InMemoryMetaData(ac_factory(), check_validity=True)
    try:
        md.parse(xml)
    except Exception as exc:
        raise InvalidValue(
            METADATA_INVALID.format(detail="it could not be parsed."), field="idp_metadata_xml"
        ) from exc
    if getattr(md, "to_old", None):
        raise InvalidValue(
            METADATA_INVALID.format(detail="its validUntil has passed."), field="idp_metadata_xml"
        )
    idps = [entity_id for entity_id, entity in md.items() if entity.get("idpsso_descriptor")]
    if len(idps) != 1:
        raise InvalidValue(
            METADATA_INVALID.format(detail=f"it describes {len(idps)} identity providers, not one."),
            field="idp_metadata_xml",
        )
    entity_id = idps[0]
    sso_url = _first_location(md, entity_id, "single_sign_on_service")
    if not sso_url:
        raise InvalidValue(METADATA_INVALID.format(detail="it has no sign-on URL."), field="idp_metadata_xml")
    slo_url = _first_location(md, entity_id, "single_logout_service")
    raw_certs = [cert for _name, cert in md.certs(entity_id, "idpsso", "signing")]
    return IdpMetadata(
        entity_id=entity_id,
        sso_url=check_idp_url(sso_url, field_name="idp_sso_url"),
        slo_url=check_idp_url(slo_url, field_name="idp_slo_url"),
        certificates=certificates_clean(raw_certs),
    )


def idp_metadata_for_config(sso: SsoSettings) -> str:
    """The IdP as the SP config trusts it, written from the stored fields only."""
    keys = "".join(
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{certificate_base64(entry)}"
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        for entry in sso.idp_certificates[:MAX_IDP_CERTIFICATES]
    )
    slo = ""
    if sso.idp_slo_url:
        slo = "".join(
            f"<md:SingleLogoutService Binding={quoteattr(binding)} Location={quoteattr(sso.idp_slo_url)}/>"
            for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)
        )
    sso_services = "".join(
        f"<md:SingleSignOnService Binding={quoteattr(binding)} Location={quoteattr(sso.idp_sso_url)}/>"
        for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)
    )
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID={quoteattr(sso.idp_entity_id)}>'
        '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{keys}{slo}{sso_services}</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


# --------------------------------------------------------------------------------------- fetching


def check_metadata_url(url: str) -> str:
    """The SSRF guard: https:// on one of Microsoft's login hosts, default port, no credentials;
    with SSO_ALLOW_LOCAL_IDP also http(s) to loopback (tests and local trials)."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidValue(METADATA_URL_REFUSED, field="idp_metadata_url") from exc
    host = (parts.hostname or "").lower()
    if parts.username or parts.password:
        raise InvalidValue(METADATA_URL_REFUSED, field="idp_metadata_url")
    if local_idp_allowed() and host in LOOPBACK_HOSTS and parts.scheme in ("http", "https"):
        return url
    if parts.scheme != "https" or host not in MICROSOFT_LOGIN_HOSTS or port not in (None, 443):
        raise InvalidValue(METADATA_URL_REFUSED, field="idp_metadata_url")
    return url


def fetch_metadata(url: str) -> bytes:
    """GET the metadata: no redirects followed (a redirect could leave the allowed hosts), one
    overall deadline (not just per read, so a trickling server cannot hold a worker), 1 MiB cap
    checked while reading."""
    url = check_metadata_url(url)
    timeout = float(getattr(settings, "SSO_METADATA_FETCH_TIMEOUT", METADATA_FETCH_TIMEOUT_SECONDS))
    deadline = time.monotonic() + timeout
    body = bytearray()
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream(
                "GET", url, headers={"Accept": "application/samlmetadata+xml, application/xml"}
            ) as r,
        ):
            if r.status_code != 200:
                raise InvalidValue(
                    METADATA_FETCH_FAILED.format(detail=f"the server answered {r.status_code}."),
                    field="idp_metadata_url",
                )
            declared = r.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > METADATA_MAX_BYTES:
                raise InvalidValue(METADATA_TOO_LARGE, field="idp_metadata_url")
            for chunk in r.iter_bytes():
                body.extend(chunk)
                if len(body) > METADATA_MAX_BYTES:
                    raise InvalidValue(METADATA_TOO_LARGE, field="idp_metadata_url")
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("overall deadline passed")
    except httpx.TimeoutException as exc:
        raise InvalidValue(
            METADATA_FETCH_FAILED.format(detail=f"no complete answer within {timeout:g} s."),
            field="idp_metadata_url",
        ) from exc
    except httpx.HTTPError as exc:
        raise InvalidValue(
            METADATA_FETCH_FAILED.format(detail=type(exc).__name__), field="idp_metadata_url"
        ) from exc
    return bytes(body)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
