"""/Groups as Entra drives it: created empty, matched on displayName, members added and removed in
batches by PATCH, deleted (entra-scim.md C55–C70, R56–R62)."""

from __future__ import annotations

from typing import Any

import pytest

from directory import services
from directory.models import Event, Group, Membership, Tenant, User
from tests.scim.conftest import SCIMClient, patch_op
from tests.scim.support import (
    ADSCIM_GROUP,
    GROUP,
    SHARED_GROUP,
    UNKNOWN_ID,
    OtherTenantWitness,
    assert_scim_error,
    create_group,
    create_user,
    group_body,
    ids_of,
    is_scim_json,
    listed,
)


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


def member_ids(scim: SCIMClient, group_id: str) -> set[str]:
    response = scim.get(f"/Groups/{group_id}")
    assert response.status_code == 200
    return {m["value"] for m in response.json().get("members", [])}


def patch_group(scim: SCIMClient, group_id: str, *operations: dict[str, Any]) -> Any:
    response = scim.patch(f"/Groups/{group_id}", patch_op(*operations))
    assert response.status_code == 204, response.content
    assert response.content == b""
    return response


def users(scim: SCIMClient, count: int, prefix: str = "member") -> list[str]:
    return [create_user(scim, f"{prefix}{i}@contoso.com")["id"] for i in range(count)]


