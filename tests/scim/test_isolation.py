"""Tenant isolation on every SCIM endpoint (architecture.md, Tenancy): the credential decides the
tenant, another tenant's ids are unknown ids, no list or filter (however written) returns another
tenant's rows, references across tenants are refused (members) or kept as sent but never linked
(manager, RFC 7643 §4.3), and each tenant's log holds only its own requests."""

from __future__ import annotations

import pytest

from directory.models import Event, Membership, Tenant, User
from tests.scim.conftest import SCIMClient, patch_op
from tests.scim.support import (
    ENTERPRISE,
    SEARCH_REQUEST,
    SHARED_EXTERNAL_ID,
    SHARED_GROUP,
    SHARED_USERNAME,
    OtherTenantWitness,
    assert_scim_error,
    create_group,
    create_user,
    group_body,
    ids_of,
    listed,
    user_body,
)


@pytest.fixture
def witness(other_tenant: Tenant) -> OtherTenantWitness:
    return OtherTenantWitness.seed(other_tenant)


@pytest.fixture
def contoso(scim: SCIMClient) -> dict[str, str]:
    """This tenant's rows with the same names the other tenant uses."""
    boss = create_user(scim, "boss@contoso.com")
    user = create_user(
        scim,
        SHARED_USERNAME,
        externalId=SHARED_EXTERNAL_ID,
        emails=[{"type": "work", "value": SHARED_USERNAME}],
        **{ENTERPRISE: {"manager": boss["id"]}},
    )
    group = create_group(scim, SHARED_GROUP, members=[{"value": user["id"]}])
    return {"user": user["id"], "boss": boss["id"], "group": group["id"]}


def test_other_tenants_ids_are_404_on_every_method(
    scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness
) -> None:
    user_id, group_id = str(witness.user.scim_id), str(witness.group.scim_id)
    responses = [
        scim.get(f"/Users/{user_id}"),
        scim.get(f"/Users/{user_id}", attributes="userName"),
        scim.put(f"/Users/{user_id}", user_body("taken@contoso.com")),
        scim.patch(f"/Users/{user_id}", patch_op({"op": "replace", "path": "active", "value": False})),
        scim.delete(f"/Users/{user_id}"),
        scim.get(f"/Groups/{group_id}"),
        scim.get(f"/Groups/{group_id}", excludedAttributes="members"),
        scim.put(f"/Groups/{group_id}", group_body("Renamed")),
        scim.patch(f"/Groups/{group_id}", patch_op({"op": "remove", "path": "members"})),
        scim.delete(f"/Groups/{group_id}"),
        scim.get(f"/Users/{group_id}"),
        scim.get(f"/Groups/{user_id}"),
    ]
    for response in responses:
        body = assert_scim_error(response, 404)
        assert "Fabrikam" not in body["detail"]
    witness.assert_untouched()


def test_the_other_tenant_sees_this_tenant_the_same_way(
    other_scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness
) -> None:
    for path in (f"/Users/{contoso['user']}", f"/Groups/{contoso['group']}"):
        assert_scim_error(other_scim.get(path), 404)
        assert_scim_error(other_scim.delete(path), 404)
    own = other_scim.get("/Users")
    assert set(ids_of(listed(own))) == {str(witness.user.scim_id), str(witness.manager.scim_id)}
    assert not set(contoso.values()) & set(own.content.decode().split('"'))
    witness.assert_rows_untouched()


@pytest.mark.parametrize(
    "filter_text",
    [
        None,
        f'userName eq "{SHARED_USERNAME}"',
        f'userName eq "{SHARED_USERNAME}" or userName eq "boss@fabrikam.com"',
        f'externalId eq "{SHARED_EXTERNAL_ID}" or externalId eq "fabrikam-boss"',
        'userName eq "nobody" or title eq "Fabrikam"',
        'not (userName eq "nobody")',
        "userName pr",
        "externalId pr or title pr",
        f'emails[value eq "{SHARED_USERNAME}"] or displayName eq "Fabrikam Boss"',
        'emails[type eq "work" or value co "example"]',
        'userName sw "s" or userName ew ".com"',
        'displayName co "Fabrikam" or userName co "@"',
        'meta.created gt "2000-01-01T00:00:00Z"',
        "manager pr or groups pr",
        'groups eq "FABRIKAM_GROUP" or manager eq "FABRIKAM_BOSS"',
        "active eq true or active eq false",
    ],
)
def test_user_lists_and_filters_never_return_the_other_tenant(
    scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness, filter_text: str | None
) -> None:
    params = {"count": "200"}
    if filter_text:
        filter_text = filter_text.replace("FABRIKAM_GROUP", str(witness.group.scim_id)).replace(
            "FABRIKAM_BOSS", str(witness.manager.scim_id)
        )
        params["filter"] = filter_text
    response = scim.get("/Users", **params)
    body = listed(response)
    assert set(ids_of(body)) <= {contoso["user"], contoso["boss"]}
    assert body["totalResults"] == len(body["Resources"])
    witness.assert_not_in(response)
    search = scim.post(
        "/Users/.search",
        {"schemas": [SEARCH_REQUEST], "count": 200, **({"filter": filter_text} if filter_text else {})},
    )
    assert set(ids_of(listed(search))) == set(ids_of(body))
    witness.assert_not_in(search)
    root = scim.post(
        "/.search", {"schemas": [SEARCH_REQUEST], **({"filter": filter_text} if filter_text else {})}
    )
    if root.status_code == 200:
        assert set(ids_of(listed(root))) <= set(contoso.values())
    witness.assert_not_in(root)


