"""oauth.services: application registration, consents and "disconnect", each with its event."""

from __future__ import annotations

import pytest
from oauth2_provider.models import get_access_token_model

from directory import services
from directory.exceptions import InvalidValue, TenantMismatch
from directory.models import Event, Tenant, User
from oauth.models import Application, Consent
from oauth.services import application_create, consent_revoke, tenant_oauth_tokens_revoke
from tests.clients import Client
from tests.oauth.support import (
    ENTRA_REDIRECT,
    OAuthClient,
    basic,
    code_from,
    consent,
    exchange,
    introspect,
    refresh,
    root_client,
    token_request,
)

AccessToken = get_access_token_model()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": " "}, "name"),
        ({"redirect_uris": []}, "redirect_uris"),
        ({"grant_type": "password"}, "authorization_grant_type"),
        ({"grant_type": "implicit"}, "authorization_grant_type"),
        ({"client_type": "other"}, "client_type"),
    ],
)
def test_application_create_refuses_what_it_does_not_offer(
    tenant: Tenant, system_actor: services.Actor, kwargs: dict, field: str
) -> None:
    arguments = {"name": "App", "redirect_uris": [ENTRA_REDIRECT], **kwargs}
    with pytest.raises(InvalidValue) as raised:
        application_create(tenant=tenant, actor=system_actor, **arguments)
    assert raised.value.field == field
    assert not Application.objects.exists()


@pytest.mark.parametrize(
    "uri", ["http://portal.azure.com/TokenAuthorize", "https://portal.azure.com/x#frag", "portal.azure.com/x"]
)
def test_application_create_validates_redirect_uris(
    tenant: Tenant, system_actor: services.Actor, uri: str
) -> None:
    with pytest.raises(InvalidValue):
        application_create(tenant=tenant, actor=system_actor, name="App", redirect_uris=[uri])


def test_application_create_logs_to_the_owning_tenant_only(
    tenant: Tenant, other_tenant: Tenant, platform_tenant: Tenant, system_actor: services.Actor
) -> None:
    tenant_app, secret = application_create(
        tenant=tenant, actor=system_actor, name="Contoso app", redirect_uris=[ENTRA_REDIRECT]
    )
    platform_app, _ = application_create(
        tenant=platform_tenant, actor=system_actor, name="Everyone", redirect_uris=[ENTRA_REDIRECT]
    )
    assert platform_app.tenant is None
    assert tenant_app.client_secret != secret
    created = Event.objects.filter(action="credential.application_create")
    assert created.filter(tenant=tenant).count() == 1
    assert created.filter(tenant=platform_tenant).count() == 1
    assert not created.filter(tenant=other_tenant).exists()
    assert secret not in str(list(Event.objects.values()))


