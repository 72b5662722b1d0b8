"""Helpers for the OAuth tests: clients, the authorize request Entra sends, the consent form."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from directory.models import Tenant
from directory.tenancy import tenant_primary_host
from oauth.models import Application
from tests.clients import Client

ENTRA_REDIRECT = "https://portal.azure.com/TokenAuthorize"
STATE = "entra-state-Zm9vYmFy"
ROOT_HOST = "testserver"


@dataclass
class OAuthClient:
    application: Application
    secret: str

    @property
    def client_id(self) -> str:
        return self.application.client_id


def root_client(**kwargs: Any) -> Client:
    return Client(HTTP_HOST=ROOT_HOST, **kwargs)


def tenant_client(tenant: Tenant, **kwargs: Any) -> Client:
    return Client(HTTP_HOST=tenant_primary_host(tenant.slug), **kwargs)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def authorize_params(client: OAuthClient, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": ENTRA_REDIRECT,
        "state": STATE,
        "scope": "scim",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def authorize_path(client: OAuthClient, **extra: str) -> str:
    return "/oauth/authorize/?" + urlencode(authorize_params(client, **extra))


def hidden_inputs(html: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", html):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and 'type="hidden"' in tag:
            fields[unescape(name.group(1))] = unescape(value.group(1)) if value else ""
    return fields


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def consent(http: Client, client: OAuthClient, *, allow: bool = True, **extra: str) -> Any:
    """GET the consent page on a signed-in tenant client and submit it; returns the POST response."""
    page = http.get(authorize_path(client, **extra))
    assert page.status_code == 200, page.content[:500]
    fields = hidden_inputs(page.content.decode())
    if allow:
        fields["allow"] = "Authorize"
    return http.post("/oauth/authorize/", fields)


def code_from(response: Any) -> str:
    assert response.status_code == 302, response.content[:500]
    location = response["Location"]
    assert location.startswith(ENTRA_REDIRECT + "?"), location
    return query(location)["code"]


def token_request(http: Client, client: OAuthClient, secret: str | None = None, **data: str) -> Any:
    return http.post(
        "/oauth/token/", data, HTTP_AUTHORIZATION=basic(client.client_id, secret or client.secret)
    )


def exchange(http: Client, client: OAuthClient, code: str, **extra: str) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": ENTRA_REDIRECT, **extra}
    return token_request(http, client, **data)


def refresh(http: Client, client: OAuthClient, refresh_token: str) -> Any:
    return token_request(http, client, grant_type="refresh_token", refresh_token=refresh_token)


def introspect(http: Client, client: OAuthClient, token: str) -> dict[str, Any]:
    response = http.post(
        "/oauth/introspect/", {"token": token}, HTTP_AUTHORIZATION=basic(client.client_id, client.secret)
    )
    assert response.status_code == 200, response.content
    return response.json()
