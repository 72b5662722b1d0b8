"""The API's OpenAPI 3 document and its Swagger UI: public, complete, valid, and warning-free (a
warning from drf-spectacular means a part of the API it could not describe, so it fails here as it
fails CI's `manage.py spectacular --validate --fail-on-warn`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

from directory.models import Tenant
from tests.api.conftest import ApiClient
from tests.clients import Client

pytestmark = pytest.mark.django_db

ENDPOINTS = {
    "/api/v1/users/",
    "/api/v1/users/{user_id}/",
    "/api/v1/users/{user_id}/groups/",
    "/api/v1/groups/",
    "/api/v1/groups/{group_id}/",
    "/api/v1/groups/{group_id}/members/",
    "/api/v1/events/",
}
SCOPE_OF = {path: ["events:read"] if path == "/api/v1/events/" else ["directory:read"] for path in ENDPOINTS}


def schema(**params: Any) -> dict[str, Any]:
    response = Client().get("/api/v1/schema/", params)
    assert response.status_code == 200, response.content
    return yaml.safe_load(response.content)


def mounted_api_routes() -> set[str]:
    """Every route of api.urls as the schema spells it, so a new view cannot go undocumented."""
    routes: set[str] = set()
    for pattern in get_resolver("api.urls").url_patterns:
        assert isinstance(pattern, URLPattern) and not isinstance(pattern, URLResolver)
        route = str(pattern.pattern).replace("<str:", "{").replace(">", "}")
        routes.add(f"/api/v1/{route}")
    return routes


def test_the_schema_is_openapi_3_and_lists_every_endpoint(tenant: Tenant, other_tenant: Tenant) -> None:
    document = schema()

    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "SecureLogin directory API"
    assert set(document["paths"]) == ENDPOINTS == mounted_api_routes()
    for path, operations in document["paths"].items():
        assert set(operations) == {"get"}, f"{path} is read-only"
        assert operations["get"]["security"] == [{"oauth2ClientCredentials": SCOPE_OF[path]}], path


def test_the_schema_describes_client_credentials_and_no_scim_or_oauth_routes(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    document = schema()

    scheme = document["components"]["securitySchemes"]["oauth2ClientCredentials"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token/"
    assert set(scheme["flows"]["clientCredentials"]["scopes"]) == {"directory:read", "events:read"}
    assert not any(p.startswith(("/scim", "/oauth", "/admin")) for p in document["paths"])


def test_the_schema_documents_the_filters_and_the_event_shape(tenant: Tenant, other_tenant: Tenant) -> None:
    document = schema(format="json")

    users = document["paths"]["/api/v1/users/"]["get"]
    assert {p["name"] for p in users["parameters"]} >= {
        "active",
        "userName",
        "email",
        "externalId",
        "group",
        "updated_after",
        "cursor",
        "limit",
    }
    events = document["paths"]["/api/v1/events/"]["get"]
    assert {p["name"] for p in events["parameters"]} == {"after", "limit"}
    event = document["components"]["schemas"]["Event"]["properties"]
    assert set(event) == {
        "id",
        "cursor",
        "type",
        "occurred_at",
        "resource",
        "changed_fields",
        "changes",
        "actor",
    }
    user = document["components"]["schemas"]["User"]["properties"]
    assert {"id", "user_name", "emails", "manager", "updated_at"} <= set(user)


def test_the_schema_needs_no_credential_but_is_served_as_it_is_with_one(
    api: ApiClient, other_tenant: Tenant
) -> None:
    anonymous = Client().get("/api/v1/schema/")
    with_token = api.get("/api/v1/schema/")

    assert anonymous.status_code == with_token.status_code == 200
    assert anonymous.content == with_token.content


def test_the_docs_are_on_the_root_host_only(tenant: Tenant, other_tenant: Tenant) -> None:
    root = Client(HTTP_HOST="testserver").get("/api/docs/")
    assert root.status_code == 200
    assert b"swagger" in root.content.lower()
    assert b"/api/v1/schema/" in root.content

    assert Client(HTTP_HOST="contoso.testserver").get("/api/docs/").status_code == 404
    assert Client(HTTP_HOST="fabrikam.testserver").get("/api/docs/").status_code == 404


def test_spectacular_validates_the_schema_without_a_warning(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    document = yaml.safe_load(target.read_text())
    assert set(document["paths"]) == ENDPOINTS
