"""The console's Single sign-on page: values for Entra, IdP metadata (upload and URL), settings and
enforcement through sso.services, and the test sign-in round trip. Fabrikam is set up next to
Contoso in every test: its page is 404 to Contoso's manager and its settings never change."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape

from directory.models import Event, Tenant, User
from sso import services as sso_services
from sso.models import SamlRequest, SsoSettings
from tests.clients import Client
from tests.conftest import PASSWORD, host_client
from tests.sso import oidc_provider
from tests.sso.conftest import ALICE, ALICE_OID, CONTOSO_TID, FABRIKAM_TID, sp_metadata
from tests.sso.oidc_provider import LocalEntra
from tests.sso.saml_idp_server import SamlIdpServer, saml_idp_server
from tests.sso.support import FakeEntra, KeyPair, SpUrls, encode, make_key_pair, redirect_xml, tenant_http

CONTOSO_PAGE = "/admin/sso/ssosettings/tenant/contoso/"
FABRIKAM_PAGE = "/admin/sso/ssosettings/tenant/fabrikam/"


def page_of(slug: str, action: str = "") -> str:
    return f"/admin/sso/ssosettings/tenant/{slug}/{action}"


def events_of(tenant: Tenant, action: str) -> list[Event]:
    return list(Event.objects.filter(tenant=tenant, action=action).order_by("id"))


def settings_of(tenant: Tenant) -> SsoSettings:
    return sso_services.sso_settings_for(tenant)


def settings_data(**overrides: object) -> dict[str, object]:
    """The settings form as a manager leaves it untouched (all off, NameID = UPN)."""
    return {"name_id_policy": "upn", **overrides}


@pytest.fixture
def operator_client(platform_tenant: Tenant) -> Client:
    user = User(
        tenant=platform_tenant, username="operator", role=User.Role.MANAGER, is_superuser=True, is_active=True
    )
    user.set_password(PASSWORD)
    user.save()
    client = Client(HTTP_HOST="testserver")
    client.force_login(user, backend="directory.backends.TenantModelBackend")
    return client


@pytest.fixture
def other_manager_client(other_manager: User, other_tenant: Tenant) -> Client:
    client = host_client(other_tenant)
    client.force_login(other_manager, backend="directory.backends.TenantModelBackend")
    return client


@pytest.fixture
def contoso_idp(tenant: Tenant, keys: dict[str, KeyPair]) -> FakeEntra:
    """Contoso's Entra, not yet trusted: the manager uploads or fetches its metadata."""
    return FakeEntra(tid=CONTOSO_TID, keys=keys["contoso"], sp_metadata=sp_metadata(tenant))


@pytest.fixture
def served_idp(settings, tenant: Tenant, keys: dict[str, KeyPair]) -> Iterator[SamlIdpServer]:  # type: ignore[no-untyped-def]
    settings.SSO_ALLOW_LOCAL_IDP = True
    with saml_idp_server() as idp:
        idp.trust(
            tid=CONTOSO_TID, keys=keys["contoso"], sp_metadata=sp_metadata(tenant), sp=SpUrls.of(tenant)
        )
        yield idp


# --------------------------------------------------------------------------------- page and scope


def test_page_shows_the_values_to_paste_into_entra_for_this_tenant(
    manager_client: Client, tenant: Tenant, other_tenant: Tenant, fabrikam_entra: FakeEntra
) -> None:
    landing = manager_client.get("/admin/sso/ssosettings/")
    assert landing.status_code == 302 and landing["Location"] == CONTOSO_PAGE
    response = manager_client.get(CONTOSO_PAGE)
    assert response.status_code == 200
    body = response.content.decode()
    for value in (
        "http://contoso.testserver/saml2/metadata/",
        "http://contoso.testserver/saml2/acs/",
        "http://contoso.testserver/saml2/login/",
        "http://contoso.testserver/saml2/ls/",
        "http://contoso.testserver/oidc/callback/",
    ):
        assert f'value="{value}"' in body
    assert body.count('data-copy-from="sso-') == 5
    assert "sso/console.js" in body
    assert "Identifier (Entity ID)" in body and "Reply URL (Assertion Consumer Service URL)" in body
    assert "fabrikam" not in body.lower()
    assert fabrikam_entra.entity_id not in body


