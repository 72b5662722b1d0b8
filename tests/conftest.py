"""Shared fixtures. `tenant` and `other_tenant` exist together in every test that touches data, so
each one can show that the second tenant's rows stay invisible."""

from __future__ import annotations

import pytest

from directory import cache, services
from directory.models import Tenant, User
from directory.tenancy import tenant_primary_host
from oauth.services import secret_token_issue
from tests.clients import Client

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fresh_process_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Host → tenant and SCIM credential caches live as long as the process, and every test
    rolls its rows back, so the next test reuses their ids: without this, a test could be served a
    tenant or credential of the one before.

    Their clock stands still during a test, so an entry never ages out because fixtures or a busy
    machine took 5 seconds: query counts stay exact, and a change that bypasses the in-process
    invalidation fails every time instead of now and then. Tests of the delay move the clock
    themselves (tests/scim/test_auth.py, `cache_clock`)."""
    cache.clear_all()
    monkeypatch.setattr(cache, "monotonic", lambda: 0.0)


@pytest.fixture
def system_actor() -> services.Actor:
    return services.Actor.system("tests")


@pytest.fixture
def platform_tenant(db: None) -> Tenant:
    return Tenant.objects.get(is_platform=True)


@pytest.fixture
def tenant(db: None, system_actor: services.Actor) -> Tenant:
    return services.tenant_create(
        actor=system_actor, slug="contoso", name="Contoso", email_domains=["contoso.com"]
    )


@pytest.fixture
def other_tenant(db: None, system_actor: services.Actor) -> Tenant:
    return services.tenant_create(
        actor=system_actor, slug="fabrikam", name="Fabrikam", email_domains=["fabrikam.com"]
    )


@pytest.fixture
def manager(tenant: Tenant, system_actor: services.Actor) -> User:
    return services.user_create(
        tenant=tenant,
        actor=system_actor,
        username="manager@contoso.com",
        role=User.Role.MANAGER,
        password=PASSWORD,
    )


@pytest.fixture
def other_manager(other_tenant: Tenant, system_actor: services.Actor) -> User:
    return services.user_create(
        tenant=other_tenant,
        actor=system_actor,
        username="manager@fabrikam.com",
        role=User.Role.MANAGER,
        password=PASSWORD,
    )


@pytest.fixture
def client() -> Client:
    """pytest-django's `client`, with CSRF checks on like every client of the suite."""
    return Client()


def host_client(tenant: Tenant) -> Client:
    return Client(HTTP_HOST=tenant_primary_host(tenant.slug))


@pytest.fixture
def manager_client(manager: User, tenant: Tenant) -> Client:
    client = host_client(tenant)
    client.force_login(manager, backend="directory.backends.TenantModelBackend")
    return client


@pytest.fixture
def scim_token(tenant: Tenant, system_actor: services.Actor) -> str:
    return secret_token_issue(tenant=tenant, actor=system_actor)[1]


@pytest.fixture
def other_scim_token(other_tenant: Tenant, system_actor: services.Actor) -> str:
    return secret_token_issue(tenant=other_tenant, actor=system_actor)[1]