@pytest.mark.parametrize(
    "filter_text",
    [
        None,
        f'displayName eq "{SHARED_GROUP}"',
        f'displayName eq "{SHARED_GROUP}" or externalId eq "shared-group"',
        "members pr",
        'members[value eq "FABRIKAM_USER"] or displayName co "a"',
        'not (displayName eq "x")',
    ],
)
def test_group_lists_and_filters_never_return_the_other_tenant(
    scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness, filter_text: str | None
) -> None:
    params = {}
    if filter_text:
        params["filter"] = filter_text.replace("FABRIKAM_USER", str(witness.user.scim_id))
    response = scim.get("/Groups", **params)
    body = listed(response)
    assert set(ids_of(body)) <= {contoso["group"]}
    witness.assert_not_in(response)
    search = scim.post("/Groups/.search", {"schemas": [SEARCH_REQUEST], **params})
    assert ids_of(listed(search)) == ids_of(body)
    witness.assert_not_in(search)


def test_member_references_to_the_other_tenant_are_refused(
    tenant: Tenant, scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness
) -> None:
    foreign = str(witness.user.scim_id)
    group = contoso["group"]
    responses = [
        scim.post("/Groups", group_body("Mixed", members=[{"value": contoso["user"]}, {"value": foreign}])),
        scim.put(f"/Groups/{group}", group_body(SHARED_GROUP, members=[{"value": foreign}])),
        scim.patch(
            f"/Groups/{group}", patch_op({"op": "add", "path": "members", "value": [{"value": foreign}]})
        ),
        scim.patch(
            f"/Groups/{group}", patch_op({"op": "replace", "path": "members", "value": [{"value": foreign}]})
        ),
        scim.patch(f"/Groups/{group}", patch_op({"op": "add", "value": {"members": [{"value": foreign}]}})),
    ]
    for response in responses:
        body = assert_scim_error(response, 400, "invalidValue")
        assert foreign in body["detail"]
        assert "fabrikam" not in body["detail"].lower()
    members = Membership.objects.filter(tenant=tenant).values_list("user__scim_id", flat=True)
    assert {str(m) for m in members} == {contoso["user"]}
    removal = scim.patch(
        f"/Groups/{group}", patch_op({"op": "remove", "path": f'members[value eq "{foreign}"]'})
    )
    assert removal.status_code == 204
    witness.assert_untouched()


def test_manager_references_to_the_other_tenant_are_kept_as_sent_never_linked(
    tenant: Tenant, scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness
) -> None:
    """RFC 7643 §4.3 lets `manager.value` name a user that is not here (yet), so a value naming the
    other tenant's user, by its id or by its externalId, is stored as sent, but it never links to
    that user: no `$ref`, no displayName, and the other tenant's rows are untouched."""
    foreign = str(witness.manager.scim_id)
    foreign_external_id = witness.manager.external_id
    user = contoso["user"]
    created = scim.post("/Users", user_body("new@contoso.com", **{ENTERPRISE: {"manager": foreign}}))
    assert created.status_code == 201, created.content
    assert created.json()[ENTERPRISE]["manager"] == {"value": foreign}
    by_external_id = scim.post(
        "/Users", user_body("newer@contoso.com", **{ENTERPRISE: {"manager": {"value": foreign_external_id}}})
    )
    assert by_external_id.status_code == 201, by_external_id.content
    assert by_external_id.json()[ENTERPRISE]["manager"] == {"value": foreign_external_id}
    for username, value in (("new@contoso.com", foreign), ("newer@contoso.com", foreign_external_id)):
        row = User.objects.get(tenant=tenant, username=username)
        assert (row.manager_value, row.manager_id) == (value, None)

    writes = [
        scim.put(
            f"/Users/{user}", user_body(SHARED_USERNAME, **{ENTERPRISE: {"manager": {"value": foreign}}})
        ),
        scim.patch(
            f"/Users/{user}", patch_op({"op": "add", "path": f"{ENTERPRISE}:manager", "value": foreign})
        ),
        scim.patch(
            f"/Users/{user}", patch_op({"op": "Add", "path": "manager", "value": [{"value": foreign}]})
        ),
    ]
    assert [response.status_code for response in writes] == [200, 204, 204]
    row = User.objects.get(scim_id=user)
    assert (row.manager_value, row.manager_id) == (foreign, None)
    for response in (created, by_external_id, writes[0], scim.get(f"/Users/{user}")):
        manager = response.json()[ENTERPRISE]["manager"]
        assert set(manager) == {"value"}
        assert "Fabrikam" not in response.content.decode()
    assert not User.objects.filter(tenant=tenant, manager=witness.manager).exists()
    assert list(witness.manager.reports.all()) == [witness.user]
    witness.assert_untouched()


