"""The OpenID Connect relying party of a tenant: Entra ID's v2.0 authorization code flow with PKCE
(S256), `state` and `nonce`, one confidential client per tenant (SsoSettings.oidc_*).

Why written here on Authlib's primitives rather than through an OIDC client framework:

- mozilla-django-oidc (security.md §1.2, §0.5) reads one global client from settings, skips the
  `aud`/`iss` checks and matches users by email by default, and answers an expired token with a
  500: none of that fits a directory where every tenant brings its own Entra client.
- Authlib's framework clients (`authlib.integrations.django_client`) keep clients in a process-wide
  registry; a per-tenant client with a secret that can be rotated at any time would have to be
  registered per request, and their `parse_id_token` takes the allowed algorithms from the
  provider's own metadata, leaves `aud` to `azp` heuristics and knows nothing of Entra's `tid`.
  Their fetches (discovery, JWKS, token) go through `requests` with no size cap and follow
  redirects, which would step around the host allowlist below.
- So the flow is written out here, small and explicit, with what Authlib does well: the PKCE S256
  challenge and token generation (`authlib.oauth2.rfc7636`, `authlib.common.security`), and the
  JOSE work in joserfc, the JOSE library of Authlib's author that Authlib itself now uses
  (`authlib.jose` is deprecated in its favour): JWK import, signature verification with an
  algorithm allowlist, and the registered-claim checks with leeway.

What an ID token must pass (each refusal has its own reason in the provisioning log):
signature against the issuer's JWKS (cached; fetched again once when a `kid` is unknown, for key
rollover), `alg` in ALLOWED_ALGORITHMS (RS256: never `none`, never HS* with the public key as the
secret), `iss` equal to the tenant's issuer, `aud` equal to its client id (and `azp` too when
present), `tid` equal to its Entra tenant id, `exp`/`nbf`/`iat` within two minutes of skew, and
`nonce` equal to the one this browser session sent with the authorization request.

Who signs in is not decided here: sso.linking.sso_link (the rule SAML uses) with the `upn` claim
when present (the real UPN, which SCIM's userName carries, #EXT# form for guests included), else
`preferred_username`, and the `oid` claim as object id. Never the `email` claim.

Network: discovery, JWKS and token requests go only to https on Microsoft's login hosts (public and
sovereign clouds; sso.metadata.MICROSOFT_LOGIN_HOSTS), or http(s) on loopback when
SSO_ALLOW_LOCAL_IDP is on (tests and local trials), never follow redirects, and have one overall
10 s deadline and a 256 KiB cap each.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.conf import settings
from django.core.cache import cache
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from directory.exceptions import InvalidValue
from directory.secrets import decrypt
from sso.metadata import LOOPBACK_HOSTS, MICROSOFT_LOGIN_HOSTS, local_idp_allowed
from sso.models import SsoSettings

ALLOWED_ALGORITHMS = ("RS256",)
"""What Entra signs ID tokens with. `none` and the HMAC family are never accepted: with HS256 the
"secret" would be whatever key we verify with, i.e. the public key anyone can download."""
CLOCK_SKEW_SECONDS = 120
FETCH_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 256 * 1024
MAX_ID_TOKEN_BYTES = 32 * 1024
MIN_RSA_BITS = 2048
DISCOVERY_CACHE_SECONDS = 6 * 3600
JWKS_CACHE_SECONDS = 6 * 3600
JWKS_REFRESH_INTERVAL_SECONDS = 60
"""An unknown `kid` fetches the JWKS again at most once a minute per key set, so tokens naming
made-up keys cannot turn us into a load generator against Entra."""
SCOPE = "openid profile"
"""`profile` is what puts `preferred_username` and `oid` in Entra's v2.0 ID token."""
PKCE_VERIFIER_LENGTH = 64
STATE_LENGTH = 32
NONCE_LENGTH = 32

DISCOVERY_PATH = "/.well-known/openid-configuration"
ENDPOINT_FIELDS = ("authorization_endpoint", "token_endpoint", "jwks_uri")

