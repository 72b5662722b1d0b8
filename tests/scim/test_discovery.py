"""Test Connection, transport tolerance and the discovery documents (entra-scim.md C01, C04–C11,
R27, R63–R65, R80–R81)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from directory.models import Tenant
from tests.clients import Client
from tests.scim.conftest import SCIMClient
from tests.scim.support import (
    ENTERPRISE,
    GROUP,
    SHARED_GROUP,
    SHARED_USERNAME,
    USER,
    OtherTenantWitness,
    assert_scim_error,
    create_group,
    create_user,
    ids_of,
    is_scim_json,
    listed,
    user_body,
)

MUTABILITY = {"readOnly", "readWrite", "immutable", "writeOnly"}
RETURNED = {"always", "never", "default", "request"}
UNIQUENESS = {"none", "server", "global"}


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


def nulls_in(value: Any, path: str = "") -> list[str]:
    if value is None:
        return [path or "<root>"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls_in(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls_in(v, f"{path}[{i}]")]
    return []


def schema_paths(attributes: list[dict[str, Any]], prefix: str = "") -> set[str]:
    """The flattening the Logic App validator does (R63): `emails.value`, `name.givenName`, …"""
    paths = set()
    for attribute in attributes:
        path = f"{prefix}{attribute['name']}".lower()
        paths.add(path)
        paths |= schema_paths(attribute.get("subAttributes", []), prefix=f"{path}.")
    return paths


def document_paths(document: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in document.items():
        if key in ("schemas", "id", "meta") and not prefix:
            continue
        path = f"{prefix}{key}".lower()
        elements = value if isinstance(value, list) else [value]
        if any(isinstance(e, dict) for e in elements):
            for element in elements:
                paths |= document_paths(element, prefix=f"{path}.")
        else:
            paths.add(path)
    return paths


def schemas_by_id(client: SCIMClient) -> dict[str, dict[str, Any]]:
    body = listed(client.get("/Schemas"))
    return {schema["id"]: schema for schema in body["Resources"]}


def test_c01_test_connection_empty_list_without_accept_header(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """Entra's Test Connection: a random GUID as userName, no Accept and no Content-Type (R36);
    the other tenant's user with a real userName is not found either."""
    client = Client()
    for value in (str(uuid.uuid4()), SHARED_USERNAME):
        response = client.get(
            "/scim/v2/Users",
            {"filter": f'userName eq "{value}"'},
            HTTP_AUTHORIZATION=f"Bearer {scim.token}",
        )
        body = listed(response)
        assert body["totalResults"] == 0
        assert body["Resources"] == []
        assert body["startIndex"] == 1
    witness.assert_untouched()


