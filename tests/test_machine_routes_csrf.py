"""CSRF belongs to browsers. Machine clients (Entra's provisioning service, curl, scim2-tester)
carry no cookie and no CSRF token, so every route they call must be answered by its own view, and
never by Django's CSRF 403 page, which once answered every real client at /oauth/token/. The
browser forms keep the check.

The machine routes are read from the URL resolver: every route under /scim/v2/, /oauth/ (except
the consent page) and /api/, plus the SAML endpoints Entra posts to cross-site, so a route added
later is swept without editing this file. Each is sent POST, PUT, PATCH and DELETE, without a
session, on the root host and on both tenants' hosts, with and without the first tenant's bearer
token, with a JSON and with a form body. The second tenant's rows are compared before and after:
the sweep must not have touched them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.exceptions import Resolver404
from oauth2_provider.models import get_grant_model

from directory import services
from directory.models import Event, Group, Membership, Tenant, User
from directory.tenancy import tenant_primary_host
from oauth.models import Application, SecretToken
from scim.schemas import GROUP_SCHEMA, USER_SCHEMA
from tests.clients import Client, csrf_refused
from tests.conftest import PASSWORD

# Token-authenticated routes, called without a session: SCIM, OAuth's client endpoints, the API
# (its views are DRF's, which leave CSRF to session authentication, and the API has none).
MACHINE_PREFIXES = ("scim/v2/", "oauth/", "api/")
# Under /oauth/ but filled in by a person: the consent form, which keeps CSRF (swept below).
BROWSER_ROUTES = {"oauth:authorize"}
# Posted by the browser from the identity provider's page (SAML HTTP-POST binding): cross-site, so
# no token can exist; the signed message, the stored request id and the replay cache stand in for
# it. Swept with the machine routes: a CSRF 403 here would break every SAML sign-in or sign-out.
CROSS_SITE_ROUTES = {"sso:saml-acs", "sso:saml-ls"}
METHODS = ("POST", "PUT", "PATCH", "DELETE")
ROOT_HOST = "testserver"
SCIM_JSON = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
UNKNOWN_ID = "5f0c2b9e-0000-4000-8000-000000000000"
UNKNOWN_PATHS = (
    "/scim/v2/Nope",
    "/scim/v2/Users/.search/more",
    f"/scim/v2/Users/{UNKNOWN_ID}/groups",
    "/scim/v2/Groups/x/members/y",
    "/scim/v2/v2/Users",
    "/scim/v2/Me",
)


@dataclass(frozen=True)
class Route:
    name: str
    params: tuple[str, ...]


def routes_under(
    resolver: URLResolver, prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str, URLPattern]]:
    """(route as written, name with its namespace, pattern) for every URL pattern."""
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(part for part in (namespace, entry.namespace) if part)
            yield from routes_under(entry, prefix + str(entry.pattern), inner)
        else:
            name = ":".join(part for part in (namespace, entry.name) if part) if entry.name else ""
            yield prefix + str(entry.pattern), name, entry


def is_machine(route: str, name: str) -> bool:
    """Whether the route is meant to take a POST without a CSRF token."""
    return (route.startswith(MACHINE_PREFIXES) and name not in BROWSER_ROUTES) or name in CROSS_SITE_ROUTES


def machine_routes() -> list[Route]:
    """Every named route a machine client may call, straight from the URL resolver."""
    found: list[Route] = []
    for route, name, pattern in routes_under(get_resolver()):
        if is_machine(route, name):
            assert name, f"name the route {route}: the sweep reverses routes by name"
            found.append(Route(name, tuple(pattern.pattern.regex.groupindex)))
    return found


MACHINE_ROUTES = machine_routes()


@dataclass
class Directory:
    """What path parameters are filled with, and the rows of the second tenant to compare."""

    tenant: Tenant
    other_tenant: Tenant
    token: str
    ids: list[str]


@pytest.fixture
def directory(
    tenant: Tenant, other_tenant: Tenant, scim_token: str, system_actor: services.Actor
) -> Directory:
    cache.clear()
    ids = []
    for each in (tenant, other_tenant):
        user = services.user_create(
            tenant=each, actor=system_actor, username=f"sweep.target@{each.slug}.com", password=PASSWORD
        )
        group = services.group_create(
            tenant=each, actor=system_actor, display_name=f"{each.name} sweep", members=[user]
        )
        ids += [str(user.scim_id), str(group.scim_id)]
    return Directory(tenant, other_tenant, scim_token, [*ids, UNKNOWN_ID])


def param_values(param: str, directory: Directory) -> list[str]:
    """Concrete values for a route's path parameter: ids of both tenants and an unknown one, the
    resource type names, schema URNs known and unknown."""
    values = {
        "scim_id": directory.ids,
        "user_id": directory.ids,
        "group_id": directory.ids,
        "name": ["User", "Group", "Unknown"],
        "uri": [USER_SCHEMA, GROUP_SCHEMA, "urn:example:params:scim:schemas:unknown"],
    }
    assert param in values, f"the sweep does not know what to put in <{param}>; add values for it"
    return values[param]


def route_paths(route: Route, directory: Directory) -> list[str]:
    """The route's paths with its parameters filled in, and the first one again with its trailing
    slash toggled when that still reaches the same route (SCIM answers both forms)."""
    if route.params:
        (param,) = route.params
        paths = [reverse(route.name, kwargs={param: value}) for value in param_values(param, directory)]
    else:
        paths = [reverse(route.name)]
    toggled = paths[0][:-1] if paths[0].endswith("/") else paths[0] + "/"
    try:
        if resolve(toggled).view_name == route.name:
            paths.append(toggled)
    except Resolver404:
        pass
    return paths


def json_body(method: str) -> str:
    """A write each endpoint could act on: a PatchOp for PATCH, a User resource otherwise."""
    if method == "PATCH":
        return json.dumps(
            {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "displayName", "value": "swept"}],
            }
        )
    return json.dumps({"schemas": [USER_SCHEMA], "userName": "swept@example.com", "displayName": "swept"})


FORM_BODY = "grant_type=client_credentials&token=not-a-token&userName=swept%40example.com"


def snapshot(tenant: Tenant) -> dict[str, Any]:
    """Everything of a tenant a machine request could change."""
    return {
        "users": sorted(
            User.objects.filter(tenant=tenant).values_list("scim_id", "username", "is_active", "version")
        ),
        "groups": sorted(
            Group.objects.filter(tenant=tenant).values_list("scim_id", "display_name", "version")
        ),
        "memberships": Membership.objects.filter(group__tenant=tenant).count(),
        "events": Event.objects.filter(tenant=tenant).count(),
        "secret_tokens": sorted(SecretToken.objects.filter(tenant=tenant).values_list("pk", "revoked")),
        "applications": Application.objects.filter(tenant=tenant).count(),
    }


def sweep(paths: list[str], directory: Directory) -> list[str]:
    """Send every method, host, credential and body to `paths` without a cookie; return what
    Django's CSRF check or a server error answered."""
    hosts = (
        ROOT_HOST,
        tenant_primary_host(directory.tenant.slug),
        tenant_primary_host(directory.other_tenant.slug),
    )
    problems: list[str] = []
    for host in hosts:
        http = Client(HTTP_HOST=host)
        for path in paths:
            for method in METHODS:
                for credential in (None, directory.token):
                    headers = {"HTTP_AUTHORIZATION": f"Bearer {credential}"} if credential else {}
                    for content_type, data in (
                        (SCIM_JSON, json_body(method)),
                        ("application/x-www-form-urlencoded", FORM_BODY),
                    ):
                        http.cookies.clear()
                        with http.allow_csrf_refusal():
                            response = http.generic(method, path, data, content_type, **headers)
                        where = (
                            f"{method} {host}{path} {'bearer' if credential else 'anonymous'} {content_type}"
                        )
                        if csrf_refused(response):
                            problems.append(f"{where}: CSRF refusal ({response.csrf_refusal})")
                        elif response.status_code >= 500:
                            problems.append(f"{where}: {response.status_code} {response.content[:200]!r}")
    return problems


