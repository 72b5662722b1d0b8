"""What the live tests speak HTTP with: httpx only, routed to the served app on 127.0.0.1.

`Browser` is the Entra admin's browser (cookies per host, forms with their hidden CSRF token, one
redirect at a time); `EntraBackend` is Entra's provisioning service (form-encoded token requests,
SCIM with a bearer token). Neither may ever meet Django's CSRF failure page or a 5xx: every client
made here checks each response for both, so a regression like the CSRF 403 that once greeted every
real token request fails whichever test first sends such a request.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import httpx

from directory.models import Tenant
from directory.tenancy import tenant_primary_host

ENTRA_REDIRECT = "https://portal.azure.com/TokenAuthorize"
SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
TIMEOUT = httpx.Timeout(15.0)
# Fabrikam holds a user under this userName and Contoso's Entra provisions one too: userName is
# unique per tenant, and Fabrikam's row must never reach a Contoso credential.
SHARED_USERNAME = "alex.wilber@example.com"


@dataclass(frozen=True)
class LiveApp:
    port: int
    domain: str
    log_path: Path

    def origin(self, host: str) -> str:
        return f"http://{host}:{self.port}"

    @property
    def root_url(self) -> str:
        """Entra's Authorization and Token URLs live on the base domain (README, the Authorize
        button)."""
        return self.origin(self.domain)

    def tenant_url(self, tenant: Tenant) -> str:
        return self.origin(tenant_primary_host(tenant.slug))

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Authorization:
    code: str
    state: str
    issuer: str


class LoopbackTransport(httpx.HTTPTransport):
    """Connects every request to the served app on 127.0.0.1:<port>, keeping the URL's host in the
    Host header, as DNS pointing `*.testserver` at the server would. The client's cookie jar stays
    keyed by the URL's host, so each tenant host keeps its own host-only session cookie exactly as
    in a browser. Hosts outside the served domain (Entra's redirect URI) are refused, never sent."""

    def __init__(self, port: int, served_domain: str) -> None:
        super().__init__()
        self.port = port
        self.served_domain = served_domain

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        served = host in ("127.0.0.1", self.served_domain) or host.endswith(f".{self.served_domain}")
        if not served or request.url.port != self.port:
            raise AssertionError(f"the live tests only talk to the served app, not {request.url}")
        target = httpx.Request(
            request.method,
            request.url.copy_with(host="127.0.0.1"),
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        return super().handle_request(target)


def response_checker(server_log: Callable[[], str]) -> Callable[[httpx.Response], None]:
    """The httpx response hook every live client carries (brief: no request may get Django's CSRF
    failure page). A 5xx is never an expected answer either; the server's log tail says why."""

    def check(response: httpx.Response) -> None:
        response.read()
        request = response.request
        assert not (response.status_code == 403 and "CSRF" in response.text), (
            f"{request.method} {request.url} got Django's CSRF failure page:\n{response.text[:800]}"
        )
        assert response.status_code < 500, (
            f"{request.method} {request.url} answered {response.status_code}:\n{response.text[:800]}\n"
            f"--- server log ---\n{server_log()}"
        )

    return check


def query(url: str | httpx.URL) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(url)).query, keep_blank_values=True).items()}


def random_guid() -> str:
    return str(uuid.uuid4())