# Public texts (what the person sees); the reasons for the log are built where refused.
PUBLIC_REFUSED = "The sign-in from Microsoft could not be accepted."
PUBLIC_UNAVAILABLE = (
    "Microsoft sign-in is not available right now: {brand} could not reach Microsoft or is not set "
    "up correctly. Try again in a few minutes; if it keeps failing, tell your administrator."
)
ISSUER_REFUSED = (
    "The issuer must be https:// on a Microsoft login host (login.microsoftonline.com or a "
    "sovereign cloud's)."
)


class OidcRefused(Exception):
    """An OpenID Connect answer this relying party will not act on. `reason` goes to the log and
    the provisioning log (never a token or secret); `public` is what the person is told; `status`
    is a 4xx."""

    def __init__(self, reason: str, *, public: str = "", status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.public = public or PUBLIC_REFUSED
        self.status = status


class OidcUnavailable(OidcRefused):
    """Not the person's fault: the provider could not be reached or answered nonsense, or the
    tenant's settings cannot work (issuer not allowed, client secret unreadable). 502."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, public=PUBLIC_UNAVAILABLE, status=502)


# ------------------------------------------------------------------------------------------ URLs


def _allowed_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.username or parts.password or not host:
        return False
    if local_idp_allowed() and host in LOOPBACK_HOSTS and parts.scheme in ("http", "https"):
        return True
    return parts.scheme == "https" and host in MICROSOFT_LOGIN_HOSTS and port in (None, 443)


def check_issuer(url: str) -> str:
    """The issuer as the console stores it: https on a Microsoft login host (loopback too with
    SSO_ALLOW_LOCAL_IDP). Raises InvalidValue for the settings form."""
    url = (url or "").strip()
    if url and not _allowed_url(url):
        raise InvalidValue(ISSUER_REFUSED, field="oidc_issuer")
    return url


def _checked(url: Any, what: str) -> str:
    if not isinstance(url, str) or not _allowed_url(url):
        raise OidcUnavailable(f"The {what} {str(url)[:200]!r} is not on an allowed Microsoft login host.")
    return url


# --------------------------------------------------------------------------------------- fetching


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CAs, or SSL_CERT_FILE/DIR), made once per process:
    building it loads the CA bundle, about 100 ms, which would otherwise be paid on every
    sign-in's token request. An SSLContext may be shared by concurrent connections."""
    return httpx.create_ssl_context()


def _read_json(response: httpx.Response, deadline: float, what: str) -> Any:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise OidcUnavailable(f"The {what} is larger than {MAX_RESPONSE_BYTES // 1024} KiB.")
    body = bytearray()
    for chunk in response.iter_bytes():
        body.extend(chunk)
        if len(body) > MAX_RESPONSE_BYTES:
            raise OidcUnavailable(f"The {what} is larger than {MAX_RESPONSE_BYTES // 1024} KiB.")
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("overall deadline passed")
    try:
        return json.loads(bytes(body))
    except ValueError as exc:
        raise OidcUnavailable(f"The {what} is not JSON (HTTP {response.status_code}).") from exc


def _request_json(
    method: str,
    url: str,
    *,
    what: str,
    data: Mapping[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request to the provider: allowed hosts only, no redirects, one overall deadline (a
    trickling server cannot hold a worker), size-capped; (status, parsed JSON)."""
    url = _checked(url, what)
    timeout = float(getattr(settings, "SSO_METADATA_FETCH_TIMEOUT", FETCH_TIMEOUT_SECONDS))
    deadline = time.monotonic() + timeout
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, verify=_tls_context()) as client,
            client.stream(
                method, url, data=data, headers={"Accept": "application/json", **(headers or {})}
            ) as response,
        ):
            return response.status_code, _read_json(response, deadline, what)
    except httpx.TimeoutException as exc:
        raise OidcUnavailable(f"The {what} did not answer within {timeout:g} s.") from exc
    except httpx.HTTPError as exc:
        raise OidcUnavailable(f"The {what} could not be fetched: {type(exc).__name__}.") from exc


def first_line(text: Any, limit: int = 200) -> str:
    """The first line of a provider's error description (Entra's carry AADSTS codes and trace
    ids over several lines), for the log."""
    lines = str(text or "").strip().splitlines()
    return lines[0][:limit] if lines else ""


def _cache_key(kind: str, value: str) -> str:
    return f"sso:oidc:{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


# -------------------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: tuple[str, ...]


def _discover(issuer: str) -> dict[str, Any]:
    url = f"{issuer.rstrip('/')}{DISCOVERY_PATH}"
    status, doc = _request_json("GET", url, what="OpenID configuration")
    if status != 200 or not isinstance(doc, dict):
        raise OidcUnavailable(f"The OpenID configuration at {url} answered HTTP {status}.")
    # OpenID Connect Discovery §4.3: the document's issuer must be exactly the one asked for.
    if doc.get("issuer") != issuer:
        raise OidcUnavailable(
            f"The OpenID configuration names the issuer {str(doc.get('issuer'))[:200]!r}, not {issuer!r}."
        )
    for name in ENDPOINT_FIELDS:
        _checked(doc.get(name), name)
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return {
        "issuer": issuer,
        **{name: doc[name] for name in ENDPOINT_FIELDS},
        "token_auth_methods": [m for m in methods if isinstance(m, str)][:10],
    }


def provider_metadata(sso: SsoSettings) -> ProviderMetadata:
    """The tenant's provider endpoints from `<issuer>/.well-known/openid-configuration`, cached
    (shared by the workers) for DISCOVERY_CACHE_SECONDS."""
    issuer = _checked(sso.oidc_issuer_effective, "issuer")
    key = _cache_key("discovery", issuer)
    doc = cache.get(key)
    if not isinstance(doc, dict) or doc.get("issuer") != issuer:
        doc = _discover(issuer)
        cache.set(key, doc, DISCOVERY_CACHE_SECONDS)
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=_checked(doc["authorization_endpoint"], "authorization_endpoint"),
        token_endpoint=_checked(doc["token_endpoint"], "token_endpoint"),
        jwks_uri=_checked(doc["jwks_uri"], "jwks_uri"),
        token_auth_methods=tuple(doc["token_auth_methods"]),
    )


# ------------------------------------------------------------------------------ the authorization


@dataclass(frozen=True)
class LoginRequest:
    """What one sign-in attempt keeps in the browser's session until the callback."""

    state: str
    nonce: str
    code_verifier: str

    @classmethod
    def new(cls) -> LoginRequest:
        return cls(
            state=generate_token(STATE_LENGTH),
            nonce=generate_token(NONCE_LENGTH),
            code_verifier=generate_token(PKCE_VERIFIER_LENGTH),
        )


def authorization_url(
    provider: ProviderMetadata, sso: SsoSettings, login: LoginRequest, *, redirect_uri: str
) -> str:
    params = {
        "client_id": sso.oidc_client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "response_mode": "query",
        "scope": SCOPE,
        "state": login.state,
        "nonce": login.nonce,
        "code_challenge": create_s256_code_challenge(login.code_verifier),
        "code_challenge_method": "S256",
    }
    separator = "&" if urlsplit(provider.authorization_endpoint).query else "?"
    return f"{provider.authorization_endpoint}{separator}{urlencode(params)}"


# ------------------------------------------------------------------------------ the token request


def client_secret(sso: SsoSettings) -> str:
    secret = decrypt(sso.oidc_client_secret_encrypted) if sso.oidc_client_secret_encrypted else None
    if not secret:
        raise OidcUnavailable(
            "The client secret cannot be read (none stored, or stored under another SECRET_KEY): "
            "set it again."
        )
    return secret


def redeem_code(
    provider: ProviderMetadata, sso: SsoSettings, *, code: str, redirect_uri: str, code_verifier: str
) -> str:
    """Exchange the authorization code at the token endpoint (client_secret_post, or
    client_secret_basic when that is all the provider offers); the ID token. The access token is
    not kept: nothing here calls Microsoft Graph."""
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
        "client_id": sso.oidc_client_id,
    }
    headers: dict[str, str] = {}
    secret = client_secret(sso)
    if "client_secret_post" in provider.token_auth_methods or not provider.token_auth_methods:
        data["client_secret"] = secret
    else:
        # RFC 6749 §2.3.1: form-encode both parts before base64.
        pair = f"{quote(sso.oidc_client_id, safe='')}:{quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    status, answer = _request_json(
        "POST", provider.token_endpoint, what="token endpoint", data=data, headers=headers
    )
    if not isinstance(answer, dict):
        raise OidcUnavailable(f"The token endpoint answered HTTP {status} without a JSON object.")
    if status != 200:
        error = str(answer.get("error", ""))[:64]
        description = first_line(answer.get("error_description"))
        reason = f"The token endpoint refused the code: {error or f'HTTP {status}'} {description}".strip()
        if error == "invalid_client" or status >= 500:
            raise OidcUnavailable(reason)
        raise OidcRefused(reason, status=400)
    id_token = answer.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise OidcRefused("The token endpoint answered without an ID token.")
    return id_token


