""" "Connect Entra" in a real browser: headless Debian Chromium, driven by Playwright, against a live
server. The browser follows Entra's Authorize link to the global authorization URL, types the
tenant on the go-to-domain page, signs in on the tenant's branded page as a manager, allows the
consent, and ends on the redirect URI with a code, which then exchanges for tokens. Screenshots of
each page are saved (copied to docs/screenshots/ when UPDATE_DOCS_SCREENSHOTS=1)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from directory import services
from directory.models import TenantHost, User
from oauth.models import Consent
from oauth.services import application_create
from tests.clients import Client
from tests.e2e.conftest import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PASSWORD = "Connect-entra-2026!"
STATE = "entra-browser-state"


def snap(page, name: str, *, docs: bool = True) -> None:  # type: ignore[no-untyped-def]
    save_screenshot(page, f"connect-{name}.png", docs=docs, full_page=True)


@pytest.fixture
def allow_loopback_redirects(settings):  # type: ignore[no-untyped-def]
    """The browser's redirect URI is a plain-http loopback URL on the live server (RFC 8252 §7.3);
    production allows https only."""
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"]}


def test_connect_entra_in_chromium(live_server, chromium, allow_loopback_redirects) -> None:  # type: ignore[no-untyped-def]
    port = urlsplit(live_server.url).port
    system = services.Actor.system("browser test")
    contoso = services.tenant_create(
        actor=system,
        slug="contoso",
        name="Contoso",
        email_domains=["contoso.com"],
        display_name="Contoso Ltd",
    )
    TenantHost.objects.filter(tenant=contoso).update(is_primary=False)
    TenantHost.objects.create(tenant=contoso, host="contoso.localhost", is_primary=True)
    services.tenant_update_branding(
        tenant=contoso,
        actor=system,
        display_name="Contoso Ltd",
        logo_url=f"http://contoso.localhost:{port}/static/oauth/example-logo.svg",
        primary_color="#0f766e",
    )
    fabrikam = services.tenant_create(
        actor=system, slug="fabrikam", name="Fabrikam", email_domains=["fabrikam.com"]
    )
    manager = services.user_create(
        tenant=contoso,
        actor=system,
        username="megan@contoso.com",
        fields={"display_name": "Megan Bowen"},
        role=User.Role.MANAGER,
        password=PASSWORD,
    )
    services.user_create(
        tenant=fabrikam, actor=system, username="megan@contoso.com", role=User.Role.MANAGER, password="other"
    )
    redirect_uri = f"http://127.0.0.1:{port}/callback"
    application, secret = application_create(
        tenant=None, actor=system, name="Microsoft Entra ID", redirect_uris=[redirect_uri]
    )
    authorize = "/oauth/authorize/?" + urlencode(
        {
            "response_type": "code",
            "client_id": application.client_id,
            "redirect_uri": redirect_uri,
            "state": STATE,
            "scope": "scim",
        }
    )

    page = chromium.new_context(viewport={"width": 1100, "height": 760}).new_page()

    page.goto(live_server.url + authorize)
    assert urlsplit(page.url).path == "/login/"
    assert page.get_by_role("heading", name="Go to your organization").is_visible()
    snap(page, "1-go-to-domain")

    page.fill("input[name=domain]", "megan@contoso.com")
    page.click("button[type=submit]")
    page.wait_for_url(f"http://contoso.localhost:{port}/login/**")
    assert page.get_by_role("heading", name="Sign in to Contoso Ltd").is_visible()
    assert page.locator("img.brand-logo").evaluate("img => img.naturalWidth") > 0
    snap(page, "2-sign-in")

    page.fill("input[name=username]", "megan@contoso.com")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "The username or password is not correct."
    page.fill("input[name=username]", "megan@contoso.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"http://contoso.localhost:{port}/oauth/authorize/**")
    assert page.get_by_role("heading", name="Allow Microsoft Entra ID to provision Contoso Ltd?").is_visible()
    snap(page, "3-consent")

    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(f"{redirect_uri}?**")
    landed = page.url
    snap(page, "4-redirect", docs=False)  # Entra's page in real life; here a 404 on the live server

    params = {k: v[0] for k, v in parse_qs(urlsplit(landed).query).items()}
    assert landed.startswith(redirect_uri + "?")
    assert params["state"] == STATE
    assert params["iss"] == f"http://contoso.localhost:{port}"
    response = Client(HTTP_HOST="localhost").post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "client_id": application.client_id,
            "client_secret": secret,
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["expires_in"] == 3600
    consent = Consent.objects.get()
    assert (consent.tenant, consent.approved_by) == (contoso, manager)
    assert not Consent.objects.filter(tenant=fabrikam).exists()