def test_the_console_navigation_links_to_the_page(manager_client: Client) -> None:
    body = manager_client.get(reverse("admin:index")).content.decode()
    assert 'href="/admin/sso/ssosettings/">Single sign-on</a>' in body


def test_another_tenants_page_is_404_for_a_manager_and_nothing_changes(
    manager_client: Client,
    tenant: Tenant,
    other_tenant: Tenant,
    fabrikam_entra: FakeEntra,
    other_manager: User,
) -> None:
    before = SsoSettings.objects.get(tenant=other_tenant)
    for slug in ("fabrikam", "no-such-tenant", "platform"):
        assert manager_client.get(page_of(slug)).status_code == 404
        assert manager_client.get(page_of(slug, "test/anything/")).status_code == 404
    forged = {
        "": settings_data(enforce_sso="on", saml_enabled="on", break_glass=[str(other_manager.pk)]),
        "refresh/": {"idp_metadata_url": "https://login.microsoftonline.com/x/federationmetadata.xml"},
        "metadata/": {"metadata_file": SimpleUploadedFile("m.xml", b"<x/>")},
        "test/": {"protocol": "saml"},
    }
    for action, data in forged.items():
        response = manager_client.csrf_post(page_of("fabrikam", action), data, form_path=CONTOSO_PAGE)
        assert response.status_code == 404, action
    after = SsoSettings.objects.get(tenant=other_tenant)
    assert (after.updated, after.enforce_sso, after.idp_entity_id) == (
        before.updated,
        False,
        before.idp_entity_id,
    )
    assert not SamlRequest.objects.filter(tenant=other_tenant).exists()
    assert not Event.objects.filter(tenant=other_tenant, actor_type=Event.ActorType.MANAGER).exists()


def test_a_manager_of_another_tenant_is_not_let_in_on_this_host(
    other_manager: User, tenant: Tenant, other_tenant: Tenant
) -> None:
    client = host_client(tenant)
    client.force_login(other_manager, backend="directory.backends.TenantModelBackend")
    response = client.get(CONTOSO_PAGE)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_operators_list_every_tenant_and_open_each_from_the_root_host(
    operator_client: Client, tenant: Tenant, other_tenant: Tenant, contoso_entra: FakeEntra
) -> None:
    listing = operator_client.get("/admin/sso/ssosettings/")
    assert listing.status_code == 200
    body = listing.content.decode()
    assert f'href="{CONTOSO_PAGE}"' in body and f'href="{FABRIKAM_PAGE}"' in body
    contoso = operator_client.get(CONTOSO_PAGE).content.decode()
    assert contoso_entra.entity_id in contoso
    assert 'value="http://contoso.testserver/saml2/acs/"' in contoso
    fabrikam = operator_client.get(FABRIKAM_PAGE).content.decode()
    assert 'value="http://fabrikam.testserver/saml2/acs/"' in fabrikam
    assert contoso_entra.entity_id not in fabrikam
    assert operator_client.get(page_of("platform")).status_code == 404


# ------------------------------------------------------------------------------------ IdP metadata


def test_uploading_metadata_trusts_the_idp_and_shows_its_certificate(
    manager_client: Client,
    tenant: Tenant,
    other_tenant: Tenant,
    contoso_idp: FakeEntra,
    fabrikam_entra: FakeEntra,
) -> None:
    upload = SimpleUploadedFile("Contoso.xml", contoso_idp.metadata_xml().encode(), "text/xml")
    response = manager_client.submit(
        CONTOSO_PAGE, {"metadata_file": upload}, action=page_of("contoso", "metadata/")
    )
    assert response.status_code == 302, response.content[:2000]
    sso = settings_of(tenant)
    assert (sso.idp_entity_id, sso.idp_sso_url) == (contoso_idp.entity_id, contoso_idp.sso_url)
    (event,) = events_of(tenant, "sso.saml_metadata_set")
    assert event.actor_label == "manager@contoso.com"
    page = manager_client.get(CONTOSO_PAGE).content.decode()
    fingerprint = sso.idp_certificates[0]["sha256"]
    assert contoso_idp.entity_id in page and contoso_idp.sso_url in page
    assert fingerprint[:16] in page and sso.idp_certificates[0]["not_after"][:10] in page
    assert '<span class="sl-badge sl-badge-ok">valid</span>' in page
    assert settings_of(other_tenant).idp_entity_id == fabrikam_entra.entity_id