def test_managers_revoke_one_authorization(
    entra: OAuthClient,
    manager: User,
    manager_http: Client,
    other_manager: User,
    other_manager_http: Client,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    tokens = exchange(root_client(), entra, code_from(consent(manager_http, entra))).json()
    other_tokens = exchange(root_client(), entra, code_from(consent(other_manager_http, entra))).json()
    mine = Consent.objects.get(tenant=tenant)
    assert (mine.approved_by, mine.exchanged is not None, mine.last_used is not None) == (manager, True, True)
    with pytest.raises(TenantMismatch):
        consent_revoke(tenant=other_tenant, actor=services.Actor.manager(other_manager), consent=mine)
    assert introspect(root_client(), entra, tokens["access_token"])["active"] is True
    consent_revoke(tenant=tenant, actor=services.Actor.manager(manager), consent=mine)
    assert introspect(root_client(), entra, tokens["access_token"])["active"] is False
    assert refresh(root_client(), entra, tokens["refresh_token"]).status_code == 400
    assert introspect(root_client(), entra, other_tokens["access_token"])["active"] is True
    revoked = Event.objects.get(tenant=tenant, action="credential.revoke")
    assert revoked.actor_user == manager
    assert not Event.objects.filter(tenant=other_tenant, action="credential.revoke").exists()


def test_disconnect_revokes_every_oauth_token_of_the_tenant_only(
    entra: OAuthClient,
    contoso_cc: OAuthClient,
    fabrikam_cc: OAuthClient,
    manager: User,
    manager_http: Client,
    other_manager_http: Client,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    code_tokens = exchange(root_client(), entra, code_from(consent(manager_http, entra))).json()
    cc_token = token_request(root_client(), contoso_cc, grant_type="client_credentials").json()[
        "access_token"
    ]
    other_code = exchange(root_client(), entra, code_from(consent(other_manager_http, entra))).json()
    other_cc = token_request(root_client(), fabrikam_cc, grant_type="client_credentials").json()[
        "access_token"
    ]
    count = tenant_oauth_tokens_revoke(tenant=tenant, actor=services.Actor.manager(manager))
    assert count == 2
    assert introspect(root_client(), entra, code_tokens["access_token"])["active"] is False
    assert introspect(root_client(), contoso_cc, cc_token)["active"] is False
    assert refresh(root_client(), entra, code_tokens["refresh_token"]).status_code == 400
    assert introspect(root_client(), entra, other_code["access_token"])["active"] is True
    assert introspect(root_client(), fabrikam_cc, other_cc)["active"] is True
    assert Consent.objects.get(tenant=tenant).revoked is not None
    assert Consent.objects.get(tenant=other_tenant).revoked is None
    with pytest.raises(TenantMismatch):
        tenant_oauth_tokens_revoke(
            tenant=other_tenant, actor=services.Actor.system("x"), application=contoso_cc.application
        )


def test_check34_each_oauth_event_is_one_row_without_secrets(
    entra: OAuthClient, manager: User, manager_http: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    Event.objects.all().delete()
    code = code_from(consent(manager_http, entra))
    tokens = exchange(root_client(), entra, code).json()
    renewed = refresh(root_client(), entra, tokens["refresh_token"]).json()
    root_client().post(
        "/oauth/revoke_token/",
        {"token": renewed["refresh_token"]},
        HTTP_AUTHORIZATION=basic(entra.client_id, entra.secret),
    )
    actions = list(Event.objects.filter(tenant=tenant).order_by("id").values_list("action", "result"))
    assert actions == [
        ("credential.authorize", "success"),
        ("credential.token_issue", "success"),
        ("credential.token_refresh", "success"),
        ("credential.revoke", "success"),
    ]
    assert not Event.objects.filter(tenant=other_tenant).exists()
    issued = Event.objects.get(action="credential.token_issue")
    assert issued.actor_user == User.objects.get(tenant=tenant, role=User.Role.SERVICE)
    assert issued.credential == f"oauth-application:{entra.application.pk}"
    everything = str(list(Event.objects.values()))
    for secret in (entra.secret, code, *tokens.values(), *renewed.values()):
        if isinstance(secret, str) and len(secret) > 8:
            assert secret not in everything


def test_application_redirect_uri_add_is_idempotent_and_tenant_scoped(
    tenant: Tenant, other_tenant: Tenant, manager: User
) -> None:
    from oauth.services import application_redirect_uri_add

    actor = services.Actor.manager(manager)
    application, _ = application_create(
        tenant=tenant, actor=actor, name="Own", redirect_uris=["https://a.example/cb"]
    )
    application_redirect_uri_add(
        tenant=tenant, actor=actor, application=application, uri="https://b.example/cb"
    )
    application_redirect_uri_add(
        tenant=tenant, actor=actor, application=application, uri="https://b.example/cb"
    )
    application.refresh_from_db()
    assert application.redirect_uris.split() == ["https://a.example/cb", "https://b.example/cb"]
    assert Event.objects.filter(tenant=tenant, action="credential.application_update").count() == 1
    with pytest.raises(TenantMismatch):
        application_redirect_uri_add(
            tenant=other_tenant, actor=actor, application=application, uri="https://evil.example/cb"
        )
    with pytest.raises(InvalidValue):
        application_redirect_uri_add(tenant=tenant, actor=actor, application=application, uri=" ")
    assert not Event.objects.filter(tenant=other_tenant, action__startswith="credential.").exists()
