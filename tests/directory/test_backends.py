"""TenantModelBackend: the key is (tenant of the request host, userName, password)."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory

from directory import selectors, services
from directory.backends import TenantModelBackend, axes_username
from directory.models import Tenant, User
from tests.conftest import host_client

CONTOSO_PASSWORD = "contoso-Pass-1"
FABRIKAM_PASSWORD = "fabrikam-Pass-2"


def request_on(tenant: Tenant | None):
    request = RequestFactory().post("/admin/login/")
    if tenant is not None:
        request.tenant = tenant
    return request


@pytest.fixture
def alices(tenant, other_tenant, system_actor) -> tuple[User, User]:
    """The same userName in both tenants, with different passwords."""
    return (
        services.user_create(
            tenant=tenant, actor=system_actor, username="alice@example.com", password=CONTOSO_PASSWORD
        ),
        services.user_create(
            tenant=other_tenant, actor=system_actor, username="alice@example.com", password=FABRIKAM_PASSWORD
        ),
    )


def test_same_username_in_two_tenants_signs_in_to_its_own_tenant_only(tenant, other_tenant, alices):
    contoso_alice, fabrikam_alice = alices
    backend = TenantModelBackend()

    assert backend.authenticate(request_on(tenant), "alice@example.com", CONTOSO_PASSWORD) == contoso_alice
    assert (
        backend.authenticate(request_on(other_tenant), "alice@example.com", FABRIKAM_PASSWORD)
        == fabrikam_alice
    )
    assert backend.authenticate(request_on(tenant), "alice@example.com", FABRIKAM_PASSWORD) is None
    assert backend.authenticate(request_on(other_tenant), "alice@example.com", CONTOSO_PASSWORD) is None


def test_username_is_matched_case_insensitively(tenant, other_tenant, alices):
    assert (
        TenantModelBackend().authenticate(request_on(tenant), "ALICE@Example.COM", CONTOSO_PASSWORD)
        == alices[0]
    )


def test_without_a_tenant_nobody_signs_in(tenant, other_tenant, platform_tenant, alices):
    backend = TenantModelBackend()

    assert backend.authenticate(None, "alice@example.com", CONTOSO_PASSWORD) is None
    assert backend.authenticate(request_on(None), "alice@example.com", CONTOSO_PASSWORD) is None
    assert backend.authenticate(request_on(platform_tenant), "alice@example.com", CONTOSO_PASSWORD) is None
    assert backend.authenticate(request_on(tenant), None, CONTOSO_PASSWORD) is None
    assert backend.authenticate(request_on(tenant), "alice@example.com", None) is None
    assert backend.authenticate(request_on(tenant), "nobody@example.com", CONTOSO_PASSWORD) is None


def test_the_service_principal_cannot_sign_in_even_with_a_password(tenant, other_tenant, alices):
    service_principal = selectors.service_principal_get(tenant=tenant)
    service_principal.set_password("sp-Password-9")
    service_principal.save(update_fields=["password"])
    backend = TenantModelBackend()

    assert backend.authenticate(request_on(tenant), service_principal.username, "sp-Password-9") is None
    assert backend.get_user(service_principal.pk) is None
    assert not backend.user_can_authenticate(service_principal)


def test_inactive_users_cannot_sign_in_and_lose_their_sessions(tenant, other_tenant, system_actor, alices):
    contoso_alice, fabrikam_alice = alices
    backend = TenantModelBackend()
    services.user_deactivate(tenant=tenant, actor=system_actor, user=contoso_alice)

    assert backend.authenticate(request_on(tenant), "alice@example.com", CONTOSO_PASSWORD) is None
    assert backend.get_user(contoso_alice.pk) is None
    assert (
        backend.authenticate(request_on(other_tenant), "alice@example.com", FABRIKAM_PASSWORD)
        == fabrikam_alice
    )
    assert backend.get_user(fabrikam_alice.pk) == fabrikam_alice


def test_users_of_an_inactive_tenant_cannot_sign_in(tenant, other_tenant, system_actor, alices):
    services.tenant_deactivate(tenant=tenant, actor=system_actor)
    tenant.refresh_from_db()
    backend = TenantModelBackend()

    assert backend.authenticate(request_on(tenant), "alice@example.com", CONTOSO_PASSWORD) is None
    assert backend.get_user(alices[0].pk) is None
    assert backend.authenticate(request_on(other_tenant), "alice@example.com", FABRIKAM_PASSWORD) == alices[1]


def test_provisioned_users_without_a_password_cannot_sign_in(tenant, other_tenant, system_actor):
    provisioned = services.user_create(tenant=tenant, actor=system_actor, username="bob")
    services.user_create(tenant=other_tenant, actor=system_actor, username="bob", password="bob-Pass-3")

    assert not provisioned.has_usable_password()
    assert TenantModelBackend().authenticate(request_on(tenant), "bob", "") is None
    assert TenantModelBackend().authenticate(request_on(tenant), "bob", "bob-Pass-3") is None


def test_django_authenticate_uses_the_request_tenant(tenant, other_tenant, alices):
    assert (
        authenticate(request_on(tenant), username="alice@example.com", password=CONTOSO_PASSWORD) == alices[0]
    )
    assert (
        authenticate(request_on(other_tenant), username="alice@example.com", password=CONTOSO_PASSWORD)
        is None
    )


def test_admin_sign_in_form_resolves_the_user_by_host(tenant, other_tenant, system_actor):
    services.user_create(
        tenant=tenant,
        actor=system_actor,
        username="boss",
        role=User.Role.MANAGER,
        password=CONTOSO_PASSWORD,
    )
    services.user_create(
        tenant=other_tenant,
        actor=system_actor,
        username="boss",
        role=User.Role.MANAGER,
        password=FABRIKAM_PASSWORD,
    )
    contoso = host_client(tenant)
    fabrikam = host_client(other_tenant)

    refused = contoso.submit("/admin/login/", {"username": "boss", "password": FABRIKAM_PASSWORD})
    assert refused.status_code == 200
    assert refused.context["user"].is_anonymous

    assert (
        contoso.submit("/admin/login/", {"username": "boss", "password": CONTOSO_PASSWORD}).status_code == 302
    )
    assert (
        fabrikam.submit("/admin/login/", {"username": "boss", "password": FABRIKAM_PASSWORD}).status_code
        == 302
    )
    assert contoso.get("/admin/").context["user"].tenant == tenant
    assert fabrikam.get("/admin/").context["user"].tenant == other_tenant


def test_lockouts_count_per_tenant(tenant, other_tenant, system_actor):
    for each in (tenant, other_tenant):
        services.user_create(
            tenant=each,
            actor=system_actor,
            username="boss",
            role=User.Role.MANAGER,
            password=CONTOSO_PASSWORD,
        )
    contoso = host_client(tenant)
    for _ in range(5):
        contoso.submit("/admin/login/", {"username": "boss", "password": "wrong"})

    assert (
        contoso.submit("/admin/login/", {"username": "boss", "password": CONTOSO_PASSWORD}).status_code == 429
    )
    fabrikam = host_client(other_tenant)
    assert (
        fabrikam.submit("/admin/login/", {"username": "boss", "password": CONTOSO_PASSWORD}).status_code
        == 302
    )


def test_axes_username_is_qualified_by_tenant(tenant, other_tenant):
    assert axes_username(request_on(tenant), {"username": "Alice"}) == "contoso:alice"
    assert axes_username(request_on(other_tenant), {"username": "Alice"}) == "fabrikam:alice"
    assert axes_username(request_on(None), {"username": "Alice"}) == "-:alice"


def test_non_ascii_usernames_sign_in_as_stored(tenant, other_tenant, system_actor):
    """SQLite's LOWER() folds ASCII only; comparing LOWER(column) to Python's str.lower() would miss
    `Ärne` there, so the backend lowers both sides in the database."""
    arne = services.user_create(
        tenant=tenant, actor=system_actor, username="Ärne@Example.com", password="a-Pass-1"
    )
    services.user_create(
        tenant=other_tenant, actor=system_actor, username="Ärne@Example.com", password="b-Pass-2"
    )

    assert TenantModelBackend().authenticate(request_on(tenant), "Ärne@Example.com", "a-Pass-1") == arne
    assert TenantModelBackend().authenticate(request_on(tenant), "Ärne@example.COM", "a-Pass-1") == arne
    assert TenantModelBackend().authenticate(request_on(tenant), "Ärne@Example.com", "b-Pass-2") is None


@pytest.mark.postgres_only
def test_non_ascii_usernames_match_case_insensitively_on_postgresql(tenant, other_tenant, system_actor):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SQLite's LOWER() folds ASCII letters only, so `ärne` and `Ärne` differ there.")
    arne = services.user_create(
        tenant=tenant, actor=system_actor, username="Ärne@Example.com", password="a-Pass-1"
    )
    services.user_create(
        tenant=other_tenant, actor=system_actor, username="ärne@example.com", password="b-Pass-2"
    )

    assert TenantModelBackend().authenticate(request_on(tenant), "ärne@example.com", "a-Pass-1") == arne