def test_a_file_that_is_not_metadata_is_a_form_error(manager_client: Client, tenant: Tenant) -> None:
    for content, message in (
        (b"<html>not metadata</html>", "is not SAML metadata of an identity provider"),
        (b"\xff\xfe", "not UTF-8"),
        (b"x" * (1024 * 1024 + 1), "larger than 1 MiB"),
    ):
        upload = SimpleUploadedFile("bad.xml", content, "text/xml")
        response = manager_client.submit(
            CONTOSO_PAGE, {"metadata_file": upload}, action=page_of("contoso", "metadata/")
        )
        assert response.status_code == 200
        assert message in response.content.decode()
    assert settings_of(tenant).idp_entity_id == ""
    assert not events_of(tenant, "sso.saml_metadata_set")


def test_a_certificate_expiring_within_30_days_is_warned_about(
    manager_client: Client,
    tenant: Tenant,
    system_actor,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    soon = make_key_pair(tmp_path, "soon", days=10)
    entra = FakeEntra(tid=CONTOSO_TID, keys=soon, sp_metadata=sp_metadata(tenant))
    sso_services.saml_metadata_set(tenant=tenant, actor=system_actor, xml=entra.metadata_xml())
    body = manager_client.get(CONTOSO_PAGE).content.decode()
    assert "sl-health-warning" in body
    assert "expires in 9 days" in body or "expires in 10 days" in body
    assert "Add a new certificate in Entra" in body


def test_refresh_now_fetches_the_app_federation_metadata_url(
    manager_client: Client, tenant: Tenant, other_tenant: Tenant, served_idp: SamlIdpServer
) -> None:
    url = served_idp.entra.metadata_url  # type: ignore[union-attr]
    response = manager_client.submit(
        CONTOSO_PAGE, {"idp_metadata_url": url}, action=page_of("contoso", "refresh/")
    )
    assert response.status_code == 302, response.content[:2000]
    sso = settings_of(tenant)
    assert (sso.idp_metadata_url, sso.idp_entity_id) == (url, served_idp.entra.entity_id)  # type: ignore[union-attr]
    first_fetch = sso.idp_metadata_fetched_at
    page = manager_client.get(CONTOSO_PAGE).content.decode()
    assert 'value="Refresh now"' in page and f'value="{url}"' in page
    again = manager_client.submit(
        CONTOSO_PAGE, {"idp_metadata_url": url}, action=page_of("contoso", "refresh/")
    )
    assert again.status_code == 302
    assert settings_of(tenant).idp_metadata_fetched_at > first_fetch
    assert len(events_of(tenant, "sso.saml_metadata_fetch")) == 2
    assert served_idp.requests.count(urlsplit(url).path) == 2
    assert not events_of(other_tenant, "sso.saml_metadata_fetch")


def test_a_metadata_url_off_microsofts_hosts_is_refused_on_the_form(
    manager_client: Client, tenant: Tenant
) -> None:
    for url in ("https://evil.example/metadata.xml", "http://127.0.0.1:9/metadata.xml"):
        response = manager_client.submit(
            CONTOSO_PAGE, {"idp_metadata_url": url}, action=page_of("contoso", "refresh/")
        )
        assert response.status_code == 200
        assert "must be https:// on a Microsoft login host" in response.content.decode()
    assert settings_of(tenant).idp_metadata_url == ""
    failures = events_of(tenant, "sso.saml_metadata_fetch")
    assert [e.result for e in failures] == [Event.Result.FAILURE] * 2


# -------------------------------------------------------------------------------------- settings


def test_saving_turns_saml_on_and_requires_sso_with_break_glass_managers(
    manager_client: Client,
    manager: User,
    tenant: Tenant,
    other_tenant: Tenant,
    other_manager: User,
    contoso_idp: FakeEntra,
    system_actor,  # type: ignore[no-untyped-def]
) -> None:
    sso_services.saml_metadata_set(tenant=tenant, actor=system_actor, xml=contoso_idp.metadata_xml())
    page = manager_client.get(CONTOSO_PAGE).content.decode()
    assert f'value="{manager.pk}"' in page and f'value="{other_manager.pk}"' not in page
    data = settings_data(
        saml_enabled="on",
        name_id_policy="objectid",
        allow_idp_initiated="on",
        enforce_sso="on",
        break_glass=[str(manager.pk)],
    )
    response = manager_client.submit(CONTOSO_PAGE, data)
    assert response.status_code == 302, response.content[:3000]
    sso = settings_of(tenant)
    assert (sso.saml_enabled, sso.name_id_policy, sso.allow_idp_initiated, sso.enforce_sso) == (
        True,
        "objectid",
        True,
        True,
    )
    assert list(sso.break_glass.all()) == [manager]
    (event,) = events_of(tenant, "sso.settings_update")
    assert event.changes["break_glass"] == [[], ["manager@contoso.com"]]
    assert event.changes["enforce_sso"] == [False, True]
    body = manager_client.get(CONTOSO_PAGE).content.decode()
    assert "break-glass managers only" in body
    unchanged = manager_client.submit(CONTOSO_PAGE, data)
    assert unchanged.status_code == 302
    assert len(events_of(tenant, "sso.settings_update")) == 1
    assert not SsoSettings.objects.filter(tenant=other_tenant).exists()


def test_another_tenants_manager_cannot_be_chosen_as_break_glass(
    manager_client: Client, tenant: Tenant, other_manager: User, contoso_entra: FakeEntra
) -> None:
    data = settings_data(saml_enabled="on", enforce_sso="on", break_glass=[str(other_manager.pk)])
    response = manager_client.submit(CONTOSO_PAGE, data)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not settings_of(tenant).enforce_sso


def test_settings_that_cannot_work_are_form_errors_not_500(manager_client: Client, tenant: Tenant) -> None:
    cases = (
        (settings_data(saml_enabled="on"), sso_services.SAML_NEEDS_IDP),
        (settings_data(enforce_sso="on"), sso_services.ENFORCE_NEEDS_SSO),
        (settings_data(oidc_enabled="on", oidc_tenant_id=CONTOSO_TID), sso_services.OIDC_NEEDS_CLIENT),
        (
            settings_data(oidc_issuer="https://evil.example/v2.0"),
            "must be https:// on a Microsoft login host",
        ),
    )
    for data, message in cases:
        response = manager_client.submit(CONTOSO_PAGE, data)
        assert response.status_code == 200, data
        body = response.content.decode()
        assert escape(message) in body, (data, message)
        assert "errornote" in body or "errorlist" in body
    assert not events_of(tenant, "sso.settings_update")


def test_the_oidc_client_secret_is_write_only(
    manager_client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    secret = "Qx8~entra-client-secret-value"
    data = settings_data(
        oidc_enabled="on",
        oidc_tenant_id=CONTOSO_TID,
        oidc_client_id="00000000-0000-4000-8000-00000000c11d",
        oidc_client_secret=secret,
    )
    assert manager_client.submit(CONTOSO_PAGE, data).status_code == 302
    sso = settings_of(tenant)
    assert (
        sso.oidc_enabled
        and sso.oidc_client_secret_encrypted
        and secret not in sso.oidc_client_secret_encrypted
    )
    body = manager_client.get(CONTOSO_PAGE).content.decode()
    assert secret not in body
    assert '<span class="sl-badge sl-badge-ok" data-secret-state>set</span>' in body
    (event,) = events_of(tenant, "sso.settings_update")
    assert secret not in str(event.changes) and event.changes["oidc_client_secret"] == ["(set)", "(set)"]
    # Saving without typing a secret keeps it.
    kept = {k: v for k, v in data.items() if k != "oidc_client_secret"}
    assert (
        manager_client.submit(CONTOSO_PAGE, {**kept, "oidc_client_id": "another-client"}).status_code == 302
    )
    assert settings_of(tenant).oidc_client_secret_encrypted == sso.oidc_client_secret_encrypted
    # Removing it while OpenID Connect is on cannot work; after switching it off it can.
    refused = manager_client.submit(CONTOSO_PAGE, {**kept, "oidc_client_secret_clear": "on"})
    assert refused.status_code == 200 and sso_services.OIDC_NEEDS_CLIENT in refused.content.decode()
    off = {k: v for k, v in kept.items() if k != "oidc_enabled"}
    assert manager_client.submit(CONTOSO_PAGE, {**off, "oidc_client_secret_clear": "on"}).status_code == 302
    assert settings_of(tenant).oidc_client_secret_encrypted == ""
    assert not SsoSettings.objects.filter(tenant=other_tenant).exists()


# -------------------------------------------------------------------------------- test sign-in


def start_test(client: Client, page: str, **extra: object) -> str:
    response = client.submit(page, {"protocol": "saml", "force_authn": "on"}, action=f"{page}test/", **extra)
    assert response.status_code == 302, response.content[:2000]
    return response["Location"]


def answer(tenant: Tenant, xml: str) -> object:
    """Entra's cross-site POST to the ACS: a browser sends no session cookie with it."""
    return tenant_http(tenant).post("/saml2/acs/", {"SAMLResponse": encode(xml)}, secure=True)


def test_test_sign_in_shows_the_claims_and_the_matched_user_without_signing_in(
    manager_client: Client,
    manager: User,
    tenant: Tenant,
    alice: User,
    contoso_entra: FakeEntra,
    contoso_sp: SpUrls,
    fabrikam_entra: FakeEntra,
    frank: User,
) -> None:
    location = start_test(manager_client, CONTOSO_PAGE)
    request_xml = redirect_xml(location)
    assert 'ForceAuthn="true"' in request_xml
    assert 'AssertionConsumerServiceURL="http://contoso.testserver/saml2/acs/"' in request_xml
    request_id = contoso_entra.authn_request_id(location)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, object_id=ALICE_OID, in_response_to=request_id)
    answered = answer(tenant, xml)
    assert answered.status_code == 303  # type: ignore[attr-defined]
    result_url = answered["Location"]  # type: ignore[index]
    assert result_url.startswith(f"http://contoso.testserver{CONTOSO_PAGE}test/")
    result = manager_client.get(urlsplit(result_url).path)
    assert result.status_code == 200
    assert "no-store" in result["Cache-Control"]
    body = result.content.decode()
    assert 'data-outcome="matched"' in body
    for shown in (
        ALICE,
        ALICE_OID,
        contoso_entra.entity_id,
        contoso_sp.entity_id,
        request_id,
        "objectidentifier",
    ):
        assert shown in body, shown
    assert reverse("admin:directory_user_change", args=[alice.pk]) in body
    # Nobody signed in: the manager's console session is the manager's, the request is spent.
    assert manager_client.session["_auth_user_id"] == str(manager.pk)
    assert not SamlRequest.objects.filter(request_id=request_id).exists()
    assert not events_of(tenant, sso_services.SIGN_IN)
    (event,) = events_of(tenant, "sso.test_sign_in")
    assert (event.result, event.actor_label, event.changes["matched_user"]) == (
        "success",
        manager.username,
        ALICE,
    )
    # The same response again is a replay, even for a test.
    assert answer(tenant, xml).status_code == 403  # type: ignore[attr-defined]


def test_a_test_answer_for_someone_not_provisioned_says_so(
    manager_client: Client, tenant: Tenant, contoso_entra: FakeEntra, contoso_sp: SpUrls, frank: User
) -> None:
    request_id = contoso_entra.authn_request_id(start_test(manager_client, CONTOSO_PAGE))
    xml = contoso_entra.response_xml(sp=contoso_sp, upn="frank@fabrikam.com", in_response_to=request_id)
    result_url = answer(tenant, xml)["Location"]  # type: ignore[index]
    body = manager_client.get(urlsplit(result_url).path).content.decode()
    assert 'data-outcome="unmatched"' in body
    assert "No user with this identity has been provisioned in this tenant." in body
    assert reverse("admin:directory_user_change", args=[frank.pk]) not in body


def test_a_refused_test_answer_shows_the_reason_to_the_tester(
    manager_client: Client,
    tenant: Tenant,
    alice: User,
    keys: dict[str, KeyPair],
    contoso_entra: FakeEntra,
    contoso_sp: SpUrls,
) -> None:
    request_id = contoso_entra.authn_request_id(start_test(manager_client, CONTOSO_PAGE))
    forger = FakeEntra(
        tid=CONTOSO_TID,
        keys=keys["contoso"],
        sp_metadata=contoso_entra.sp_metadata,
        sign_keys=keys["attacker"],
    )
    xml = forger.response_xml(sp=contoso_sp, upn=ALICE, in_response_to=request_id)
    answered = answer(tenant, xml)
    assert answered.status_code == 303  # type: ignore[attr-defined]
    body = manager_client.get(urlsplit(answered["Location"]).path).content.decode()  # type: ignore[index]
    assert 'data-outcome="refused"' in body
    assert "The answer was refused:" in body and ALICE not in body
    (event,) = events_of(tenant, "sso.test_sign_in")
    assert event.result == "failure"
    assert not events_of(tenant, sso_services.SIGN_IN) and not events_of(tenant, sso_services.SIGN_IN_REFUSED)
    assert manager_client.session["_auth_user_id"] != str(alice.pk)


def test_a_test_result_is_shown_only_to_the_console_session_that_started_it(
    manager_client: Client,
    manager: User,
    operator_client: Client,
    other_manager_client: Client,
    tenant: Tenant,
    alice: User,
    contoso_entra: FakeEntra,
    contoso_sp: SpUrls,
    fabrikam_entra: FakeEntra,
) -> None:
    request_id = contoso_entra.authn_request_id(start_test(manager_client, CONTOSO_PAGE))
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to=request_id)
    path = urlsplit(answer(tenant, xml)["Location"]).path  # type: ignore[index]
    key = path.rstrip("/").rsplit("/", 1)[1]
    assert manager_client.get(path).status_code == 200
    second_session = host_client(tenant)
    second_session.force_login(manager, backend="directory.backends.TenantModelBackend")
    assert second_session.get(path).status_code == 404
    assert operator_client.get(path).status_code == 404
    assert other_manager_client.get(page_of("fabrikam", f"test/{key}/")).status_code == 404
    assert manager_client.get(page_of("contoso", "test/not-a-key/")).status_code == 404


