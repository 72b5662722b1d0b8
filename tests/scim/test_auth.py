"""Bearer authentication of /scim/v2/ (entra-scim.md R9, R38, R75, §5.5; C02, C03, C76): every
credential resolves to one tenant's service principal, and every failure is the same SCIM 401."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, set_token_value

from directory import services
from directory.models import Event, Tenant, User
from oauth.models import Application, SecretToken
from oauth.services import secret_token_issue, secret_token_revoke
from tests.clients import Client
from tests.scim.conftest import SCIMClient
from tests.scim.support import OtherTenantWitness, assert_scim_error, create_user, ids_of, listed, user_body


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


def assert_unauthorized(response: object) -> None:
    assert_scim_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")  # type: ignore[index]


def client_credentials_app(tenant: Tenant, *, name: str = "Entra provisioning") -> Application:
    return Application.objects.create(
        name=name,
        tenant=tenant,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )


def access_token(
    application: Application,
    raw: str,
    *,
    user: User | None = None,
    expires_in: timedelta = timedelta(hours=1),
    scope: str = "scim",
) -> AccessToken:
    """As DOT issues one: the raw value is never stored (COMPLIANT_BCP_RFC9700_TOKEN_STORAGE),
    only its checksum, which is what the SCIM edge looks up."""
    token = AccessToken(application=application, user=user, expires=timezone.now() + expires_in, scope=scope)
    set_token_value(token, raw)
    token.save()
    return token


def test_c02_missing_authorization_is_401(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    anonymous = SCIMClient(None)
    assert_unauthorized(anonymous.get("/Users", filter='userName eq "x"'))
    for method, path in (
        ("POST", "/Users"),
        ("PATCH", f"/Users/{witness.user.scim_id}"),
        ("DELETE", "/Groups/x"),
    ):
        assert_unauthorized(anonymous.send(method, path, user_body("x@contoso.com")))
    assert not Event.objects.filter(result=Event.Result.FAILURE).exists()
    witness.assert_untouched()


def test_c03_wrong_token_is_401(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    for token in ("slt_not-a-real-token", "random-access-token", scim.token + "x", "🔑"):
        assert_unauthorized(SCIMClient(token).get("/Users"))
    for header in ("Basic dXNlcjpwYXNz", f"Token {scim.token}", "Bearer", "Bearer    ", scim.token):
        response = scim.client.get("/scim/v2/Users", HTTP_AUTHORIZATION=header)
        assert_unauthorized(response)
    witness.assert_untouched()


def test_secret_token_works_and_acts_as_service_principal(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    user = create_user(scim, "sp@contoso.com")
    event = Event.objects.get(tenant=tenant, action="user.create", resource_id=user["id"])
    assert event.actor_type == Event.ActorType.CREDENTIAL
    assert event.actor_user is not None and event.actor_user.role == User.Role.SERVICE
    assert event.actor_user.tenant_id == tenant.pk
    token = SecretToken.objects.get(tenant=tenant)
    assert event.credential == f"secret-token:{token.pk}"
    assert token.prefix in event.actor_label
    assert scim.token not in event.actor_label
    token.refresh_from_db()
    assert token.last_used is not None
    witness.assert_untouched()


def test_expired_secret_token_is_401(
    tenant: Tenant, system_actor: services.Actor, witness: OtherTenantWitness
) -> None:
    token, raw = secret_token_issue(tenant=tenant, actor=system_actor, expires_days=30)
    valid = SCIMClient(raw).get("/Users")
    assert valid.status_code == 200
    witness.assert_not_in(valid)
    SecretToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert_unauthorized(SCIMClient(raw).get("/Users"))
    assert_unauthorized(SCIMClient(raw).delete(f"/Users/{witness.user.scim_id}"))
    witness.assert_untouched()


def test_revoked_secret_token_is_401_and_others_keep_working(
    tenant: Tenant,
    scim: SCIMClient,
    system_actor: services.Actor,
    other_scim: SCIMClient,
    witness: OtherTenantWitness,
) -> None:
    token, raw = secret_token_issue(tenant=tenant, actor=system_actor, name="rotating")
    assert SCIMClient(raw).get("/Users").status_code == 200
    secret_token_revoke(tenant=tenant, actor=system_actor, token=token)
    assert_unauthorized(SCIMClient(raw).get("/Users"))
    witness.assert_not_in(scim.get("/Users"))
    assert listed(other_scim.get("/Users"))["totalResults"] == 2
    witness.assert_untouched()


def test_disabled_tenant_is_401(
    tenant: Tenant,
    scim: SCIMClient,
    other_scim: SCIMClient,
    system_actor: services.Actor,
    witness: OtherTenantWitness,
) -> None:
    application = client_credentials_app(tenant)
    access_token(application, "cc-token-of-disabled-tenant")
    services.tenant_deactivate(tenant=tenant, actor=system_actor)
    assert_unauthorized(scim.get("/Users"))
    assert_unauthorized(scim.post("/Users", user_body("x@contoso.com")))
    assert_unauthorized(SCIMClient("cc-token-of-disabled-tenant").get("/Users"))
    assert not User.objects.filter(tenant=tenant, username="x@contoso.com").exists()
    assert listed(other_scim.get("/Users"))["totalResults"] == 2
    witness.assert_untouched()


def test_client_credentials_access_token_works(
    tenant: Tenant, other_tenant: Tenant, witness: OtherTenantWitness
) -> None:
    """Entra's gallery requirement (§5.5): a client-credentials token of the tenant's application,
    with no user, acts as the tenant's service principal."""
    application = client_credentials_app(tenant)
    token = access_token(application, "cc-access-token")
    assert token.token == ""
    client = SCIMClient("cc-access-token")
    user = create_user(client, "cc@contoso.com")
    body = listed(client.get("/Users"))
    assert ids_of(body) == [user["id"]]
    witness.assert_not_in(client.get("/Users"))
    event = Event.objects.get(tenant=tenant, action="user.create")
    assert event.actor_user is not None and event.actor_user.role == User.Role.SERVICE
    assert event.credential == f"oauth-token:{token.pk}"
    assert application.name in event.actor_label
    application.refresh_from_db()
    assert application.last_used is not None
    witness.assert_untouched()


