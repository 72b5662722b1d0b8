"""Query budgets of /api/v1/: a page costs a fixed number of queries whatever its size, so a page of
100 users with their emails and managers costs what a page of 5 does.

Each budget is asserted on a page of 5 and a page of 100 with the same pinned number: an N+1 shows
up as a mismatch, any new per-request query as a changed pin. Counts include everything a request
costs: the bearer token, its application and tenant, and (for the feed) the
positioning of new changes under the tenant row's lock. A warm-up request first takes the
once-a-minute "last used" write out of the count.
"""

from __future__ import annotations

from typing import Any

import pytest

from directory.models import Group, Membership, Tenant
from tests.api.conftest import ApiClient
from tests.api.support import bulk_feed_events, bulk_users, feed, user

pytestmark = pytest.mark.django_db

# Pinned budgets (see the module docstring). A change here must be explained in the commit.
# 2 per request before the view: the access token with its application, the application's tenant;
# the host's tenant comes from the per-process cache (directory.cache), warmed by `warm`. The feed's
# positioning runs in its own transaction, which inside the test's transaction is a SAVEPOINT and
# RELEASE (BEGIN and COMMIT in production, not counted there).
USERS_PAGE_QUERIES = 5  # + the page, + its emails, + their managers (by id: no join to mis-plan)
GROUPS_PAGE_QUERIES = 3  # + the page with member counts
GROUP_MEMBERS_PAGE_QUERIES = 6  # + the group, + the page, + its emails, + their managers
USER_GROUPS_PAGE_QUERIES = 4  # + the user, + the page with member counts
EVENTS_PAGE_QUERIES = 7  # + savepoint, tenant row lock, positioning UPDATE (no rows), release, the page
EVENTS_PAGE_POSITIONING_QUERIES = 8  # + the tenant's new feed head


@pytest.fixture
def warm(api: ApiClient) -> ApiClient:
    assert api.get("/api/v1/users/").status_code == 200
    return api


def counted(django_assert_num_queries: Any, expected: int, api: ApiClient, path: str, **params: Any) -> Any:
    with django_assert_num_queries(expected):
        response = api.get(path, **params)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("size", [5, 100])
def test_users_page(warm: ApiClient, other_tenant: Tenant, django_assert_num_queries: Any, size: int) -> None:
    bulk_users(warm.tenant, "u", size)
    bulk_users(other_tenant, "u", 5)

    body = counted(django_assert_num_queries, USERS_PAGE_QUERIES, warm, "/api/v1/users/", limit=size)

    assert len(body["results"]) == size
    assert all(len(u["emails"]) == 2 for u in body["results"])
    assert all(u["manager"]["id"] for u in body["results"][1:])


@pytest.mark.parametrize("size", [5, 100])
def test_filtered_users_page(
    warm: ApiClient, other_tenant: Tenant, django_assert_num_queries: Any, size: int
) -> None:
    members = bulk_users(warm.tenant, "u", size)
    staff = Group.objects.create(tenant=warm.tenant, display_name="Staff")
    Membership.objects.bulk_create([Membership(tenant=warm.tenant, group=staff, user=u) for u in members])
    bulk_users(other_tenant, "u", 5)

    body = counted(
        django_assert_num_queries,
        USERS_PAGE_QUERIES,
        warm,
        "/api/v1/users/",
        limit=size,
        group=str(staff.scim_id),
        active="true",
        updated_after="2000-01-01T00:00:00Z",
    )

    assert len(body["results"]) == size


@pytest.mark.parametrize("size", [5, 100])
def test_groups_page(
    warm: ApiClient, other_tenant: Tenant, django_assert_num_queries: Any, size: int
) -> None:
    members = bulk_users(warm.tenant, "u", 3)
    groups = Group.objects.bulk_create(
        [Group(tenant=warm.tenant, display_name=f"G{i:03d}") for i in range(size)]
    )
    Membership.objects.bulk_create(
        [Membership(tenant=warm.tenant, group=g, user=u) for g in groups for u in members]
    )
    Group.objects.create(tenant=other_tenant, display_name="G000")

    body = counted(django_assert_num_queries, GROUPS_PAGE_QUERIES, warm, "/api/v1/groups/", limit=size)

    assert [g["member_count"] for g in body["results"]] == [3] * size


@pytest.mark.parametrize("size", [5, 100])
def test_group_members_page(
    warm: ApiClient, other_tenant: Tenant, django_assert_num_queries: Any, size: int
) -> None:
    members = bulk_users(warm.tenant, "u", size)
    staff = Group.objects.create(tenant=warm.tenant, display_name="Staff")
    Membership.objects.bulk_create([Membership(tenant=warm.tenant, group=staff, user=u) for u in members])
    Group.objects.create(tenant=other_tenant, display_name="Staff")

    body = counted(
        django_assert_num_queries,
        GROUP_MEMBERS_PAGE_QUERIES,
        warm,
        f"/api/v1/groups/{staff.scim_id}/members/",
        limit=size,
    )

    assert len(body["results"]) == size
    assert all(len(u["emails"]) == 2 for u in body["results"])


@pytest.mark.parametrize("size", [5, 100])
def test_a_users_groups_page(
    warm: ApiClient, other_tenant: Tenant, django_assert_num_queries: Any, size: int
) -> None:
    ada = user(warm.tenant, "ada@contoso.com")
    groups = Group.objects.bulk_create(
        [Group(tenant=warm.tenant, display_name=f"G{i:03d}") for i in range(size)]
    )
    Membership.objects.bulk_create([Membership(tenant=warm.tenant, group=g, user=ada) for g in groups])
    Group.objects.create(tenant=other_tenant, display_name="G000")

    body = counted(
        django_assert_num_queries,
        USER_GROUPS_PAGE_QUERIES,
        warm,
        f"/api/v1/users/{ada.scim_id}/groups/",
        limit=size,
    )

    assert [g["member_count"] for g in body["results"]] == [1] * size


@pytest.mark.parametrize("size", [5, 100])
def test_events_page(
    warm: ApiClient, other_tenant: Tenant, django_assert_num_queries: Any, size: int
) -> None:
    bulk_feed_events(warm.tenant, size)
    bulk_feed_events(other_tenant, 5)
    feed(warm, limit=1)  # positions them all

    body = counted(django_assert_num_queries, EVENTS_PAGE_QUERIES, warm, "/api/v1/events/", limit=size)

    assert len(body["events"]) == size


@pytest.mark.parametrize("size", [5, 100])
def test_events_page_that_positions_new_changes(
    warm: ApiClient, other_tenant: Tenant, django_assert_num_queries: Any, size: int
) -> None:
    """The first read after `size` new changes also positions them: one UPDATE whatever their number."""
    bulk_feed_events(warm.tenant, size)
    bulk_feed_events(other_tenant, 5)

    body = counted(
        django_assert_num_queries, EVENTS_PAGE_POSITIONING_QUERIES, warm, "/api/v1/events/", limit=size
    )

    assert [e["cursor"] for e in body["events"]] == [str(n) for n in range(1, size + 1)]
