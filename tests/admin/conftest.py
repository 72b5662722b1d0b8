"""Console fixtures: a small directory in each tenant (users with emails, a group, provisioning
events including a failure), clients for both tenants' managers and for a platform operator."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache

from directory import selectors, services
from directory.models import Event, Group, Tenant, User
from tests.clients import Client
from tests.conftest import PASSWORD, host_client


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """The console caches per-tenant filter choices; primary keys repeat across tests."""
    cache.clear()


@dataclass
class Directory:
    tenant: Tenant
    alice: User
    bob: User
    group: Group
    entra: services.Actor


def entra_actor(tenant: Tenant) -> services.Actor:
    return services.Actor.for_credential(
        service_principal=selectors.service_principal_get(tenant=tenant),
        label="secret token Entra (slt_test…)",
        credential="secret-token:1",
    )


def build_directory(tenant: Tenant, prefix: str) -> Directory:
    entra = entra_actor(tenant)
    alice = services.user_create(
        tenant=tenant,
        actor=entra,
        username=f"{prefix}.alice@{tenant.slug}.com",
        fields={"given_name": "Alice", "family_name": prefix.title(), "department": f"{prefix}-sales"},
        emails=[{"value": f"{prefix}.alice@{tenant.slug}.com", "type": "work", "primary": True}],
    )
    bob = services.user_create(
        tenant=tenant,
        actor=entra,
        username=f"{prefix}.bob@{tenant.slug}.com",
        fields={"given_name": "Bob", "family_name": prefix.title(), "external_id": f"{prefix}-ext-bob"},
        emails=[{"value": f"{prefix}.bob@{tenant.slug}.com", "type": "work", "primary": True}],
    )
    group = services.group_create(
        tenant=tenant, actor=entra, display_name=f"{prefix.title()} Staff", members=[alice]
    )
    services.event_record(
        tenant=tenant,
        actor=entra,
        action="scim.post_user",
        result=Event.Result.FAILURE,
        status=409,
        scim_type="uniqueness",
        detail=f"userName '{prefix}.alice@{tenant.slug}.com' is already in use in this tenant.",
        resource_type="User",
        resource_label=f"{prefix}.alice@{tenant.slug}.com",
        request_method="POST",
        request_path="/scim/v2/Users",
    )
    return Directory(tenant=tenant, alice=alice, bob=bob, group=group, entra=entra)


@pytest.fixture
def ours(tenant: Tenant, manager: User) -> Directory:
    return build_directory(tenant, "ours")


@pytest.fixture
def theirs(other_tenant: Tenant, other_manager: User) -> Directory:
    return build_directory(other_tenant, "theirs")


@pytest.fixture
def operator(platform_tenant: Tenant) -> User:
    user = User(
        tenant=platform_tenant, username="operator", role=User.Role.MANAGER, is_superuser=True, is_active=True
    )
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def operator_client(operator: User) -> Client:
    client = Client(HTTP_HOST="testserver")
    client.force_login(operator, backend="directory.backends.TenantModelBackend")
    return client


@pytest.fixture
def other_manager_client(other_manager: User, other_tenant: Tenant) -> Client:
    client = host_client(other_tenant)
    client.force_login(other_manager, backend="directory.backends.TenantModelBackend")
    return client


def events_of(tenant: Tenant, action: str) -> list[Event]:
    return list(Event.objects.filter(tenant=tenant, action=action).order_by("id"))