def test_an_operator_tests_a_tenants_sign_in_from_the_root_host(
    operator_client: Client,
    tenant: Tenant,
    other_tenant: Tenant,
    alice: User,
    contoso_entra: FakeEntra,
    contoso_sp: SpUrls,
) -> None:
    location = start_test(operator_client, CONTOSO_PAGE)
    assert 'Destination="' + contoso_entra.sso_url in redirect_xml(location)
    request_id = contoso_entra.authn_request_id(location)
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to=request_id)
    result_url = answer(tenant, xml)["Location"]  # type: ignore[index]
    assert result_url.startswith(f"http://testserver{CONTOSO_PAGE}test/")
    body = operator_client.get(urlsplit(result_url).path).content.decode()
    assert 'data-outcome="matched"' in body and ALICE in body
    (event,) = events_of(tenant, "sso.test_sign_in")
    assert event.actor_label == "operator"
    assert not events_of(other_tenant, "sso.test_sign_in")


def test_test_sign_in_needs_saml_on(
    manager_client: Client, tenant: Tenant, contoso_idp: FakeEntra, system_actor
) -> None:  # type: ignore[no-untyped-def]
    sso_services.saml_metadata_set(tenant=tenant, actor=system_actor, xml=contoso_idp.metadata_xml())
    page = manager_client.get(CONTOSO_PAGE).content.decode()
    assert "Switch SAML or OpenID Connect sign-in on to test it." in page
    response = manager_client.csrf_post(
        page_of("contoso", "test/"), {"protocol": "saml"}, form_path=CONTOSO_PAGE
    )
    assert response.status_code == 200
    assert "Switch SAML sign-in on (and save) before testing it." in response.content.decode()
    assert not SamlRequest.objects.exists()


