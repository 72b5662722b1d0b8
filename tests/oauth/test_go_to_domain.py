"""The root host's /oauth/authorize/ and go-to-domain page (security.md §2.1, checks 1–4 and 6)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest

from directory import services
from directory.models import Tenant
from tests.clients import Client, csrf_refused
from tests.oauth.support import (
    ENTRA_REDIRECT,
    OAuthClient,
    authorize_params,
    authorize_path,
    query,
    root_client,
)

GENERIC = b"We couldn&#x27;t find an organization for that."


def go(client: OAuthClient | None, domain: str, *, next_path: str | None = None):
    """POST the go-to-domain form as the browser would after the global authorize redirect."""
    if next_path is None and client is not None:
        next_path = authorize_path(client)
    return root_client().submit("/login/", {"domain": domain, "next": next_path or ""})


def test_check1_global_authorize_leads_to_the_go_to_domain_form(entra: OAuthClient, tenant: Tenant) -> None:
    http = root_client()
    response = http.get(authorize_path(entra))
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=" + quote(authorize_path(entra), safe="/")
    page = http.get(response["Location"])
    assert page.status_code == 200
    assert b'name="domain"' in page.content
    assert b"Contoso" not in page.content and b"contoso" not in page.content
    assert page["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert page["Cache-Control"] == "no-store"


def test_check2_tenant_domain_redirects_to_the_stored_host_with_the_same_query(
    entra: OAuthClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    extra = {"code_challenge": "x" * 43, "code_challenge_method": "S256", "resource": ""}
    response = go(entra, "contoso.testserver", next_path=authorize_path(entra, **extra))
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "http",
        "contoso.testserver",
        "/oauth/authorize/",
    )
    assert query(response["Location"]) == authorize_params(entra, **extra)
    other = go(entra, "fabrikam")
    assert urlsplit(other["Location"]).netloc == "fabrikam.testserver"


@pytest.mark.parametrize(
    "typed",
    [
        "contoso",
        "CONTOSO",
        "contoso.testserver",
        "contoso.testserver.",
        "portal.contoso.example",
        "admin@contoso.com",
        "Admin@Contoso.COM",
        "contoso.com",
    ],
)
def test_accepted_inputs_resolve_to_the_tenant_host(
    entra: OAuthClient, tenant: Tenant, other_tenant: Tenant, system_actor: services.Actor, typed: str
) -> None:
    from directory.models import TenantHost

    TenantHost.objects.create(tenant=tenant, host="portal.contoso.example")
    response = go(entra, typed)
    assert response.status_code == 302
    assert urlsplit(response["Location"]).netloc == "contoso.testserver"


@pytest.mark.parametrize(
    "typed",
    [
        "evil.example",
        "contoso.testserver.evil.example",
        "https://evil.example",
        "//evil.example",
        "contoso.testserver@evil.example",
        "user@contoso.testserver@evil.example",
        "https://contoso.testserver",
        "contoso.testserver/oauth",
        "contoso.testserver:8443",
        "contoso\\evil.example",
        "cοntoso",  # Greek omicron: an IDN look-alike of "contoso"
        "contοso.testserver",
        "xn--cntoso-yxe",
        "contoso .testserver",
        "platform",
        "testserver",
        "nobody@unverified.example",
        "",
    ],
)
def test_check3_hostile_or_unknown_input_gets_one_generic_message_and_no_redirect(
    entra: OAuthClient, tenant: Tenant, other_tenant: Tenant, typed: str
) -> None:
    response = go(entra, typed)
    assert response.status_code == 200
    assert "Location" not in response
    assert GENERIC in response.content
    assert b"evil" not in response.content


def test_unverified_email_domain_and_inactive_tenant_look_like_unknown_ones(
    entra: OAuthClient, tenant: Tenant, other_tenant: Tenant, system_actor: services.Actor
) -> None:
    from directory.models import TenantEmailDomain

    TenantEmailDomain.objects.create(tenant=tenant, domain="unverified.example", verified=False)
    Tenant.objects.filter(pk=other_tenant.pk).update(is_active=False)
    unknown = go(entra, "nobody.example").content
    for typed in ("someone@unverified.example", "fabrikam", "someone@fabrikam.com"):
        response = go(entra, typed)
        assert response.status_code == 200
        assert "Location" not in response
        assert response.content.replace(b"someone@unverified.example", b"").count(GENERIC) == unknown.count(
            GENERIC
        )


def test_check4_a_tenant_bound_client_cannot_be_sent_to_another_tenant(
    contoso_app: OAuthClient, fabrikam_app: OAuthClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = go(contoso_app, "fabrikam")
    assert response.status_code == 200
    assert "Location" not in response
    assert GENERIC in response.content
    assert ENTRA_REDIRECT.encode() not in response.content
    assert go(contoso_app, "contoso").status_code == 302
    assert go(fabrikam_app, "fabrikam").status_code == 302


def test_unknown_or_disabled_client_in_next_is_refused_like_an_unknown_domain(
    entra: OAuthClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    forged = authorize_path(entra).replace(entra.client_id, "no-such-client")
    assert "Location" not in go(None, "contoso", next_path=forged)
    entra.application.disabled = True
    entra.application.save()
    assert "Location" not in go(entra, "contoso")


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/oauth/authorize/?client_id=x",
        "//evil.example/oauth/authorize/?client_id=x",
        "/\\evil.example/oauth/authorize/?client_id=x",
        "/admin/?client_id=x",
        "http://contoso.testserver/oauth/authorize/?client_id=x",
    ],
)
def test_next_that_is_not_our_authorize_path_is_ignored(
    tenant: Tenant, other_tenant: Tenant, next_path: str
) -> None:
    """Go-to-domain never redirects anywhere `next` says: without a valid authorize request it
    sends the browser to the tenant's own sign-in page."""
    response = go(None, "contoso", next_path=next_path)
    assert response["Location"] == "http://contoso.testserver/login/"


