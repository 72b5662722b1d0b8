"""Single sign-on in a real browser: headless Debian Chromium, driven by Playwright, against a live
server and a local stand-in for Entra (pysaml2's IdP `Server` on 127.0.0.1, tests/sso/saml_idp_server.py;
SSO_ALLOW_LOCAL_IDP on). A manager signs in to the console with a password, fetches the IdP's App
Federation Metadata URL on the Single sign-on page, switches SAML on and runs "Test sign-in";
then a provisioned user goes from the tenant's sign-in page through "Sign in with Microsoft" and
the IdP's auto-posted response back to /account/, signed in. Screenshots of the console page, the
test result and the account page are saved (copied to docs/screenshots/ when
UPDATE_DOCS_SCREENSHOTS=1)."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from directory import services
from directory.models import Event, TenantHost, User
from sso.models import SsoSettings
from sso.services import SIGN_IN
from tests.clients import Client
from tests.e2e.conftest import save_screenshot
from tests.sso.saml_idp_server import saml_idp_server
from tests.sso.support import SpUrls, make_key_pair

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PASSWORD = "Sso-console-2026!"
TID = "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"
ALLAN = "allan.deyoung@contoso.com"
ALLAN_OID = "0e6f4a1c-2d3b-4c5e-8f90-a1b2c3d4e5f6"
ROUND_TRIP_BUDGET_SECONDS = 10.0


def snap(page, name: str, *, docs: bool = True) -> None:  # type: ignore[no-untyped-def]
    save_screenshot(page, f"sso-{name}.png", docs=docs, full_page=True)


def test_sso_sign_in_in_chromium(live_server, chromium, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.SSO_ALLOW_LOCAL_IDP = True
    port = urlsplit(live_server.url).port
    base = f"http://contoso.localhost:{port}"
    system = services.Actor.system("browser test")
    contoso = services.tenant_create(
        actor=system,
        slug="contoso",
        name="Contoso",
        hosts=["contoso.localhost"],
        email_domains=["contoso.com"],
        display_name="Contoso Ltd",
    )
    # Entra is given the tenant's primary host: here the one the browser reaches.
    TenantHost.objects.filter(tenant=contoso).update(is_primary=False)
    TenantHost.objects.filter(tenant=contoso, host="contoso.localhost").update(is_primary=True)
    services.tenant_update_branding(
        tenant=contoso, actor=system, display_name="Contoso Ltd", logo_url="", primary_color="#0f766e"
    )
    fabrikam = services.tenant_create(
        actor=system, slug="fabrikam", name="Fabrikam", email_domains=["fabrikam.com"]
    )
    manager = services.user_create(
        tenant=contoso,
        actor=system,
        username="megan.bowen@contoso.com",
        fields={"given_name": "Megan", "family_name": "Bowen"},
        role=User.Role.MANAGER,
        password=PASSWORD,
    )
    allan = services.user_create(
        tenant=contoso,
        actor=system,
        username=ALLAN,
        fields={
            "given_name": "Allan",
            "family_name": "Deyoung",
            "external_id": ALLAN_OID,
            "title": "IT Admin",
            "department": "IT",
        },
        emails=[{"value": ALLAN, "type": "work", "primary": True}],
    )
    services.user_create(tenant=fabrikam, actor=system, username=ALLAN)  # a namesake elsewhere
    sp = SpUrls(f"{base}/saml2/metadata/", f"{base}/saml2/acs/", f"{base}/saml2/ls/")
    sp_metadata = Client(HTTP_HOST=f"contoso.localhost:{port}").get("/saml2/metadata/").content.decode()
    keys = make_key_pair(tmp_path, "contoso-entra")

    with saml_idp_server() as idp:
        entra = idp.trust(tid=TID, keys=keys, sp_metadata=sp_metadata, sp=sp)
        browser = chromium.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        page = browser.new_page()

        # The manager signs in to the console with a password and opens Single sign-on.
        page.goto(f"{base}/admin/login/?next=/admin/")
        page.fill("#id_username", manager.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"{base}/admin/")
        page.get_by_role("link", name="Single sign-on").click()
        page.wait_for_url(f"{base}/admin/sso/ssosettings/tenant/contoso/")
        assert page.locator("#sso-reply-url").input_value() == sp.acs

        # Entra's App Federation Metadata URL, fetched; SAML on.
        page.fill("#id_idp_metadata_url", entra.metadata_url)
        page.get_by_role("button", name="Fetch metadata").click()
        page.wait_for_url(f"{base}/admin/sso/ssosettings/tenant/contoso/")
        assert page.get_by_text(entra.entity_id).first.is_visible()
        page.check("#id_saml_enabled")
        page.click("input[type=submit][value=Save]")
        page.wait_for_url(f"{base}/admin/sso/ssosettings/tenant/contoso/")
        assert page.get_by_text("Single sign-on settings saved.").is_visible()
        snap(page, "console")

        # Test sign-in: through the IdP and back to the result, the manager still signed in.
        idp.upn, idp.object_id = ALLAN, ALLAN_OID
        page.get_by_role("button", name="Test SAML sign-in").click()
        page.wait_for_url(f"{base}/admin/sso/ssosettings/tenant/contoso/test/**")
        assert page.locator("[data-outcome=matched]").is_visible()
        assert page.get_by_text(ALLAN_OID).first.is_visible()
        snap(page, "test-sign-in")
        page.goto(f"{base}/admin/")
        assert urlsplit(page.url).path == "/admin/", "the console session survived the test"

        # Allan signs in with Microsoft in a browser of his own.
        user_page = chromium.new_context(viewport={"width": 1100, "height": 760}).new_page()
        user_page.goto(f"{base}/login/")
        button = user_page.get_by_role("button", name="Sign in with Microsoft")
        snap(user_page, "sign-in")
        started = time.perf_counter()
        button.click()
        user_page.wait_for_url(f"{base}/account/")
        round_trip = time.perf_counter() - started
        assert user_page.get_by_role("heading", name="My account").is_visible()
        assert user_page.get_by_text(ALLAN, exact=True).first.is_visible()
        assert user_page.get_by_text("Microsoft (SAML)").is_visible()
        snap(page=user_page, name="account")
        print(f"\nSAML sign-in round trip in Chromium: {round_trip * 1000:.0f} ms")
        assert round_trip < ROUND_TRIP_BUDGET_SECONDS

        # Someone Entra knows but SCIM has not provisioned yet gets a page that says so.
        idp.upn, idp.object_id = "new.hire@contoso.com", ""
        newcomer = chromium.new_context(viewport={"width": 1100, "height": 760}).new_page()
        newcomer.goto(f"{base}/login/")
        newcomer.get_by_role("button", name="Sign in with Microsoft").click()
        newcomer.wait_for_url(sp.acs)
        assert newcomer.get_by_text("new.hire@contoso.com").first.is_visible()
        snap(newcomer, "not-provisioned")

    sso_path = urlsplit(entra.sso_url).path
    assert idp.requests.count(urlsplit(entra.metadata_url).path) == 1
    assert sum(1 for r in idp.requests if urlsplit(r).path == sso_path) == 3
    assert not User.objects.filter(username__iexact="new.hire@contoso.com").exists()
    (event,) = Event.objects.filter(tenant=contoso, action=SIGN_IN)
    assert (event.resource_id, event.changes["method"]) == (str(allan.scim_id), "saml")
    assert Event.objects.filter(tenant=contoso, action="sso.test_sign_in", result="success").count() == 1
    assert not Event.objects.filter(tenant=fabrikam, action__startswith="sso.").exists()
    assert not SsoSettings.objects.filter(tenant=fabrikam).exists()