def test_a_test_request_cannot_complete_a_sign_in(
    manager_client: Client, tenant: Tenant, alice: User, contoso_entra: FakeEntra, contoso_sp: SpUrls
) -> None:
    """Even answered inside the browser session that started it, /saml2/acs/complete/ finds no
    sign-in: the test's request id was never one of that session's sign-ins."""
    request_id = contoso_entra.authn_request_id(start_test(manager_client, CONTOSO_PAGE))
    xml = contoso_entra.response_xml(sp=contoso_sp, upn=ALICE, in_response_to=request_id)
    answered = manager_client.post("/saml2/acs/", {"SAMLResponse": encode(xml)}, secure=True)
    assert answered.status_code == 303
    assert "/admin/sso/" in answered["Location"]
    completed = manager_client.get("/saml2/acs/complete/", secure=True)
    assert completed.status_code == 403
    assert manager_client.session.get("_auth_user_id") != str(alice.pk)


def test_the_test_form_posts_with_csrf_and_only_post(
    manager_client: Client, contoso_entra: FakeEntra
) -> None:
    assert manager_client.get(page_of("contoso", "test/")).status_code == 405
    with manager_client.allow_csrf_refusal():
        refused = manager_client.post(page_of("contoso", "test/"), {"protocol": "saml"})
    assert refused.status_code == 403
    assert not SamlRequest.objects.exists()