def test_direct_visit_leads_to_the_tenant_sign_in(tenant: Tenant, other_tenant: Tenant) -> None:
    assert go(None, "fabrikam", next_path="")["Location"] == "http://fabrikam.testserver/login/"


def test_port_of_the_request_is_kept_and_only_as_digits(entra: OAuthClient, tenant: Tenant) -> None:
    http = Client(HTTP_HOST="testserver:8000")
    response = http.submit("/login/", {"domain": "contoso", "next": authorize_path(entra)})
    assert urlsplit(response["Location"]).netloc == "contoso.testserver:8000"


def test_check6_unknown_client_at_the_global_authorize_url_is_an_error_page(
    entra: OAuthClient, tenant: Tenant
) -> None:
    response = root_client().get(authorize_path(entra).replace(entra.client_id, "unknown-client"))
    assert response.status_code == 400
    assert "Location" not in response
    assert b"invalid_client_id" in response.content or b"Invalid client_id" in response.content


def test_bad_redirect_uri_at_the_global_authorize_url_is_an_error_page(entra: OAuthClient) -> None:
    response = root_client().get(authorize_path(entra, redirect_uri="https://evil.example/cb"))
    assert response.status_code == 400
    assert "Location" not in response


def test_csrf_is_required_on_the_go_to_domain_form(entra: OAuthClient, tenant: Tenant) -> None:
    http = root_client()
    with http.allow_csrf_refusal():
        response = http.post("/login/", {"domain": "contoso", "next": authorize_path(entra)})
    assert response.status_code == 403 and csrf_refused(response)


def test_many_unknown_domains_from_one_address_are_slowed_down(
    entra: OAuthClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    from oauth.security import GO_TO_DOMAIN_FAILURES

    for attempt in range(GO_TO_DOMAIN_FAILURES.limit):
        assert go(entra, f"unknown{attempt}.example").status_code == 200
    assert go(entra, "contoso").status_code == 429
    other_address = root_client(REMOTE_ADDR="10.9.8.7").submit(
        "/login/", {"domain": "fabrikam", "next": authorize_path(entra)}
    )
    assert other_address.status_code == 302
