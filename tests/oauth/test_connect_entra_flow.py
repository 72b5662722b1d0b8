"""The whole "Connect Entra" flow with Django's test client, one HTTP step at a time, as Entra and
the Entra admin's browser perform it: authorize → go-to-domain → tenant sign-in → consent → code →
token → SCIM Test Connection → refresh → the old refresh token refused."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from directory import services
from directory.models import Event, Tenant, User
from oauth.models import Consent
from tests.clients import Client
from tests.conftest import PASSWORD
from tests.oauth.support import (
    ENTRA_REDIRECT,
    STATE,
    OAuthClient,
    authorize_params,
    authorize_path,
    basic,
    hidden_inputs,
    query,
    root_client,
)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def test_connect_entra_step_by_step(
    entra: OAuthClient, tenant: Tenant, other_tenant: Tenant, manager: User, other_manager: User
) -> None:
    browser_root = root_client(enforce_csrf_checks=True)

    # 1. Entra sends the admin's browser to the global Authorization URL.
    response = browser_root.get(authorize_path(entra))
    assert response.status_code == 302
    go_to_domain = response["Location"]
    assert go_to_domain.startswith("/login/?next=")

    # 2. The go-to-domain page.
    page = browser_root.get(go_to_domain)
    assert page.status_code == 200
    assert b'name="domain"' in page.content
    assert page["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    fields = hidden_inputs(page.content.decode())

    # 3. The admin types the tenant's domain and presses Go.
    response = browser_root.post("/login/", {**fields, "domain": "contoso"})
    assert response.status_code == 302
    to_tenant = urlsplit(response["Location"])
    assert (to_tenant.scheme, to_tenant.netloc, to_tenant.path) == (
        "http",
        "contoso.testserver",
        "/oauth/authorize/",
    )
    assert query(response["Location"]) == authorize_params(entra)

    # 4. The tenant's authorization page sends an anonymous browser to the tenant's sign-in.
    browser = Client(HTTP_HOST=to_tenant.netloc, enforce_csrf_checks=True)
    authorize_here = f"{to_tenant.path}?{to_tenant.query}"
    response = browser.get(authorize_here)
    assert response.status_code == 302
    sign_in = response["Location"]
    assert sign_in.startswith("/login/?next=")

    # 5. Branded sign-in.
    page = browser.get(sign_in)
    assert page.status_code == 200
    assert b"Sign in to Contoso" in page.content
    assert b'name="username"' in page.content and b'name="password"' in page.content
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    session_before = browser.cookies["sessionid"].value if "sessionid" in browser.cookies else None
    response = browser.post(
        "/login/",
        {
            "csrfmiddlewaretoken": csrf_token(page.content.decode()),
            "username": manager.username,
            "password": PASSWORD,
            "next": hidden_inputs(page.content.decode())["next"],
        },
    )
    assert response.status_code == 302
    assert response["Location"] == authorize_here
    assert browser.cookies["sessionid"].value != session_before

    # 6. Consent, branded, naming the application, the tenant and the scope.
    page = browser.get(authorize_here)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Microsoft Entra ID" in html and "Contoso" in html
    assert "Provision users and groups over SCIM 2.0" in html
    assert page["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    response = browser.post("/oauth/authorize/", {**hidden_inputs(html), "allow": "Authorize"})

    # 7. Entra receives the code with its state and our issuer.
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(ENTRA_REDIRECT + "?")
    params = query(location)
    assert params["state"] == STATE
    assert params["iss"] == "http://contoso.testserver"
    code = params["code"]

    # 8. Entra exchanges the code at the fixed Token URL on the root host (client_secret_basic).
    entra_backend = root_client()
    response = entra_backend.post(
        "/oauth/token/",
        {"grant_type": "authorization_code", "code": code, "redirect_uri": ENTRA_REDIRECT},
        HTTP_AUTHORIZATION=basic(entra.client_id, entra.secret),
    )
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert 0 < tokens["expires_in"] <= 3600
    assert tokens["scope"] == "scim"
    access_token, refresh_token = tokens["access_token"], tokens["refresh_token"]

    # The tokens act for Contoso's service principal, not for the manager who approved them.
    service_principal = User.objects.get(tenant=tenant, role=User.Role.SERVICE)
    stored = get_access_token_model().objects.get()
    assert stored.user == service_principal
    assert Consent.objects.get().approved_by == manager
    assert Event.objects.filter(tenant=tenant, action="credential.authorize", actor_user=manager).count() == 1
    assert not Event.objects.filter(tenant=other_tenant, action__startswith="credential.").exists()

    # 9. Test Connection: a random userName, expected 200 with an empty ListResponse (entra-scim.md §2.2).
    scim = Client(HTTP_HOST="contoso.testserver")
    response = scim.get(
        "/scim/v2/Users",
        {"filter": f'userName eq "{uuid.uuid4()}"'},
        HTTP_AUTHORIZATION=f"Bearer {access_token}",
    )
    assert response.status_code == 200, response.content
    assert response.json()["totalResults"] == 0
    assert response.json()["Resources"] == []
    # The same token is nothing on the other tenant's host.
    response = Client(HTTP_HOST="fabrikam.testserver").get(
        "/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {access_token}"
    )
    assert response.status_code == 401

    # 10. The approving manager leaves (deprovisioned through SCIM's service); provisioning goes on.
    services.user_delete(tenant=tenant, actor=services.Actor.system("scim"), user=manager)

    # 11. Refresh: a new pair.
    response = entra_backend.post(
        "/oauth/token/",
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        HTTP_AUTHORIZATION=basic(entra.client_id, entra.secret),
    )
    assert response.status_code == 200, response.content
    renewed = response.json()
    assert renewed["refresh_token"] != refresh_token
    assert renewed["access_token"] != access_token
    assert get_refresh_token_model().objects.get(revoked__isnull=True).user == service_principal

    # 12. The old refresh token is refused, and the replay revokes the whole family.
    response = entra_backend.post(
        "/oauth/token/",
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        HTTP_AUTHORIZATION=basic(entra.client_id, entra.secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert not get_access_token_model().objects.exists()
    assert Consent.objects.get().revoked is not None