def test_c55_create_group_from_the_tutorial_body(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    response = scim.post(
        "/Groups",
        {
            "schemas": [GROUP, ADSCIM_GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": SHARED_GROUP,
            "meta": {"resourceType": "Group"},
        },
    )
    assert response.status_code == 201, response.content
    assert is_scim_json(response)
    body = response.json()
    assert body["id"] and body["displayName"] == SHARED_GROUP
    assert body["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    assert body.get("members", []) == []
    assert body["meta"]["resourceType"] == "Group"
    assert response["Location"] == body["meta"]["location"]
    assert Group.objects.get(scim_id=body["id"]).tenant_id == tenant.pk
    witness.assert_untouched()


def test_c56_duplicate_display_name_is_409(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    create_group(scim, SHARED_GROUP)
    body = assert_scim_error(scim.post("/Groups", group_body(SHARED_GROUP.lower())), 409, "uniqueness")
    assert "fabrikam" not in body["detail"].lower()
    assert Group.objects.filter(tenant=tenant).count() == 1
    witness.assert_untouched()


def test_c57_get_group_without_members(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    member = create_user(scim, "m@contoso.com")
    group = create_group(scim, "Staff", members=[{"value": member["id"]}])
    body = scim.get(f"/Groups/{group['id']}", excludedAttributes="members").json()
    assert "members" not in body
    assert body["displayName"] == "Staff"
    assert member_ids(scim, group["id"]) == {member["id"]}
    witness.assert_untouched()


def test_c58_filter_by_display_name_without_members(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    member = create_user(scim, "m@contoso.com")
    group = create_group(scim, SHARED_GROUP, members=[{"value": member["id"]}])
    create_group(scim, "Another group")
    response = scim.get("/Groups", excludedAttributes="members", filter=f'displayName eq "{SHARED_GROUP}"')
    body = listed(response)
    assert body["totalResults"] == 1
    assert ids_of(body) == [group["id"]]
    assert "members" not in body["Resources"][0]
    witness.assert_not_in(response)
    upper = listed(scim.get("/Groups", filter=f'displayName eq "{SHARED_GROUP.upper()}"'))
    assert ids_of(upper) == [group["id"]]
    assert upper["Resources"][0]["members"][0]["value"] == member["id"]


def test_c59_replace_display_name(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    group = create_group(scim, "Before")
    patch_group(scim, group["id"], {"op": "Replace", "path": "displayName", "value": SHARED_GROUP})
    assert scim.get(f"/Groups/{group['id']}").json()["displayName"] == SHARED_GROUP
    assert Group.objects.get(scim_id=group["id"]).display_name == SHARED_GROUP
    witness.assert_untouched()


def test_c60_add_member_with_null_ref(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    (user_id,) = users(scim, 1)
    group = create_group(scim, "Group")
    patch_group(
        scim, group["id"], {"op": "Add", "path": "members", "value": [{"$ref": None, "value": user_id}]}
    )
    assert member_ids(scim, group["id"]) == {user_id}
    groups_of_user = scim.get(f"/Users/{user_id}").json()["groups"]
    assert [g["value"] for g in groups_of_user] == [group["id"]]
    witness.assert_untouched()


def test_c61_add_three_members_in_one_operation(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    ids = users(scim, 3)
    group = create_group(scim, "Group")
    patch_group(scim, group["id"], {"op": "Add", "path": "members", "value": [{"value": i} for i in ids]})
    assert member_ids(scim, group["id"]) == set(ids)
    witness.assert_untouched()


def test_c62_re_adding_a_member_creates_no_duplicate(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    (user_id,) = users(scim, 1)
    group = create_group(scim, "Group")
    operation = {"op": "Add", "path": "members", "value": [{"$ref": None, "value": user_id}]}
    patch_group(scim, group["id"], operation)
    version = scim.get(f"/Groups/{group['id']}")["ETag"]
    patch_group(scim, group["id"], operation)
    patch_group(
        scim, group["id"], {"op": "add", "path": "members", "value": [{"value": user_id}, {"value": user_id}]}
    )
    assert Membership.objects.filter(group__scim_id=group["id"]).count() == 1
    assert scim.get(f"/Groups/{group['id']}")["ETag"] == version
    assert Event.objects.filter(tenant=tenant, action="group.members_add").count() == 1
    witness.assert_untouched()


def test_c63_remove_member_listed_in_value(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    keep_a, gone, keep_b = users(scim, 3)
    group = create_group(scim, "Group", members=[{"value": i} for i in (keep_a, gone, keep_b)])
    patch_group(
        scim, group["id"], {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": gone}]}
    )
    assert member_ids(scim, group["id"]) == {keep_a, keep_b}
    assert User.objects.filter(scim_id=gone).exists()
    witness.assert_untouched()


def test_c64_remove_member_by_value_filter(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    keep, gone = users(scim, 2)
    group = create_group(scim, "Group", members=[{"value": keep}, {"value": gone}])
    patch_group(scim, group["id"], {"op": "remove", "path": f'members[value eq "{gone}"]'})
    assert member_ids(scim, group["id"]) == {keep}
    patch_group(scim, group["id"], {"op": "remove", "path": f'members[value eq "{gone}"]'})
    assert member_ids(scim, group["id"]) == {keep}
    witness.assert_untouched()


def test_c65_valueless_remove_clears_the_group(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    ids = users(scim, 3)
    group = create_group(scim, "Group", members=[{"value": i} for i in ids])
    patch_group(scim, group["id"], {"op": "remove", "path": "members"})
    assert member_ids(scim, group["id"]) == set()
    assert User.objects.filter(scim_id__in=ids).count() == 3
    witness.assert_untouched()


def test_c66_replace_members(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    u1, u2, u3 = users(scim, 3)
    group = create_group(scim, "Group", members=[{"value": u2}, {"value": u3}])
    patch_group(scim, group["id"], {"op": "replace", "path": "members", "value": [{"value": u1}]})
    assert member_ids(scim, group["id"]) == {u1}
    patch_group(scim, group["id"], {"op": "replace", "path": "members", "value": []})
    assert member_ids(scim, group["id"]) == set()
    witness.assert_untouched()


def test_c67_unknown_member_is_400_and_adds_nothing(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    (known,) = users(scim, 1)
    group = create_group(scim, "Group")
    for bad in (UNKNOWN_ID, "not-a-uuid", str(witness.user.scim_id), str(witness.group.scim_id)):
        response = scim.patch(
            f"/Groups/{group['id']}",
            patch_op({"op": "Add", "path": "members", "value": [{"value": known}, {"value": bad}]}),
        )
        assert_scim_error(response, 400, "invalidValue")
    assert member_ids(scim, group["id"]) == set()
    witness.assert_untouched()


def test_c68_adding_to_a_large_group_keeps_every_member(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness, system_actor: services.Actor
) -> None:
    """R61: the 151st member is added without rebuilding the group from a page of 100."""
    existing = [
        services.user_create(tenant=tenant, actor=system_actor, username=f"bulk{i}@contoso.com")
        for i in range(150)
    ]
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Big", members=existing)
    (newcomer,) = users(scim, 1, prefix="newcomer")
    patch_group(scim, str(group.scim_id), {"op": "Add", "path": "members", "value": [{"value": newcomer}]})
    assert Membership.objects.filter(group=group).count() == 151
    assert member_ids(scim, str(group.scim_id)) == {str(u.scim_id) for u in existing} | {newcomer}
    witness.assert_untouched()


def test_c69_group_pagination(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    groups = [create_group(scim, f"Group {i:02}")["id"] for i in range(12)]
    seen: list[str] = []
    for start in (1, 6, 11):
        body = listed(scim.get("/Groups", startIndex=str(start), count="5", excludedAttributes="members"))
        assert body["startIndex"] == start
        assert body["totalResults"] == 12
        assert body["itemsPerPage"] == (5 if start < 11 else 2)
        seen += ids_of(body)
    assert seen == groups
    witness.assert_not_in(scim.get("/Groups", count="50"))


def test_c70_delete_group(tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness) -> None:
    (member,) = users(scim, 1)
    group = create_group(scim, SHARED_GROUP, members=[{"value": member}])
    response = scim.delete(f"/Groups/{group['id']}")
    assert response.status_code == 204 and response.content == b""
    assert_scim_error(scim.get(f"/Groups/{group['id']}"), 404)
    assert listed(scim.get("/Groups", filter=f'displayName eq "{SHARED_GROUP}"'))["totalResults"] == 0
    assert scim.get(f"/Users/{member}").status_code == 200
    assert not Membership.objects.filter(tenant=tenant).exists()
    assert_scim_error(scim.delete(f"/Groups/{group['id']}"), 404)
    witness.assert_untouched()


def test_create_group_with_members_and_unknown_member(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    ids = users(scim, 2)
    group = create_group(scim, "With members", members=[{"value": i, "display": "x"} for i in ids])
    assert {m["value"] for m in group["members"]} == set(ids)
    response = scim.post(
        "/Groups", group_body("Refused", members=[{"value": ids[0]}, {"value": str(witness.user.scim_id)}])
    )
    assert_scim_error(response, 400, "invalidValue")
    assert not Group.objects.filter(tenant=tenant, display_name="Refused").exists()
    witness.assert_untouched()


def test_group_patch_failing_operation_changes_nothing(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    keep, new = users(scim, 2)
    group = create_group(scim, "Atomic", members=[{"value": keep}])
    response = scim.patch(
        f"/Groups/{group['id']}",
        patch_op(
            {"op": "Replace", "path": "displayName", "value": "Renamed"},
            {"op": "Add", "path": "members", "value": [{"value": new}]},
            {"op": "Add", "path": "members", "value": [{"value": UNKNOWN_ID}]},
        ),
    )
    assert_scim_error(response, 400, "invalidValue")
    fetched = scim.get(f"/Groups/{group['id']}").json()
    assert fetched["displayName"] == "Atomic"
    assert {m["value"] for m in fetched["members"]} == {keep}
    witness.assert_untouched()


def test_put_group(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    a, b = users(scim, 2)
    group = create_group(scim, "Put", members=[{"value": a}])
    response = scim.put(f"/Groups/{group['id']}", group_body("Put renamed", members=[{"value": b}]))
    assert response.status_code == 200, response.content
    assert {m["value"] for m in response.json()["members"]} == {b}
    kept = scim.put(f"/Groups/{group['id']}", group_body("Put again"))
    assert {m["value"] for m in kept.json()["members"]} == {b}
    assert_scim_error(scim.put(f"/Groups/{witness.group.scim_id}", group_body("x")), 404)
    witness.assert_untouched()


def test_patch_unknown_group_is_404(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    operation = patch_op({"op": "Replace", "path": "displayName", "value": "x"})
    for group_id in (UNKNOWN_ID, "zzz", str(witness.group.scim_id)):
        assert_scim_error(scim.patch(f"/Groups/{group_id}", operation), 404)
    witness.assert_untouched()
