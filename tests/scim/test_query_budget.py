"""Query budgets: a SCIM request costs a fixed number of queries, whatever the page size or the
group size (libraries.md §1.3 and §1.8: django-scim2 materialises every row to count and loads
members one by one; entra-scim.md R61: a group PATCH never reads the member list).

Each budget is asserted twice, on a small and a large case, with the same pinned number, so an N+1
shows up as a mismatch and any new per-request query shows up as a changed pin. Counts include
everything the request costs: tenant resolution, bearer authentication and the Event rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.test.utils import CaptureQueriesContext

from directory import services
from directory.models import (
    Group,
    Membership,
    Tenant,
    User,
    UserAddress,
    UserEmail,
    UserEntitlement,
    UserIm,
    UserPhoneNumber,
    UserPhoto,
    UserX509Certificate,
)
from tests.scim.conftest import SCIMClient, patch_op

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


@pytest.fixture
def django_assert_num_queries() -> Callable[[int], AbstractContextManager[None]]:
    """Statements a request runs, without what brackets its one transaction: in production a BEGIN
    and a COMMIT (Django logs them, SQLite's BEGIN IMMEDIATE included); inside a test's own
    transaction the first SAVEPOINT and its RELEASE stand for them. Any other SAVEPOINT counts,
    because production never needs one."""

    @contextmanager
    def assert_num_queries(expected: int) -> Iterator[None]:
        with CaptureQueriesContext(connection) as captured:
            yield
        statements = [
            q["sql"] for q in captured.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)
        ]
        if statements and statements[0].startswith("SAVEPOINT "):
            name = statements[0].removeprefix("SAVEPOINT ")
            if f"RELEASE SAVEPOINT {name}" in statements:
                statements.remove(f"RELEASE SAVEPOINT {name}")
                statements.pop(0)
        listing = "\n".join(f"{i}. {sql[:300]}" for i, sql in enumerate(statements, 1))
        assert len(statements) == expected, f"{len(statements)} statements, not {expected}:\n{listing}"

    return assert_num_queries

# Pinned budgets (see the module docstring). A change here must be explained in the commit.
# Authentication and tenant resolution cost nothing on a warm credential cache (scim.auth), which
# the `scim` fixture below warms. Reads answer from the user row and its `multi_values` copy, so a
# page is the page, its count (only when the page is full) and one read of the page's groups or
# members; a write is one locked read, the writes, the Event and the webhook outbox.
# These users all have a manager and groups: their managers are one more read (none on a page of
# users without one, as in a tenant's first cycle).
USERS_PAGE_QUERIES = 4
USER_LOOKUP_QUERIES = 3
USER_EMAIL_LOOKUP_QUERIES = 4  # the email's own index first (docs/design.md), then as above
USERS_EMPTY_PAGE_QUERIES = 1
GROUPS_PAGE_WITH_MEMBERS_QUERIES = 3
GROUPS_PAGE_WITHOUT_MEMBERS_QUERIES = 2
GROUP_ADD_MEMBERS_QUERIES = 7
GROUP_REMOVE_MEMBERS_QUERIES = 7
USER_CREATE_QUERIES = 6
USER_PATCH_QUERIES = 6
USER_PATCH_ANSWERED_QUERIES = 6
USER_PATCH_UNCHANGED_QUERIES = 1
USER_PATCH_ANSWERED_UNCHANGED_QUERIES = 3


def bulk_users(tenant: Tenant, prefix: str, count: int) -> list[User]:
    """Test data in bulk (a 500-member group through user_create would take seconds); every user has
    each kind of multi-valued attribute, so a missing prefetch costs a query per user."""
    password = make_password(None)
    users = User.objects.bulk_create(
        [
            User(tenant=tenant, username=f"{prefix}{i:04d}@{tenant.slug}.com", display_name=f"{prefix} {i}")
            for i in range(count)
        ]
    )
    for user in users:
        user.password = password
    User.objects.bulk_update(users, ["password"])
    UserEmail.objects.bulk_create(
        [UserEmail(tenant=tenant, user=u, type="work", primary=True, value=u.username) for u in users]
    )
    UserPhoneNumber.objects.bulk_create(
        [UserPhoneNumber(tenant=tenant, user=u, type="mobile", value=f"+1 555 {u.pk:07d}") for u in users]
    )
    UserAddress.objects.bulk_create(
        [UserAddress(tenant=tenant, user=u, type="work", locality="Redmond") for u in users]
    )
    UserIm.objects.bulk_create([UserIm(tenant=tenant, user=u, type="skype", value=u.username) for u in users])
    UserPhoto.objects.bulk_create(
        [
            UserPhoto(tenant=tenant, user=u, type="photo", value=f"https://photos.example.com/{u.pk}.jpg")
            for u in users
        ]
    )
    UserEntitlement.objects.bulk_create([UserEntitlement(tenant=tenant, user=u, value="E5") for u in users])
    UserX509Certificate.objects.bulk_create(
        [UserX509Certificate(tenant=tenant, user=u, value=f"MIID{u.pk:08d}") for u in users]
    )
    services.user_multi_values_rebuild(tenant=tenant, users=users)
    return users


@pytest.fixture
def directory(tenant: Tenant, other_tenant: Tenant, system_actor: services.Actor) -> dict[str, Any]:
    """60 contoso users with emails, phones, addresses, a manager and two groups each; 60 groups of
    three members; and a fabrikam directory of the same shape that must never show up."""
    shapes: dict[str, Any] = {}
    for owner in (tenant, other_tenant):
        users = bulk_users(owner, "user", 60)
        boss = services.user_create(tenant=owner, actor=system_actor, username=f"boss@{owner.slug}.com")
        User.objects.filter(pk__in=[u.pk for u in users]).update(
            manager=boss, manager_value=str(boss.scim_id)
        )
        groups = [
            services.group_create(
                tenant=owner,
                actor=system_actor,
                display_name=f"Team {i:02d}",
                members=[users[i], users[(i + 1) % 60], users[(i + 2) % 60]],
            )
            for i in range(60)
        ]
        shapes[owner.slug] = {"users": users, "groups": groups}
    return shapes


@pytest.fixture
def scim(scim: SCIMClient) -> SCIMClient:
    """The token's first use in a minute also stamps `last_used` (one UPDATE, scim.auth); a first
    request here takes that out of every count below."""
    assert scim.get("/Users", count="0").status_code == 200
    return scim


def test_users_page_costs_the_same_for_5_and_50_users(
    scim: SCIMClient, directory: dict[str, Any], django_assert_num_queries: Any
) -> None:
    other_ids = {str(u.scim_id) for u in directory["fabrikam"]["users"]}
    for count in (5, 50):
        with django_assert_num_queries(USERS_PAGE_QUERIES):
            response = scim.get("/Users", count=str(count), startIndex="2")
        assert response.status_code == 200
        body = response.json()
        assert body["itemsPerPage"] == count
        assert body["totalResults"] == 61
        resources = body["Resources"]
        assert {r["id"] for r in resources}.isdisjoint(other_ids)
        assert all(r["emails"] and r["phoneNumbers"] and r["addresses"] for r in resources)
        assert all(
            r["ims"] and r["photos"] and r["entitlements"] and r["x509Certificates"] for r in resources
        )
        assert all(len(r["groups"]) == 3 for r in resources)
        assert all(r[ENTERPRISE]["manager"]["value"] for r in resources)


def test_filtered_users_page_costs_the_same_for_1_and_50_matches(
    scim: SCIMClient, directory: dict[str, Any], django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(USERS_PAGE_QUERIES):
        response = scim.get("/Users", filter='emails[type eq "work"].value co "@contoso.com"', count="50")
    assert response.json()["itemsPerPage"] == 50
    with django_assert_num_queries(USER_LOOKUP_QUERIES):
        response = scim.get("/Users", filter='userName eq "USER0007@contoso.com"')
    assert [r["userName"] for r in response.json()["Resources"]] == ["user0007@contoso.com"]
    assert len(response.json()["Resources"][0]["groups"]) == 3
    with django_assert_num_queries(USER_EMAIL_LOOKUP_QUERIES):
        response = scim.get("/Users", filter='emails[type eq "work"].value eq "USER0008@contoso.com"')
    assert [r["userName"] for r in response.json()["Resources"]] == ["user0008@contoso.com"]


def test_a_query_matching_nothing_costs_one_query(
    scim: SCIMClient, directory: dict[str, Any], django_assert_num_queries: Any
) -> None:
    """Entra's Test Connection and every create start with a miss (entra-scim.md §2.2, §2.3); the
    fabrikam user of that name is not a match."""
    with django_assert_num_queries(USERS_EMPTY_PAGE_QUERIES):
        response = scim.get("/Users", filter='userName eq "user0007@fabrikam.com"')
    assert response.status_code == 200
    assert response.json()["totalResults"] == 0


@pytest.mark.parametrize(
    ("params", "budget", "with_members"),
    [
        ({}, GROUPS_PAGE_WITH_MEMBERS_QUERIES, True),
        ({"excludedAttributes": "members"}, GROUPS_PAGE_WITHOUT_MEMBERS_QUERIES, False),
    ],
)
def test_groups_page_costs_the_same_for_5_and_50_groups(
    scim: SCIMClient,
    directory: dict[str, Any],
    django_assert_num_queries: Any,
    params: dict[str, str],
    budget: int,
    with_members: bool,
) -> None:
    other_ids = {str(g.scim_id) for g in directory["fabrikam"]["groups"]}
    for count in (5, 50):
        with django_assert_num_queries(budget):
            response = scim.get("/Groups", count=str(count), **params)
        assert response.status_code == 200
        resources = response.json()["Resources"]
        assert len(resources) == count
        assert {r["id"] for r in resources}.isdisjoint(other_ids)
        if with_members:
            assert all(len(r["members"]) == 3 for r in resources)
        else:
            assert all("members" not in r for r in resources)


@pytest.fixture
def sized_groups(tenant: Tenant, other_tenant: Tenant, system_actor: services.Actor) -> dict[str, Any]:
    """A contoso group of 10 and one of 500 members, 100 contoso users in neither, and a fabrikam
    user who must never become a member."""
    members = bulk_users(tenant, "member", 500)
    newcomers = bulk_users(tenant, "newcomer", 100)
    small = services.group_create(
        tenant=tenant, actor=system_actor, display_name="Small", members=members[:10]
    )
    large = services.group_create(tenant=tenant, actor=system_actor, display_name="Large", members=members)
    stranger = services.user_create(tenant=other_tenant, actor=system_actor, username="stranger@fabrikam.com")
    return {"small": small, "large": large, "newcomers": newcomers, "stranger": stranger}


def member_values(users: list[User]) -> list[dict[str, str]]:
    return [{"value": str(u.scim_id)} for u in users]


@pytest.mark.parametrize("batch", [1, 50])
def test_adding_members_costs_the_same_for_a_group_of_10_and_of_500(
    scim: SCIMClient, sized_groups: dict[str, Any], django_assert_num_queries: Any, batch: int
) -> None:
    newcomers = sized_groups["newcomers"]
    for name, offset, size in (("small", 0, 10), ("large", 50, 500)):
        group: Group = sized_groups[name]
        joining = newcomers[offset : offset + batch]
        with django_assert_num_queries(GROUP_ADD_MEMBERS_QUERIES):
            response = scim.patch(
                f"/Groups/{group.scim_id}",
                patch_op({"op": "Add", "path": "members", "value": member_values(joining)}),
            )
        assert response.status_code == 204, response.content
        assert Membership.objects.filter(group=group).count() == size + batch


@pytest.mark.parametrize("batch", [1, 50])
def test_removing_members_costs_the_same_for_a_group_of_10_and_of_500(
    scim: SCIMClient, sized_groups: dict[str, Any], django_assert_num_queries: Any, batch: int
) -> None:
    for name, size in (("small", 10), ("large", 500)):
        group: Group = sized_groups[name]
        leaving = [m.user for m in Membership.objects.filter(group=group).select_related("user")[:batch]]
        with django_assert_num_queries(GROUP_REMOVE_MEMBERS_QUERIES):
            response = scim.patch(
                f"/Groups/{group.scim_id}",
                patch_op({"op": "Remove", "path": "members", "value": member_values(leaving)}),
            )
        assert response.status_code == 204, response.content
        assert Membership.objects.filter(group=group).count() == size - min(batch, size)


def test_another_tenants_user_is_refused_and_never_added(
    scim: SCIMClient, sized_groups: dict[str, Any]
) -> None:
    group: Group = sized_groups["large"]
    response = scim.patch(
        f"/Groups/{group.scim_id}",
        patch_op({"op": "Add", "path": "members", "value": member_values([sized_groups["stranger"]])}),
    )
    assert response.status_code == 400
    assert not Membership.objects.filter(user=sized_groups["stranger"]).exists()
    assert Membership.objects.filter(group=group).count() == 500


def test_user_patch_costs_the_same_whatever_the_users_groups_and_values(
    scim: SCIMClient, directory: dict[str, Any], django_assert_num_queries: Any
) -> None:
    """The PATCH Entra sends most (entra-scim.md §2.6): two users with the same shape cost the same.
    It answers 204 (RFC 7644 §3.5.2) and reads nothing back; asking for attributes costs the
    re-read of the changed user. A re-sent PATCH that changes nothing (§8 P13) skips the write and
    the re-read, and when asked still answers the stored user."""
    first, second = directory["contoso"]["users"][:2]
    twin = directory["fabrikam"]["users"][0]
    for user in (first, second):
        body = patch_op(
            {"op": "Replace", "path": "title", "value": "Director"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": f"new.{user.username}"},
        )
        with django_assert_num_queries(USER_PATCH_QUERIES):
            changed = scim.patch(f"/Users/{user.scim_id}", body)
        assert (changed.status_code, changed.content) == (204, b"")
        with django_assert_num_queries(USER_PATCH_UNCHANGED_QUERIES):
            unchanged = scim.patch(f"/Users/{user.scim_id}", body)
        assert (unchanged.status_code, unchanged.content) == (204, b"")
        assert unchanged["ETag"] == changed["ETag"]

        answered_body = patch_op({"op": "Replace", "path": "title", "value": "Chief"})
        path = f"/Users/{user.scim_id}?attributes=title,emails"
        with django_assert_num_queries(USER_PATCH_ANSWERED_QUERIES):
            answered = scim.patch(path, answered_body)
        assert answered.status_code == 200, answered.content
        assert answered.json()["title"] == "Chief"
        with django_assert_num_queries(USER_PATCH_ANSWERED_UNCHANGED_QUERIES):
            answered_unchanged = scim.patch(path, answered_body)
        assert answered_unchanged.status_code == 200
        expected = scim.get(f"/Users/{user.scim_id}", attributes="title,emails").json()
        assert answered_unchanged.json() == answered.json() == expected
        assert answered_unchanged["ETag"] == answered["ETag"] != changed["ETag"]
    twin.refresh_from_db()
    assert (twin.title, twin.version) == ("", 1)


def entra_user(name: str, *, emails: int, phones: int) -> dict[str, Any]:
    """The body Entra POSTs with its default attribute mappings (entra-scim.md §2.3)."""
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "externalId": f"ext-{name}",
        "userName": name,
        "active": True,
        "displayName": name,
        "title": "Engineer",
        "name": {"givenName": "Bench", "familyName": "User"},
        "emails": [
            {"type": "work", "value": f"{i}.{name}", "primary": i == 0} for i in range(emails)
        ],
        "phoneNumbers": [{"type": "work", "value": f"+1 555 {i:07d}"} for i in range(phones)],
        ENTERPRISE: {"employeeNumber": "7", "department": "Retail"},
    }


@pytest.mark.parametrize(("emails", "phones"), [(1, 1), (3, 2)])
def test_creating_a_user_costs_the_same_whatever_its_number_of_values(
    scim: SCIMClient,
    directory: dict[str, Any],
    django_assert_num_queries: Any,
    emails: int,
    phones: int,
) -> None:
    """The row (with its values' copy), one insert per kind of value, the pending-manager link its
    externalId may complete, the Event and the outbox; the answer is what was written."""
    with django_assert_num_queries(USER_CREATE_QUERIES):
        response = scim.post("/Users", entra_user("new@contoso.com", emails=emails, phones=phones))
    assert response.status_code == 201, response.content
    created = response.json()
    assert len(created["emails"]) == emails and len(created["phoneNumbers"]) == phones
    assert scim.get(f"/Users/{created['id']}").json() == created
    fabrikam = directory["fabrikam"]["users"][0].tenant
    assert not User.objects.filter(tenant=fabrikam, username="new@contoso.com").exists()
