"""Client credentials for tenant applications (Entra's current gallery rule, entra-scim.md §5.5):
two active secrets while rotating, secret expiry, tokens that act for the service principal."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from directory import services
from directory.exceptions import InvalidValue, TenantMismatch
from directory.models import Event, Tenant, User
from oauth.models import Application, ClientSecret
from oauth.services import (
    application_create,
    application_disable,
    client_secret_create,
    client_secret_revoke,
)
from tests.clients import Client
from tests.oauth.support import OAuthClient, introspect, root_client, token_request

AccessToken = get_access_token_model()


def client_credentials(client: OAuthClient, secret: str | None = None, **extra: str) -> object:
    return token_request(root_client(), client, secret, grant_type="client_credentials", **extra)


def test_client_credentials_token_acts_for_the_tenants_service_principal(
    contoso_cc: OAuthClient, fabrikam_cc: OAuthClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = client_credentials(contoso_cc)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 3600 and body["scope"] == "scim"
    assert "refresh_token" not in body
    token = AccessToken.objects.get()
    assert token.user == User.objects.get(tenant=tenant, role=User.Role.SERVICE)
    assert token.application.tenant == tenant
    assert Event.objects.filter(tenant=tenant, action="credential.token_issue").count() == 1
    assert not Event.objects.filter(tenant=other_tenant, action="credential.token_issue").exists()

    # Entra's Test Connection with it, on the tenant's SCIM host, and nothing on the other's.
    scim = Client(HTTP_HOST="contoso.testserver")
    found = scim.get(
        "/scim/v2/Users",
        {"filter": f'userName eq "{uuid.uuid4()}"'},
        HTTP_AUTHORIZATION=f"Bearer {body['access_token']}",
    )
    assert found.status_code == 200 and found.json()["totalResults"] == 0
    other = Client(HTTP_HOST="fabrikam.testserver").get(
        "/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}"
    )
    assert other.status_code == 401


def test_client_secret_post_and_optional_scope(contoso_cc: OAuthClient) -> None:
    response = root_client().post(
        "/oauth/token/",
        {
            "grant_type": "client_credentials",
            "client_id": contoso_cc.client_id,
            "client_secret": contoso_cc.secret,
            "scope": "scim",
        },
    )
    assert response.status_code == 200
    assert client_credentials(contoso_cc, scope="openid").json()["error"] == "invalid_scope"


def test_authorization_code_clients_cannot_use_client_credentials(
    entra: OAuthClient, contoso_app: OAuthClient
) -> None:
    for client in (entra, contoso_app):
        response = client_credentials(client)
        assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    assert not AccessToken.objects.exists()


def test_platform_wide_client_credentials_are_refused_everywhere(
    tenant: Tenant, system_actor: services.Actor
) -> None:
    with pytest.raises(InvalidValue):
        application_create(
            tenant=None,
            actor=system_actor,
            name="No tenant",
            grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        )
    application, secret = application_create(
        tenant=tenant, actor=system_actor, name="Was bound", grant_type=Application.GRANT_CLIENT_CREDENTIALS
    )
    Application.objects.filter(pk=application.pk).update(tenant=None)
    application.refresh_from_db()
    response = client_credentials(OAuthClient(application, secret))
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_two_active_secrets_while_rotating(
    contoso_cc: OAuthClient, fabrikam_cc: OAuthClient, tenant: Tenant, other_tenant: Tenant, manager: User
) -> None:
    actor = services.Actor.manager(manager)
    second, raw = client_secret_create(tenant=tenant, actor=actor, application=contoso_cc.application)
    assert second.created_by == manager and raw.startswith(second.prefix)
    assert raw not in second.hashed_secret
    assert client_credentials(contoso_cc).status_code == 200
    assert client_credentials(contoso_cc, raw).status_code == 200
    assert ClientSecret.objects.get().last_used is not None
    with pytest.raises(InvalidValue):
        client_secret_create(tenant=tenant, actor=actor, application=contoso_cc.application)
    # The new secret only opens its own application.
    assert client_credentials(fabrikam_cc, raw).status_code == 401
    # Rotation: the old secret goes, the new one keeps working, and a third may be added.
    client_secret_revoke(tenant=tenant, actor=actor, application=contoso_cc.application)
    assert client_credentials(contoso_cc).status_code == 401
    assert client_credentials(contoso_cc, raw).status_code == 200
    client_secret_create(tenant=tenant, actor=actor, application=contoso_cc.application)
    client_secret_revoke(tenant=tenant, actor=actor, application=contoso_cc.application, secret=second)
    assert client_credentials(contoso_cc, raw).status_code == 401
    actions = list(
        Event.objects.filter(tenant=tenant, action__startswith="credential.client_secret").values_list(
            "action", flat=True
        )
    )
    assert sorted(actions) == sorted(
        ["credential.client_secret_create"] * 2 + ["credential.client_secret_revoke"] * 2
    )
    assert not Event.objects.filter(
        tenant=other_tenant, action__startswith="credential.client_secret"
    ).exists()


def test_other_tenants_cannot_manage_a_tenants_secrets(
    contoso_cc: OAuthClient,
    entra: OAuthClient,
    other_tenant: Tenant,
    platform_tenant: Tenant,
    other_manager: User,
) -> None:
    actor = services.Actor.manager(other_manager)
    with pytest.raises(TenantMismatch):
        client_secret_create(tenant=other_tenant, actor=actor, application=contoso_cc.application)
    with pytest.raises(TenantMismatch):
        client_secret_revoke(tenant=other_tenant, actor=actor, application=contoso_cc.application)
    with pytest.raises(TenantMismatch):
        application_disable(tenant=other_tenant, actor=actor, application=contoso_cc.application)
    with pytest.raises(TenantMismatch):
        client_secret_create(tenant=other_tenant, actor=actor, application=entra.application)
    assert client_credentials(contoso_cc).status_code == 200
    client_secret_create(
        tenant=platform_tenant, actor=services.Actor.system("ops"), application=entra.application
    )


def test_expired_secrets_are_invalid_client(contoso_cc: OAuthClient, tenant: Tenant, system_actor) -> None:
    extra, raw = client_secret_create(tenant=tenant, actor=system_actor, application=contoso_cc.application)
    past = timezone.now() - timedelta(seconds=1)
    Application.objects.filter(pk=contoso_cc.application.pk).update(client_secret_expires=past)
    response = client_credentials(contoso_cc)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert client_credentials(contoso_cc, raw).status_code == 200
    ClientSecret.objects.filter(pk=extra.pk).update(expires=past)
    assert client_credentials(contoso_cc, raw).status_code == 401


def test_secret_lifetime_is_one_to_three_years(contoso_cc: OAuthClient, tenant: Tenant, system_actor) -> None:
    lifetime = contoso_cc.application.client_secret_expires - timezone.now()
    assert timedelta(days=729) < lifetime <= timedelta(days=730)
    for days in (0, 1096):
        with pytest.raises(InvalidValue):
            client_secret_create(
                tenant=tenant, actor=system_actor, application=contoso_cc.application, expires_days=days
            )


def test_disabling_an_application_stops_its_tokens_and_secrets(
    contoso_cc: OAuthClient, fabrikam_cc: OAuthClient, tenant: Tenant, manager: User
) -> None:
    token = client_credentials(contoso_cc).json()["access_token"]
    other_token = client_credentials(fabrikam_cc).json()["access_token"]
    application_disable(
        tenant=tenant, actor=services.Actor.manager(manager), application=contoso_cc.application
    )
    assert client_credentials(contoso_cc).status_code == 401
    assert introspect(root_client(), fabrikam_cc, other_token)["active"] is True
    assert not AccessToken.objects.filter(token_checksum=hashlib.sha256(token.encode()).hexdigest()).exists()
    assert Event.objects.filter(tenant=tenant, action="credential.application_disable").count() == 1


def test_inactive_tenant_gets_no_client_credentials_token(
    contoso_cc: OAuthClient, fabrikam_cc: OAuthClient, tenant: Tenant
) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
    assert client_credentials(contoso_cc).status_code == 401
    assert client_credentials(fabrikam_cc).status_code == 200


def test_one_client_authentication_method_per_request(
    contoso_cc: OAuthClient, fabrikam_cc: OAuthClient
) -> None:
    """A failed Basic header is not rescued by body credentials of another client (RFC 6749 §2.3)."""
    from tests.oauth.support import basic

    response = root_client().post(
        "/oauth/token/",
        {
            "grant_type": "client_credentials",
            "client_id": fabrikam_cc.client_id,
            "client_secret": fabrikam_cc.secret,
        },
        HTTP_AUTHORIZATION=basic(contoso_cc.client_id, "wrong"),
    )
    assert response.status_code == 401
    assert not AccessToken.objects.exists()