# ------------------------------------------------------------------------------------------ keys


def _jwks(jwks_uri: str, *, refresh: bool) -> tuple[dict[str, dict[str, Any]], bool]:
    """The provider's RSA signing keys by `kid` (public parts only); (keys, fetched just now)."""
    key = _cache_key("jwks", jwks_uri)
    if not refresh:
        cached = cache.get(key)
        if isinstance(cached, dict):
            return cached, False
    status, doc = _request_json("GET", jwks_uri, what="JWKS")
    if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise OidcUnavailable(f"The JWKS at {jwks_uri} answered HTTP {status} without a key set.")
    keys: dict[str, dict[str, Any]] = {}
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
            continue
        kid, n, e = jwk.get("kid"), jwk.get("n"), jwk.get("e")
        if isinstance(kid, str) and kid and isinstance(n, str) and isinstance(e, str):
            keys[kid] = {"kty": "RSA", "kid": kid, "n": n, "e": e}
    cache.set(key, keys, JWKS_CACHE_SECONDS)
    return keys, True


def signing_key(jwks_uri: str, kid: str) -> RSAKey:
    """The key named `kid`. An unknown `kid` (Entra rolled its keys) fetches the JWKS again once,
    at most every JWKS_REFRESH_INTERVAL_SECONDS; still unknown → refused."""
    keys, fresh = _jwks(jwks_uri, refresh=False)
    if (
        kid not in keys
        and not fresh
        and cache.add(_cache_key("jwks-refresh", jwks_uri), 1, JWKS_REFRESH_INTERVAL_SECONDS)
    ):
        keys, _ = _jwks(jwks_uri, refresh=True)
    if kid not in keys:
        raise OidcRefused(
            f"The ID token is signed with a key the issuer does not publish (kid {kid[:80]!r})."
        )
    try:
        key = RSAKey.import_key(keys[kid])
    except (JoseError, ValueError) as exc:
        raise OidcUnavailable(f"The JWKS key {kid[:80]!r} cannot be read.") from exc
    if key.raw_value.key_size < MIN_RSA_BITS:
        raise OidcRefused(f"The signing key {kid[:80]!r} has {key.raw_value.key_size} bits; 2048 are needed.")
    return key


