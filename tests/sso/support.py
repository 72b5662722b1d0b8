"""An offline Entra stand-in: pysaml2's IdP `Server`, one per tenant, with keys and certificates
made in the test session (nothing committed), and helpers to drive the SP like a browser.

Responses are built unsigned by pysaml2, optionally edited as text (the negative tests), then the
assertion is signed, so every tampered response still carries a valid signature unless the test
is about the signature itself (security.md §1.5).
"""

from __future__ import annotations

import base64
import re
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml, samlp, xmldsig
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.s_utils import sid
from saml2.saml import NAMEID_FORMAT_UNSPECIFIED, NameID
from saml2.server import Server
from saml2.sigver import pre_signature_part
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

from directory.models import Tenant
from directory.tenancy import tenant_primary_host
from sso.saml import NAME_CLAIM, OBJECT_ID_CLAIM
from tests.clients import Client

ASSERTION_NODE = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SAML_TIME = "%Y-%m-%dT%H:%M:%SZ"
NSPAIR = {"samlp": samlp.NAMESPACE, "saml": saml.NAMESPACE, "ds": xmldsig.NAMESPACE}


@dataclass(frozen=True)
class KeyPair:
    key_file: str
    cert_file: str
    cert_pem: str


def make_key_pair(directory: Path, name: str, *, days: int = 365, bits: int = 2048) -> KeyPair:
    """A throwaway RSA key and self-signed certificate, as Entra's SAML signing certificate is."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Microsoft Azure Federated SSO {name}")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_path = directory / f"{name}.key"
    cert_path = directory / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_path.write_text(cert_pem)
    return KeyPair(str(key_path), str(cert_path), cert_pem)


def sp_metadata_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def https(tenant: Tenant) -> str:
    return f"https://{tenant_primary_host(tenant.slug)}"


def tenant_http(tenant: Tenant) -> Client:
    return Client(HTTP_HOST=tenant_primary_host(tenant.slug))


class FakeEntra:
    """The enterprise application of one tenant's Entra: issuer `https://sts.windows.test/<tid>/`."""

    def __init__(
        self, *, tid: str, keys: KeyPair, sp_metadata: str | list[str], sign_keys: KeyPair | None = None
    ):
        self.tid = tid
        self.entity_id = f"https://sts.windows.test/{tid}/"
        self.sso_url = f"https://login.microsoftonline.test/{tid}/saml2"
        self.slo_url = f"https://login.microsoftonline.test/{tid}/saml2/logout"
        self.keys = keys
        # The key that actually signs (an attacker's, to forge): defaults to the published one.
        self.sign_keys = sign_keys or keys
        self.sp_metadata = sp_metadata
        self.server = self._server(self.sign_keys)

    def _server(self, keys: KeyPair) -> Server:
        conf = IdPConfig()
        conf.load(
            {
                "entityid": self.entity_id,
                "xmlsec_binary": shutil.which("xmlsec1"),
                "key_file": keys.key_file,
                "cert_file": keys.cert_file,
                "metadata": {"inline": sp_metadata_list(self.sp_metadata)},
                "accepted_time_diff": 120,
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (self.sso_url, BINDING_HTTP_REDIRECT),
                                (self.sso_url, BINDING_HTTP_POST),
                            ],
                            "single_logout_service": [(self.slo_url, BINDING_HTTP_REDIRECT)],
                        },
                        "policy": {"default": {"lifetime": {"minutes": 15}, "attribute_restrictions": None}},
                        "name_id_format": [NAMEID_FORMAT_UNSPECIFIED],
                        "want_authn_requests_signed": False,
                    }
                },
            }
        )
        return Server(config=conf)

    def metadata_xml(self) -> str:
        """What Entra's "Federation Metadata XML" download holds: entity id, URLs, the cert."""
        conf = IdPConfig()
        conf.load(
            {
                "entityid": self.entity_id,
                "xmlsec_binary": shutil.which("xmlsec1"),
                "key_file": self.keys.key_file,
                "cert_file": self.keys.cert_file,
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [
                                (self.sso_url, BINDING_HTTP_REDIRECT),
                                (self.sso_url, BINDING_HTTP_POST),
                            ],
                            "single_logout_service": [(self.slo_url, BINDING_HTTP_REDIRECT)],
                        }
                    }
                },
            }
        )
        return str(entity_descriptor(conf))

    # ----------------------------------------------------------------------------- requests

    def authn_request(self, location: str) -> Any:
        """The AuthnRequest the SP redirected the browser with, as the IdP reads it."""
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == self.sso_url, location
        query = parse_qs(parts.query)
        return self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT).message

    def authn_request_id(self, location: str) -> str:
        return self.authn_request(location).id

    def logout_request(self, location: str) -> Any:
        query = parse_qs(urlsplit(location).query)
        return self.server.parse_logout_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)

    # ---------------------------------------------------------------------------- responses

    def response_xml(
        self,
        *,
        sp: SpUrls,
        upn: str,
        object_id: str = "",
        in_response_to: str | None = None,
        mutate: Callable[[str], str] | None = None,
        sign: bool = True,
        sign_alg: str = SIG_RSA_SHA256,
        digest_alg: str = DIGEST_SHA256,
    ) -> str:
        identity: dict[str, list[str]] = {NAME_CLAIM: [upn]}
        if object_id:
            identity[OBJECT_ID_CLAIM] = [object_id]
        response = self.server.create_authn_response(
            identity,
            in_response_to,
            sp.acs,
            sp.entity_id,
            name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=upn),
            authn={"class_ref": PASSWORD_CONTEXT, "authn_auth": self.entity_id},
            sign_assertion=False,
            sign_response=False,
        )
        xml = response.to_string(nspair=NSPAIR).decode("utf-8")
        if mutate is not None:
            xml = mutate(xml)
        if sign:
            xml = self.sign_assertion(xml, sign_alg=sign_alg, digest_alg=digest_alg)
        return xml

    def sign_assertion(
        self, xml: str, *, sign_alg: str = SIG_RSA_SHA256, digest_alg: str = DIGEST_SHA256
    ) -> str:
        assertion_id = assertion_ids(xml)[0]
        template = str(pre_signature_part(assertion_id, digest_alg=digest_alg, sign_alg=sign_alg))
        template = re.sub(r"^<\?xml[^>]*\?>", "", template)
        xml = re.sub(
            r"(<saml:Assertion\b[^>]*>\s*<saml:Issuer\b[^>]*>[^<]*</saml:Issuer>)",
            lambda m: m.group(1) + template,
            xml,
            count=1,
        )
        return self.server.sec.sign_statement(
            xml, ASSERTION_NODE, key_file=self.sign_keys.key_file, node_id=assertion_id
        )

    def logout_response_location(self, logout_request: Any, sp: SpUrls) -> str:
        response = self.server.create_logout_response(logout_request.message, [BINDING_HTTP_REDIRECT])
        info = self.server.apply_binding(BINDING_HTTP_REDIRECT, str(response), sp.ls, response=True)
        return dict(info["headers"])["Location"]

    def logout_request_location(self, *, sp: SpUrls, upn: str) -> str:
        _id, request = self.server.create_logout_request(
            sp.ls, sp.entity_id, name_id=NameID(format=NAMEID_FORMAT_UNSPECIFIED, text=upn)
        )
        info = self.server.apply_binding(BINDING_HTTP_REDIRECT, str(request), sp.ls)
        return dict(info["headers"])["Location"]


