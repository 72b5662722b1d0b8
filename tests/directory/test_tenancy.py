"""TenantMiddleware and TenantSessionGuardMiddleware through the full middleware stack: the Host
header alone decides `request.tenant`, and a session never crosses from one tenant to another."""

from __future__ import annotations

import pytest

from directory import services
from directory.tenancy import normalise_host
from tests.clients import Client
from tests.conftest import PASSWORD, host_client

LOGIN = "/admin/login/"


def tenant_seen_on(host: str, **extra: str):
    response = Client().get(LOGIN, HTTP_HOST=host, **extra)
    assert response.status_code == 200, (host, response.status_code)
    return response.context["tenant"]


@pytest.mark.parametrize(
    ("host", "slug"),
    [
        ("contoso.testserver", "contoso"),
        ("CONTOSO.TestServer", "contoso"),
        ("contoso.testserver:8000", "contoso"),
        ("contoso.testserver.", "contoso"),
        ("contoso.testserver.:8443", "contoso"),
        ("fabrikam.testserver", "fabrikam"),
        ("fabrikam.testserver:80", "fabrikam"),
    ],
)
def test_tenant_subdomain_sets_request_tenant(tenant, other_tenant, host, slug):
    assert tenant_seen_on(host).slug == slug


def test_custom_host_sets_request_tenant(tenant, other_tenant, system_actor):
    custom = services.tenant_create(
        actor=system_actor, slug="northwind", name="Northwind", hosts=["login.northwind.com"]
    )

    assert tenant_seen_on("login.northwind.com") == custom
    assert tenant_seen_on("login.northwind.com:8443") == custom
    assert tenant_seen_on("northwind.testserver") == custom
    assert tenant_seen_on("contoso.testserver") == tenant


@pytest.mark.parametrize("host", ["testserver", "testserver:8000", "localhost:8000", "127.0.0.1:8000"])
def test_root_host_is_the_platform_tenant(tenant, other_tenant, platform_tenant, host):
    assert tenant_seen_on(host) == platform_tenant


@pytest.mark.parametrize(
    "host",
    [
        "unknown.testserver",
        "contoso.testserver.evil.com",
        "evil.com",
        "contoso",
        "contoso.testserver:8000:1",
        "[::1]:8000",
    ],
)
def test_unknown_host_is_a_plain_404_and_never_a_redirect(tenant, other_tenant, host):
    response = Client().get(LOGIN, HTTP_HOST=host)

    assert response.status_code == 404
    assert response.content == b"Unknown host."
    assert "Location" not in response.headers


def test_forwarded_host_headers_do_not_choose_the_tenant(tenant, other_tenant):
    assert tenant_seen_on("contoso.testserver", HTTP_X_FORWARDED_HOST="fabrikam.testserver") == tenant


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Contoso.Example.COM", "contoso.example.com"),
        ("contoso.example.com:8000", "contoso.example.com"),
        ("contoso.example.com.", "contoso.example.com"),
        ("contoso.example.com.:8000", "contoso.example.com"),
        ("[::1]:8000", "[::1]"),
        ("", ""),
    ],
)
def test_normalise_host(raw, normalised):
    assert normalise_host(raw) == normalised


def test_a_signed_in_manager_reaches_the_admin_of_their_own_tenant(manager_client, other_tenant):
    assert manager_client.get("/admin/").status_code == 200


def test_a_session_from_tenant_a_is_not_usable_on_tenant_b(tenant, other_tenant, manager, other_manager):
    client = host_client(tenant)
    response = client.submit(LOGIN, {"username": manager.username, "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200

    on_other = client.get("/admin/", HTTP_HOST="fabrikam.testserver")

    assert on_other.status_code == 302
    assert on_other.headers["Location"].startswith("/admin/login/")
    assert client.get(LOGIN, HTTP_HOST="fabrikam.testserver").context["user"].is_anonymous


def test_a_tenant_session_is_not_usable_on_the_root_host(manager_client, other_tenant):
    response = manager_client.get("/admin/", HTTP_HOST="testserver")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login/")


def test_a_manager_sees_no_sign_in_attempts_of_other_tenants(manager_client, other_tenant, other_manager):
    fabrikam = host_client(other_tenant)
    attempt = fabrikam.submit(LOGIN, {"username": other_manager.username, "password": "wrong"})
    assert attempt.status_code == 200 and attempt.context["user"].is_anonymous

    index = manager_client.get("/admin/")

    assert index.status_code == 200
    assert b"/admin/axes/" not in index.content
    assert manager_client.get("/admin/axes/accessattempt/").status_code == 404
    assert b"fabrikam" not in manager_client.get("/admin/").content