def test_the_service_principal_is_not_a_scim_user(
    tenant: Tenant, scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness
) -> None:
    service_principal = str(User.objects.get(tenant=tenant, role=User.Role.SERVICE).scim_id)
    assert service_principal not in scim.get("/Users", count="200").content.decode()
    assert_scim_error(scim.get(f"/Users/{service_principal}"), 404)
    assert_scim_error(scim.delete(f"/Users/{service_principal}"), 404)
    assert_scim_error(
        scim.patch(
            f"/Users/{service_principal}", patch_op({"op": "replace", "path": "active", "value": False})
        ),
        404,
    )
    member = patch_op({"op": "add", "path": "members", "value": [{"value": service_principal}]})
    assert_scim_error(scim.patch(f"/Groups/{contoso['group']}", member), 400, "invalidValue")
    # A manager value naming the service principal is a reference to no SCIM user: kept as sent
    # (RFC 7643 §4.3), never linked to the service principal.
    manager = patch_op({"op": "add", "path": "manager", "value": service_principal})
    assert scim.patch(f"/Users/{contoso['user']}", manager).status_code == 204
    report = User.objects.get(scim_id=contoso["user"])
    assert (report.manager_value, report.manager_id) == (service_principal, None)
    assert scim.get(f"/Users/{contoso['user']}").json()[ENTERPRISE]["manager"] == {"value": service_principal}
    created = create_user(scim, "sp-report@contoso.com", **{ENTERPRISE: {"manager": service_principal}})
    assert created[ENTERPRISE]["manager"] == {"value": service_principal}
    assert not User.objects.filter(manager__role=User.Role.SERVICE).exists()
    assert User.objects.get(scim_id=service_principal).is_active
    witness.assert_untouched()


def test_user_groups_show_only_this_tenants_groups(
    scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness
) -> None:
    fetched = scim.get(f"/Users/{contoso['user']}")
    assert [g["value"] for g in fetched.json()["groups"]] == [contoso["group"]]
    witness.assert_not_in(fetched)
    group = scim.get(f"/Groups/{contoso['group']}")
    assert [m["value"] for m in group.json()["members"]] == [contoso["user"]]
    witness.assert_not_in(group)


def test_token_of_another_tenant_on_this_host_is_401_everywhere(
    scim: SCIMClient, other_scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness
) -> None:
    intruder = SCIMClient(other_scim.token, host="contoso.testserver")
    responses = [
        intruder.get("/Users"),
        intruder.get(f"/Users/{witness.user.scim_id}"),
        intruder.get(f"/Users/{contoso['user']}"),
        intruder.post("/Users", user_body("x@fabrikam.com")),
        intruder.patch(f"/Groups/{witness.group.scim_id}", patch_op({"op": "remove", "path": "members"})),
        intruder.delete(f"/Users/{contoso['user']}"),
        intruder.post("/Users/.search", {"schemas": [SEARCH_REQUEST]}),
        intruder.post(
            "/Bulk", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []}
        ),
    ]
    for response in responses:
        assert_scim_error(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert scim.get(f"/Users/{contoso['user']}").status_code == 200
    witness.assert_untouched()


def test_failed_requests_are_logged_only_for_the_caller(
    tenant: Tenant,
    other_tenant: Tenant,
    scim: SCIMClient,
    other_scim: SCIMClient,
    contoso: dict[str, str],
    witness: OtherTenantWitness,
) -> None:
    """Fabrikam probing Contoso's ids fails in Fabrikam's log; nothing lands in Contoso's."""
    contoso_events = Event.objects.filter(tenant=tenant).count()
    other_scim.get(f"/Users/{contoso['user']}")
    other_scim.delete(f"/Groups/{contoso['group']}")
    other_scim.patch(
        f"/Groups/{witness.group.scim_id}",
        patch_op({"op": "add", "path": "members", "value": [{"value": contoso["user"]}]}),
    )
    SCIMClient(other_scim.token, host="contoso.testserver").get("/Users")
    assert Event.objects.filter(tenant=tenant).count() == contoso_events
    failures = Event.objects.filter(tenant=other_tenant, result=Event.Result.FAILURE).order_by("id")
    assert [f.status for f in failures] == [404, 404, 400]
    assert all(f.actor_user is not None and f.actor_user.tenant_id == other_tenant.pk for f in failures)
    assert not Membership.objects.filter(group=witness.group, user__tenant=tenant).exists()
    witness.assert_rows_untouched()


def test_discovery_is_the_same_for_every_tenant(
    scim: SCIMClient, other_scim: SCIMClient, contoso: dict[str, str], witness: OtherTenantWitness
) -> None:
    for path in ("/Schemas", "/ResourceTypes", "/ServiceProviderConfig"):
        assert scim.get(path).json() == other_scim.get(path).json()
        witness.assert_not_in(scim.get(path))
