"""Single logout: SP-initiated from the account page and IdP-initiated by Entra."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from saml2 import BINDING_HTTP_REDIRECT

from directory.models import Tenant, User
from sso import services as sso_services
from tests.clients import Client
from tests.sso.conftest import ALICE
from tests.sso.flows import signed_in_user_id, sp_sign_in
from tests.sso.support import FakeEntra, SpUrls, tenant_http


def _relative(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def sign_out(http: Client, sp: SpUrls):
    """The account page's Sign out button, over https as a browser posts it (with its Referer)."""
    referer = sp.entity_id.replace("/saml2/metadata/", "/account/")
    return http.submit("/account/", {}, action="/saml2/logout/", secure=True, HTTP_REFERER=referer)


def test_sp_initiated_single_logout(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    sp_sign_in(http, contoso_entra, contoso_sp, ALICE)
    response = sign_out(http, contoso_sp)
    assert response.status_code == 302
    assert response["Location"].startswith(contoso_entra.slo_url + "?SAMLRequest=")
    assert signed_in_user_id(http) is None, "signed out here before Entra answers"
    logout_request = contoso_entra.logout_request(response["Location"])
    assert logout_request.message.name_id.text == ALICE
    assert logout_request.message.issuer.text == contoso_sp.entity_id
    assert logout_request.message.session_index, "the session index Entra gave is sent back"
    answer = contoso_entra.logout_response_location(logout_request, contoso_sp)
    assert answer.startswith(contoso_sp.ls)
    finished = http.get(_relative(answer), secure=True)
    assert finished.status_code == 302 and finished["Location"] == "/login/"
    assert http.get("/account/", secure=True).status_code == 302


def test_sign_out_without_an_idp_logout_url_is_local(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User, tenant: Tenant, system_actor
) -> None:
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, idp_slo_url="")
    sp_sign_in(http, contoso_entra, contoso_sp, ALICE)
    response = sign_out(http, contoso_sp)
    assert response["Location"] == "/login/"
    assert signed_in_user_id(http) is None


def test_password_sessions_sign_out_through_logout(manager: User, tenant: Tenant) -> None:
    from tests.conftest import PASSWORD

    http = tenant_http(tenant)
    http.submit("/login/", {"username": manager.username, "password": PASSWORD})
    assert 'action="/logout/"' in http.get("/account/").content.decode()


def test_idp_initiated_single_logout_ends_the_session_and_answers_entra(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    sp_sign_in(http, contoso_entra, contoso_sp, ALICE)
    location = contoso_entra.logout_request_location(sp=contoso_sp, upn=ALICE)
    response = http.get(_relative(location), secure=True)
    assert response.status_code == 302
    assert response["Location"].startswith(contoso_entra.slo_url + "?SAMLResponse=")
    assert signed_in_user_id(http) is None
    query = parse_qs(urlsplit(response["Location"]).query)
    answer = contoso_entra.server.parse_logout_request_response(
        query["SAMLResponse"][0], BINDING_HTTP_REDIRECT
    )
    assert answer.status_ok()


def test_a_logout_request_for_someone_else_leaves_the_session(
    http: Client, contoso_entra: FakeEntra, contoso_sp: SpUrls, alice: User
) -> None:
    sp_sign_in(http, contoso_entra, contoso_sp, ALICE)
    location = contoso_entra.logout_request_location(sp=contoso_sp, upn="bob@contoso.com")
    assert http.get(_relative(location), secure=True).status_code == 302
    assert signed_in_user_id(http) == str(alice.pk)


def test_the_other_tenants_idp_cannot_sign_anyone_out_here(
    http: Client,
    contoso_entra: FakeEntra,
    fabrikam_entra: FakeEntra,
    contoso_sp: SpUrls,
    alice: User,
) -> None:
    sp_sign_in(http, contoso_entra, contoso_sp, ALICE)
    location = fabrikam_entra.logout_request_location(sp=contoso_sp, upn=ALICE)
    response = http.get(_relative(location), secure=True)
    assert response.status_code == 400 and b"SecureLogin" in response.content
    assert signed_in_user_id(http) == str(alice.pk)


def test_garbage_at_the_logout_service_is_a_branded_400(http: Client, contoso_entra: FakeEntra) -> None:
    assert http.get("/saml2/ls/", secure=True).status_code == 400
    assert http.get("/saml2/ls/?SAMLRequest=bm90IHhtbA", secure=True).status_code == 400