# ------------------------------------------------------------------------------------ browser


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("method", "get").lower(), values.get("action", "")))
            self._open = True
        elif self._open and tag == "input" and values.get("name"):
            if values.get("type", "text") not in ("submit", "checkbox", "radio", "button"):
                self.forms[-1].fields[values["name"]] = values.get("value", "")
        elif self._open and tag == "button" and values.get("name"):
            self.forms[-1].buttons[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = False


def post_form(html: str) -> Form:
    parser = _FormParser()
    parser.feed(html)
    forms = [form for form in parser.forms if form.method == "post"]
    assert len(forms) == 1, f"expected one POST form, found {len(forms)}"
    return forms[0]


class Browser:
    """The Entra admin's browser: follows redirects one by one (so each hop can be checked),
    submits a page's form with its hidden fields, the CSRF token from the form and the csrftoken
    cookie of that host, and sends Origin and Referer on a form POST as browsers do."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def get(self, url: str | httpx.URL) -> httpx.Response:
        return self.http.get(url)

    def cookie(self, name: str, host: str) -> str | None:
        """The host-only cookie the jar holds for `host` (http.cookiejar files a dotless host
        such as `testserver` under `testserver.local`, RFC 2965 §1)."""
        for cookie in self.http.cookies.jar:
            if cookie.name == name and cookie.domain in (host, f"{host}.local"):
                return cookie.value
        return None

    def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.is_redirect, (response.status_code, response.text[:500])
        return self.get(urljoin(str(response.url), response.headers["Location"]))

    def submit(self, page: httpx.Response, button: str | None = None, **values: str) -> httpx.Response:
        assert page.status_code == 200, (page.url, page.status_code, page.text[:500])
        form = post_form(page.text)
        token = form.fields.get("csrfmiddlewaretoken")
        assert token, f"{page.url} renders no CSRF token in its form"
        assert self.cookie("csrftoken", page.url.host), f"{page.url} set no csrftoken cookie"
        data = {**form.fields, **values}
        if button is not None:
            data[button] = form.buttons[button]
        origin = f"{page.url.scheme}://{page.url.netloc.decode()}"
        return self.http.post(
            urljoin(str(page.url), form.action),
            data=data,
            headers={"Origin": origin, "Referer": str(page.url)},
        )


# ------------------------------------------------------------------------------------- Entra


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    secret: str


def basic_authorization(client: OAuthClient) -> str:
    """RFC 6749 §2.3.1: client id and secret are form-urlencoded, then joined for HTTP Basic."""
    pair = f"{quote(client.client_id, safe='')}:{quote(client.secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


class EntraBackend:
    """Entra's provisioning service: calls the one Token URL on the root host with a form-encoded
    body, authenticating as `client_secret_basic` or `client_secret_post` (RFC 6749 §2.3.1), then
    SCIM on the tenant's host with the bearer token it got."""

    def __init__(self, http: httpx.Client, root_url: str) -> None:
        self.http = http
        self.root_url = root_url

    def _client_post(
        self, path: str, client: OAuthClient, data: dict[str, str], auth: str
    ) -> httpx.Response:
        if auth == "client_secret_basic":
            return self.http.post(
                f"{self.root_url}{path}", data=data, headers={"Authorization": basic_authorization(client)}
            )
        assert auth == "client_secret_post", auth
        body = {**data, "client_id": client.client_id, "client_secret": client.secret}
        return self.http.post(f"{self.root_url}{path}", data=body)

    def token(self, client: OAuthClient, auth: str = "client_secret_basic", **data: str) -> httpx.Response:
        return self._client_post("/oauth/token/", client, data, auth)

    def exchange_code(
        self, client: OAuthClient, code: str, auth: str = "client_secret_basic"
    ) -> httpx.Response:
        return self.token(
            client, auth, grant_type="authorization_code", code=code, redirect_uri=ENTRA_REDIRECT
        )

    def refresh(self, client: OAuthClient, refresh_token: str) -> httpx.Response:
        return self.token(client, grant_type="refresh_token", refresh_token=refresh_token)

    def revoke(self, client: OAuthClient, token: str, hint: str = "access_token") -> httpx.Response:
        return self._client_post(
            "/oauth/revoke_token/", client, {"token": token, "token_type_hint": hint}, "client_secret_basic"
        )

    def introspect(self, client: OAuthClient, token: str) -> dict[str, Any]:
        response = self._client_post("/oauth/introspect/", client, {"token": token}, "client_secret_basic")
        assert response.status_code == 200, (response.status_code, response.text)
        assert response.headers["Cache-Control"] == "no-store"
        return response.json()

    def scim(self, tenant_url: str, token: str) -> SCIMConnection:
        return SCIMConnection(self.http, f"{tenant_url}/scim/v2", token)


def token_body(response: httpx.Response) -> dict[str, Any]:
    """RFC 6749 §5.1: 200, JSON, a Bearer access token with its lifetime, never cached."""
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert isinstance(body["access_token"], str) and body["access_token"]
    assert isinstance(body["expires_in"], int) and 0 < body["expires_in"] <= 21600
    return body


def oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.json()["error"] == error, response.text


class SCIMConnection:
    """SCIM 2.0 as Entra sends it: `Authorization: Bearer`, SCIM JSON bodies, and no SCIM Accept
    header on reads (Test Connection sends none)."""

    def __init__(self, http: httpx.Client, base: str, token: str) -> None:
        self.http = http
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(f"{self.base}{path}", params=params, headers=self.headers)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            f"{self.base}{path}",
            content=json.dumps(body),
            headers={**self.headers, "Content-Type": SCIM_JSON},
        )

    def test_connection(self) -> None:
        """Entra's Test Connection: a random userName must give 200 and an empty ListResponse."""
        response = self.get("/Users", filter=f'userName eq "{random_guid()}"')
        assert response.status_code == 200, (response.status_code, response.text)
        body = response.json()
        assert body["schemas"] == [LIST_RESPONSE]
        assert body["totalResults"] == 0
        assert body.get("Resources", []) == []

    def create_user(self, user_name: str) -> dict[str, Any]:
        response = self.post(
            "/Users",
            {"schemas": [USER_SCHEMA], "userName": user_name, "externalId": random_guid(), "active": True},
        )
        assert response.status_code == 201, (response.status_code, response.text)
        assert response.headers["Content-Type"].startswith(SCIM_JSON)
        created = response.json()
        assert created["userName"] == user_name
        return created

    def user_ids(self, **params: str) -> set[str]:
        response = self.get("/Users", count="200", **params)
        assert response.status_code == 200, (response.status_code, response.text)
        return {resource["id"] for resource in response.json().get("Resources", [])}

    def assert_invisible(self, scim_id: object, user_name: str) -> None:
        """Another tenant's user, over HTTP (Zulip's test_get_basic_filter_by_username): neither
        listed, nor found by its userName, nor reachable by its id, which answers 404 like an id
        that never existed."""
        assert str(scim_id) not in self.user_ids()
        assert str(scim_id) not in self.user_ids(filter=f'userName eq "{user_name}"')
        response = self.get(f"/Users/{scim_id}")
        assert response.status_code == 404, (response.status_code, response.text)

    def assert_unauthorized(self) -> None:
        response = self.get("/Users")
        assert response.status_code == 401, (response.status_code, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
