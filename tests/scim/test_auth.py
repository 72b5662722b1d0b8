"""Bearer authentication of /scim/v2/ (entra-scim.md R9, R38, R75, §5.5; C02, C03, C76): every
credential resolves to one tenant's service principal, and every failure is the same SCIM 401."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import AccessToken, set_token_value

from directory import cache, services
from directory.models import Event, Tenant, TenantHost, User
from oauth.models import Application, SecretToken
from oauth.services import secret_token_issue, secret_token_revoke, tenant_oauth_tokens_revoke
from tests.clients import Client
from tests.scim.conftest import SCIMClient
from tests.scim.support import OtherTenantWitness, assert_scim_error, create_user, ids_of, listed, user_body


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


class WallClock:
    """`timezone.now()` moved forward on demand: what expiry and `last_used` are measured with."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = timedelta(0)
        real_now = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real_now() + self.offset)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class CacheClock:
    """directory.cache's monotonic clock, frozen and moved by hand, so a test lets cache entries
    age past `SCIM_CREDENTIAL_CACHE_SECONDS` without sleeping."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(cache, "monotonic", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    return WallClock(monkeypatch)


@pytest.fixture
def cache_clock(monkeypatch: pytest.MonkeyPatch) -> CacheClock:
    return CacheClock(monkeypatch)


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
    tenant: Tenant, system_actor: services.Actor, witness: OtherTenantWitness, wall_clock: WallClock
) -> None:
    """The token expires while its answer is cached: the cache keeps its expiry and checks it."""
    _token, raw = secret_token_issue(tenant=tenant, actor=system_actor, expires_days=30)
    valid = SCIMClient(raw).get("/Users")
    assert valid.status_code == 200
    witness.assert_not_in(valid)
    wall_clock.advance(timedelta(days=30, seconds=1))
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
    assert SCIMClient("revoked-token").get("/Users").status_code == 200
    revoked.revoke()
    assert_unauthorized(SCIMClient("revoked-token").get("/Users"))
    application.disabled = True
    application.save(update_fields=["disabled"])
    assert AccessToken.objects.filter(application=application).exists()
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


# ------------------------------------------------------------------------ the per-process cache
#
# scim.auth and directory.tenancy keep successful answers for SCIM_CREDENTIAL_CACHE_SECONDS (5 in
# these tests, as in production). Requests go to the tenant's own host, so host resolution is part
# of what is counted.

CONTOSO_HOST = "contoso.testserver"
FABRIKAM_HOST = "fabrikam.testserver"


def reading(queries: CaptureQueriesContext, model: type[Any]) -> list[str]:
    """The captured statements that read `model`'s table first (its FROM clause)."""
    return [q["sql"] for q in queries.captured_queries if f'FROM "{model._meta.db_table}"' in q["sql"]]


def auth_reads(queries: CaptureQueriesContext) -> list[str]:
    """Statements of host resolution and bearer authentication: hosts, tenants, credentials."""
    return [
        sql
        for model in (TenantHost, Tenant, SecretToken, AccessToken, Application)
        for sql in reading(queries, model)
    ]


def counted(client: SCIMClient, path: str) -> tuple[Any, CaptureQueriesContext]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    return response, queries


@pytest.fixture
def contoso_user(tenant: Tenant, scim_token: str) -> dict[str, Any]:
    """A user of contoso, created over SCIM on contoso's host (which also stamps `last_used`, so
    no count below includes that once-a-minute UPDATE)."""
    return create_user(SCIMClient(scim_token, host=CONTOSO_HOST), "counted@contoso.com")


