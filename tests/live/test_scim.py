"""SCIM over real HTTP: gunicorn with the production middleware, httpx sending Entra's bytes.

What the test client sees of the short middleware path and the prepared lookups (userName in any
case, externalId), a real client must see too: the same answers, the security headers, no cookie,
a Content-Length that matches the body; and the second tenant's token sees none of it."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from directory import services
from directory.models import Tenant
from oauth.services import secret_token_issue
from tests.live.support import LiveApp

SCIM_JSON = "application/scim+json"
ENTRA_USER = (
    b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",'
    b'"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],'
    b'"externalId":"8a1b2c3d-live","userName":"Ada.Lovelace@Contoso.example","active":true,'
    b'"displayName":"Ada Lovelace","emails":[{"primary":true,"type":"work",'
    b'"value":"Ada.Lovelace@Contoso.example"}],"meta":{"resourceType":"User"},'
    b'"name":{"familyName":"Lovelace","givenName":"Ada"}}'
)


def _lookup(http: httpx.Client, base: str, token: str, filter_text: str) -> dict:
    response = http.get(
        f"{base}/Users", params={"filter": filter_text}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(response.content))
    return response.json()


def test_entras_create_and_lookups_over_http(
    new_http: Callable[[], httpx.Client],
    live_app: LiveApp,
    tenant: Tenant,
    other_tenant: Tenant,
    system_actor: services.Actor,
) -> None:
    _token, raw = secret_token_issue(tenant=tenant, actor=system_actor)
    _other, other_raw = secret_token_issue(tenant=other_tenant, actor=system_actor)
    base = f"{live_app.tenant_url(tenant)}/scim/v2"
    other_base = f"{live_app.tenant_url(other_tenant)}/scim/v2"
    http = new_http()

    created = http.post(
        f"{base}/Users",
        content=ENTRA_USER,
        headers={"Authorization": f"Bearer {raw}", "Content-Type": SCIM_JSON},
    )
    assert created.status_code == 201, created.text
    assert created.headers["content-length"] == str(len(created.content))
    assert created.headers["x-content-type-options"] == "nosniff"
    assert "x-frame-options" not in created.headers and "set-cookie" not in created.headers
    user_id = created.json()["id"]

    for filter_text in (
        'userName eq "ada.lovelace@contoso.example"',
        "userName eq ADA.LOVELACE@CONTOSO.EXAMPLE",
        'externalId eq "8a1b2c3d-live"',
    ):
        found = _lookup(http, base, raw, filter_text)
        assert found["totalResults"] == 1 and [r["id"] for r in found["Resources"]] == [user_id]
        assert _lookup(http, other_base, other_raw, filter_text)["totalResults"] == 0
    assert _lookup(http, base, raw, 'externalId eq "8A1B2C3D-LIVE"')["totalResults"] == 0  # caseExact

    refused = http.get(f"{base}/Users/{user_id}", headers={"Authorization": f"Bearer {other_raw}"})
    assert refused.status_code == 401
    assert json.loads(refused.content)["status"] == "401"
