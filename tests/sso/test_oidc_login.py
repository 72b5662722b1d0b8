"""OpenID Connect sign-in that should work: the round trip against a local provider, the request
it sends (PKCE S256, state, nonce), caching of discovery and keys, key rollover, the sign-in page's
button and the landing page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from directory import services
from directory.models import Event, Tenant, User
from sso import services as sso_services
from sso.models import SsoSettings
from tests.clients import Client
from tests.conftest import PASSWORD
from tests.sso import oidc_provider
from tests.sso.conftest import ALICE, ALICE_OID
from tests.sso.oidc_provider import (
    CLIENT_SECRET,
    LocalEntra,
    SigningKey,
    oidc_sign_in,
    signed_in_user_id,
    start,
)
from tests.sso.support import tenant_http

# The local provider's fixtures, registered here by name (contoso_op, op_keys, ...).
contoso_op_fixture = oidc_provider.contoso_op_fixture
local_idp_fixture = oidc_provider.local_idp_fixture
op_keys_fixture = oidc_provider.op_keys_fixture
op_server_fixture = oidc_provider.op_server_fixture


def test_sign_in_lands_on_the_account_page_as_the_provisioned_user(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    response = oidc_sign_in(http, contoso_op, "Alice@Contoso.com", oid=ALICE_OID)
    assert response.status_code == 302, response.content[:500]
    assert response["Location"] == "/account/"
    assert signed_in_user_id(http) == str(alice.pk)
    assert http.session["sso_method"] == "oidc"
    page = http.get("/account/", secure=True)
    assert page.status_code == 200
    assert ALICE.encode() in page.content
    assert b"Microsoft (OpenID Connect)" in page.content
    event = Event.objects.get(tenant=tenant, action=sso_services.SIGN_IN)
    assert event.resource_id == str(alice.scim_id)
    assert event.changes["method"] == "oidc"
    assert event.result == Event.Result.SUCCESS


def test_authorization_request_carries_pkce_state_nonce_and_the_tenant_redirect_uri(
    http: Client, contoso_op: LocalEntra, alice: User
) -> None:
    location = start(http)
    params = contoso_op.authorization_request(location)
    assert params["redirect_uri"] == "https://contoso.testserver/oidc/callback/"
    assert params["response_mode"] == "query"
    assert params["scope"] == "openid profile"
    second = contoso_op.authorization_request(start(http))
    assert second["state"] != params["state"] and second["nonce"] != params["nonce"]
    assert second["code_challenge"] != params["code_challenge"]
    # The token request is the confidential client's, with the PKCE verifier (the provider checks it).
    response = http.get(contoso_op.authorize(location, upn=ALICE), secure=True)
    assert response.status_code == 302
    form = {k: v[0] for k, v in contoso_op.token_requests[-1].items()}
    assert form["grant_type"] == "authorization_code"
    assert form["client_id"] == contoso_op.client_id and form["client_secret"] == CLIENT_SECRET
    assert form["redirect_uri"] == params["redirect_uri"]
    assert 43 <= len(form["code_verifier"]) <= 128


def test_discovery_and_keys_are_cached_between_sign_ins(
    contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    for _ in range(3):
        http = tenant_http(tenant)
        assert oidc_sign_in(http, contoso_op, ALICE).status_code == 302
        assert signed_in_user_id(http) == str(alice.pk)
    assert contoso_op.hits["v2.0/.well-known/openid-configuration"] == 1
    assert contoso_op.hits["discovery/v2.0/keys"] == 1
    assert contoso_op.hits["oauth2/v2.0/token"] == 3


def test_key_rollover_fetches_the_keys_again_once(
    http: Client, contoso_op: LocalEntra, op_keys: dict[str, SigningKey], alice: User, tenant: Tenant
) -> None:
    assert oidc_sign_in(tenant_http(tenant), contoso_op, ALICE).status_code == 302
    assert contoso_op.hits["discovery/v2.0/keys"] == 1
    contoso_op.keys = [op_keys["contoso-next"], op_keys["contoso"]]
    response = oidc_sign_in(http, contoso_op, ALICE, signer=op_keys["contoso-next"])
    assert response.status_code == 302, response.content[:500]
    assert signed_in_user_id(http) == str(alice.pk)
    assert contoso_op.hits["discovery/v2.0/keys"] == 2


def test_managers_continue_to_a_local_next_and_never_to_another_host(
    contoso_op: LocalEntra, manager: User, alice: User, tenant: Tenant
) -> None:
    http = tenant_http(tenant)
    response = oidc_sign_in(http, contoso_op, manager.username, next_path="/admin/")
    assert response["Location"] == "/admin/"
    http = tenant_http(tenant)
    assert oidc_sign_in(http, contoso_op, manager.username, next_path="https://evil.example/")[
        "Location"
    ] == ("/account/")
    http = tenant_http(tenant)
    assert oidc_sign_in(http, contoso_op, manager.username, next_path="//evil.example/x")["Location"] == (
        "/account/"
    )
    # Members always land on their account page.
    http = tenant_http(tenant)
    assert oidc_sign_in(http, contoso_op, ALICE, next_path="/admin/")["Location"] == "/account/"


def test_object_id_matches_external_id_when_the_tenant_maps_it(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant, system_actor: services.Actor
) -> None:
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, match_object_id_to_external_id=True)
    # The UPN changed in Entra; the object id did not.
    response = oidc_sign_in(http, contoso_op, "alice.renamed@contoso.com", oid=ALICE_OID)
    assert response.status_code == 302, response.content[:500]
    assert signed_in_user_id(http) == str(alice.pk)


def test_the_upn_claim_is_preferred_to_preferred_username(
    http: Client, contoso_op: LocalEntra, alice: User
) -> None:
    response = oidc_sign_in(
        http, contoso_op, "alice.personal@example.org", claims={"upn": ALICE, "email": "someone@else.test"}
    )
    assert response.status_code == 302, response.content[:500]
    assert signed_in_user_id(http) == str(alice.pk)


def test_signed_in_user_going_to_login_again_goes_straight_to_the_landing_page(
    http: Client, contoso_op: LocalEntra, alice: User
) -> None:
    assert oidc_sign_in(http, contoso_op, ALICE).status_code == 302
    again = http.get("/oidc/login/", secure=True)
    assert again.status_code == 302 and again["Location"] == "/account/"


def test_sign_in_page_offers_microsoft_through_openid_connect_when_saml_is_off(
    http: Client, contoso_op: LocalEntra
) -> None:
    page = http.get("/login/", secure=True)
    assert page.status_code == 200
    assert b'action="/oidc/login/"' in page.content
    assert b"Sign in with Microsoft" in page.content


def test_password_sign_in_still_works_while_sso_is_optional(
    contoso_op: LocalEntra, manager: User, tenant: Tenant
) -> None:
    http = tenant_http(tenant)
    response = http.submit("/login/", {"username": manager.username, "password": PASSWORD})
    assert response.status_code == 302
    assert signed_in_user_id(http) == str(manager.pk)


def test_no_openid_connect_on_the_root_host_or_while_it_is_off(
    contoso_op: LocalEntra, tenant: Tenant, system_actor: services.Actor
) -> None:
    root = Client(HTTP_HOST="testserver")
    assert root.get("/oidc/login/", secure=True).status_code == 404
    assert root.get("/oidc/callback/?code=x&state=y", secure=True).status_code == 404
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, oidc_enabled=False)
    http = tenant_http(tenant)
    assert http.get("/oidc/login/", secure=True).status_code == 404
    assert http.get("/oidc/callback/?code=x&state=y", secure=True).status_code == 404


def test_the_client_secret_is_stored_encrypted_and_sent_only_to_the_token_endpoint(
    http: Client, contoso_op: LocalEntra, alice: User, tenant: Tenant
) -> None:
    sso = SsoSettings.objects.get(tenant=tenant)
    assert CLIENT_SECRET not in sso.oidc_client_secret_encrypted
    location = start(http)
    assert CLIENT_SECRET not in location
    assert "client_secret" not in parse_qs(urlsplit(location).query)
    assert not Event.objects.filter(tenant=tenant, detail__contains=CLIENT_SECRET).exists()


def test_required_sso_through_openid_connect_alone_refuses_passwords_but_not_break_glass(
    contoso_op: LocalEntra, manager: User, alice: User, tenant: Tenant, system_actor: services.Actor
) -> None:
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, enforce_sso=True)
    http = tenant_http(tenant)
    refused = http.submit("/login/", {"username": manager.username, "password": PASSWORD})
    assert refused.status_code == 200 and b"requires single sign-on" in refused.content
    assert signed_in_user_id(http) is None
    assert oidc_sign_in(http, contoso_op, ALICE).status_code == 302
    assert signed_in_user_id(http) == str(alice.pk)
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, break_glass=[manager])
    glass = tenant_http(tenant)
    assert glass.submit("/login/", {"username": manager.username, "password": PASSWORD}).status_code == 302
    assert signed_in_user_id(glass) == str(manager.pk)
