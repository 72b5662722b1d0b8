"""SAML fixtures: Contoso and Fabrikam each trust their own fake Entra; keys are made once per
test session in a temporary directory. Alice is provisioned in Contoso, Frank in Fabrikam."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from directory import services
from directory.models import Tenant, User
from sso import services as sso_services
from tests.clients import Client
from tests.sso.support import FakeEntra, KeyPair, SpUrls, make_key_pair, tenant_http

ALICE = "alice@contoso.com"
ALICE_OID = "7f1c3a52-0000-4000-8000-00000000a11c"
FRANK = "frank@fabrikam.com"
CONTOSO_TID = "11111111-1111-4111-8111-111111111111"
FABRIKAM_TID = "22222222-2222-4222-8222-222222222222"


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    cache.clear()


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("saml-keys")


@pytest.fixture(scope="session")
def keys(key_dir: Path) -> dict[str, KeyPair]:
    return {
        name: make_key_pair(key_dir, name) for name in ("contoso", "contoso-next", "fabrikam", "attacker")
    }


def sp_metadata(tenant: Tenant) -> str:
    response = tenant_http(tenant).get("/saml2/metadata/", secure=True)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def configure_saml(tenant: Tenant, entra: FakeEntra, actor: services.Actor, **settings: Any) -> None:
    sso_services.saml_metadata_set(tenant=tenant, actor=actor, xml=entra.metadata_xml())
    sso_services.sso_settings_update(tenant=tenant, actor=actor, saml_enabled=True, **settings)


@pytest.fixture
def contoso_entra(tenant: Tenant, keys: dict[str, KeyPair], system_actor: services.Actor) -> FakeEntra:
    entra = FakeEntra(tid=CONTOSO_TID, keys=keys["contoso"], sp_metadata=sp_metadata(tenant))
    configure_saml(tenant, entra, system_actor)
    return entra


@pytest.fixture
def fabrikam_entra(
    tenant: Tenant, other_tenant: Tenant, keys: dict[str, KeyPair], system_actor: services.Actor
) -> FakeEntra:
    """Fabrikam's genuine IdP. It also knows Contoso's SP, so tests can make it answer Contoso's
    requests (a hostile or misconfigured tenant)."""
    entra = FakeEntra(
        tid=FABRIKAM_TID, keys=keys["fabrikam"], sp_metadata=[sp_metadata(other_tenant), sp_metadata(tenant)]
    )
    configure_saml(other_tenant, entra, system_actor)
    return entra


@pytest.fixture
def alice(tenant: Tenant, system_actor: services.Actor) -> User:
    return services.user_create(
        tenant=tenant,
        actor=system_actor,
        username=ALICE,
        fields={"external_id": ALICE_OID, "given_name": "Alice"},
    )


@pytest.fixture
def frank(other_tenant: Tenant, system_actor: services.Actor) -> User:
    return services.user_create(
        tenant=other_tenant, actor=system_actor, username=FRANK, fields={"given_name": "Frank"}
    )


@pytest.fixture
def contoso_sp(tenant: Tenant) -> SpUrls:
    return SpUrls.of(tenant)


@pytest.fixture
def fabrikam_sp(other_tenant: Tenant) -> SpUrls:
    return SpUrls.of(other_tenant)


@pytest.fixture
def http(tenant: Tenant) -> Client:
    return tenant_http(tenant)