def test_authentication_costs_one_query_cold_and_none_warm(
    tenant: Tenant,
    scim_token: str,
    system_actor: services.Actor,
    contoso_user: dict[str, Any],
    witness: OtherTenantWitness,
) -> None:
    """Warm: the request costs exactly what the view reads, nothing for host or token. Cold: one
    more query for the host and exactly one for the credential, its tenant and its service
    principal together; a second token on a warm host costs that one query alone."""
    client = SCIMClient(scim_token, host=CONTOSO_HOST)
    path = f"/Users/{contoso_user['id']}"
    client.get(path)

    warm_response, warm = counted(client, path)
    assert warm_response.json()["id"] == contoso_user["id"]
    assert auth_reads(warm) == []
    view_queries = len(warm)

    cache.clear_all()
    cold_response, cold = counted(client, path)
    assert cold_response.json() == warm_response.json()
    assert len(cold) == view_queries + 2
    assert len(reading(cold, TenantHost)) == 1
    [token_read] = reading(cold, SecretToken)
    assert "'service'" in token_read and "directory_tenant" in token_read
    assert auth_reads(cold) == [*reading(cold, TenantHost), token_read]

    _second, raw = secret_token_issue(tenant=tenant, actor=system_actor, name="second")
    second = SCIMClient(raw, host=CONTOSO_HOST)
    assert second.get(path).status_code == 200  # stamps last_used
    cache.clear_all()
    client.get(path)  # warms the host again, not the second token
    _response, new_token = counted(second, path)
    assert len(new_token) == view_queries + 1
    assert auth_reads(new_token) == reading(new_token, SecretToken)
    _response, again = counted(second, path)
    assert len(again) == view_queries
    witness.assert_not_in(client.get("/Users"))
    witness.assert_untouched()


def test_an_oauth_access_token_costs_one_query_cold_and_none_warm(
    tenant: Tenant, scim_token: str, contoso_user: dict[str, Any], witness: OtherTenantWitness
) -> None:
    application = client_credentials_app(tenant)
    access_token(application, "counted-cc-token")
    client = SCIMClient("counted-cc-token", host=CONTOSO_HOST)
    path = f"/Users/{contoso_user['id']}"
    assert client.get(path).status_code == 200  # stamps the application's last_used
    _response, warm = counted(client, path)
    assert auth_reads(warm) == []
    cache.clear_all()
    SCIMClient(scim_token, host=CONTOSO_HOST).get("/Users", count="0")  # the host only
    response, cold = counted(client, path)
    assert response.status_code == 200
    assert len(cold) == len(warm) + 1
    assert auth_reads(cold) == reading(cold, AccessToken)
    credential = f"oauth-token:{AccessToken.objects.get().pk}"
    create_user(client, "via-cached-oauth@contoso.com")
    assert Event.objects.get(tenant=tenant, credential=credential).actor_user == User.objects.get(
        tenant=tenant, role=User.Role.SERVICE
    )
    witness.assert_untouched()


def test_a_cached_principal_acts_as_the_service_principal(
    tenant: Tenant, scim_token: str, witness: OtherTenantWitness
) -> None:
    """Requests served from the cache still log the service principal and the credential."""
    client = SCIMClient(scim_token, host=CONTOSO_HOST)
    create_user(client, "first@contoso.com")
    create_user(client, "second@contoso.com")
    token = SecretToken.objects.get(tenant=tenant)
    events = Event.objects.filter(tenant=tenant, action="user.create").order_by("id")
    assert [e.resource_label for e in events] == ["first@contoso.com", "second@contoso.com"]
    service_principal = User.objects.get(tenant=tenant, role=User.Role.SERVICE)
    assert {e.actor_user for e in events} == {service_principal}
    assert {e.credential for e in events} == {f"secret-token:{token.pk}"}
    assert {e.actor_label for e in events} == {f"secret token {token.name} ({token.prefix}…)"}
    witness.assert_untouched()


