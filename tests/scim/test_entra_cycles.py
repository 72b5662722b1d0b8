"""Replays of Microsoft Entra provisioning cycles (entra-scim.md §2, §3, §6): the requests in the
order and shape Entra sends them, then the end state checked over SCIM, in the database and in
the provisioning log."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from directory.models import Event, Group, Membership, Tenant, User
from oauth.models import SecretToken
from tests.scim.conftest import SCIMClient, patch_op
from tests.scim.support import (
    ADSCIM_GROUP,
    ENTERPRISE,
    GROUP,
    SHARED_GROUP,
    SHARED_USERNAME,
    USER,
    OtherTenantWitness,
    created,
    enterprise,
    listed,
)

MANAGER = f"{ENTERPRISE}:manager"
PEOPLE = [
    ("adele.vance@contoso.com", "Adele", "Vance", "Retail", None),
    ("alex.wilber@contoso.com", "Alex", "Wilber", "Marketing", "adele.vance@contoso.com"),
    ("diego.siciliani@contoso.com", "Diego", "Siciliani", "HR", "adele.vance@contoso.com"),
    ("grady.archie@contoso.com", "Grady", "Archie", "R&D", "alex.wilber@contoso.com"),
    (SHARED_USERNAME, "Shared", "User", "Sales", None),
]
GROUPS = {"All Staff": [p[0] for p in PEOPLE], SHARED_GROUP: [PEOPLE[0][0], PEOPLE[4][0]], "Empty": []}


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


def query_user(scim: SCIMClient, user_name: str) -> list[dict[str, Any]]:
    """Entra's matching query: form-encoded, no Accept header (R36, R47)."""
    response = scim.client.get(
        "/scim/v2/Users", {"filter": f'userName eq "{user_name}"'}, HTTP_AUTHORIZATION=f"Bearer {scim.token}"
    )
    return listed(response)["Resources"]


def query_group(scim: SCIMClient, display_name: str) -> list[dict[str, Any]]:
    response = scim.get("/Groups", excludedAttributes="members", filter=f'displayName eq "{display_name}"')
    resources = listed(response)["Resources"]
    assert all("members" not in r for r in resources)
    return resources


def entra_user_body(user_name: str, given: str, family: str, department: str) -> dict[str, Any]:
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": str(uuid.uuid5(uuid.NAMESPACE_DNS, user_name)),
        "userName": user_name,
        "active": True,
        "displayName": f"{given} {family}",
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{given} {family}", "familyName": family, "givenName": given},
        "roles": [],
        ENTERPRISE: {
            "department": department,
            "employeeNumber": str(uuid.uuid5(uuid.NAMESPACE_DNS, user_name).int % 10**6),
        },
    }


def patch_ok(scim: SCIMClient, path: str, *operations: dict[str, Any]) -> None:
    response = scim.patch(path, patch_op(*operations))
    assert response.status_code in (200, 204), response.content


def initial_cycle(scim: SCIMClient) -> dict[str, str]:
    """Test Connection, then query-then-create for users, the manager step, and groups created
    empty and filled by batched `Add members` PATCHes. Returns the ids Entra would cache."""
    assert query_user(scim, str(uuid.uuid4())) == []
    assert query_group(scim, str(uuid.uuid4())) == []
    ids: dict[str, str] = {}
    for user_name, given, family, department, _ in PEOPLE:
        assert query_user(scim, user_name) == []
        body = created(scim.post("/Users", entra_user_body(user_name, given, family, department)))
        ids[user_name] = body["id"]
    for user_name, *_, manager in PEOPLE:
        if manager is not None:
            patch_ok(scim, f"/Users/{ids[user_name]}", {"op": "Add", "path": MANAGER, "value": ids[manager]})
    for display_name, members in GROUPS.items():
        assert query_group(scim, display_name) == []
        body = created(
            scim.post(
                "/Groups",
                {
                    "schemas": [GROUP, ADSCIM_GROUP],
                    "externalId": str(uuid.uuid5(uuid.NAMESPACE_URL, display_name)),
                    "displayName": display_name,
                    "meta": {"resourceType": "Group"},
                },
            )
        )
        assert body.get("members", []) == []
        ids[display_name] = body["id"]
        for start in range(0, len(members), 2):
            batch = [{"$ref": None, "value": ids[m]} for m in members[start : start + 2]]
            response = scim.patch(
                f"/Groups/{body['id']}", patch_op({"op": "Add", "path": "members", "value": batch})
            )
            assert response.status_code == 204
    return ids


def group_members(scim: SCIMClient, group_id: str) -> set[str]:
    return {m["value"] for m in scim.get(f"/Groups/{group_id}").json().get("members", [])}