@dataclass(frozen=True)
class SpUrls:
    entity_id: str
    acs: str
    ls: str

    @classmethod
    def of(cls, tenant: Tenant) -> SpUrls:
        base = https(tenant)
        return cls(f"{base}/saml2/metadata/", f"{base}/saml2/acs/", f"{base}/saml2/ls/")


def assertion_ids(xml: str) -> list[str]:
    return re.findall(r"<saml:Assertion\b[^>]*\bID=\"([^\"]+)\"", xml)


def encode(xml: str) -> str:
    return base64.b64encode(xml.encode("utf-8")).decode("ascii")


def redirect_xml(location: str, parameter: str = "SAMLRequest") -> str:
    """The XML carried by an HTTP-Redirect binding URL (deflated, base64)."""
    value = parse_qs(urlsplit(location).query)[parameter][0]
    return zlib.decompress(base64.b64decode(value), -15).decode()


def saml_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime(SAML_TIME)


def new_id() -> str:
    return sid()


def set_attribute(name: str, value: str, *, element: str = "") -> Callable[[str], str]:
    """A mutation: every `name="…"` (on `element` only, when given) becomes `name="value"`."""
    if element:
        pattern = re.compile(rf'(<{element}\b[^>]*\s{name}=")[^"]*(")')
    else:
        pattern = re.compile(rf'(\s{name}=")[^"]*(")')

    def mutate(xml: str) -> str:
        changed, count = pattern.subn(lambda m: m.group(1) + value + m.group(2), xml)
        assert count, f"{name} not found"
        return changed

    return mutate


def replace_text(old: str, new: str) -> Callable[[str], str]:
    def mutate(xml: str) -> str:
        assert old in xml, old
        return xml.replace(old, new)

    return mutate


def chain(*mutations: Callable[[str], str]) -> Callable[[str], str]:
    def mutate(xml: str) -> str:
        for mutation in mutations:
            xml = mutation(xml)
        return xml

    return mutate


__all__ = ["DIGEST_SHA1", "SIG_RSA_SHA1"]