def test_revoking_in_this_process_refuses_the_token_on_the_next_request(
    tenant: Tenant,
    other_tenant: Tenant,
    system_actor: services.Actor,
    other_scim_token: str,
    witness: OtherTenantWitness,
    cache_clock: CacheClock,
) -> None:
    """No clock moves: the revocation itself clears this process's cache."""
    token, raw = secret_token_issue(tenant=tenant, actor=system_actor)
    access_token(client_credentials_app(tenant), "revoked-at-once")
    secret, oauth = SCIMClient(raw, host=CONTOSO_HOST), SCIMClient("revoked-at-once", host=CONTOSO_HOST)
    other = SCIMClient(other_scim_token, host=FABRIKAM_HOST)
    for client in (secret, oauth, other):
        assert client.get("/Users").status_code == 200
        assert client.get("/Users").status_code == 200

    secret_token_revoke(tenant=tenant, actor=system_actor, token=token)
    assert_unauthorized(secret.get("/Users"))
    assert oauth.get("/Users").status_code == 200
    tenant_oauth_tokens_revoke(tenant=tenant, actor=system_actor)
    assert_unauthorized(oauth.get("/Users"))
    assert listed(other.get("/Users"))["totalResults"] == 2
    witness.assert_untouched()


def test_a_revocation_made_elsewhere_is_refused_once_the_cache_entry_ages_out(
    tenant: Tenant,
    system_actor: services.Actor,
    other_scim_token: str,
    witness: OtherTenantWitness,
    cache_clock: CacheClock,
) -> None:
    """A direct database update stands for another worker or node: this process hears nothing, and
    stops accepting the token SCIM_CREDENTIAL_CACHE_SECONDS after it cached it."""
    token, raw = secret_token_issue(tenant=tenant, actor=system_actor)
    client = SCIMClient(raw, host=CONTOSO_HOST)
    other = SCIMClient(other_scim_token, host=FABRIKAM_HOST)
    assert client.get("/Users").status_code == 200
    assert other.get("/Users").status_code == 200
    SecretToken.objects.filter(pk=token.pk).update(revoked=timezone.now())

    cache_clock.advance(4.9)
    assert client.get("/Users").status_code == 200  # the documented delay, not longer
    cache_clock.advance(0.2)
    assert_unauthorized(client.get("/Users"))
    assert_unauthorized(client.get("/Users"))
    assert listed(other.get("/Users"))["totalResults"] == 2
    witness.assert_untouched()


@pytest.mark.parametrize("seconds", [0, 2])
def test_the_cache_setting_bounds_the_delay(
    tenant: Tenant,
    system_actor: services.Actor,
    witness: OtherTenantWitness,
    cache_clock: CacheClock,
    settings: Any,
    seconds: int,
) -> None:
    """SCIM_CREDENTIAL_CACHE_SECONDS is the delay; 0 turns the cache off."""
    settings.SCIM_CREDENTIAL_CACHE_SECONDS = seconds
    token, raw = secret_token_issue(tenant=tenant, actor=system_actor)
    client = SCIMClient(raw, host=CONTOSO_HOST)
    assert client.get("/Users").status_code == 200
    SecretToken.objects.filter(pk=token.pk).update(revoked=timezone.now())
    if seconds:
        assert client.get("/Users").status_code == 200
        cache_clock.advance(seconds)
    assert_unauthorized(client.get("/Users"))
    witness.assert_untouched()


def test_a_token_of_another_tenant_is_refused_on_this_host_even_when_cached(
    scim_token: str, other_scim_token: str, witness: OtherTenantWitness
) -> None:
    """The host check runs on every request; only the credential's answer is cached."""
    contoso_on_own_host = SCIMClient(scim_token, host=CONTOSO_HOST)
    fabrikam_on_own_host = SCIMClient(other_scim_token, host=FABRIKAM_HOST)
    assert contoso_on_own_host.get("/Users").status_code == 200
    assert SCIMClient(scim_token).get("/Users").status_code == 200  # the root host
    assert listed(fabrikam_on_own_host.get("/Users"))["totalResults"] == 2
    for _ in range(2):
        assert_unauthorized(SCIMClient(scim_token, host=FABRIKAM_HOST).get("/Users"))
        assert_unauthorized(SCIMClient(other_scim_token, host=CONTOSO_HOST).get("/Users"))
        assert_unauthorized(
            SCIMClient(scim_token, host=FABRIKAM_HOST).delete(f"/Users/{witness.user.scim_id}")
        )
    witness.assert_not_in(contoso_on_own_host.get("/Users"))
    witness.assert_untouched()


