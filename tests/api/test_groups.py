"""/api/v1/groups/: groups with their member counts, one group, its direct members; fabrikam's
groups exist alongside in every test and never show."""

from __future__ import annotations

from datetime import datetime

import pytest

from directory import services
from directory.models import Group, Tenant
from tests.api.conftest import ApiClient
from tests.api.support import ACTOR, group, ids, user, walk

pytestmark = pytest.mark.django_db

GROUPS = "/api/v1/groups/"


def test_a_group_is_served_with_its_member_count(api: ApiClient, other_tenant: Tenant) -> None:
    ada, bob = user(api.tenant, "ada@contoso.com"), user(api.tenant, "bob@contoso.com")
    staff = group(api.tenant, "Staff", [ada, bob], external_id="ext-staff")
    group(other_tenant, "Staff", [user(other_tenant, "ada@fabrikam.com")])

    response = api.get(f"{GROUPS}{staff.scim_id}/")

    assert response.status_code == 200, response.content
    body = response.json()
    stored = Group.objects.get(pk=staff.pk)
    assert body == {
        "id": str(staff.scim_id),
        "display_name": "Staff",
        "external_id": "ext-staff",
        "member_count": 2,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    assert datetime.fromisoformat(body["created_at"]) == stored.created
    assert datetime.fromisoformat(body["updated_at"]) == stored.last_modified


def test_the_list_is_the_tenants_groups_in_creation_order_with_member_counts(
    api: ApiClient, other_api: ApiClient
) -> None:
    ada, bob, carol = (user(api.tenant, f"{n}@contoso.com") for n in ("ada", "bob", "carol"))
    zeta = group(api.tenant, "Zeta", [ada, bob, carol])
    alpha = group(api.tenant, "Alpha")
    mid = group(api.tenant, "Mid", [carol])
    theirs = group(other_api.tenant, "Zeta", [user(other_api.tenant, "x@fabrikam.com")])

    listed = walk(api, GROUPS)

    assert [(g["id"], g["member_count"]) for g in listed] == [
        (str(zeta.scim_id), 3),
        (str(alpha.scim_id), 0),
        (str(mid.scim_id), 1),
    ]
    assert [(g["id"], g["member_count"]) for g in walk(other_api, GROUPS)] == [(str(theirs.scim_id), 1)]


def test_member_counts_follow_membership_changes(api: ApiClient, other_tenant: Tenant) -> None:
    ada, bob = user(api.tenant, "ada@contoso.com"), user(api.tenant, "bob@contoso.com")
    staff = group(api.tenant, "Staff", [ada])
    group(other_tenant, "Staff", [user(other_tenant, "ada@fabrikam.com")])

    services.membership_add(tenant=api.tenant, actor=ACTOR, group=staff, users=[bob])
    assert api.get(f"{GROUPS}{staff.scim_id}/").json()["member_count"] == 2

    services.user_delete(tenant=api.tenant, actor=ACTOR, user=ada)
    assert api.get(f"{GROUPS}{staff.scim_id}/").json()["member_count"] == 1

    services.membership_set(tenant=api.tenant, actor=ACTOR, group=staff, users=[])
    assert api.get(f"{GROUPS}{staff.scim_id}/").json()["member_count"] == 0


def test_group_pages_follow_next_to_the_end(api: ApiClient, other_tenant: Tenant) -> None:
    created = [group(api.tenant, f"G{i:02d}") for i in range(11)]
    for i in range(3):
        group(other_tenant, f"G{i:02d}")

    assert ids(walk(api, GROUPS, limit=4)) == [str(g.scim_id) for g in created]


def test_a_groups_members_are_its_direct_members_in_creation_order(
    api: ApiClient, other_tenant: Tenant
) -> None:
    members = [user(api.tenant, f"m{i}@contoso.com") for i in range(7)]
    outsider = user(api.tenant, "outsider@contoso.com")
    staff = group(api.tenant, "Staff", list(reversed(members)))
    group(api.tenant, "Other", [outsider])
    group(other_tenant, "Staff", [user(other_tenant, "m0@fabrikam.com")])

    listed = walk(api, f"{GROUPS}{staff.scim_id}/members/", limit=3)

    assert ids(listed) == [str(u.scim_id) for u in members]
    assert listed[0]["user_name"] == "m0@contoso.com"
    assert set(listed[0]) >= {"emails", "manager", "active", "updated_at"}


def test_members_of_an_empty_group(api: ApiClient, other_tenant: Tenant) -> None:
    empty = group(api.tenant, "Empty")
    group(other_tenant, "Empty", [user(other_tenant, "x@fabrikam.com")])

    response = api.get(f"{GROUPS}{empty.scim_id}/members/")

    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


def test_a_deactivated_member_is_still_listed_with_active_false(api: ApiClient, other_tenant: Tenant) -> None:
    """Deactivation keeps memberships (entra-scim.md R7); the consumer sees who is disabled."""
    ada = user(api.tenant, "ada@contoso.com")
    staff = group(api.tenant, "Staff", [ada])
    services.user_deactivate(tenant=api.tenant, actor=ACTOR, user=ada)
    group(other_tenant, "Staff")

    listed = walk(api, f"{GROUPS}{staff.scim_id}/members/")

    assert [(m["id"], m["active"]) for m in listed] == [(str(ada.scim_id), False)]
    assert api.get(f"{GROUPS}{staff.scim_id}/").json()["member_count"] == 1


def test_unknown_and_malformed_group_ids_are_404(api: ApiClient, other_tenant: Tenant) -> None:
    group(api.tenant, "Staff")
    group(other_tenant, "Staff")

    for path in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert api.get(f"{GROUPS}{path}/").status_code == 404
        assert api.get(f"{GROUPS}{path}/members/").status_code == 404