def test_access_token_for_the_service_principal_works(tenant: Tenant, witness: OtherTenantWitness) -> None:
    """The authorization-code grant issues tokens to the tenant's service principal."""
    service_principal = User.objects.get(tenant=tenant, role=User.Role.SERVICE)
    access_token(Application.objects.create(name="gallery"), "sp-token", user=service_principal)
    assert SCIMClient("sp-token").get("/Users").status_code == 200
    witness.assert_untouched()


def test_c76_expired_access_token_is_401(tenant: Tenant, witness: OtherTenantWitness) -> None:
    application = client_credentials_app(tenant)
    access_token(application, "expired-token", expires_in=-timedelta(seconds=1))
    assert_unauthorized(SCIMClient("expired-token").get("/Users"))
    assert_unauthorized(SCIMClient("expired-token").post("/Users", user_body("late@contoso.com")))
    assert not User.objects.filter(username="late@contoso.com").exists()
    witness.assert_untouched()


def test_access_token_of_a_non_service_user_is_401(
    tenant: Tenant, manager: User, witness: OtherTenantWitness
) -> None:
    """A token issued to a person (a manager) does not provision: only the service principal does."""
    access_token(client_credentials_app(tenant), "manager-token", user=manager)
    access_token(Application.objects.create(name="platform app"), "manager-token-2", user=manager)
    assert_unauthorized(SCIMClient("manager-token").get("/Users"))
    assert_unauthorized(SCIMClient("manager-token-2").get("/Users"))
    assert_unauthorized(SCIMClient("manager-token").delete(f"/Groups/{witness.group.scim_id}"))
    witness.assert_untouched()


def test_access_token_user_of_another_tenant_than_its_application_is_401(
    tenant: Tenant, other_tenant: Tenant, witness: OtherTenantWitness
) -> None:
    other_sp = User.objects.get(tenant=other_tenant, role=User.Role.SERVICE)
    access_token(client_credentials_app(tenant), "mixed-token", user=other_sp)
    assert_unauthorized(SCIMClient("mixed-token").get("/Users"))
    assert_unauthorized(SCIMClient("mixed-token").get(f"/Users/{witness.user.scim_id}"))
    witness.assert_untouched()


def test_access_token_without_scim_scope_or_tenant_is_401(
    tenant: Tenant, witness: OtherTenantWitness
) -> None:
    access_token(client_credentials_app(tenant), "read-token", scope="read write")
    access_token(Application.objects.create(name="no tenant"), "orphan-token")
    assert_unauthorized(SCIMClient("read-token").get("/Users"))
    assert_unauthorized(SCIMClient("orphan-token").get("/Users"))
    witness.assert_untouched()


def test_disabled_application_or_revoked_access_token_is_401(
    tenant: Tenant, witness: OtherTenantWitness
) -> None:
    application = client_credentials_app(tenant)
    access_token(application, "disabled-app-token")
    revoked = access_token(application, "revoked-token")
    valid = SCIMClient("disabled-app-token").get("/Users")
    assert valid.status_code == 200
    witness.assert_not_in(valid)
    revoked.revoke()
    assert_unauthorized(SCIMClient("revoked-token").get("/Users"))
    Application.objects.filter(pk=application.pk).update(disabled=True)
    assert_unauthorized(SCIMClient("disabled-app-token").get("/Users"))
    witness.assert_untouched()


def test_token_of_another_tenant_on_this_tenants_host_is_401(
    tenant: Tenant, scim: SCIMClient, other_scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """The credential decides the tenant, and a tenant host refuses any other tenant's token."""
    create_user(scim, "host@contoso.com")
    wrong_host = SCIMClient(other_scim.token, host="contoso.testserver")
    assert_unauthorized(wrong_host.get("/Users"))
    assert_unauthorized(wrong_host.post("/Users", user_body("intruder@fabrikam.com")))
    right_host = SCIMClient(scim.token, host="contoso.testserver")
    assert ids_of(listed(right_host.get("/Users"))) != []
    own_host = SCIMClient(other_scim.token, host="fabrikam.testserver")
    witness.assert_not_in(right_host.get("/Users"))
    assert listed(own_host.get("/Users"))["totalResults"] == 2
    witness.assert_untouched()


def test_unauthenticated_requests_write_no_events(tenant: Tenant, witness: OtherTenantWitness) -> None:
    before = Event.objects.count()
    SCIMClient("slt_wrong").post("/Users", user_body("x@contoso.com"))
    SCIMClient(None).delete(f"/Users/{witness.user.scim_id}")
    assert Event.objects.count() == before
    witness.assert_untouched()


def test_a_session_cookie_is_no_scim_credential(
    manager_client: Client, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """libraries.md trap 8: a signed-in manager's session neither replaces nor overrides the bearer
    token on SCIM routes."""
    client = manager_client
    assert_unauthorized(client.get("/scim/v2/Users"))
    assert_unauthorized(client.get("/scim/v2/Users", HTTP_AUTHORIZATION="Bearer slt_wrong"))
    response = client.get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {scim.token}")
    assert response.status_code == 200
    witness.assert_not_in(response)