def test_an_expired_token_is_refused_from_the_cache_without_a_query(
    tenant: Tenant,
    system_actor: services.Actor,
    other_scim_token: str,
    witness: OtherTenantWitness,
    wall_clock: WallClock,
) -> None:
    """The entry is younger than the cache TTL but its credential has expired: refused from the
    entry itself (no credential read), for secret tokens and OAuth access tokens alike."""
    _token, raw = secret_token_issue(tenant=tenant, actor=system_actor, expires_days=1)
    access_token(client_credentials_app(tenant), "expiring-cc-token", expires_in=timedelta(hours=1))
    clients = [SCIMClient(raw, host=CONTOSO_HOST), SCIMClient("expiring-cc-token", host=CONTOSO_HOST)]
    other = SCIMClient(other_scim_token, host=FABRIKAM_HOST)
    for client in (*clients, other):
        assert client.get("/Users").status_code == 200
    wall_clock.advance(timedelta(days=1, seconds=1))
    for client in clients:
        response, queries = counted(client, "/Users")
        assert_unauthorized(response)
        assert auth_reads(queries) == []
    assert listed(other.get("/Users"))["totalResults"] == 2
    witness.assert_untouched()


def test_an_entry_never_outlives_its_credential(
    tenant: Tenant,
    system_actor: services.Actor,
    witness: OtherTenantWitness,
    cache_clock: CacheClock,
) -> None:
    """A token with 2 s left is cached for 2 s, not the full TTL: past them the next request reads
    the credential again (here still valid on the wall clock, so it is read, not refused)."""
    token, raw = secret_token_issue(tenant=tenant, actor=system_actor)
    SecretToken.objects.filter(pk=token.pk).update(expires=timezone.now() + timedelta(seconds=2))
    client = SCIMClient(raw, host=CONTOSO_HOST)
    assert client.get("/Users").status_code == 200
    _response, cached = counted(client, "/Users")
    assert reading(cached, SecretToken) == []
    SecretToken.objects.filter(pk=token.pk).update(expires=timezone.now() + timedelta(hours=1))
    cache_clock.advance(2.1)
    response, reread = counted(client, "/Users")
    assert response.status_code == 200
    assert len(reading(reread, SecretToken)) == 1
    witness.assert_untouched()


def test_a_deactivated_tenant_is_refused_at_once_here_and_after_the_delay_elsewhere(
    tenant: Tenant,
    other_tenant: Tenant,
    system_actor: services.Actor,
    scim_token: str,
    other_scim_token: str,
    witness: OtherTenantWitness,
    cache_clock: CacheClock,
) -> None:
    client = SCIMClient(scim_token, host=CONTOSO_HOST)
    other = SCIMClient(other_scim_token, host=FABRIKAM_HOST)
    assert client.get("/Users").status_code == 200
    assert other.get("/Users").status_code == 200

    services.tenant_deactivate(tenant=tenant, actor=system_actor)
    assert_unauthorized(client.get("/Users"))
    services.tenant_reactivate(tenant=tenant, actor=system_actor)
    assert client.get("/Users").status_code == 200

    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)  # another process
    assert client.get("/Users").status_code == 200
    cache_clock.advance(5)
    assert_unauthorized(client.get("/Users"))
    assert_unauthorized(client.post("/Users", user_body("late@contoso.com")))
    assert not User.objects.filter(username="late@contoso.com").exists()
    assert listed(other.get("/Users"))["totalResults"] == 2
    witness.assert_untouched()


