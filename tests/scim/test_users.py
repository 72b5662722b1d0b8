"""/Users as Entra drives it: create, read, filter, page, PATCH in both dialects, delete
(entra-scim.md C13–C54). Every test also seeds the second tenant with the same userName,
externalId and email, and shows those rows are neither visible nor changed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from directory.models import Event, Tenant, User
from tests.scim.conftest import SCIMClient, patch_op
from tests.scim.support import (
    ENTERPRISE,
    SHARED_EXTERNAL_ID,
    SHARED_USERNAME,
    UNKNOWN_ID,
    USER,
    OtherTenantWitness,
    assert_scim_error,
    create_user,
    enterprise,
    ids_of,
    is_scim_json,
    listed,
    user_body,
    user_row,
)

TUT_CREATE = {
    "schemas": [USER, ENTERPRISE],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
    "active": True,
    "emails": [
        {
            "primary": True,
            "type": "work",
            "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com",
        }
    ],
    "meta": {"resourceType": "User"},
    "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
    "roles": [],
}
TUT_EXAMPLE_2 = {
    "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
    "externalId": "jyoung",
    "userName": "jyoung@testuser.com",
    "active": True,
    "addresses": None,
    "displayName": "Joy Young",
    "emails": [{"type": "work", "value": "jyoung@Contoso.com", "primary": True}],
    "meta": {"resourceType": "User"},
    "name": {"familyName": "Young", "givenName": "Joy"},
    "phoneNumbers": None,
    "preferredLanguage": None,
    "title": None,
    "department": None,
    "manager": None,
}


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


def patched(scim: SCIMClient, user_id: str, *operations: dict[str, Any]) -> dict[str, Any]:
    response = scim.patch(f"/Users/{user_id}", patch_op(*operations))
    assert response.status_code in (200, 204), response.content
    fetched = scim.get(f"/Users/{user_id}")
    assert fetched.status_code == 200
    return fetched.json()


def find(scim: SCIMClient, filter_text: str) -> dict[str, Any]:
    return listed(scim.get("/Users", filter=filter_text))


def work_email(document: dict[str, Any]) -> str | None:
    return next((e["value"] for e in document.get("emails", []) if e.get("type") == "work"), None)


# ------------------------------------------------------------------------------------ create and read


def test_c13_create_user_from_the_tutorial_body(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    response = scim.post("/Users", TUT_CREATE)
    body = response.json()
    assert response.status_code == 201
    assert is_scim_json(response)
    assert isinstance(body["id"], str) and uuid.UUID(body["id"])
    assert body["userName"] == TUT_CREATE["userName"]
    assert body["externalId"] == TUT_CREATE["externalId"]
    assert body["active"] is True
    assert body["emails"] == [{"value": TUT_CREATE["emails"][0]["value"], "type": "work", "primary": True}]
    assert body["name"] == TUT_CREATE["name"]
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["created"] and body["meta"]["lastModified"]
    assert response["Location"] == body["meta"]["location"]
    assert body["meta"]["location"].endswith(f"/Users/{body['id']}")
    row = user_row(body["id"])
    assert row.tenant_id == tenant.pk
    assert row.given_name == "givenName" and row.email == TUT_CREATE["emails"][0]["value"]
    witness.assert_untouched()


def test_c14_active_as_string_true(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    body = create_user(scim, "string-active@contoso.com", active="True")
    assert body["active"] is True
    inactive = create_user(scim, "string-inactive@contoso.com", active="false")
    assert inactive["active"] is False
    assert user_row(inactive["id"]).is_active is False
    witness.assert_untouched()


def test_c15_example_2_with_nulls_and_misspelt_extension_urn(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    response = scim.post("/Users", TUT_EXAMPLE_2)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["displayName"] == "Joy Young"
    assert body["emails"][0]["value"] == "jyoung@Contoso.com"
    for absent in ("addresses", "phoneNumbers", "preferredLanguage", "title", ENTERPRISE):
        assert absent not in body
    assert None not in body.values()
    witness.assert_untouched()


def test_c15_example_2_enterprise_attributes_wherever_they_are_sent(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """Example 2 puts `department` and `manager` at the top level and misspells the extension URN;
    when they carry values they are kept, and the extension object wins over the loose forms."""
    boss = create_user(scim, "boss@contoso.com")
    body = create_user(
        scim,
        "loose@contoso.com",
        schemas=TUT_EXAMPLE_2["schemas"],
        department="Top level",
        manager=boss["id"],
        employeeNumber=42,
        **{"urn:ietf:params:scim:schemas:extension:enterprise:2.0User": {"costCenter": "CC-1"}},
    )
    assert enterprise(body) == {
        "employeeNumber": "42",
        "costCenter": "CC-1",
        "department": "Top level",
        "manager": {"value": boss["id"], "$ref": f"http://testserver/scim/v2/Users/{boss['id']}"},
    }
    assert "department" not in body and "manager" not in body
    winner = create_user(
        scim, "winner@contoso.com", department="Loose", **{ENTERPRISE: {"department": "Extension"}}
    )
    assert enterprise(winner)["department"] == "Extension"
    witness.assert_untouched()


def test_c16_client_meta_and_empty_roles_are_ignored(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    body = create_user(
        scim,
        "meta@contoso.com",
        meta={"resourceType": "User", "created": "2001-01-01T00:00:00Z", "version": 'W/"99"'},
        roles=[],
        id="client-chosen-id",
    )
    assert body["meta"]["resourceType"] == "User"
    assert not body["meta"]["created"].startswith("2001")
    assert body["meta"]["version"] == 'W/"1"'
    assert body["id"] != "client-chosen-id"
    assert "roles" not in body
    witness.assert_untouched()


def test_c17_enterprise_extension_with_manager_as_string(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    boss = create_user(scim, "boss@contoso.com")
    body = create_user(
        scim,
        "report@contoso.com",
        schemas=[USER, ENTERPRISE],
        **{ENTERPRISE: {"employeeNumber": "701984", "department": "Tour Operations", "manager": boss["id"]}},
    )
    fetched = scim.get(f"/Users/{body['id']}").json()
    extension = enterprise(fetched)
    assert ENTERPRISE in fetched["schemas"]
    assert extension["employeeNumber"] == "701984"
    assert extension["department"] == "Tour Operations"
    assert extension["manager"]["value"] == boss["id"]
    assert extension["manager"]["$ref"].endswith(f"/Users/{boss['id']}")
    assert "manager" not in fetched
    assert user_row(body["id"]).manager == user_row(boss["id"])
    witness.assert_untouched()


def test_c18_duplicate_username_in_other_case_is_409_but_a_shared_external_id_is_not(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """The other tenant holds the same userName: that is no conflict here (per-tenant uniqueness),
    but a second one in this tenant is, whatever its letter case (R42). externalId has no
    uniqueness (RFC 7643 §3.1): a second user with the same one is created."""
    create_user(scim, SHARED_USERNAME, externalId=SHARED_EXTERNAL_ID)
    response = scim.post("/Users", user_body(SHARED_USERNAME.upper()))
    body = assert_scim_error(response, 409, "uniqueness")
    assert "userName" in body["detail"]
    assert "fabrikam" not in body["detail"].lower()
    assert "constraint" not in body["detail"].lower()
    assert User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE).count() == 1
    external = scim.post("/Users", user_body("other@contoso.com", externalId=SHARED_EXTERNAL_ID))
    assert external.status_code == 201, external.content
    assert external.json()["externalId"] == SHARED_EXTERNAL_ID
    assert User.objects.filter(tenant=tenant, external_id=SHARED_EXTERNAL_ID).count() == 2
    witness.assert_untouched()


def test_c19_missing_username_is_400(tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness) -> None:
    for body in ({"schemas": [USER]}, {"userName": ""}, {"userName": "   "}, {"userName": None}):
        assert_scim_error(scim.post("/Users", body), 400, "invalidValue")
    assert not User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE).exists()
    witness.assert_untouched()


def test_c20_invalid_json_is_400_invalid_syntax(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    for raw in (
        '{"userName": "x@contoso.com",',
        "not json",
        "",
        "[1, 2]",
        '"just a string"',
        "\xff\xfe",
        '{"userName": "x@contoso.com", "title": NaN}',
    ):
        assert_scim_error(scim.post("/Users", raw), 400, "invalidSyntax")
    witness.assert_untouched()


def test_c21_two_work_emails_are_kept_in_order_but_two_primaries_are_refused(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7643 §2.4: only `primary` is limited to one value; two values of one `type` are allowed
    and come back in the order sent."""
    two_primaries = scim.post(
        "/Users",
        user_body(
            "twice@contoso.com",
            emails=[
                {"type": "work", "value": "a@contoso.com", "primary": True},
                {"type": "home", "value": "b@contoso.com", "primary": "True"},
            ],
        ),
    )
    assert_scim_error(two_primaries, 400, "invalidValue")
    assert not User.objects.filter(tenant=tenant, username="twice@contoso.com").exists()
    emails = [{"type": "work", "value": "a@contoso.com"}, {"type": "Work", "value": "b@contoso.com"}]
    twice = create_user(scim, "twice@contoso.com", emails=emails)
    assert twice["emails"] == emails
    assert scim.get(f"/Users/{twice['id']}").json()["emails"] == emails
    witness.assert_untouched()


