"""A local OpenID provider standing in for each tenant's Entra ID, served over HTTP on 127.0.0.1 by
a thread of this test session (discovery, JWKS and token endpoints, Entra's v2.0 paths), with RSA
keys generated in the session (nothing committed) and ID tokens signed with joserfc.

The browser leg is played by the test: `LocalEntra.authorize(location, upn=...)` reads the
authorization request the relying party redirected to (as Entra would), checks it carries PKCE
S256, `state` and `nonce`, mints the code and returns the callback path the browser would be sent
to. The token endpoint then checks the client id and secret, the redirect URI and the PKCE
verifier before handing out the ID token, so the happy path proves the relying party sends them.

Negative tests change the ID token as a real attacker could only with a compromised or rogue
provider: other claims, another signing key, `alg=none`, HS256 keyed with the public key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from directory import services
from directory.models import Tenant
from sso import services as sso_services
from tests.clients import Client
from tests.sso.conftest import ALICE_OID, CONTOSO_TID, FABRIKAM_TID

CONTOSO_CLIENT_ID = "6f1b7c3e-0000-4000-8000-00000000c1d0"
FABRIKAM_CLIENT_ID = "9a2d4e5f-0000-4000-8000-00000000fab0"
CLIENT_SECRET = "local-op-secret~not-real"
FRANK_OID = "3c9d2b10-0000-4000-8000-0000000f4a2c"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """An RSA key made with `cryptography` in the test session, as joserfc uses it."""

    kid: str
    key: RSAKey
    public_pem: bytes

    @classmethod
    def generate(cls, kid: str) -> SigningKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(kid=kid, key=RSAKey.import_key(pem), public_pem=public_pem)

    def jwk(self) -> dict[str, Any]:
        return {**self.key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": "RS256"}


@dataclass
class Grant:
    id_token: str
    client_id: str
    redirect_uri: str
    code_challenge: str


@dataclass
class LocalEntra:
    """One tenant's Entra: issuer `http://127.0.0.1:<port>/<tid>/v2.0`, its own client and keys."""

    base: str
    tid: str
    client_id: str
    client_secret: str
    keys: list[SigningKey]
    codes: dict[str, Grant] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    discovery_issuer: str | None = None
    down: bool = False

    @property
    def issuer(self) -> str:
        return f"{self.base}/{self.tid}/v2.0"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.base}/{self.tid}/oauth2/v2.0/authorize"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.discovery_issuer or self.issuer,
            "authorization_endpoint": self.authorization_endpoint,
            "token_endpoint": f"{self.base}/{self.tid}/oauth2/v2.0/token",
            "jwks_uri": f"{self.base}/{self.tid}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        }

    # ------------------------------------------------------------------------------ the browser leg

    def authorization_request(self, location: str) -> dict[str, str]:
        """The parameters of the authorization request the relying party redirected to."""
        assert location.startswith(self.authorization_endpoint + "?"), location
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert params["client_id"] == self.client_id
        assert params["response_type"] == "code"
        assert params["code_challenge_method"] == "S256"
        assert len(params["code_challenge"]) == 43
        assert "openid" in params["scope"].split()
        assert params["state"] and params["nonce"]
        return params

    def claims(self, request: dict[str, str], *, upn: str, oid: str = "") -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": self.client_id,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": upn.split("@")[0].title(),
            "nonce": request["nonce"],
            "oid": oid or secrets.token_hex(16),
            "preferred_username": upn,
            "sub": b64url(hashlib.sha256(f"{self.tid}:{upn}".encode()).digest()),
            "tid": self.tid,
            "ver": "2.0",
        }
        return claims

    def authorize(
        self,
        location: str,
        *,
        upn: str,
        oid: str = "",
        claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        forge: Callable[[dict[str, Any]], str] | None = None,
        signer: SigningKey | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        """Sign `upn` in (as Entra would after the password and MFA) and mint a code; the callback
        path and query the browser is then redirected to. `claims` overrides, `drop` removes
        claims; `forge` makes the ID token from the claims itself; `signer`/`header` sign differently."""
        request = self.authorization_request(location)
        body = {**self.claims(request, upn=upn, oid=oid), **(claims or {})}
        for name in drop:
            body.pop(name, None)
        id_token = forge(body) if forge is not None else self.sign(body, signer=signer, header=header)
        code = secrets.token_urlsafe(24)
        self.codes[code] = Grant(
            id_token, request["client_id"], request["redirect_uri"], request["code_challenge"]
        )
        redirect = urlsplit(request["redirect_uri"])
        return f"{redirect.path}?{urlencode({'code': code, 'state': request['state']})}"

    def sign(
        self,
        claims: dict[str, Any],
        *,
        signer: SigningKey | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        key = signer or self.keys[0]
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT", **(header or {})}, claims, key.key)

    # --------------------------------------------------------------------------------- endpoints

    def token_answer(self, form: dict[str, list[str]], authorization: str) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        value = {k: v[0] for k, v in form.items()}
        client_id, secret = value.get("client_id", ""), value.get("client_secret", "")
        if authorization.startswith("Basic "):
            pair = base64.b64decode(authorization[6:]).decode()
            client_id, secret = (unquote(part) for part in pair.split(":", 1))
        if client_id != self.client_id or not hmac.compare_digest(secret, self.client_secret):
            return 401, {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret.",
            }
        grant = self.codes.pop(value.get("code", ""), None)
        if grant is None or value.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant", "error_description": "AADSTS70008: The code has expired."}
        if value.get("redirect_uri") != grant.redirect_uri or grant.client_id != client_id:
            return 400, {"error": "invalid_grant", "error_description": "AADSTS50148: redirect_uri mismatch."}
        challenge = b64url(hashlib.sha256(value.get("code_verifier", "").encode()).digest())
        if challenge != grant.code_challenge:
            return 400, {"error": "invalid_grant", "error_description": "AADSTS501481: PKCE mismatch."}
        return 200, {
            "token_type": "Bearer",
            "scope": "openid profile",
            "expires_in": 3600,
            "access_token": secrets.token_urlsafe(32),
            "id_token": grant.id_token,
        }


class _Handler(BaseHTTPRequestHandler):
    server: LocalOpenIdServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _entra(self) -> tuple[LocalEntra | None, str]:
        path = urlsplit(self.path).path
        tid, _, rest = path.lstrip("/").partition("/")
        entra = self.server.providers.get(tid)
        if entra is not None:
            entra.hits[rest] += 1
        return entra, rest

    def do_GET(self) -> None:
        entra, rest = self._entra()
        if entra is None or entra.down:
            self._send(503, {"error": "temporarily_unavailable"})
        elif rest == "v2.0/.well-known/openid-configuration":
            self._send(200, entra.discovery())
        elif rest == "discovery/v2.0/keys":
            self._send(200, {"keys": [key.jwk() for key in entra.keys]})
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        entra, rest = self._entra()
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if entra is None or rest != "oauth2/v2.0/token":
            self._send(404, {"error": "not_found"})
            return
        status, body = entra.token_answer(form, self.headers.get("Authorization", ""))
        self._send(status, body)


class LocalOpenIdServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.providers: dict[str, LocalEntra] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def provider(self, tid: str, *, client_id: str, keys: list[SigningKey]) -> LocalEntra:
        entra = LocalEntra(
            base=self.base, tid=tid, client_id=client_id, client_secret=CLIENT_SECRET, keys=keys
        )
        self.providers[tid] = entra
        return entra


def unsigned_token(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """`alg=none`: header and claims, no signature."""
    head = {"alg": "none", "typ": "JWT", **(header or {})}
    return f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}."


def hs256_token(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """HS256 keyed with `secret`: the key-confusion attack when `secret` is the public key."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(signature)}"


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session", name="op_server")
def op_server_fixture() -> Iterator[LocalOpenIdServer]:
    server = LocalOpenIdServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session", name="op_keys")
def op_keys_fixture() -> dict[str, SigningKey]:
    return {
        name: SigningKey.generate(f"{name}-kid")
        for name in ("contoso", "contoso-next", "fabrikam", "attacker")
    }


@pytest.fixture(name="local_idp")
def local_idp_fixture(settings: Any) -> None:
    settings.SSO_ALLOW_LOCAL_IDP = True


def configure_oidc(tenant: Tenant, entra: LocalEntra, actor: services.Actor, **extra: Any) -> None:
    sso_services.sso_settings_update(
        tenant=tenant,
        actor=actor,
        oidc_enabled=True,
        oidc_tenant_id=entra.tid,
        oidc_client_id=entra.client_id,
        oidc_client_secret=entra.client_secret,
        oidc_issuer=entra.issuer,
        **extra,
    )


@pytest.fixture(name="contoso_op")
def contoso_op_fixture(
    local_idp: None,
    op_server: LocalOpenIdServer,
    op_keys: dict[str, SigningKey],
    tenant: Tenant,
    system_actor: services.Actor,
) -> LocalEntra:
    entra = op_server.provider(CONTOSO_TID, client_id=CONTOSO_CLIENT_ID, keys=[op_keys["contoso"]])
    configure_oidc(tenant, entra, system_actor)
    return entra


@pytest.fixture(name="fabrikam_op")
def fabrikam_op_fixture(
    local_idp: None,
    op_server: LocalOpenIdServer,
    op_keys: dict[str, SigningKey],
    other_tenant: Tenant,
    system_actor: services.Actor,
) -> LocalEntra:
    entra = op_server.provider(FABRIKAM_TID, client_id=FABRIKAM_CLIENT_ID, keys=[op_keys["fabrikam"]])
    configure_oidc(other_tenant, entra, system_actor)
    return entra


def start(http: Client, *, next_path: str = "", **extra: Any) -> str:
    """GET /oidc/login/ → where the browser is sent (the authorization request)."""
    query = f"?{urlencode({'next': next_path})}" if next_path else ""
    response = http.get(f"/oidc/login/{query}", secure=True, **extra)
    assert response.status_code == 302, (response.status_code, response.content[:300])
    return response["Location"]


def oidc_sign_in(http: Client, entra: LocalEntra, upn: str, *, next_path: str = "", **kwargs: Any) -> Any:
    """The whole round trip a browser makes: login → Entra → callback; the callback's response."""
    location = start(http, next_path=next_path)
    return http.get(entra.authorize(location, upn=upn, **kwargs), secure=True)


def signed_in_user_id(http: Client) -> str | None:
    return http.session.get("_auth_user_id")


__all__ = [
    "ALICE_OID",
    "CLIENT_SECRET",
    "CONTOSO_CLIENT_ID",
    "FABRIKAM_CLIENT_ID",
    "FRANK_OID",
    "LocalEntra",
    "LocalOpenIdServer",
    "SigningKey",
    "configure_oidc",
    "contoso_op_fixture",
    "fabrikam_op_fixture",
    "hs256_token",
    "local_idp_fixture",
    "oidc_sign_in",
    "op_keys_fixture",
    "op_server_fixture",
    "signed_in_user_id",
    "start",
    "unsigned_token",
]
