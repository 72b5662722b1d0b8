"""Browser-like SAML round trips against the SP, shared by the SAML tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from tests.clients import Client
from tests.sso.support import FakeEntra, SpUrls, encode


def start(http: Client, entra: FakeEntra, next_path: str = "") -> str:
    """GET /saml2/login/ → the AuthnRequest id the IdP received."""
    query = f"?{urlencode({'next': next_path})}" if next_path else ""
    response = http.get(f"/saml2/login/{query}", secure=True)
    assert response.status_code == 302, (response.status_code, response.content[:300])
    return entra.authn_request_id(response["Location"])


def post_response(http: Client, xml: str, relay_state: str = "") -> Any:
    data = {"SAMLResponse": encode(xml)}
    if relay_state:
        data["RelayState"] = relay_state
    return http.post("/saml2/acs/", data, secure=True)


def complete(http: Client) -> Any:
    return http.get("/saml2/acs/complete/", secure=True)


def sp_sign_in(
    http: Client, entra: FakeEntra, sp: SpUrls, upn: str, *, next_path: str = "", **kwargs: Any
) -> Any:
    """The whole SP-initiated round trip; returns the completion's response."""
    request_id = start(http, entra, next_path)
    xml = entra.response_xml(sp=sp, upn=upn, in_response_to=request_id, **kwargs)
    answer = post_response(http, xml)
    assert answer.status_code == 303, (answer.status_code, answer.content[:500])
    assert answer["Location"] == "/saml2/acs/complete/"
    return complete(http)


def signed_in_user_id(http: Client) -> str | None:
    return http.session.get("_auth_user_id")