def test_c22_get_user_by_id_returns_the_full_resource(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    created_body = create_user(
        scim,
        "full@contoso.com",
        name={"givenName": "Full", "familyName": "User"},
        phoneNumbers=[{"type": "work", "value": "55555555555"}],
        addresses=[{"type": "work", "locality": "Redmond", "country": "US"}],
    )
    response = scim.get(f"/Users/{created_body['id']}")
    assert response.status_code == 200
    assert is_scim_json(response)
    assert response.json() == created_body
    assert response.json()["phoneNumbers"] == [{"value": "55555555555", "type": "work"}]
    witness.assert_not_in(response)


def test_c23_unknown_user_is_404(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    for user_id in (UNKNOWN_ID, "not-a-uuid", "1", str(witness.user.scim_id)):
        body = assert_scim_error(scim.get(f"/Users/{user_id}"), 404)
        assert user_id in body["detail"]


# -------------------------------------------------------------------------------------------- filters


def test_c24_username_filter_is_case_insensitive(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, SHARED_USERNAME)
    create_user(scim, "someone.else@example.com")
    body = find(scim, f'userName eq "{SHARED_USERNAME.upper()}"')
    assert body["totalResults"] == 1
    assert ids_of(body) == [user["id"]]
    witness.assert_not_in(scim.get("/Users", filter=f'userName eq "{SHARED_USERNAME}"'))


def test_c25_external_id_filter(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "ext@contoso.com", externalId=SHARED_EXTERNAL_ID)
    create_user(scim, "ext2@contoso.com", externalId="another")
    body = find(scim, f'externalId eq "{SHARED_EXTERNAL_ID}"')
    assert ids_of(body) == [user["id"]]
    witness.assert_not_in(scim.get("/Users", filter=f'externalId eq "{SHARED_EXTERNAL_ID}"'))


def test_c26_unquoted_external_id_filter(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "jyoung@contoso.com", externalId="jyoung")
    assert ids_of(find(scim, "externalId eq jyoung")) == [user["id"]]
    assert ids_of(find(scim, f"externalId eq {SHARED_EXTERNAL_ID}")) == []
    witness.assert_untouched()


def test_c27_work_email_value_path_filter(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "mail@contoso.com", emails=[{"type": "work", "value": SHARED_USERNAME}])
    create_user(scim, "home@contoso.com", emails=[{"type": "home", "value": "x" + SHARED_USERNAME}])
    body = find(scim, f'emails[type eq "work"].value eq "{SHARED_USERNAME}"')
    assert ids_of(body) == [user["id"]]
    assert find(scim, f'emails[type eq "home"].value eq "{SHARED_USERNAME}"')["totalResults"] == 0
    witness.assert_untouched()


def test_c28_id_and_manager_filter(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    boss = create_user(scim, "boss@contoso.com")
    other_boss = create_user(scim, "other-boss@contoso.com")
    user = create_user(scim, "report@contoso.com", **{ENTERPRISE: {"manager": boss["id"]}})
    assert ids_of(find(scim, f'id eq "{user["id"]}" and manager eq "{boss["id"]}"')) == [user["id"]]
    assert ids_of(find(scim, f'manager eq "{boss["id"]}" and id eq "{user["id"]}"')) == [user["id"]]
    assert find(scim, f'id eq "{user["id"]}" and manager eq "{other_boss["id"]}"')["totalResults"] == 0
    foreign = f'id eq "{witness.user.scim_id}" and manager eq "{witness.manager.scim_id}"'
    assert find(scim, foreign)["totalResults"] == 0
    witness.assert_untouched()


def test_c29_unsupported_filter_is_400_invalid_filter_never_unfiltered(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    create_user(scim, "a@contoso.com", title="x")
    for filter_text in (
        'favoriteColour eq "x"',
        'userName eq "a@contoso.com" or entitlements.foo eq "x"',
        'userName eq "a@contoso.com" and password eq "x"',
        'userName eq "a@contoso.com',
        "userName xx 1",
        "(",
    ):
        body = assert_scim_error(scim.get("/Users", filter=filter_text), 400, "invalidFilter")
        assert "Resources" not in body
    witness.assert_untouched()


# ------------------------------------------------------------------------------------------ pagination


def test_c30_first_page(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    users = [create_user(scim, f"page{i:02}@contoso.com") for i in range(12)]
    body = listed(scim.get("/Users", startIndex="1", count="5"))
    assert body["startIndex"] == 1
    assert body["itemsPerPage"] == 5
    assert body["totalResults"] == 12
    assert ids_of(body) == [u["id"] for u in users[:5]]
    witness.assert_not_in(scim.get("/Users", count="100"))


def test_c31_following_pages_do_not_overlap(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    users = [create_user(scim, f"page{i:02}@contoso.com") for i in range(12)]
    seen: list[str] = []
    for start in (1, 6, 11):
        body = listed(scim.get("/Users", startIndex=str(start), count="5"))
        assert body["startIndex"] == start
        assert body["totalResults"] == 12
        seen += ids_of(body)
    assert seen == [u["id"] for u in users]
    beyond = listed(scim.get("/Users", startIndex="13", count="5"))
    assert beyond["Resources"] == [] and beyond["totalResults"] == 12
    clamped = listed(scim.get("/Users", startIndex="0", count="-3"))
    assert clamped["startIndex"] == 1 and clamped["itemsPerPage"] == 0 and clamped["totalResults"] == 12
    witness.assert_untouched()


def test_c32_disabled_user_is_still_returned(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "disabled@contoso.com")
    fetched = patched(scim, user["id"], {"op": "Replace", "path": "active", "value": "False"})
    assert fetched["active"] is False
    body = find(scim, 'userName eq "disabled@contoso.com"')
    assert body["totalResults"] == 1
    assert body["Resources"][0]["active"] is False
    assert listed(scim.get("/Users"))["totalResults"] == 1
    witness.assert_untouched()


# ---------------------------------------------------------------------------------------------- PATCH


def test_c33_replace_username(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "old@contoso.com")
    response = scim.patch(
        f"/Users/{user['id']}", patch_op({"op": "Replace", "path": "userName", "value": SHARED_USERNAME})
    )
    assert (response.status_code, response.content) == (204, b"")
    assert scim.get(f"/Users/{user['id']}").json()["userName"] == SHARED_USERNAME
    assert ids_of(find(scim, f'userName eq "{SHARED_USERNAME}"')) == [user["id"]]
    witness.assert_untouched()


def test_c34_replace_work_email_keeps_other_emails(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(
        scim,
        "mails@contoso.com",
        emails=[
            {"type": "work", "value": "old@contoso.com", "primary": True},
            {"type": "other", "value": "proxy@contoso.com"},
        ],
    )
    fetched = patched(
        scim,
        user["id"],
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@contoso.com"},
    )
    assert {(e["type"], e["value"]) for e in fetched["emails"]} == {
        ("work", "updatedEmail@contoso.com"),
        ("other", "proxy@contoso.com"),
    }
    assert next(e for e in fetched["emails"] if e["type"] == "work").get("primary") is True
    witness.assert_untouched()


def test_c35_add_work_email_to_user_without_emails(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "noemail@contoso.com")
    fetched = patched(
        scim, user["id"], {"op": "Add", "path": 'emails[type eq "work"].value', "value": "new@contoso.com"}
    )
    assert fetched["emails"] == [{"value": "new@contoso.com", "type": "work"}]
    witness.assert_untouched()


def test_c36_replace_family_name_only(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(
        scim, "names@contoso.com", name={"givenName": "Joy", "familyName": "Young", "formatted": "Joy Young"}
    )
    fetched = patched(scim, user["id"], {"op": "Replace", "path": "name.familyName", "value": "Old"})
    assert fetched["name"] == {"givenName": "Joy", "familyName": "Old", "formatted": "Joy Young"}
    witness.assert_untouched()


def test_c37_disable_with_string_false(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "off@contoso.com")
    fetched = patched(scim, user["id"], {"op": "Replace", "path": "active", "value": "False"})
    assert fetched["active"] is False
    assert user_row(user["id"]).is_active is False
    witness.assert_untouched()


def test_c38_disable_with_boolean_false(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "off@contoso.com")
    fetched = patched(scim, user["id"], {"op": "replace", "path": "active", "value": False})
    assert fetched["active"] is False
    witness.assert_untouched()


def test_c39_enable_with_string_true(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "on@contoso.com", active=False)
    assert patched(scim, user["id"], {"op": "Replace", "path": "active", "value": "True"})["active"] is True
    patched(scim, user["id"], {"op": "Replace", "path": "active", "value": False})
    assert patched(scim, user["id"], {"op": "Replace", "path": "active", "value": "true"})["active"] is True
    witness.assert_untouched()


def test_c40_pathless_replace_with_dotted_and_urn_keys(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "flag@contoso.com", emails=[{"type": "work", "value": "old@contoso.com"}])
    fetched = patched(
        scim,
        user["id"],
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "TestMhvaes@test.microsoft.com"},
        {
            "op": "replace",
            "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                f"{ENTERPRISE}:employeeNumber": "Aklq",
            },
        },
    )
    assert fetched["displayName"] == "Bjfe"
    assert fetched["name"] == {"givenName": "Kkom", "familyName": "Unua"}
    assert enterprise(fetched)["employeeNumber"] == "Aklq"
    assert work_email(fetched) == "TestMhvaes@test.microsoft.com"
    assert not [k for k in fetched if k != ENTERPRISE and ("." in k or k.startswith(ENTERPRISE))]
    assert set(enterprise(fetched)) == {"employeeNumber"}
    witness.assert_untouched()


def test_c41_pathless_add_with_dotted_keys(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "add@contoso.com")
    fetched = patched(
        scim, user["id"], {"op": "add", "value": {"name.givenName": "Babs", "title": "Engineer"}}
    )
    assert fetched["name"] == {"givenName": "Babs"}
    assert fetched["title"] == "Engineer"
    nested = patched(scim, user["id"], {"op": "add", "value": {"name": {"familyName": "Jensen"}}})
    assert nested["name"] == {"givenName": "Babs", "familyName": "Jensen"}
    witness.assert_untouched()


def test_c42_add_enterprise_department(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "dept@contoso.com")
    fetched = patched(scim, user["id"], {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Retail"})
    assert enterprise(fetched)["department"] == "Retail"
    assert ENTERPRISE in fetched["schemas"]
    assert user_row(user["id"]).department == "Retail"
    witness.assert_untouched()


def test_c43_add_manager_as_plain_string_at_urn_path(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    boss = create_user(scim, "boss@contoso.com")
    user = create_user(scim, "report@contoso.com")
    fetched = patched(scim, user["id"], {"op": "add", "path": f"{ENTERPRISE}:manager", "value": boss["id"]})
    assert enterprise(fetched)["manager"]["value"] == boss["id"]
    witness.assert_untouched()


def test_c44_add_manager_as_legacy_array(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    boss = create_user(scim, "boss@contoso.com")
    user = create_user(scim, "report@contoso.com")
    value = [{"$ref": f"http://testserver/scim/v2/Users/{boss['id']}", "value": boss["id"]}]
    fetched = patched(scim, user["id"], {"op": "Add", "path": "manager", "value": value})
    assert enterprise(fetched)["manager"]["value"] == boss["id"]
    assert user_row(user["id"]).manager == user_row(boss["id"])
    witness.assert_untouched()


def test_c45_clear_manager_by_empty_replace_and_by_remove(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    boss = create_user(scim, "boss@contoso.com")
    user = create_user(scim, "report@contoso.com", **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    fetched = patched(scim, user["id"], {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": ""})
    assert "manager" not in enterprise(fetched)
    assert user_row(user["id"]).manager is None
    patched(scim, user["id"], {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": boss["id"]})
    fetched = patched(scim, user["id"], {"op": "Remove", "path": f"{ENTERPRISE}:manager"})
    assert "manager" not in enterprise(fetched)
    assert user_row(user["id"]).manager is None
    witness.assert_untouched()


def test_c46_role_with_stringified_json_value(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    """Without the flag Entra sends the role as JSON text (R55): it is decoded, never stored as text.
    With AssertiveAppRoleAssignmentsComplex it replaces the whole array of {primary,type,display,value}."""
    user = create_user(scim, "roles@contoso.com")
    stringified = '{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"Admin","displayName":"Admin"}'
    response = scim.patch(
        f"/Users/{user['id']}", patch_op({"op": "Add", "path": "roles", "value": [{"value": stringified}]})
    )
    assert response.status_code == 204, response.content
    assert scim.get(f"/Users/{user['id']}").json()["roles"] == [{"value": "Admin", "display": "Admin"}]
    complex_roles = [
        {"primary": "True", "type": "WindowsAzureActiveDirectoryRole", "display": "Reader", "value": "Reader"}
    ]
    response = scim.patch(
        f"/Users/{user['id']}?attributes=roles",
        patch_op({"op": "replace", "path": "roles", "value": complex_roles}),
    )
    assert response.status_code == 200, response.content
    assert response.json()["roles"] == [
        {"value": "Reader", "display": "Reader", "type": "WindowsAzureActiveDirectoryRole", "primary": True}
    ]
    assert user_row(user["id"]).roles == response.json()["roles"]
    witness.assert_untouched()


SIX_OPERATIONS = (
    {"op": "Replace", "path": "displayName", "value": "Pvlo"},
    {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "TestBcwqnm@test.microsoft.com"},
    {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
    {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
    {"op": "Replace", "path": "externalId", "value": "Eqpj"},
    {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
)


def test_c47_six_operations_applied_in_order(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "six@contoso.com", emails=[{"type": "work", "value": "six@contoso.com"}])
    fetched = patched(scim, user["id"], *SIX_OPERATIONS)
    assert fetched["displayName"] == "Pvlo"
    assert work_email(fetched) == "TestBcwqnm@test.microsoft.com"
    assert fetched["name"] == {"givenName": "Gtfd", "familyName": "Pkqf"}
    assert fetched["externalId"] == "Eqpj"
    assert enterprise(fetched)["employeeNumber"] == "Eqpj"
    last_wins = patched(
        scim,
        user["id"],
        {"op": "Replace", "path": "title", "value": "first"},
        {"op": "Replace", "path": "title", "value": "second"},
    )
    assert last_wins["title"] == "second"
    witness.assert_untouched()


def test_c48_repeated_patch_is_idempotent(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    user = create_user(scim, "again@contoso.com", emails=[{"type": "work", "value": "again@contoso.com"}])
    first = patched(scim, user["id"], *SIX_OPERATIONS)
    events = Event.objects.filter(tenant=tenant, resource_id=user["id"]).count()
    response = scim.patch(f"/Users/{user['id']}", patch_op(*SIX_OPERATIONS))
    assert response.status_code in (200, 204)
    second = scim.get(f"/Users/{user['id']}").json()
    assert second == first
    assert len(second["emails"]) == 1
    assert Event.objects.filter(tenant=tenant, resource_id=user["id"]).count() == events
    witness.assert_untouched()


def test_c49_patch_unknown_user_is_404(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    operation = patch_op({"op": "Replace", "path": "title", "value": "x"})
    for user_id in (UNKNOWN_ID, "nope", str(witness.user.scim_id)):
        assert_scim_error(scim.patch(f"/Users/{user_id}", operation), 404)
    witness.assert_untouched()


def test_c50_replace_with_empty_string_and_null_clears(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "null@contoso.com", title="Boss", displayName="Null", preferredLanguage="en")
    fetched = patched(scim, user["id"], {"op": "Replace", "path": "title", "value": ""})
    assert fetched.get("title") in (None, "")
    fetched = patched(scim, user["id"], {"op": "Replace", "path": "displayName", "value": None})
    assert fetched.get("displayName") in (None, "")
    fetched = patched(scim, user["id"], {"op": "Remove", "path": "preferredLanguage"})
    assert "preferredLanguage" not in fetched
    row = user_row(user["id"])
    assert (row.title, row.display_name, row.preferred_language) == ("", "", "")
    witness.assert_untouched()


def test_c51_address_phone_and_language_paths(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "where@contoso.com")
    fetched = patched(
        scim,
        user["id"],
        {"op": "Replace", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
        {"op": "Replace", "path": 'addresses[type eq "work"].streetAddress', "value": "1 Microsoft Way"},
        {"op": "Add", "path": 'addresses[type eq "other"].formatted', "value": "18/2111"},
        {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "55555555555"},
        {"op": "Replace", "path": 'phoneNumbers[type eq "fax"].value', "value": "+1 (425) 555-0100"},
        {"op": "Replace", "path": "preferredLanguage", "value": "en-US"},
    )
    work = next(a for a in fetched["addresses"] if a["type"] == "work")
    assert work["locality"] == "Redmond" and work["streetAddress"] == "1 Microsoft Way"
    assert next(a for a in fetched["addresses"] if a["type"] == "other")["formatted"] == "18/2111"
    phones = {p["type"]: p["value"] for p in fetched["phoneNumbers"]}
    assert phones == {"mobile": "55555555555", "fax": "+1 (425) 555-0100"}
    assert fetched["preferredLanguage"] == "en-US"
    witness.assert_untouched()


def test_c52_replace_external_id_keeps_id(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "anchor@contoso.com", externalId="before")
    fetched = patched(scim, user["id"], {"op": "Replace", "path": "externalId", "value": SHARED_EXTERNAL_ID})
    assert fetched["externalId"] == SHARED_EXTERNAL_ID
    assert fetched["id"] == user["id"]
    assert ids_of(find(scim, f'externalId eq "{SHARED_EXTERNAL_ID}"')) == [user["id"]]
    witness.assert_untouched()


def test_patch_failing_third_operation_changes_nothing(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """R51: operations apply atomically; the error names the failing operation."""
    user = create_user(scim, "atomic@contoso.com", title="Before", displayName="Before")
    before = scim.get(f"/Users/{user['id']}").json()
    events = Event.objects.filter(tenant=tenant, result=Event.Result.SUCCESS).count()
    response = scim.patch(
        f"/Users/{user['id']}",
        patch_op(
            {"op": "Replace", "path": "title", "value": "After"},
            {"op": "Replace", "path": "displayName", "value": "After"},
            {"op": "Replace", "path": "active", "value": "maybe"},
        ),
    )
    assert_scim_error(response, 400, "invalidValue")
    assert scim.get(f"/Users/{user['id']}").json() == before
    assert Event.objects.filter(tenant=tenant, result=Event.Result.SUCCESS).count() == events
    failure = Event.objects.get(tenant=tenant, result=Event.Result.FAILURE)
    assert failure.status == 400 and failure.resource_id == user["id"]
    witness.assert_untouched()


def test_patch_manager_to_an_unknown_or_foreign_id_is_kept_as_sent_never_linked(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7643 §4.3: `manager.value` may name a user that is not here (yet); it is stored and
    returned as sent, without `$ref`, and never linked to the other tenant's user of that id."""
    user = create_user(scim, "report@contoso.com")
    for value in (str(witness.manager.scim_id), UNKNOWN_ID, "not-an-id"):
        response = scim.patch(
            f"/Users/{user['id']}", patch_op({"op": "add", "path": f"{ENTERPRISE}:manager", "value": value})
        )
        assert response.status_code == 204, response.content
        row = user_row(user["id"])
        assert (row.manager_value, row.manager_id) == (value, None)
        assert enterprise(scim.get(f"/Users/{user['id']}").json())["manager"] == {"value": value}
    witness.assert_untouched()


def test_patch_username_to_a_taken_one_is_409(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    create_user(scim, "taken@contoso.com")
    user = create_user(scim, "free@contoso.com")
    response = scim.patch(
        f"/Users/{user['id']}", patch_op({"op": "replace", "path": "userName", "value": "TAKEN@contoso.com"})
    )
    assert_scim_error(response, 409, "uniqueness")
    assert user_row(user["id"]).username == "free@contoso.com"
    witness.assert_untouched()


# ---------------------------------------------------------------------------------------------- PUT


def test_put_replaces_the_user(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    """R68: PUT is a full replace; attributes it leaves out are cleared, misspelt ones ignored."""
    user = create_user(
        scim, "put@contoso.com", title="Old", emails=[{"type": "work", "value": "put@contoso.com"}]
    )
    response = scim.put(
        f"/Users/{user['id']}",
        user_body("put@contoso.com", name={"formatted": "Put User"}, displayNmae="typo", active="False"),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == {"formatted": "Put User"}
    assert "title" not in body and "emails" not in body
    assert body["active"] is False
    assert_scim_error(scim.put(f"/Users/{user['id']}", {"schemas": [USER]}), 400, "invalidValue")
    assert_scim_error(scim.put(f"/Users/{witness.user.scim_id}", user_body("x@contoso.com")), 404)
    witness.assert_untouched()


# --------------------------------------------------------------------------------------------- delete


def test_c53_delete_user(tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, SHARED_USERNAME)
    response = scim.delete(f"/Users/{user['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert_scim_error(scim.get(f"/Users/{user['id']}"), 404)
    assert find(scim, f'userName eq "{SHARED_USERNAME}"')["totalResults"] == 0
    assert not User.objects.filter(scim_id=user["id"]).exists()
    assert Event.objects.filter(tenant=tenant, action="user.delete", resource_id=user["id"]).exists()
    witness.assert_untouched()


def test_c54_delete_unknown_user_is_404(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    for user_id in (UNKNOWN_ID, "x", str(witness.user.scim_id)):
        assert_scim_error(scim.delete(f"/Users/{user_id}"), 404)
    witness.assert_untouched()


def test_attributes_and_excluded_attributes_on_users(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(
        scim,
        "proj@contoso.com",
        name={"givenName": "Pro", "familyName": "Jection"},
        emails=[{"type": "work", "value": "proj@contoso.com"}],
        **{ENTERPRISE: {"department": "Dept", "employeeNumber": "7"}},
    )
    only = scim.get(f"/Users/{user['id']}", attributes="userName,emails.value").json()
    assert set(only) == {"schemas", "id", "userName", "emails"}
    assert only["emails"] == [{"value": "proj@contoso.com"}]
    listed_only = listed(scim.get("/Users", attributes=f"{ENTERPRISE}:department"))["Resources"][0]
    assert listed_only[ENTERPRISE] == {"department": "Dept"}
    without = scim.get(f"/Users/{user['id']}", excludedAttributes="emails,name.givenName").json()
    assert "emails" not in without
    assert without["name"] == {"familyName": "Jection"}
    assert without["id"] == user["id"]
    witness.assert_untouched()


def test_projection_merges_sub_attributes_and_drops_what_it_empties(
    scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    user = create_user(
        scim,
        "merge@contoso.com",
        name={"givenName": "Only"},
        emails=[{"type": "work", "value": "w@contoso.com"}, {"type": "home", "value": "h@contoso.com"}],
        **{ENTERPRISE: {"department": "Dept"}},
    )
    both = scim.get(f"/Users/{user['id']}", attributes="emails.value,emails.type,name").json()
    assert both["emails"] == [
        {"value": "w@contoso.com", "type": "work"},
        {"value": "h@contoso.com", "type": "home"},
    ]
    assert both["name"] == {"givenName": "Only"}
    assert both["schemas"] == [USER]
    filtered = scim.get(f"/Users/{user['id']}", attributes='emails[type eq "work"]').json()
    assert {e["value"] for e in filtered["emails"]} == {"w@contoso.com", "h@contoso.com"}
    meta_only = scim.get(f"/Users/{user['id']}", attributes="meta.lastModified").json()
    assert set(meta_only) == {"schemas", "id", "meta"} and set(meta_only["meta"]) == {"lastModified"}
    without = scim.get(
        f"/Users/{user['id']}", excludedAttributes=f"name.givenName,{ENTERPRISE}:department"
    ).json()
    assert "name" not in without
    assert ENTERPRISE not in without and without["schemas"] == [USER]
    listed_body = listed(scim.get("/Users", excludedAttributes=ENTERPRISE))
    assert listed_body["Resources"][0]["schemas"] == [USER]
    witness.assert_not_in(scim.get("/Users", attributes="userName"))
