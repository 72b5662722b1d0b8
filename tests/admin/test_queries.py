"""Changelists cost a constant number of queries per page, whatever the tenant's size, and never
count more rows than the bounded paginator allows."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from directory import services
from directory.admin import BoundedCountPaginator, planner_row_estimate
from directory.models import User
from tests.admin.conftest import Directory
from tests.clients import Client

# Per request: session, signed-in user (the host's tenant comes from directory.cache); then the
# page's own queries. (Past 10,000
# matching rows PostgreSQL adds one EXPLAIN for the estimated count.)
USER_LIST_QUERIES = 6  # + group choices, bounded count, page, emails prefetch (departments are cached)
USER_SEARCH_QUERIES = 8  # + the email lookup and the exact-match probe
GROUP_LIST_QUERIES = 4  # + bounded count, page with member counts as a correlated subquery
EVENT_LIST_QUERIES = 4  # + bounded count, page


def grow(directory: Directory, users: int) -> None:
    for index in range(users):
        user = services.user_create(
            tenant=directory.tenant,
            actor=directory.entra,
            username=f"grown{index}@{directory.tenant.slug}.com",
            fields={"department": f"dept-{index % 7}"},
            emails=[{"value": f"grown{index}@{directory.tenant.slug}.com", "type": "work", "primary": True}],
        )
        group = services.group_create(
            tenant=directory.tenant, actor=directory.entra, display_name=f"Grown {index}", members=[user]
        )
        services.membership_add(
            tenant=directory.tenant, actor=directory.entra, group=group, users=[directory.alice]
        )


def count_queries(client: Client, url: str, params: dict[str, str] | None = None) -> int:
    client.get(url, params or {})
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(queries.captured_queries)


PAGES: dict[str, tuple[str, dict[str, str], int]] = {
    "users": ("admin:directory_user_changelist", {}, USER_LIST_QUERIES),
    "users filtered": (
        "admin:directory_user_changelist",
        {"is_active__exact": "1", "role": "member"},
        USER_LIST_QUERIES,
    ),
    "user search": ("admin:directory_user_changelist", {"q": "ours"}, USER_SEARCH_QUERIES),
    "groups": ("admin:directory_group_changelist", {}, GROUP_LIST_QUERIES),
    "events": ("admin:directory_event_changelist", {}, EVENT_LIST_QUERIES),
    "failed events": (
        "admin:directory_event_changelist",
        {"result__exact": "failure", "period": "7d"},
        EVENT_LIST_QUERIES,
    ),
}


@pytest.mark.parametrize("page", list(PAGES))
def test_changelist_query_count_does_not_grow_with_the_tenant(
    manager_client: Client,
    ours: Directory,
    theirs: Directory,
    django_assert_num_queries: Callable,
    page: str,
) -> None:
    name, params, expected = PAGES[page]
    url = reverse(name)
    small = count_queries(manager_client, url, params)
    grow(ours, 30)
    grow(theirs, 5)
    manager_client.get(url, params)
    with django_assert_num_queries(expected):
        response = manager_client.get(url, params)
    assert response.status_code == 200
    assert small == expected
    assert response.context["cl"].result_list


def test_operator_user_list_query_count(
    operator_client: Client, ours: Directory, theirs: Directory, django_assert_num_queries: Callable
) -> None:
    url = reverse("admin:directory_user_changelist")
    small = count_queries(operator_client, url)
    grow(ours, 10)
    grow(theirs, 10)
    assert count_queries(operator_client, url) == small


def test_page_count_is_bounded(
    manager_client: Client, ours: Directory, theirs: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("directory.admin.EXACT_COUNT_LIMIT", 3)
    grow(ours, 6)
    with CaptureQueriesContext(connection) as queries:
        response = manager_client.get(reverse("admin:directory_user_changelist"))
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"]]
    assert counts and all("LIMIT 4" in sql for sql in counts[:1])
    paginator = response.context["cl"].paginator
    total = User.objects.filter(tenant=ours.tenant).exclude(role=User.Role.SERVICE).count()
    if connection.vendor == "postgresql":
        assert paginator.is_estimate
        assert paginator.count >= 4
        assert "about" in response.content.decode()
    else:
        assert not paginator.is_estimate
        assert paginator.count == total


def test_small_results_are_counted_exactly(ours: Directory, theirs: Directory) -> None:
    paginator = BoundedCountPaginator(User.objects.filter(tenant=ours.tenant), 50)
    assert paginator.count == User.objects.filter(tenant=ours.tenant).count()
    assert not paginator.is_estimate


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner estimates exist on PostgreSQL only")
def test_planner_estimate_reads_explain(ours: Directory, theirs: Directory) -> None:
    estimate = planner_row_estimate(User.objects.filter(tenant=ours.tenant))
    assert isinstance(estimate, int) and estimate >= 1


def test_planner_estimate_is_none_elsewhere(ours: Directory, theirs: Directory) -> None:
    if connection.vendor == "postgresql":
        assert planner_row_estimate(User.objects.filter(tenant=ours.tenant)) is not None
    else:
        assert planner_row_estimate(User.objects.filter(tenant=ours.tenant)) is None


def test_group_page_query_count_does_not_grow_with_its_members(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    url = reverse("admin:directory_group_change", args=[ours.group.pk])
    small = count_queries(manager_client, url)
    grow(ours, 20)
    members = list(User.objects.filter(tenant=ours.tenant, username__startswith="grown"))
    services.membership_add(tenant=ours.tenant, actor=ours.entra, group=ours.group, users=members)
    assert count_queries(manager_client, url) == small


def test_user_page_query_count_does_not_grow_with_its_groups(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    url = reverse("admin:directory_user_change", args=[ours.alice.pk])
    small = count_queries(manager_client, url)
    grow(ours, 10)
    assert count_queries(manager_client, url) == small
