"""OAuth fixtures: the platform-wide Entra client, tenant-bound clients in both tenants, a member
who is not a manager. Rate-limit counters live in the cache, so it starts empty in every test."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from directory import services
from directory.models import Tenant, User
from oauth.models import Application
from oauth.services import application_create
from tests.clients import Client
from tests.conftest import PASSWORD
from tests.oauth.support import ENTRA_REDIRECT, OAuthClient, tenant_client


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()


@pytest.fixture
def entra(db: None, system_actor: services.Actor) -> OAuthClient:
    """The platform-wide gallery registration: no tenant; any tenant's manager may authorize it."""
    application, secret = application_create(
        tenant=None, actor=system_actor, name="Microsoft Entra ID", redirect_uris=[ENTRA_REDIRECT]
    )
    return OAuthClient(application, secret)


@pytest.fixture
def contoso_app(tenant: Tenant, system_actor: services.Actor) -> OAuthClient:
    application, secret = application_create(
        tenant=tenant, actor=system_actor, name="Contoso provisioning", redirect_uris=[ENTRA_REDIRECT]
    )
    return OAuthClient(application, secret)


@pytest.fixture
def fabrikam_app(other_tenant: Tenant, system_actor: services.Actor) -> OAuthClient:
    application, secret = application_create(
        tenant=other_tenant, actor=system_actor, name="Fabrikam provisioning", redirect_uris=[ENTRA_REDIRECT]
    )
    return OAuthClient(application, secret)


@pytest.fixture
def contoso_cc(tenant: Tenant, system_actor: services.Actor) -> OAuthClient:
    application, secret = application_create(
        tenant=tenant,
        actor=system_actor,
        name="Contoso client credentials",
        grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    return OAuthClient(application, secret)


@pytest.fixture
def fabrikam_cc(other_tenant: Tenant, system_actor: services.Actor) -> OAuthClient:
    application, secret = application_create(
        tenant=other_tenant,
        actor=system_actor,
        name="Fabrikam client credentials",
        grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    return OAuthClient(application, secret)


@pytest.fixture
def member(tenant: Tenant, system_actor: services.Actor) -> User:
    return services.user_create(
        tenant=tenant, actor=system_actor, username="member@contoso.com", password=PASSWORD
    )


def signed_in(user: User) -> Client:
    client = tenant_client(user.tenant)
    client.force_login(user, backend="directory.backends.TenantModelBackend")
    return client


@pytest.fixture
def manager_http(manager: User) -> Client:
    return signed_in(manager)


@pytest.fixture
def other_manager_http(other_manager: User) -> Client:
    return signed_in(other_manager)
