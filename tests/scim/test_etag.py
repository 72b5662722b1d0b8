"""ETags (RFC 7644 §3.14, entra-scim.md R66): every resource carries `meta.version` and an `ETag`
header; If-Match guards writes without ever being required, If-None-Match saves a GET."""

from __future__ import annotations

import pytest

from directory.models import Event, Group, Tenant, User
from tests.scim.conftest import SCIMClient, patch_op
from tests.scim.support import (
    OtherTenantWitness,
    assert_scim_error,
    create_group,
    create_user,
    group_body,
    user_body,
)


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


def test_version_and_etag_header_on_every_response(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    post = scim.post("/Users", user_body("etag@contoso.com"))
    user = post.json()
    assert user["meta"]["version"] == 'W/"1"' == post["ETag"]
    fetched = scim.get(f"/Users/{user['id']}")
    assert fetched["ETag"] == fetched.json()["meta"]["version"] == 'W/"1"'
    patched = scim.patch(f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "x"}))
    assert (patched.status_code, patched.content) == (204, b"")
    assert patched["ETag"] == 'W/"2"' == scim.get(f"/Users/{user['id']}")["ETag"]
    put = scim.put(f"/Users/{user['id']}", user_body("etag@contoso.com", title="y"))
    assert put["ETag"] == put.json()["meta"]["version"] == 'W/"3"'
    group_post = scim.post("/Groups", group_body("Versioned"))
    assert group_post["ETag"] == group_post.json()["meta"]["version"] == 'W/"1"'
    group_id = group_post.json()["id"]
    group_patch = scim.patch(
        f"/Groups/{group_id}", patch_op({"op": "add", "path": "members", "value": [{"value": user["id"]}]})
    )
    assert group_patch.status_code == 204
    assert group_patch["ETag"] == 'W/"2"' == scim.get(f"/Groups/{group_id}")["ETag"]
    listed_user = scim.get("/Users").json()["Resources"][0]
    assert listed_user["meta"]["version"] == 'W/"3"'
    witness.assert_untouched()


def test_no_op_patch_keeps_the_version(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "same@contoso.com", title="same")
    response = scim.patch(
        f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "same"})
    )
    assert response["ETag"] == user["meta"]["version"]
    witness.assert_untouched()


def test_if_match_mismatch_is_412_and_changes_nothing(
    tenant: Tenant, scim: SCIMClient, witness: OtherTenantWitness
) -> None:
    user = create_user(scim, "guarded@contoso.com", title="before")
    group = create_group(scim, "Guarded")
    stale = {"If-Match": 'W/"7"'}
    responses = [
        scim.patch(
            f"/Users/{user['id']}",
            patch_op({"op": "replace", "path": "title", "value": "after"}),
            headers=stale,
        ),
        scim.put(f"/Users/{user['id']}", user_body("guarded@contoso.com", title="after"), headers=stale),
        scim.delete(f"/Users/{user['id']}", headers=stale),
        scim.patch(
            f"/Groups/{group['id']}",
            patch_op({"op": "replace", "path": "displayName", "value": "x"}),
            headers=stale,
        ),
        scim.put(f"/Groups/{group['id']}", group_body("x"), headers=stale),
        scim.delete(f"/Groups/{group['id']}", headers=stale),
    ]
    for response in responses:
        body = assert_scim_error(response, 412)
        assert 'W/"1"' in body["detail"]
    assert User.objects.get(scim_id=user["id"]).title == "before"
    assert Group.objects.get(scim_id=group["id"]).display_name == "Guarded"
    assert Event.objects.filter(tenant=tenant, result=Event.Result.FAILURE, status=412).count() == 6
    witness.assert_untouched()


def test_if_match_match_is_applied(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "matched@contoso.com")
    group = create_group(scim, "Matched")
    operation = patch_op({"op": "replace", "path": "title", "value": "after"})
    response = scim.patch(
        f"/Users/{user['id']}?attributes=title", operation, headers={"If-Match": user["meta"]["version"]}
    )
    assert response.status_code == 200
    assert response.json()["title"] == "after"
    assert response["ETag"] == 'W/"2"'
    strong = scim.put(f"/Users/{user['id']}", user_body("matched@contoso.com"), headers={"If-Match": '"2"'})
    assert strong.status_code == 200
    listed_forms = scim.patch(f"/Users/{user['id']}", operation, headers={"If-Match": 'W/"1", W/"3"'})
    assert listed_forms.status_code == 204
    rename = patch_op({"op": "replace", "path": "displayName", "value": "Renamed"})
    assert scim.patch(f"/Groups/{group['id']}", rename, headers={"If-Match": "*"}).status_code == 204
    assert scim.delete(f"/Groups/{group['id']}", headers={"If-Match": 'W/"2"'}).status_code == 204
    assert scim.delete(f"/Users/{user['id']}", headers={"If-Match": 'W/"4"'}).status_code == 204
    witness.assert_untouched()


def test_writes_without_if_match_are_never_refused(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    """R66: Entra sends no If-Match, so an ETag is never required."""
    user = create_user(scim, "free@contoso.com")
    assert (
        scim.patch(
            f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "x"})
        ).status_code
        == 204
    )
    assert User.objects.get(scim_id=user["id"]).title == "x"
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    witness.assert_untouched()


def test_if_none_match_on_get(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    user = create_user(scim, "cached@contoso.com")
    group = create_group(scim, "Cached", members=[{"value": user["id"]}])
    for path, version in (
        (f"/Users/{user['id']}", user["meta"]["version"]),
        (f"/Groups/{group['id']}", group["meta"]["version"]),
    ):
        not_modified = scim.get(path, headers={"If-None-Match": version})
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert not_modified["ETag"] == version
        assert scim.get(path, headers={"If-None-Match": 'W/"99"'}).status_code == 200
    scim.patch(f"/Users/{user['id']}", patch_op({"op": "replace", "path": "title", "value": "changed"}))
    changed = scim.get(f"/Users/{user['id']}", headers={"If-None-Match": user["meta"]["version"]})
    assert changed.status_code == 200
    assert changed.json()["title"] == "changed"
    witness.assert_untouched()


def test_group_version_moves_when_a_member_is_deleted(scim: SCIMClient, witness: OtherTenantWitness) -> None:
    """A cached group must not be served as current once its member list changed underneath it."""
    user = create_user(scim, "leaver@contoso.com")
    report = create_user(
        scim,
        "report@contoso.com",
        **{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": user["id"]}},
    )
    group = create_group(scim, "Team", members=[{"value": user["id"]}])
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert (
        scim.get(f"/Groups/{group['id']}", headers={"If-None-Match": group["meta"]["version"]}).status_code
        == 200
    )
    assert (
        scim.get(f"/Users/{report['id']}", headers={"If-None-Match": report["meta"]["version"]}).status_code
        == 200
    )
    witness.assert_untouched()