def test_initial_cycle(tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness) -> None:
    ids = initial_cycle(scim)

    for user_name, given, family, department, manager in PEOPLE:
        (found,) = query_user(scim, user_name.upper())
        assert found["id"] == ids[user_name]
        assert found["active"] is True
        assert found["name"]["givenName"] == given and found["name"]["familyName"] == family
        assert found["emails"] == [{"value": user_name, "type": "work", "primary": True}]
        extension = enterprise(found)
        assert extension["department"] == department
        if manager is None:
            assert "manager" not in extension
        else:
            assert extension["manager"]["value"] == ids[manager]
        row = User.objects.get(scim_id=ids[user_name])
        assert row.tenant_id == tenant.pk
        assert (row.manager.username if row.manager else None) == manager
    for display_name, members in GROUPS.items():
        (found,) = query_group(scim, display_name)
        assert found["id"] == ids[display_name]
        assert group_members(scim, ids[display_name]) == {ids[m] for m in members}
        group = Group.objects.get(scim_id=ids[display_name])
        assert {m.user.username for m in Membership.objects.filter(group=group)} == set(members)
    assert listed(scim.get("/Users"))["totalResults"] == len(PEOPLE)

    token = SecretToken.objects.get(tenant=tenant)
    events = Event.objects.filter(tenant=tenant, actor_type=Event.ActorType.CREDENTIAL)
    assert events.filter(action="user.create").count() == len(PEOPLE)
    assert events.filter(action="user.update").count() == 3
    assert events.filter(action="group.create").count() == len(GROUPS)
    assert events.filter(action="group.members_add").count() == 4
    assert {e.credential for e in events} == {f"secret-token:{token.pk}"}
    assert {e.actor_user.role for e in events} == {User.Role.SERVICE}  # type: ignore[union-attr]
    assert not Event.objects.filter(tenant=tenant, result=Event.Result.FAILURE).exists()
    witness.assert_untouched()