def test_the_sweep_sees_every_machine_route() -> None:
    """The resolver walk is what keeps the sweep complete, so check it finds the known routes
    (a renamed prefix would otherwise sweep nothing and pass)."""
    names = {route.name for route in MACHINE_ROUTES}
    assert {"oauth:token", "oauth:revoke-token", "oauth:introspect"} <= names
    assert {
        "scim:users",
        "scim:user",
        "scim:users-search",
        "scim:groups",
        "scim:group",
        "scim:groups-search",
        "scim:search",
        "scim:bulk",
        "scim:service-provider-config",
        "scim:resource-types",
        "scim:resource-type",
        "scim:schemas",
        "scim:schema",
        "scim:not-found",
    } <= names
    assert not names & BROWSER_ROUTES


def test_csrf_exemption_is_exactly_the_machine_routes() -> None:
    """Every machine route opts out of CSRF, and nothing else does: the admin, sign-in,
    go-to-domain, consent and sign-out keep the check. A new exempt route fails here until it is
    classified above, and is then swept."""
    exempt, machine = set(), set()
    for route, name, pattern in routes_under(get_resolver()):
        if getattr(pattern.callback, "csrf_exempt", False):
            exempt.add(name or route)
        if is_machine(route, name):
            machine.add(name or route)
    assert exempt == machine