# ------------------------------------------------------------------- test sign-in, OpenID Connect

contoso_op_fixture = oidc_provider.contoso_op_fixture
local_idp_fixture = oidc_provider.local_idp_fixture
op_keys_fixture = oidc_provider.op_keys_fixture
op_server_fixture = oidc_provider.op_server_fixture


def test_oidc_test_sign_in_shows_the_id_token_claims_without_signing_in(
    manager_client: Client, manager: User, tenant: Tenant, alice: User, contoso_op: LocalEntra
) -> None:
    location = manager_client.submit(
        CONTOSO_PAGE, {"protocol": "oidc", "force_authn": "on"}, action=page_of("contoso", "test/")
    )["Location"]
    params = contoso_op.authorization_request(location)
    assert params["state"].startswith("sso-test.") and params["prompt"] == "login"
    callback = contoso_op.authorize(location, upn=ALICE, oid=ALICE_OID)
    answered = manager_client.get(callback)
    assert answered.status_code == 303
    body = manager_client.get(urlsplit(answered["Location"]).path).content.decode()
    assert 'data-outcome="matched"' in body
    for shown in (contoso_op.issuer, contoso_op.client_id, ALICE, ALICE_OID, "preferred_username", "tid"):
        assert shown in body, shown
    assert params["nonce"] not in body
    assert "ID token claims" in body
    assert manager_client.session["_auth_user_id"] == str(manager.pk)
    assert not events_of(tenant, sso_services.SIGN_IN)
    assert events_of(tenant, "sso.test_sign_in")[0].changes["method"] == "oidc"
    # The callback is used once: the same state again is an unknown sign-in.
    assert manager_client.get(callback).status_code == 400


def test_a_refused_oidc_test_answer_shows_the_reason(
    manager_client: Client, tenant: Tenant, alice: User, contoso_op: LocalEntra
) -> None:
    location = manager_client.submit(CONTOSO_PAGE, {"protocol": "oidc"}, action=page_of("contoso", "test/"))[
        "Location"
    ]
    callback = contoso_op.authorize(location, upn=ALICE, claims={"tid": FABRIKAM_TID})
    answered = manager_client.get(callback)
    body = manager_client.get(urlsplit(answered["Location"]).path).content.decode()
    assert 'data-outcome="refused"' in body and "is not this tenant" in body
    assert events_of(tenant, "sso.test_sign_in")[0].result == "failure"
    assert not events_of(tenant, sso_services.SIGN_IN)


def test_a_test_that_cannot_start_is_an_error_on_the_page_not_a_500(
    manager_client: Client, contoso_entra: FakeEntra, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("xmlsec1 vanished")

    monkeypatch.setattr("sso.signin_test._saml_begin", broken)
    response = manager_client.submit(CONTOSO_PAGE, {"protocol": "saml"}, action=page_of("contoso", "test/"))
    assert response.status_code == 200
    assert "The test sign-in could not be started; the server log says why." in response.content.decode()