def test_initial_cycle_matches_existing_users_instead_of_creating(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """A restart re-runs the initial cycle (§6.1): every query now finds one match, so Entra
    updates it and creates nothing."""
    ids = initial_cycle(scim)
    for user_name, *_ in PEOPLE:
        (match,) = query_user(scim, user_name)
        assert match["id"] == ids[user_name]
        patch_ok(
            scim,
            f"/Users/{match['id']}",
            {"op": "Replace", "path": "active", "value": "True"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": user_name},
        )
    for display_name in GROUPS:
        (match,) = query_group(scim, display_name)
        assert match["id"] == ids[display_name]
    assert User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE).count() == len(PEOPLE)
    assert Event.objects.filter(tenant=tenant, action="user.update").count() == 3
    witness.assert_untouched()


def test_incremental_cycle(tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness) -> None:
    ids = initial_cycle(scim)
    adele, alex, diego, grady, shared = (ids[p[0]] for p in PEOPLE)
    version_before = Event.objects.filter(tenant=tenant).count()

    # Attribute updates, without the flag: one Replace per path, capitalised op, string values.
    patch_ok(
        scim,
        f"/Users/{alex}",
        {"op": "Replace", "path": "displayName", "value": "Alex W."},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "alex.w@contoso.com"},
        {"op": "Replace", "path": "name.familyName", "value": "Wilber-Jones"},
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Brand"},
        {"op": "Replace", "path": "title", "value": "Lead"},
        {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": "55555555555"},
    )
    # ... and with aadOptscim062020: path-less replace with dotted and URN keys.
    patch_ok(
        scim,
        f"/Users/{diego}",
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "diego.s@contoso.com"},
        {
            "op": "replace",
            "value": {
                "displayName": "Diego S.",
                "name.givenName": "Diego",
                "name.familyName": "S.",
                f"{ENTERPRISE}:employeeNumber": "1234",
            },
        },
    )
    # Disable with the string "False", then re-enable with "True"; a repeated "True" changes nothing.
    patch_ok(scim, f"/Users/{grady}", {"op": "Replace", "path": "active", "value": "False"})
    assert query_user(scim, PEOPLE[3][0])[0]["active"] is False
    patch_ok(scim, f"/Users/{grady}", {"op": "Replace", "path": "active", "value": "True"})
    events_after_enable = Event.objects.filter(tenant=tenant).count()
    patch_ok(scim, f"/Users/{grady}", {"op": "Replace", "path": "active", "value": "True"})
    assert Event.objects.filter(tenant=tenant).count() == events_after_enable
    # Disable the shared user with the flag's boolean and leave it disabled.
    patch_ok(scim, f"/Users/{shared}", {"op": "replace", "path": "active", "value": False})
    # Manager: set (Add), change (Replace), clear (Replace with "" and Remove).
    patch_ok(
        scim, f"/Users/{adele}", {"op": "Add", "path": "manager", "value": [{"$ref": None, "value": diego}]}
    )
    patch_ok(scim, f"/Users/{grady}", {"op": "Replace", "path": MANAGER, "value": adele})
    patch_ok(scim, f"/Users/{alex}", {"op": "Replace", "path": MANAGER, "value": ""})
    patch_ok(scim, f"/Users/{diego}", {"op": "Remove", "path": MANAGER})
    # Member removal in both dialects.
    patch_ok(
        scim, f"/Groups/{ids['All Staff']}", {"op": "Remove", "path": "members", "value": [{"value": alex}]}
    )
    patch_ok(scim, f"/Groups/{ids['All Staff']}", {"op": "remove", "path": f'members[value eq "{diego}"]'})
    patch_ok(
        scim, f"/Groups/{ids[SHARED_GROUP]}", {"op": "Replace", "path": "displayName", "value": "Sales team"}
    )
    # Deletes.
    assert scim.delete(f"/Users/{grady}").status_code == 204
    assert scim.delete(f"/Groups/{ids['Empty']}").status_code == 204

    alex_doc = scim.get(f"/Users/{alex}").json()
    assert alex_doc["displayName"] == "Alex W."
    assert alex_doc["emails"] == [{"value": "alex.w@contoso.com", "type": "work", "primary": True}]
    assert alex_doc["name"]["familyName"] == "Wilber-Jones"
    assert alex_doc["title"] == "Lead"
    assert alex_doc["phoneNumbers"] == [{"value": "55555555555", "type": "mobile"}]
    assert enterprise(alex_doc)["department"] == "Brand"
    assert "manager" not in enterprise(alex_doc)
    diego_doc = scim.get(f"/Users/{diego}").json()
    assert diego_doc["displayName"] == "Diego S."
    assert diego_doc["name"] == {"formatted": "Diego Siciliani", "familyName": "S.", "givenName": "Diego"}
    assert enterprise(diego_doc)["employeeNumber"] == "1234"
    assert diego_doc["emails"][0]["value"] == "diego.s@contoso.com"
    assert "manager" not in enterprise(diego_doc)
    assert enterprise(scim.get(f"/Users/{adele}").json())["manager"]["value"] == diego
    (shared_doc,) = query_user(scim, SHARED_USERNAME)
    assert shared_doc["active"] is False
    assert scim.get(f"/Users/{grady}").status_code == 404
    assert query_user(scim, PEOPLE[3][0]) == []
    assert scim.get(f"/Groups/{ids['Empty']}").status_code == 404
    assert group_members(scim, ids["All Staff"]) == {adele, shared}
    assert group_members(scim, ids[SHARED_GROUP]) == {adele, shared}
    assert query_group(scim, "Sales team")[0]["id"] == ids[SHARED_GROUP]
    assert query_group(scim, SHARED_GROUP) == []

    rows = {u.username: u for u in User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE)}
    assert set(rows) == {PEOPLE[0][0], PEOPLE[1][0], PEOPLE[2][0], SHARED_USERNAME}
    assert rows[SHARED_USERNAME].is_active is False
    assert rows[PEOPLE[0][0]].manager == rows[PEOPLE[2][0]]
    assert rows[PEOPLE[1][0]].manager is None and rows[PEOPLE[2][0]].manager is None
    assert rows[PEOPLE[1][0]].title == "Lead" and rows[PEOPLE[1][0]].department == "Brand"
    assert Membership.objects.filter(tenant=tenant).count() == 4

    events = Event.objects.filter(tenant=tenant).order_by("id")[version_before:]
    actions = [e.action for e in events]
    assert actions.count("user.deactivate") == 2
    assert actions.count("user.reactivate") == 1
    assert actions.count("group.members_remove") == 2
    assert actions.count("user.delete") == 1 and actions.count("group.delete") == 1
    assert {e.actor_type for e in events} == {Event.ActorType.CREDENTIAL}
    assert {e.actor_user.role for e in events} == {User.Role.SERVICE}  # type: ignore[union-attr]
    token = SecretToken.objects.get(tenant=tenant)
    assert {e.credential for e in events} == {f"secret-token:{token.pk}"}
    deactivate = next(e for e in events if e.action == "user.deactivate")
    assert deactivate.changes == {"is_active": [True, False]}
    failures = Event.objects.filter(tenant=tenant, result=Event.Result.FAILURE)
    assert sorted((f.status, f.resource_id) for f in failures) == sorted([(404, grady), (404, ids["Empty"])])
    witness.assert_untouched()
