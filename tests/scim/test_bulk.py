"""POST /Bulk (RFC 7644 §3.7, entra-scim.md R34): bulkId references, failOnErrors, the advertised
limits, and per-operation atomicity inside one request."""

from __future__ import annotations

import json
from typing import Any

import pytest

from directory.models import Event, Group, Membership, Tenant, User
from tests.scim.conftest import SCIMClient, patch_op
from tests.scim.support import (
    BULK_REQUEST,
    BULK_RESPONSE,
    ENTERPRISE,
    ERROR,
    UNKNOWN_ID,
    OtherTenantWitness,
    assert_scim_error,
    create_user,
    group_body,
    is_scim_json,
    user_body,
)


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


def bulk(*operations: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"schemas": [BULK_REQUEST], "Operations": list(operations), **extra}


def run(scim: SCIMClient, body: Any) -> list[dict[str, Any]]:
    response = scim.post("/Bulk", body)
    assert response.status_code == 200, response.content
    assert is_scim_json(response)
    document = response.json()
    assert document["schemas"] == [BULK_RESPONSE]
    return document["Operations"]


def contoso_usernames(tenant: Tenant) -> set[str]:
    return set(
        User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE).values_list("username", flat=True)
    )


def test_bulk_id_references_user_then_group(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    results = run(
        scim,
        bulk(
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user_body("bulk1@contoso.com")},
            {"method": "POST", "path": "/Users", "bulkId": "u2", "data": user_body("bulk2@contoso.com")},
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g1",
                "data": group_body("Bulk group", members=[{"value": "bulkId:u1"}]),
            },
            {
                "method": "PATCH",
                "path": "/Groups/bulkId:g1",
                "data": patch_op({"op": "add", "path": "members", "value": [{"value": "bulkId:u2"}]}),
            },
        ),
    )
    assert [r["status"] for r in results] == ["201", "201", "201", "204"]
    assert [r.get("bulkId") for r in results] == ["u1", "u2", "g1", None]
    user_ids = [r["location"].rsplit("/", 1)[1] for r in results[:2]]
    group_id = results[2]["location"].rsplit("/", 1)[1]
    assert all(r["version"].startswith('W/"') for r in results)
    assert results[3]["location"].endswith(f"/Groups/{group_id}")
    group = Group.objects.get(scim_id=group_id)
    assert group.tenant_id == tenant.pk
    assert {str(m.user.scim_id) for m in Membership.objects.filter(group=group)} == set(user_ids)
    assert scim.get(f"/Users/{user_ids[0]}").json()["groups"][0]["value"] == group_id
    events = Event.objects.filter(
        tenant=tenant, action__in=["user.create", "group.create", "group.members_add"]
    )
    assert events.count() == 4
    assert {e.actor_user.role for e in events} == {User.Role.SERVICE}  # type: ignore[union-attr]
    assert {e.credential.split(":")[0] for e in events} == {"secret-token"}
    witness.assert_untouched()


def test_failing_operation_leaves_nothing_and_keeps_earlier_ones(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """Each operation is its own savepoint: a group whose second member is unknown is not created
    at all, the user before it stays, and the operation after it still runs."""
    results = run(
        scim,
        bulk(
            {"method": "POST", "path": "/Users", "bulkId": "ok", "data": user_body("kept@contoso.com")},
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "bad",
                "data": group_body("Half", members=[{"value": "bulkId:ok"}, {"value": UNKNOWN_ID}]),
            },
            {"method": "POST", "path": "/Users", "bulkId": "after", "data": user_body("after@contoso.com")},
        ),
    )
    assert [r["status"] for r in results] == ["201", "400", "201"]
    error = results[1]["response"]
    assert error["schemas"] == [ERROR] and error["status"] == "400" and error["scimType"] == "invalidValue"
    assert results[1]["bulkId"] == "bad" and results[1]["method"] == "POST"
    assert contoso_usernames(tenant) == {"kept@contoso.com", "after@contoso.com"}
    assert not Group.objects.filter(tenant=tenant).exists()
    assert not Event.objects.filter(tenant=tenant, action="group.create").exists()
    failure = Event.objects.get(tenant=tenant, result=Event.Result.FAILURE)
    assert (failure.status, failure.resource_type, failure.scim_type) == (400, "Group", "invalidValue")
    assert failure.actor_user is not None and failure.actor_user.role == User.Role.SERVICE
    witness.assert_untouched()