def test_last_used_is_written_at_most_once_a_minute_with_the_cache(
    tenant: Tenant, scim_token: str, witness: OtherTenantWitness, wall_clock: WallClock
) -> None:
    client = SCIMClient(scim_token, host=CONTOSO_HOST)
    token = SecretToken.objects.get(tenant=tenant)
    assert token.last_used is None

    def writes() -> tuple[int, datetime | None]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/Users").status_code == 200
        updates = [q for q in queries.captured_queries if q["sql"].startswith('UPDATE "oauth_secrettoken"')]
        return len(updates), SecretToken.objects.get(pk=token.pk).last_used

    count, first = writes()
    assert count == 1 and first is not None
    assert writes() == (0, first)
    wall_clock.advance(timedelta(seconds=59))
    assert writes() == (0, first)
    wall_clock.advance(timedelta(seconds=2))
    count, second = writes()
    assert count == 1 and second is not None and second > first
    assert writes() == (0, second)
    witness.assert_untouched()


def test_the_host_cache_follows_host_and_tenant_changes_in_this_process(
    tenant: Tenant, other_tenant: Tenant, system_actor: services.Actor, scim_token: str
) -> None:
    """Branding and hosts changed through the services or the admin (model saves) apply at once."""
    client = SCIMClient(scim_token, host=CONTOSO_HOST)
    assert client.get("/Users").status_code == 200
    services.tenant_update(tenant=tenant, actor=system_actor, display_name="Contoso Ltd")
    assert client.client.get("/scim/v2/ServiceProviderConfig").status_code == 200
    from directory.tenancy import tenant_for_host_cached

    assert tenant_for_host_cached(CONTOSO_HOST).display_name == "Contoso Ltd"
    host = TenantHost.objects.get(host=CONTOSO_HOST)
    host.host = "sso.contoso.com"
    host.save()
    assert client.client.get("/scim/v2/Users").status_code == 404
    assert SCIMClient(scim_token, host="sso.contoso.com").get("/Users").status_code == 200
    assert tenant_for_host_cached(FABRIKAM_HOST) == other_tenant


# ------------------------------------------------------------------- the cache as a data structure


@pytest.fixture
def new_cache() -> Iterator[Callable[..., cache.ProcessCache[Any]]]:
    """Caches of the test's own, taken out of directory.cache's registry afterwards so it keeps
    the application's caches only."""
    made: list[cache.ProcessCache[Any]] = []

    def make(name: str, **options: Any) -> cache.ProcessCache[Any]:
        made.append(cache.ProcessCache(name, **options))
        return made[-1]

    yield make
    for scratch in made:
        cache._registry.remove(scratch)


def test_the_cache_is_a_bounded_lru(
    cache_clock: CacheClock, new_cache: Callable[..., cache.ProcessCache[Any]]
) -> None:
    lru = new_cache("test-lru", max_entries=3)
    for key in "abc":
        lru.put(key, key.upper(), generation=lru.generation)
    assert lru.get("a") == "A"  # a is now the most recent
    lru.put("d", "D", generation=lru.generation)
    assert (len(lru), lru.get("b"), lru.get("a"), lru.get("d")) == (3, None, "A", "D")
    cache_clock.advance(5)
    assert lru.get("a") is None and len(lru) == 2


def test_a_lookup_that_raced_a_clear_is_not_cached(new_cache: Callable[..., cache.ProcessCache[Any]]) -> None:
    """A thread read the old rows, then another thread's change cleared the cache: the stale answer
    must not be stored afterwards."""
    lru = new_cache("test-race")
    before = lru.generation
    lru.clear()
    lru.put("token", "stale", generation=before)
    assert lru.get("token") is None
    lru.put("token", "fresh", generation=lru.generation)
    assert lru.get("token") == "fresh"
    lru.replace("token", "stamped")
    assert lru.get("token") == "stamped"
    lru.clear()
    lru.replace("token", "resurrected")
    assert lru.get("token") is None


def test_the_cache_is_thread_safe(new_cache: Callable[..., cache.ProcessCache[Any]]) -> None:
    lru = new_cache("test-threads", max_entries=64)
    errors: list[Exception] = []

    def hammer(offset: int) -> None:
        try:
            for i in range(2000):
                lru.put((offset, i % 100), i, generation=lru.generation)
                lru.get((offset, (i * 7) % 100))
                if i % 500 == 0:
                    lru.clear()
        except Exception as exc:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(lru) <= 64