# ---------------------------------------------------------------------------------------- ID token


def _header(id_token: str) -> dict[str, Any]:
    parts = id_token.split(".")
    if len(parts) != 3:
        raise OidcRefused("The ID token is not a signed JWT (JWS compact serialization).")
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise OidcRefused("The ID token header cannot be read.") from exc
    if not isinstance(header, dict):
        raise OidcRefused("The ID token header cannot be read.")
    return header


def _claim_refusal(exc: JoseError) -> OidcRefused:
    if isinstance(exc, ExpiredTokenError):
        return OidcRefused("The ID token has expired (exp).")
    claim = getattr(exc, "claim", "")
    if isinstance(exc, MissingClaimError):
        return OidcRefused(f"The ID token lacks the {claim} claim.")
    if claim == "nbf":
        return OidcRefused("The ID token is not valid yet (nbf).")
    if claim == "iat":
        return OidcRefused("The ID token was issued in the future (iat).")
    return OidcRefused(f"The ID token's {claim or 'claims'} claim is not valid.")


def _text_equal(a: Any, b: str) -> bool:
    return isinstance(a, str) and hmac.compare_digest(a.encode(), b.encode())


def verify_id_token(
    id_token: str, *, provider: ProviderMetadata, sso: SsoSettings, nonce: str, now: int | None = None
) -> dict[str, Any]:
    """The ID token's claims once every check in this module's docstring has passed."""
    if len(id_token) > MAX_ID_TOKEN_BYTES:
        raise OidcRefused("The ID token is too large.")
    header = _header(id_token)
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise OidcRefused(f"The ID token's algorithm {str(alg)[:20]!r} is not allowed (RS256 only).")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise OidcRefused("The ID token names no signing key (kid).")
    key = signing_key(provider.jwks_uri, kid)
    try:
        token = jwt.decode(
            id_token,
            key,
            algorithms=list(ALLOWED_ALGORITHMS),
            registry=JWSRegistry(algorithms=list(ALLOWED_ALGORITHMS), strict_check_header=False),
        )
    except BadSignatureError as exc:
        raise OidcRefused("The ID token's signature does not verify.") from exc
    except JoseError as exc:
        raise OidcRefused(f"The ID token cannot be verified: {exc.error}.") from exc
    claims = token.claims

    if not _text_equal(claims.get("iss"), provider.issuer):
        raise OidcRefused(f"The ID token's issuer {str(claims.get('iss'))[:200]!r} is not this tenant's.")
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if not _text_equal(aud, sso.oidc_client_id):
        raise OidcRefused("The ID token's audience is not this tenant's client id.")
    if "azp" in claims and not _text_equal(claims.get("azp"), sso.oidc_client_id):
        raise OidcRefused("The ID token's authorized party (azp) is not this tenant's client id.")
    tid = claims.get("tid")
    if not isinstance(tid, str) or tid.strip().lower() != sso.oidc_tenant_id.strip().lower():
        raise OidcRefused(f"The ID token's Entra tenant (tid {str(tid)[:64]!r}) is not this tenant's.")
    if "nonce" not in claims:
        raise OidcRefused("The ID token carries no nonce.")
    if not _text_equal(claims.get("nonce"), nonce):
        raise OidcRefused("The ID token's nonce is not the one this sign-in sent.")
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=CLOCK_SKEW_SECONDS,
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise _claim_refusal(exc) from exc
    return claims


@dataclass(frozen=True)
class Identity:
    """Who the ID token names, as sso.linking takes it."""

    upn: str
    object_id: str
    subject: str

    @classmethod
    def of(cls, claims: Mapping[str, Any]) -> Identity:
        def text(name: str) -> str:
            value = claims.get(name)
            return value.strip()[:512] if isinstance(value, str) else ""

        upn = text("upn") or text("preferred_username")
        object_id = text("oid")
        return cls(upn=upn, object_id=object_id, subject=upn or object_id or text("sub"))


def sign_in_identity(sso: SsoSettings, *, code: str, redirect_uri: str, login: LoginRequest) -> Identity:
    """The callback's protocol work: redeem the code with the PKCE verifier, verify the ID token
    against this tenant's settings and this login's nonce, and say who it names."""
    provider = provider_metadata(sso)
    id_token = redeem_code(
        provider, sso, code=code, redirect_uri=redirect_uri, code_verifier=login.code_verifier
    )
    claims = verify_id_token(id_token, provider=provider, sso=sso, nonce=login.nonce)
    return Identity.of(claims)
