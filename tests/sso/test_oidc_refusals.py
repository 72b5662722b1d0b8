"""OpenID Connect sign-ins that must be refused: every ID token check, the state and nonce
bindings, unknown and deactivated users, an unreachable or misbehaving provider. Each refusal is a
branded page with a 4xx status (502 when the provider cannot be used), a `user.sign_in_refused`
event with its reason, nobody signed in, and nothing counted by django-axes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings

from directory import services
from directory.models import Event, Tenant, User
from sso import oidc
from sso import services as sso_services
from sso.linking import REASONS
from tests.clients import Client
from tests.conftest import PASSWORD
from tests.sso import oidc_provider
from tests.sso.conftest import ALICE, ALICE_OID, FABRIKAM_TID
from tests.sso.oidc_provider import (
    LocalEntra,
    SigningKey,
    hs256_token,
    oidc_sign_in,
    signed_in_user_id,
    start,
    unsigned_token,
)
from tests.sso.support import tenant_http

contoso_op_fixture = oidc_provider.contoso_op_fixture
local_idp_fixture = oidc_provider.local_idp_fixture
op_keys_fixture = oidc_provider.op_keys_fixture
op_server_fixture = oidc_provider.op_server_fixture

REFUSED_TITLE = b"We couldn&#x27;t sign you in"


def refused_event(tenant: Tenant) -> Event:
    return Event.objects.filter(tenant=tenant, action=sso_services.SIGN_IN_REFUSED).latest("id")


def assert_refused(response: Any, http: Client, tenant: Tenant, *, status: int, reason: str) -> Event:
    assert response.status_code == status, (response.status_code, response.content[:600])
    body = response.content
    assert REFUSED_TITLE in body or b"We couldn't sign you in" in body, body[:600]
    assert b"Back to sign-in" in body
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert signed_in_user_id(http) is None
    event = refused_event(tenant)
    assert event.changes["method"] == "oidc"
    assert event.result == Event.Result.FAILURE
    assert reason in event.detail, event.detail
    assert not AccessAttempt.objects.exists()
    return event


def now() -> int:
    return int(time.time())


# Each case: how the provider's ID token differs, and the reason the refusal must give.
TOKEN_CASES: dict[str, tuple[Callable[[LocalEntra, dict[str, SigningKey]], dict[str, Any]], str]] = {
    "alg_none": (
        lambda op, keys: {"forge": lambda claims: unsigned_token(claims, {"kid": keys["contoso"].kid})},
        "algorithm 'none' is not allowed",
    ),
    "hs256_keyed_with_the_public_key": (
        lambda op, keys: {
            "forge": lambda claims: hs256_token(claims, keys["contoso"].public_pem, keys["contoso"].kid)
        },
        "algorithm 'HS256' is not allowed",
    ),
    "signed_by_another_key_under_the_right_kid": (
        lambda op, keys: {"signer": keys["attacker"], "header": {"kid": keys["contoso"].kid}},
        "signature does not verify",
    ),
    "wrong_aud": (lambda op, keys: {"claims": {"aud": "11111111-2222-4333-8444-555555555555"}}, "audience"),
    "aud_with_another_client": (
        lambda op, keys: {"claims": {"aud": [op.client_id, "11111111-2222-4333-8444-555555555555"]}},
        "audience",
    ),
    "wrong_azp": (lambda op, keys: {"claims": {"azp": "11111111-2222-4333-8444-555555555555"}}, "azp"),
    "wrong_iss": (
        lambda op, keys: {"claims": {"iss": f"https://login.microsoftonline.com/{FABRIKAM_TID}/v2.0"}},
        "issuer",
    ),
    "wrong_tid": (lambda op, keys: {"claims": {"tid": FABRIKAM_TID}}, "Entra tenant (tid"),
    "missing_tid": (lambda op, keys: {"drop": ("tid",)}, "Entra tenant (tid"),
    "expired": (
        lambda op, keys: {"claims": {"exp": now() - 300, "iat": now() - 3900, "nbf": now() - 3900}},
        "expired",
    ),
    "not_yet_valid": (lambda op, keys: {"claims": {"nbf": now() + 600}}, "not valid yet"),
    "issued_in_the_future": (lambda op, keys: {"claims": {"iat": now() + 600, "nbf": now()}}, "future"),
    "no_exp": (lambda op, keys: {"drop": ("exp",)}, "lacks the exp claim"),
    "wrong_nonce": (
        lambda op, keys: {"claims": {"nonce": "not-the-nonce-this-browser-sent"}},
        "nonce is not",
    ),
    "missing_nonce": (lambda op, keys: {"drop": ("nonce",)}, "carries no nonce"),
}


@pytest.mark.parametrize("case", list(TOKEN_CASES))
def test_id_token_refused(
    case: str,
    http: Client,
    contoso_op: LocalEntra,
    op_keys: dict[str, SigningKey],
    alice: User,
    tenant: Tenant,
) -> None:
    change, reason = TOKEN_CASES[case]
    response = oidc_sign_in(http, contoso_op, ALICE, oid=ALICE_OID, **change(contoso_op, op_keys))
    assert_refused(response, http, tenant, status=403, reason=reason)


def test_clock_skew_of_up_to_two_minutes_is_accepted(
    http: Client, contoso_op: LocalEntra, alice: User
) -> None:
    response = oidc_sign_in(
        http, contoso_op, ALICE, claims={"exp": now() - 90, "nbf": now() + 90, "iat": now() + 90}
    )
    assert response.status_code == 302, response.content[:500]
    assert signed_in_user_id(http) == str(alice.pk)


def test_unknown_kid_fetches_the_keys_again_once_then_refuses(
    contoso_op: LocalEntra, op_keys: dict[str, SigningKey], alice: User, tenant: Tenant
) -> None:
    assert oidc_sign_in(tenant_http(tenant), contoso_op, ALICE).status_code == 302
    assert contoso_op.hits["discovery/v2.0/keys"] == 1
    http = tenant_http(tenant)
    response = oidc_sign_in(http, contoso_op, ALICE, signer=op_keys["attacker"])
    assert_refused(response, http, tenant, status=403, reason="does not publish (kid 'attacker-kid')")
    assert contoso_op.hits["discovery/v2.0/keys"] == 2
    # Another made-up kid within the minute: refused without asking the provider again.
    http = tenant_http(tenant)
    response = oidc_sign_in(http, contoso_op, ALICE, signer=op_keys["attacker"], header={"kid": "made-up"})
    assert_refused(response, http, tenant, status=403, reason="does not publish (kid 'made-up')")
    assert contoso_op.hits["discovery/v2.0/keys"] == 2


# ------------------------------------------------------------------------------- state and code


def test_replayed_callback_is_refused(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    callback = contoso_op.authorize(start(http), upn=ALICE)
    assert http.get(callback, secure=True).status_code == 302
    assert signed_in_user_id(http) == str(alice.pk)
    replay = http.get(callback, secure=True)
    assert replay.status_code == 400
    assert b"expired or was started in another browser" in replay.content
    assert refused_event(tenant).detail.startswith("No sign-in with this state")
    # In another browser the state was never known.
    other = tenant_http(tenant)
    assert_refused(
        other.get(callback, secure=True), other, tenant, status=400, reason="No sign-in with this state"
    )


def test_a_used_code_with_a_fresh_state_is_refused_by_the_token_endpoint(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    first = contoso_op.authorize(start(http), upn=ALICE)
    code = parse_qs(urlsplit(first).query)["code"][0]
    assert http.get(first, secure=True).status_code == 302
    http.logout()
    second_state = parse_qs(urlsplit(start(http)).query)["state"][0]
    replay = http.get(f"/oidc/callback/?{urlencode({'code': code, 'state': second_state})}", secure=True)
    assert_refused(replay, http, tenant, status=400, reason="invalid_grant")


def test_callback_without_state_or_code_is_refused(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    assert_refused(
        http.get("/oidc/callback/?code=abc", secure=True), http, tenant, status=400, reason="no state"
    )
    state = parse_qs(urlsplit(start(http)).query)["state"][0]
    assert_refused(
        http.get(f"/oidc/callback/?state={state}", secure=True),
        http,
        tenant,
        status=400,
        reason="neither a code",
    )


def test_a_console_test_state_naming_no_test_is_refused(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    response = http.get("/oidc/callback/?code=abc&state=sso-test.no-such-test", secure=True)
    assert_refused(response, http, tenant, status=400, reason="No sign-in with this state")


def test_sign_in_started_more_than_ten_minutes_ago_is_refused(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    callback = contoso_op.authorize(start(http), upn=ALICE)
    session = http.session
    pending = session["sso_oidc_pending"]
    for entry in pending.values():
        entry["at"] -= 601
    session["sso_oidc_pending"] = pending
    session.save()
    assert_refused(
        http.get(callback, secure=True), http, tenant, status=400, reason="No sign-in with this state"
    )


def test_error_from_entra_is_shown_and_logged(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    state = parse_qs(urlsplit(start(http)).query)["state"][0]
    query = urlencode(
        {
            "error": "access_denied",
            "error_description": "AADSTS50105: The signed in user is not assigned to a role.\nTrace ID: x",
            "state": state,
        }
    )
    response = http.get(f"/oidc/callback/?{query}", secure=True)
    event = assert_refused(response, http, tenant, status=403, reason="access_denied: AADSTS50105")
    assert "Trace ID" not in event.detail
    assert b"Microsoft did not sign you in (access_denied)" in response.content


def test_error_text_from_the_query_is_never_interpreted(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    state = parse_qs(urlsplit(start(http)).query)["state"][0]
    query = urlencode({"error": "{0}{brand}<script>", "error_description": "{0}", "state": state})
    response = http.get(f"/oidc/callback/?{query}", secure=True)
    assert_refused(response, http, tenant, status=403, reason="Entra answered 0brandscript")
    assert b"<script>" not in response.content


# ---------------------------------------------------------------------------------------- users


def test_unknown_user_sees_the_not_provisioned_page(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    users = User.objects.count()
    response = oidc_sign_in(http, contoso_op, "newcomer@contoso.com", claims={"email": ALICE})
    assert response.status_code == 403
    assert b"has not been provisioned yet" in response.content
    assert b"newcomer@contoso.com" in response.content
    assert signed_in_user_id(http) is None
    event = refused_event(tenant)
    assert event.detail == REASONS["not_provisioned"]
    assert event.resource_label == "newcomer@contoso.com"
    assert User.objects.count() == users
    assert not AccessAttempt.objects.exists()


def test_deactivated_user_is_refused(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant, system_actor: services.Actor
) -> None:
    services.user_deactivate(tenant=tenant, actor=system_actor, user=alice)
    response = oidc_sign_in(http, contoso_op, ALICE)
    event = assert_refused(response, http, tenant, status=403, reason=REASONS["inactive"])
    assert event.resource_id == str(alice.scim_id)
    assert b"Your account is deactivated" in response.content


def test_session_ends_when_scim_deactivates_the_user(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant, system_actor: services.Actor
) -> None:
    assert oidc_sign_in(http, contoso_op, ALICE).status_code == 302
    assert http.get("/account/", secure=True).status_code == 200
    services.user_deactivate(tenant=tenant, actor=system_actor, user=alice)
    assert http.get("/account/", secure=True).status_code == 302


# ---------------------------------------------------------------------------- provider trouble


def test_provider_down_gives_a_branded_502(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    contoso_op.down = True
    assert_refused(http.get("/oidc/login/", secure=True), http, tenant, status=502, reason="HTTP 503")


def test_discovery_naming_another_issuer_is_refused(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    contoso_op.discovery_issuer = f"https://login.microsoftonline.com/{FABRIKAM_TID}/v2.0"
    assert_refused(http.get("/oidc/login/", secure=True), http, tenant, status=502, reason="names the issuer")


def test_wrong_client_secret_gives_a_branded_502(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant, system_actor: services.Actor
) -> None:
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, oidc_client_secret="an-old-secret")
    response = oidc_sign_in(http, contoso_op, ALICE)
    event = assert_refused(response, http, tenant, status=502, reason="invalid_client")
    assert "an-old-secret" not in event.detail
    assert b"tell your administrator" in response.content


def test_loopback_issuer_is_refused_unless_local_idp_is_allowed(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant, settings: Any
) -> None:
    settings.SSO_ALLOW_LOCAL_IDP = False
    assert_refused(
        http.get("/oidc/login/", secure=True), http, tenant, status=502, reason="not on an allowed"
    )
    assert contoso_op.hits.total() == 0


def test_unexpected_error_is_a_branded_400_not_a_500(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(oidc, "verify_id_token", broken)
    response = oidc_sign_in(http, contoso_op, ALICE)
    assert_refused(response, http, tenant, status=400, reason="could not be processed")


# -------------------------------------------------------------------------------------- lockout


def test_refusals_are_never_counted_by_axes(
    contoso_op: LocalEntra, op_keys: dict[str, SigningKey], alice: User, manager: User, tenant: Tenant
) -> None:
    for _ in range(django_settings.AXES_FAILURE_LIMIT + 3):
        http = tenant_http(tenant)
        response = oidc_sign_in(http, contoso_op, ALICE, claims={"aud": "someone-else"})
        assert response.status_code == 403
        response = oidc_sign_in(http, contoso_op, "nobody@contoso.com")
        assert response.status_code == 403
    assert not AccessAttempt.objects.exists()
    http = tenant_http(tenant)
    assert oidc_sign_in(http, contoso_op, ALICE).status_code == 302
    assert signed_in_user_id(http) == str(alice.pk)
    password = tenant_http(tenant)
    assert password.submit("/login/", {"username": manager.username, "password": PASSWORD}).status_code == 302