def test_fail_on_errors_stops_processing(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    results = run(
        scim,
        bulk(
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": user_body("first@contoso.com")},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"schemas": []}},
            {"method": "DELETE", "path": f"/Users/{UNKNOWN_ID}"},
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": user_body("never@contoso.com")},
            failOnErrors=2,
        ),
    )
    assert [r["status"] for r in results] == ["201", "400", "404"]
    assert contoso_usernames(tenant) == {"first@contoso.com"}
    once = run(
        scim,
        bulk(
            {"method": "POST", "path": "/Users", "bulkId": "d", "data": user_body("FIRST@contoso.com")},
            {"method": "POST", "path": "/Users", "bulkId": "e", "data": user_body("skipped@contoso.com")},
            failOnErrors=1,
        ),
    )
    assert [r["status"] for r in once] == ["409"]
    assert once[0]["response"]["scimType"] == "uniqueness"
    assert contoso_usernames(tenant) == {"first@contoso.com"}
    witness.assert_untouched()


def test_max_operations_exceeded_is_413(
    tenant: Tenant, scim: SCIMClient, settings: Any, witness: OtherTenantWitness
) -> None:
    settings.SCIM_BULK_MAX_OPERATIONS = 2
    operations = [
        {"method": "POST", "path": "/Users", "bulkId": str(i), "data": user_body(f"op{i}@contoso.com")}
        for i in range(3)
    ]
    body = assert_scim_error(scim.post("/Bulk", bulk(*operations)), 413)
    assert "maxOperations" in body["detail"]
    assert contoso_usernames(tenant) == set()
    assert len(run(scim, bulk(*operations[:2]))) == 2
    witness.assert_untouched()


def test_max_payload_size_exceeded_is_413(
    tenant: Tenant, scim: SCIMClient, settings: Any, witness: OtherTenantWitness
) -> None:
    body = bulk(
        {
            "method": "POST",
            "path": "/Users",
            "bulkId": "big",
            "data": user_body("big@contoso.com", title="x" * 200),
        }
    )
    settings.SCIM_BULK_MAX_PAYLOAD_SIZE = len(json.dumps(body)) - 1
    assert "maxPayloadSize" in assert_scim_error(scim.post("/Bulk", body), 413)["detail"]
    assert contoso_usernames(tenant) == set()
    settings.SCIM_BULK_MAX_PAYLOAD_SIZE = len(json.dumps(body))
    assert [r["status"] for r in run(scim, body)] == ["201"]
    witness.assert_untouched()


def test_bulk_cannot_reach_the_other_tenant(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """Bulk operations naming the other tenant's resources find nothing there. A manager reference
    to the other tenant's user is kept as sent (RFC 7643 §4.3 lets it name a user not here yet) but
    never linked to that user: references resolve inside the tenant only."""
    own = create_user(scim, "own@contoso.com")
    foreign_user, foreign_group = str(witness.user.scim_id), str(witness.group.scim_id)
    results = run(
        scim,
        bulk(
            {"method": "DELETE", "path": f"/Users/{foreign_user}"},
            {"method": "DELETE", "path": f"/Groups/{foreign_group}"},
            {"method": "PUT", "path": f"/Users/{foreign_user}", "data": user_body("stolen@contoso.com")},
            {
                "method": "PATCH",
                "path": f"/Groups/{foreign_group}",
                "data": patch_op({"op": "add", "path": "members", "value": [{"value": own["id"]}]}),
            },
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": group_body("Mixed", members=[{"value": own["id"]}, {"value": foreign_user}]),
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "u",
                "data": user_body(
                    "managed@contoso.com",
                    **{
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                            "manager": foreign_user
                        }
                    },
                ),
            },
        ),
    )
    assert [r["status"] for r in results] == ["404", "404", "404", "404", "400", "201"]
    assert contoso_usernames(tenant) == {"own@contoso.com", "managed@contoso.com"}
    assert not Group.objects.filter(tenant=tenant).exists()
    managed = User.objects.get(tenant=tenant, username="managed@contoso.com")
    assert (managed.manager_value, managed.manager_id) == (foreign_user, None)
    document = scim.get(f"/Users/{managed.scim_id}").json()
    assert document[ENTERPRISE]["manager"] == {"value": foreign_user}
    witness.assert_untouched()