def test_c04_test_connection_groups_empty_list(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    for value in (str(uuid.uuid4()), SHARED_GROUP):
        body = listed(scim.get("/Groups", excludedAttributes="members", filter=f'displayName eq "{value}"'))
        assert body["totalResults"] == 0
        assert body["Resources"] == []
    witness.assert_untouched()


def test_c05_schemas_list_user_group_enterprise_without_nulls(scim: SCIMClient) -> None:
    body = listed(scim.get("/Schemas"))
    assert body["totalResults"] == 3
    schemas = {schema["id"]: schema for schema in body["Resources"]}
    assert set(schemas) == {USER, GROUP, ENTERPRISE}
    assert nulls_in(body) == []

    def check(attributes: list[dict[str, Any]]) -> None:
        for attribute in attributes:
            assert attribute["mutability"] in MUTABILITY
            assert attribute["returned"] in RETURNED
            assert isinstance(attribute["multiValued"], bool)
            assert isinstance(attribute["required"], bool)
            if attribute["type"] in ("string", "reference"):
                assert isinstance(attribute["caseExact"], bool)
                assert attribute["uniqueness"] in UNIQUENESS
            for key in attribute:
                assert "_" not in key and key[0].islower(), key
            check(attribute.get("subAttributes", []))

    for schema in schemas.values():
        check(schema["attributes"])
        assert schema["meta"]["resourceType"] == "Schema"
        assert schema["meta"]["location"].endswith(f"/Schemas/{schema['id']}")

    user_paths = schema_paths(schemas[USER]["attributes"])
    for path in (
        "username",
        "externalid",
        "name.givenname",
        "name.familyname",
        "name.formatted",
        "displayname",
        "title",
        "active",
        "preferredlanguage",
        "emails.value",
        "emails.type",
        "emails.primary",
        "phonenumbers.value",
        "phonenumbers.type",
        "addresses.streetaddress",
        "addresses.locality",
        "addresses.region",
        "addresses.postalcode",
        "addresses.country",
        "addresses.formatted",
        "addresses.type",
        "password",
        "ims.value",
        "photos.value",
        "entitlements.value",
        "x509certificates.value",
    ):
        assert path in user_paths, path
    user_name = next(a for a in schemas[USER]["attributes"] if a["name"] == "userName")
    assert user_name["caseExact"] is False
    assert user_name["uniqueness"] == "server"
    assert user_name["required"] is True
    enterprise_paths = schema_paths(schemas[ENTERPRISE]["attributes"])
    assert {"employeenumber", "department", "manager", "manager.value"} <= enterprise_paths
    group_paths = schema_paths(schemas[GROUP]["attributes"])
    assert {"displayname", "externalid", "members", "members.value"} <= group_paths


def test_c05_schemas_describe_every_attribute_the_server_returns(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """§8 P16: the validator fails on attributes that GET returns but /Schemas does not describe,
    so a fully populated user and group must flatten to described paths only."""
    boss = create_user(scim, "boss@contoso.com")
    user = create_user(
        scim,
        "full@contoso.com",
        externalId="full-ext",
        name={
            "formatted": "Ms. Ada B. Lovelace III",
            "familyName": "Lovelace",
            "givenName": "Ada",
            "middleName": "B.",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III",
        },
        displayName="Ada",
        nickName="Countess",
        profileUrl="https://example.com/ada",
        title="Analyst",
        userType="Employee",
        preferredLanguage="en-GB",
        locale="en-GB",
        timezone="Europe/London",
        active=True,
        emails=[{"type": "work", "value": "ada@contoso.com", "primary": True, "display": "Ada"}],
        phoneNumbers=[{"type": "mobile", "value": "55555555555", "display": "mobile"}],
        addresses=[
            {
                "type": "work",
                "formatted": "1 Main St",
                "streetAddress": "1 Main St",
                "locality": "London",
                "region": "LDN",
                "postalCode": "N1",
                "country": "GB",
                "primary": True,
            }
        ],
        roles=[
            {"value": "Admin", "display": "Admin", "type": "WindowsAzureActiveDirectoryRole", "primary": True}
        ],
        ims=[{"type": "skype", "value": "ada.lovelace", "primary": True, "display": "Ada"}],
        photos=[{"type": "photo", "value": "https://example.com/ada.jpg", "display": "Ada"}],
        entitlements=[{"type": "licence", "value": "E5", "display": "E5", "primary": True}],
        x509Certificates=[{"type": "signing", "value": "MIIDQzCCAqygAwIBAgICEAAw", "display": "Ada"}],
        password="an unreturned pa55word",
        **{
            ENTERPRISE: {
                "employeeNumber": "42",
                "costCenter": "CC",
                "organization": "Org",
                "division": "Div",
                "department": "Dept",
                "manager": {"value": boss["id"]},
            }
        },
    )
    group = create_group(scim, "Analysts", externalId="grp-ext", members=[{"value": user["id"]}])
    schemas = schemas_by_id(scim)
    described = schema_paths(schemas[USER]["attributes"])
    described |= {f"{ENTERPRISE.lower()}.{p}" for p in schema_paths(schemas[ENTERPRISE]["attributes"])}
    fetched = scim.get(f"/Users/{user['id']}").json()
    assert document_paths(fetched) - described == set()
    assert {"ims.value", "photos.value", "entitlements.value", "x509certificates.value"} <= document_paths(
        fetched
    )
    assert "password" not in document_paths(fetched)
    group_described = schema_paths(schemas[GROUP]["attributes"])
    fetched_group = scim.get(f"/Groups/{group['id']}").json()
    assert document_paths(fetched_group) - group_described == set()
    witness.assert_untouched()


def test_c06_service_provider_config_is_truthful(scim: SCIMClient, settings: Any) -> None:
    response = scim.get("/ServiceProviderConfig")
    assert response.status_code == 200
    assert is_scim_json(response)
    body = response.json()
    assert nulls_in(body) == []
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]
    assert body["patch"] == {"supported": True}
    assert body["filter"] == {"supported": True, "maxResults": settings.SCIM_MAX_RESULTS}
    assert body["bulk"] == {
        "supported": True,
        "maxOperations": settings.SCIM_BULK_MAX_OPERATIONS,
        "maxPayloadSize": settings.SCIM_BULK_MAX_PAYLOAD_SIZE,
    }
    assert body["sort"] == {"supported": True}
    assert body["etag"] == {"supported": True}
    assert body["changePassword"] == {"supported": False}
    assert [s["type"] for s in body["authenticationSchemes"]] == ["oauthbearertoken"]
    assert body["meta"]["resourceType"] == "ServiceProviderConfig"


def test_c06_advertised_limits_and_features_hold(
    scim: SCIMClient, settings: Any, witness: OtherTenantWitness
) -> None:
    """maxResults caps `count`, sortBy sorts and ETags are emitted: what /ServiceProviderConfig
    promises is what the endpoints do."""
    settings.SCIM_MAX_RESULTS = 3
    for name in ("carol", "alice", "dave", "bob"):
        create_user(scim, f"{name}@contoso.com")
    body = listed(scim.get("/Users", count="1000"))
    assert body["totalResults"] == 4
    assert body["itemsPerPage"] == 3
    assert scim.get("/ServiceProviderConfig").json()["filter"]["maxResults"] == 3
    ordered = listed(scim.get("/Users", sortBy="userName", sortOrder="descending", count="3"))
    assert [r["userName"] for r in ordered["Resources"]] == [
        "dave@contoso.com",
        "carol@contoso.com",
        "bob@contoso.com",
    ]
    fetched = scim.get(f"/Users/{ordered['Resources'][0]['id']}")
    assert fetched["ETag"] == fetched.json()["meta"]["version"]
    witness.assert_not_in(fetched)


def test_c07_resource_types(scim: SCIMClient) -> None:
    body = listed(scim.get("/ResourceTypes"))
    assert body["totalResults"] == 2
    assert body["Resources"][0]["endpoint"] == "/Users"
    by_id = {r["id"]: r for r in body["Resources"]}
    assert by_id["User"]["schema"] == USER
    assert by_id["User"]["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert by_id["Group"]["endpoint"] == "/Groups"
    assert nulls_in(body) == []
    single = scim.get("/ResourceTypes/Group")
    assert single.status_code == 200
    assert single.json()["schema"] == GROUP


def test_c08_post_with_scim_json_charset(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """`application/scim+json; charset=utf-8`, with CSRF checks on as for any real client (R41, R81)."""
    client = SCIMClient(scim.token)
    client.client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/Users", user_body(SHARED_USERNAME), content_type="application/scim+json; charset=utf-8"
    )
    assert response.status_code == 201, response.content
    assert response.json()["userName"] == SHARED_USERNAME
    witness.assert_untouched()


def test_c09_post_with_plain_json(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    response = scim.post("/Users", user_body("json@contoso.com"), content_type="application/json")
    assert response.status_code == 201, response.content
    assert is_scim_json(response)
    witness.assert_untouched()


def test_c10_trailing_slash_is_the_same_route(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "slash@contoso.com")
    without = scim.get("/Users", filter='userName eq "slash@contoso.com"')
    with_slash = scim.get("/Users/", filter='userName eq "slash@contoso.com"')
    assert with_slash.status_code == 200
    assert with_slash.json() == without.json()
    assert ids_of(with_slash.json()) == [user["id"]]
    response = scim.post("/Users/", user_body("slash2@contoso.com"))
    assert response.status_code == 201
    assert scim.get(f"/Users/{user['id']}/").status_code == 200
    assert scim.get("/Schemas/").status_code == 200
    assert scim.get("/Groups/", filter=f'displayName eq "{SHARED_GROUP}"').json()["totalResults"] == 0
    witness.assert_untouched()


def test_c11_aadoptscim062020_parameter_is_ignored(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    flag = "?aadOptscim062020"
    created_user = scim.post(f"/Users{flag}", user_body("flag@contoso.com"))
    assert created_user.status_code == 201
    user_id = created_user.json()["id"]
    assert (
        scim.client.get(f"/scim/v2/Users{flag}", HTTP_AUTHORIZATION=f"Bearer {scim.token}").json()[
            "totalResults"
        ]
        == 1
    )
    assert (
        scim.client.get(
            f"/scim/v2/Users/{user_id}{flag}", HTTP_AUTHORIZATION=f"Bearer {scim.token}"
        ).status_code
        == 200
    )
    for path in ("/Schemas", "/ServiceProviderConfig", "/ResourceTypes", "/Groups"):
        response = scim.client.get(f"/scim/v2{path}{flag}", HTTP_AUTHORIZATION=f"Bearer {scim.token}")
        assert response.status_code == 200, path
    filtered = scim.client.get(
        "/scim/v2/Users",
        {"aadOptscim062020": "", "filter": 'userName eq "flag@contoso.com"'},
        HTTP_AUTHORIZATION=f"Bearer {scim.token}",
    )
    assert ids_of(filtered.json()) == [user_id]
    assert scim.delete(f"/Users/{user_id}{flag}").status_code == 204
    witness.assert_untouched()


def test_discovery_list_responses_carry_total_results(scim: SCIMClient) -> None:
    """django-scim2's discovery lists lack totalResults (libraries.md §1.3); ours have it."""
    for path in ("/Schemas", "/ResourceTypes"):
        body = listed(scim.get(path))
        assert body["totalResults"] == len(body["Resources"]) > 0
        assert body["startIndex"] == 1


def test_schema_by_uri_and_unknown_schema(scim: SCIMClient) -> None:
    response = scim.get(f"/Schemas/{ENTERPRISE}")
    assert response.status_code == 200
    assert response.json()["id"] == ENTERPRISE
    unknown = scim.get("/Schemas/urn:example:nope")
    assert unknown.status_code == 404
    assert unknown.json()["status"] == "404"


def test_discovery_refuses_filters_and_ignores_paging(scim: SCIMClient) -> None:
    """RFC 7644 §4: paging and sorting parameters are ignored; a filter gets 403 so no client takes
    the documents for filtered ones."""
    for path in ("/Schemas", "/ResourceTypes", "/ServiceProviderConfig", f"/Schemas/{USER}"):
        assert_scim_error(scim.get(path, filter='id eq "x"'), 403)
    paged = listed(scim.get("/Schemas", startIndex="2", count="1", sortBy="name"))
    assert paged["totalResults"] == 3 and paged["itemsPerPage"] == 3


def test_no_scim_route_is_subject_to_csrf(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    """Bearer-authenticated SCIM clients carry no CSRF cookie (R81): every route and method must be
    answered by the SCIM views themselves, never by Django's CSRF 403 page."""
    user = create_user(scim, "csrf@contoso.com")
    client = SCIMClient(scim.token)
    client.client = Client(enforce_csrf_checks=True)
    for path in (
        "/Users",
        f"/Users/{user['id']}",
        "/Users/.search",
        "/Groups",
        "/Groups/.search",
        "/.search",
        "/Bulk",
        "/Schemas",
        "/ResourceTypes",
        "/ServiceProviderConfig",
        "/Unknown",
    ):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = client.send(method, path, {"schemas": []})
            assert response.status_code != 403, (method, path)
            assert response.status_code == 204 or is_scim_json(response), (method, path, response.content)
    witness.assert_untouched()
