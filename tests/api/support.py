"""Helpers for the /api/v1/ tests: directory data through the services, and cursor walks."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import urlsplit

from directory import services
from directory.models import Group, Tenant, User
from tests.api.conftest import ApiClient

ACTOR = services.Actor.system("tests")
MAX_PAGES = 200
"""Every cursor walk stops here, so a `next` link that loops fails the test instead of hanging it."""


def user(tenant: Tenant, username: str, **kwargs: Any) -> User:
    return services.user_create(tenant=tenant, actor=ACTOR, username=username, **kwargs)


def group(tenant: Tenant, name: str, members: list[User] | None = None, **kwargs: Any) -> Group:
    return services.group_create(
        tenant=tenant, actor=ACTOR, display_name=name, members=members or [], **kwargs
    )


def next_path(url: str | None) -> str | None:
    """A `next` link (absolute, as DRF writes it) as the path and query the test client wants."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def walk(api: ApiClient, path: str, *, between_pages: Any = None, **params: Any) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list, following `next` to the end. `between_pages(n)` runs
    after page n, e.g. to add users while a client is paging."""
    items: list[dict[str, Any]] = []
    response = api.get(path, **params)
    for page in range(MAX_PAGES):
        assert response.status_code == 200, response.content
        body = response.json()
        items.extend(body["results"])
        following = next_path(body["next"])
        if following is None:
            return items
        if between_pages is not None:
            between_pages(page)
        response = api.get(following)
    raise AssertionError(f"more than {MAX_PAGES} pages: the cursor does not end")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def feed(api: ApiClient, **params: Any) -> dict[str, Any]:
    response = api.get("/api/v1/events/", **params)
    assert response.status_code == 200, response.content
    return response.json()


def feed_all(api: ApiClient, after: str = "0", limit: int = 1000) -> tuple[list[dict[str, Any]], str]:
    """Every event after `after`, following `next_cursor` while `has_more`; and the last cursor."""
    events: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        body = feed(api, after=after, limit=limit)
        events.extend(body["events"])
        after = body["next_cursor"]
        if not body["has_more"]:
            return events, after
    raise AssertionError(f"more than {MAX_PAGES} feed pages")


def bulk_users(tenant: Tenant, prefix: str, count: int, *, emails: int = 2) -> list[User]:
    """Test data in bulk (many users through user_create would take seconds): each user has
    `emails` emails and, from the second on, the previous user as manager, so a missing
    prefetch or select_related costs a query per user."""
    from django.contrib.auth.hashers import make_password

    from directory.models import UserEmail

    password = make_password(None)
    users = User.objects.bulk_create(
        [
            User(tenant=tenant, username=f"{prefix}{i:04d}@{tenant.slug}.com", password=password)
            for i in range(count)
        ]
    )
    for previous, current in itertools.pairwise(users):
        current.manager = previous
        current.manager_value = str(previous.scim_id)
    User.objects.bulk_update(users[1:], ["manager", "manager_value"])
    UserEmail.objects.bulk_create(
        [
            UserEmail(
                tenant=tenant,
                user=u,
                type="work" if n == 0 else "other",
                primary=n == 0,
                value=f"{n}.{u.username}",
            )
            for u in users
            for n in range(emails)
        ]
    )
    return users


def bulk_feed_events(tenant: Tenant, count: int) -> None:
    """`count` directory changes as committed, not yet positioned log rows (what the services write,
    without the services' cost); the next feed read positions them."""
    from directory.models import Event

    Event.objects.bulk_create(
        [
            Event(
                tenant=tenant,
                action="user.update",
                resource_type="User",
                resource_id=f"00000000-0000-4000-8000-{i:012d}",
                resource_label=f"bulk{i}@{tenant.slug}.com",
                changes={"title": [f"t{i}", f"t{i + 1}"]},
            )
            for i in range(count)
        ],
        batch_size=1000,
    )