def test_malformed_bulk_requests(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    assert_scim_error(scim.post("/Bulk", {"Operations": []}), 400, "invalidSyntax")
    assert_scim_error(scim.post("/Bulk", bulk()), 400, "invalidValue")
    assert_scim_error(scim.post("/Bulk", bulk(failOnErrors=0, Operations=[{}])), 400, "invalidValue")
    assert_scim_error(scim.get("/Bulk"), 405)
    results = run(
        scim,
        bulk(
            {"method": "POST", "path": "/Users", "data": user_body("nobulkid@contoso.com")},
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "/Schemas", "bulkId": "s", "data": {}},
            {"method": "PATCH", "path": "/Users"},
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": group_body("G", members=[{"value": "bulkId:nope"}]),
            },
            "not an object",
        ),
    )
    assert [r["status"] for r in results] == ["400", "400", "400", "400", "400", "400"]
    assert all(r["response"]["schemas"] == [ERROR] for r in results)
    assert not User.objects.filter(username="nobulkid@contoso.com").exists()
    witness.assert_untouched()


def test_bulk_needs_authentication(tenant: Tenant, witness: OtherTenantWitness) -> None:
    body = bulk({"method": "POST", "path": "/Users", "bulkId": "x", "data": user_body("anon@contoso.com")})
    assert_scim_error(SCIMClient(None).post("/Bulk", body), 401)
    assert not User.objects.filter(username="anon@contoso.com").exists()
    witness.assert_untouched()


def test_bulk_version_is_an_if_match(tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "versioned@contoso.com")
    rename = patch_op({"op": "replace", "path": "title", "value": "new"})
    results = run(
        scim,
        bulk(
            {"method": "PATCH", "path": f"/Users/{user['id']}", "version": 'W/"5"', "data": rename},
            {"method": "DELETE", "path": f"/Users/{user['id']}", "version": 1},
            {
                "method": "PATCH",
                "path": f"/Users/{user['id']}",
                "version": user["meta"]["version"],
                "data": rename,
            },
        ),
    )
    assert [r["status"] for r in results] == ["412", "400", "204"]
    assert results[2]["version"] == 'W/"2"'
    assert User.objects.get(scim_id=user["id"]).title == "new"
    witness.assert_untouched()


def test_forward_bulk_id_reference_waits_for_the_later_post(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    """RFC 7644 §3.7.2: a group may name a user that a later operation of the request creates."""
    results = run(
        scim,
        bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": group_body("Forward", members=[{"type": "User", "value": "bulkId:u"}]),
            },
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": user_body("later@contoso.com")},
        ),
    )
    assert [(r["bulkId"], r["status"]) for r in results] == [("g", "201"), ("u", "201")]
    user_id = results[1]["location"].rsplit("/", 1)[1]
    group = Group.objects.get(tenant=tenant, display_name="Forward")
    assert [str(m.user.scim_id) for m in Membership.objects.filter(group=group)] == [user_id]
    witness.assert_untouched()


def test_circular_bulk_id_references_are_409_and_create_nothing(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    results = run(
        scim,
        bulk(
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "a",
                "data": user_body("a@contoso.com", **{f"{ENTERPRISE}:manager": "bulkId:b"}),
            },
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": "b",
                "data": user_body("b@contoso.com", **{f"{ENTERPRISE}:manager": "bulkId:a"}),
            },
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "self",
                "data": group_body("S", members=[{"value": "bulkId:self"}]),
            },
            {"method": "POST", "path": "/Users", "bulkId": "c", "data": user_body("c@contoso.com")},
        ),
    )
    assert [(r["bulkId"], r["status"]) for r in results] == [
        ("a", "409"),
        ("b", "409"),
        ("self", "409"),
        ("c", "201"),
    ]
    assert results[0]["response"]["scimType"] == "invalidValue"
    assert contoso_usernames(tenant) == {"c@contoso.com"}
    assert not Group.objects.filter(tenant=tenant).exists()
    witness.assert_untouched()


def test_reference_to_a_failed_post_fails_too(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    results = run(
        scim,
        bulk(
            {
                "method": "POST",
                "path": "/Groups",
                "bulkId": "g",
                "data": group_body("G", members=[{"value": "bulkId:u"}]),
            },
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"schemas": []}},
        ),
    )
    assert [(r["bulkId"], r["status"]) for r in results] == [("g", "400"), ("u", "400")]
    assert "bulkId 'u'" in results[0]["response"]["detail"]
    assert not Group.objects.filter(tenant=tenant).exists()
    witness.assert_untouched()