@pytest.mark.parametrize("route", MACHINE_ROUTES, ids=lambda route: route.name)
def test_machine_route_is_never_answered_by_the_csrf_check(route: Route, directory: Directory) -> None:
    before = snapshot(directory.other_tenant)
    assert sweep(route_paths(route, directory), directory) == []
    assert snapshot(directory.other_tenant) == before


def test_unknown_scim_paths_are_never_answered_by_the_csrf_check(directory: Directory) -> None:
    before = snapshot(directory.other_tenant)
    assert sweep(list(UNKNOWN_PATHS), directory) == []
    assert snapshot(directory.other_tenant) == before


# ------------------------------------------------------------------ browser forms keep CSRF


@dataclass(frozen=True)
class BrowserForm:
    host: str  # "root" or "tenant"
    path: str
    data: dict[str, str]
    signed_in: bool = False
    page: str = ""  # where the browser gets its cookie; default the form's own path


BROWSER_FORMS = {
    "go-to-domain": BrowserForm("root", "/login/", {"domain": "contoso", "next": ""}),
    "tenant sign-in": BrowserForm(
        "tenant", "/login/", {"username": "manager@contoso.com", "password": PASSWORD}
    ),
    "admin sign-in": BrowserForm(
        "tenant", "/admin/login/", {"username": "manager@contoso.com", "password": PASSWORD}
    ),
    "operator admin sign-in": BrowserForm("root", "/admin/login/", {"username": "ops", "password": PASSWORD}),
    "consent": BrowserForm(
        "tenant", "/oauth/authorize/", {"allow": "Authorize"}, signed_in=True, page="/account/"
    ),
    "admin branding": BrowserForm(
        "tenant",
        "/admin/branding/",
        {"display_name": "Forged", "logo_url": "", "primary_color": "#000000"},
        signed_in=True,
    ),
    "admin secret token": BrowserForm(
        "tenant", "/admin/oauth/secrettoken/add/", {"name": "forged", "expires_days": "30"}, signed_in=True
    ),
    "admin user action": BrowserForm(
        "tenant",
        "/admin/directory/user/",
        {"action": "deactivate_users", "select_across": "1", "_selected_action": "0"},
        signed_in=True,
    ),
    "sign-out": BrowserForm("tenant", "/logout/", {}, signed_in=True, page="/account/"),
}


@pytest.mark.parametrize("with_cookie", [False, True], ids=["no cookie", "cookie but no token"])
@pytest.mark.parametrize("form", list(BROWSER_FORMS))
def test_browser_forms_refuse_a_post_without_the_token(
    form: str, with_cookie: bool, directory: Directory, manager: User
) -> None:
    """A page a person fills in keeps CSRF: without the form's token the POST is Django's 403,
    whether the browser holds the CSRF cookie or not, and nothing is written."""
    spec = BROWSER_FORMS[form]
    host = ROOT_HOST if spec.host == "root" else tenant_primary_host(directory.tenant.slug)
    http = Client(HTTP_HOST=host)
    if spec.signed_in:
        http.force_login(manager, backend="directory.backends.TenantModelBackend")
    if with_cookie:
        http.get(spec.page or spec.path)
        assert "csrftoken" in http.cookies
    grants = get_grant_model().objects.count()
    before = snapshot(directory.tenant), snapshot(directory.other_tenant)
    with http.allow_csrf_refusal():
        response = http.post(spec.path, spec.data)
    assert response.status_code == 403 and csrf_refused(response), response.status_code
    assert (snapshot(directory.tenant), snapshot(directory.other_tenant)) == before
    assert get_grant_model().objects.count() == grants
    assert ("_auth_user_id" in http.session) == spec.signed_in
