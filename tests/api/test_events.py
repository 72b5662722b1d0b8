"""/api/v1/events/: every directory change, in order, with what changed (never a password), read
page by page after a cursor. Fabrikam changes its own directory in every test, and its changes
never appear in contoso's feed. The concurrent-writer guarantee is in test_events_concurrency.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from directory import services
from directory.feed import EVENT_TYPES
from directory.models import Event, Tenant, User
from oauth.services import secret_token_issue
from tests.api.conftest import ApiClient
from tests.api.support import ACTOR, bulk_feed_events, feed, feed_all, group, user
from tests.clients import Client

pytestmark = pytest.mark.django_db

SCIM_JSON = "application/scim+json"
PASSWORD_ONE = "Tr0ub4dor&3-first-secret"
PASSWORD_TWO = "correct-horse-battery-second-secret"


def every_kind_of_change(tenant: Tenant) -> tuple[User, User, Any]:
    """One change of every feed type, in a known order (see EXPECTED)."""
    ada = user(tenant, f"ada@{tenant.slug}.com", fields={"title": "Analyst"})
    bob = user(tenant, f"bob@{tenant.slug}.com")
    services.user_update(
        tenant=tenant, actor=ACTOR, user=ada, fields={"title": "Director", "department": "R"}
    )
    services.user_deactivate(tenant=tenant, actor=ACTOR, user=ada)
    services.user_reactivate(tenant=tenant, actor=ACTOR, user=ada)
    staff = group(tenant, "Staff", [ada])
    services.group_update(tenant=tenant, actor=ACTOR, group=staff, display_name="All staff")
    services.membership_add(tenant=tenant, actor=ACTOR, group=staff, users=[bob])
    services.membership_remove(tenant=tenant, actor=ACTOR, group=staff, users=[ada])
    services.membership_set(tenant=tenant, actor=ACTOR, group=staff, users=[ada])
    services.user_delete(tenant=tenant, actor=ACTOR, user=bob)
    services.group_delete(tenant=tenant, actor=ACTOR, group=staff)
    return ada, bob, staff


EXPECTED = [
    ("user.created", "ada", ["title", "user_name"]),
    ("user.created", "bob", ["user_name"]),
    ("user.updated", "ada", ["department", "title"]),
    ("user.deactivated", "ada", ["active"]),
    ("user.reactivated", "ada", ["active"]),
    ("group.created", "staff", ["display_name", "members"]),
    ("group.updated", "staff", ["display_name"]),
    ("group.members_added", "staff", ["members"]),
    ("group.members_removed", "staff", ["members"]),
    ("group.members_replaced", "staff", ["members"]),
    ("user.deleted", "bob", ["user_name"]),
    ("group.deleted", "staff", ["display_name"]),
]


def test_every_change_type_appears_in_order_with_its_changed_fields_sorted(
    api: ApiClient, other_tenant: Tenant
) -> None:
    ada, bob, staff = every_kind_of_change(api.tenant)
    every_kind_of_change(other_tenant)
    resource = {"ada": str(ada.scim_id), "bob": str(bob.scim_id), "staff": str(staff.scim_id)}

    body = feed(api)

    events = body["events"]
    assert [(e["type"], e["resource"]["id"], e["changed_fields"]) for e in events] == [
        (kind, resource[who], fields) for kind, who, fields in EXPECTED
    ]
    assert {kind for kind, _, _ in EXPECTED} == set(EVENT_TYPES)
    assert [e["cursor"] for e in events] == [str(n) for n in range(1, len(EXPECTED) + 1)]
    assert body == {"events": events, "next_cursor": str(len(EXPECTED)), "has_more": False}


def test_an_event_in_full(api: ApiClient, other_tenant: Tenant) -> None:
    ada = user(api.tenant, "ada@contoso.com", fields={"title": "Analyst"})
    updated = services.user_update(tenant=api.tenant, actor=ACTOR, user=ada, fields={"title": "Director"})
    user(other_tenant, "ada@fabrikam.com")
    row = Event.objects.get(tenant=api.tenant, action="user.update")

    event = feed(api, after="1")["events"][0]

    assert event == {
        "id": f"evt_{row.pk}",
        "cursor": "2",
        "type": "user.updated",
        "occurred_at": event["occurred_at"],
        "resource": {"type": "user", "id": str(ada.scim_id), "name": "ada@contoso.com"},
        "changed_fields": ["title"],
        "changes": {"title": {"old": "Analyst", "new": "Director"}},
        "actor": "system",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", event["occurred_at"]), event[
        "occurred_at"
    ]
    assert updated.title == "Director"


def test_membership_changes_name_the_members(api: ApiClient, other_tenant: Tenant) -> None:
    ada, bob = user(api.tenant, "ada@contoso.com"), user(api.tenant, "bob@contoso.com")
    staff = group(api.tenant, "Staff", [ada])
    services.membership_set(tenant=api.tenant, actor=ACTOR, group=staff, users=[bob])
    group(other_tenant, "Staff")

    events = feed(api, after="2")["events"]

    assert [(e["type"], e["changes"]) for e in events] == [
        (
            "group.created",
            {"display_name": {"old": None, "new": "Staff"}, "members": {"added": [str(ada.scim_id)]}},
        ),
        ("group.members_replaced", {"members": {"added": [str(bob.scim_id)], "removed": [str(ada.scim_id)]}}),
    ]


def test_a_password_change_is_announced_but_never_its_value(api: ApiClient, other_tenant: Tenant) -> None:
    ada = user(api.tenant, "ada@contoso.com", password=PASSWORD_ONE)
    services.user_update(tenant=api.tenant, actor=ACTOR, user=ada, password=PASSWORD_TWO)
    services.user_update(
        tenant=api.tenant, actor=ACTOR, user=ada, fields={"title": "CEO"}, password=PASSWORD_ONE
    )
    user(other_tenant, "ada@fabrikam.com", password=PASSWORD_ONE)
    stored_hash = User.objects.get(pk=ada.pk).password

    response = api.get("/api/v1/events/")

    events = response.json()["events"]
    assert [(e["type"], e["changed_fields"]) for e in events] == [
        ("user.created", ["password", "user_name"]),
        ("user.updated", ["password"]),
        ("user.updated", ["password", "title"]),
    ]
    assert all("password" not in e["changes"] for e in events)
    text = response.content.decode()
    for secret in (PASSWORD_ONE, PASSWORD_TWO, stored_hash, stored_hash.split("$")[-1], "(set)"):
        assert secret not in text, secret


def test_a_password_set_over_scim_is_announced_without_its_value(
    api: ApiClient, other_tenant: Tenant, scim_token: str
) -> None:
    scim = Client()
    created = scim.post(
        "/scim/v2/Users",
        json.dumps({"userName": "ada@contoso.com", "password": PASSWORD_ONE}),
        content_type=SCIM_JSON,
        HTTP_AUTHORIZATION=f"Bearer {scim_token}",
    )
    assert created.status_code == 201, created.content
    patched = scim.patch(
        f"/scim/v2/Users/{created.json()['id']}",
        json.dumps(
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "password", "value": PASSWORD_TWO}],
            }
        ),
        content_type=SCIM_JSON,
        HTTP_AUTHORIZATION=f"Bearer {scim_token}",
    )
    assert patched.status_code in (200, 204), patched.content
    user(other_tenant, "ada@fabrikam.com")

    response = api.get("/api/v1/events/")

    events = response.json()["events"]
    assert [(e["type"], "password" in e["changed_fields"], e["actor"]) for e in events] == [
        ("user.created", True, "provisioning"),
        ("user.updated", True, "provisioning"),
    ]
    assert PASSWORD_ONE not in response.content.decode()
    assert PASSWORD_TWO not in response.content.decode()


def test_the_actor_says_who_changed_it(
    api: ApiClient, other_tenant: Tenant, manager: User, scim_token: str
) -> None:
    services.user_create(
        tenant=api.tenant, actor=services.Actor.manager(manager), username="by-manager@contoso.com"
    )
    response = Client().post(
        "/scim/v2/Users",
        json.dumps({"userName": "by-entra@contoso.com"}),
        content_type=SCIM_JSON,
        HTTP_AUTHORIZATION=f"Bearer {scim_token}",
    )
    assert response.status_code == 201, response.content
    user(api.tenant, "by-system@contoso.com")
    user(other_tenant, "x@fabrikam.com")

    events = feed(api)["events"]

    assert [
        (e["resource"]["name"], e["actor"]) for e in events if e["resource"]["name"] != manager.username
    ] == [
        ("by-manager@contoso.com", "manager"),
        ("by-entra@contoso.com", "provisioning"),
        ("by-system@contoso.com", "system"),
    ]


def test_changes_that_are_not_directory_changes_stay_out_of_the_feed(
    api: ApiClient, other_tenant: Tenant, manager: User
) -> None:
    """Credentials, tenants, manager-set passwords and failed SCIM requests are the provisioning
    log's business, not the tenant's software's."""
    ada = user(api.tenant, "ada@contoso.com")
    secret_token_issue(tenant=api.tenant, actor=ACTOR)
    services.user_set_password(
        tenant=api.tenant, actor=services.Actor.manager(manager), user=ada, password="x" * 20
    )
    services.tenant_update(tenant=api.tenant, actor=ACTOR, display_name="Contoso Ltd")
    failed = Client().post(
        "/scim/v2/Users",
        json.dumps({"userName": "ada@contoso.com"}),
        content_type=SCIM_JSON,
        HTTP_AUTHORIZATION=f"Bearer {secret_token_issue(tenant=api.tenant, actor=ACTOR)[1]}",
    )
    assert failed.status_code == 409
    user(other_tenant, "ada@fabrikam.com")
    assert Event.objects.filter(tenant=api.tenant).count() > 3

    events, _ = feed_all(api)

    assert [(e["type"], e["resource"]["name"]) for e in events] == [
        ("user.created", "manager@contoso.com"),
        ("user.created", "ada@contoso.com"),
    ]


# ------------------------------------------------------------------------------------------ paging


def test_after_and_limit_page_through_the_feed(api: ApiClient, other_tenant: Tenant) -> None:
    created = [user(api.tenant, f"u{i}@contoso.com") for i in range(7)]
    for i in range(3):
        user(other_tenant, f"u{i}@fabrikam.com")

    first = feed(api, limit=3)
    second = feed(api, after=first["next_cursor"], limit=3)
    third = feed(api, after=second["next_cursor"], limit=3)
    beyond = feed(api, after=third["next_cursor"], limit=3)

    assert [len(p["events"]) for p in (first, second, third, beyond)] == [3, 3, 1, 0]
    assert [p["has_more"] for p in (first, second, third, beyond)] == [True, True, False, False]
    assert [p["next_cursor"] for p in (first, second, third, beyond)] == ["3", "6", "7", "7"]
    names = [e["resource"]["name"] for p in (first, second, third) for e in p["events"]]
    assert names == [u.username for u in created]


def test_a_page_of_exactly_the_remaining_events_says_no_more(api: ApiClient, other_tenant: Tenant) -> None:
    for i in range(4):
        user(api.tenant, f"u{i}@contoso.com")
    user(other_tenant, "x@fabrikam.com")

    body = feed(api, limit=4)

    assert len(body["events"]) == 4
    assert body["has_more"] is False


def test_the_default_page_is_100_and_the_largest_1000(api: ApiClient, other_tenant: Tenant) -> None:
    bulk_feed_events(api.tenant, 1005)
    bulk_feed_events(other_tenant, 10)

    assert len(feed(api)["events"]) == 100
    assert len(feed(api, limit=1000)["events"]) == 1000
    last = feed(api, after="1000", limit=1000)
    assert (len(last["events"]), last["has_more"], last["next_cursor"]) == (5, False, "1005")


def test_an_empty_feed_keeps_the_cursor_it_was_given(api: ApiClient, other_tenant: Tenant) -> None:
    user(other_tenant, "x@fabrikam.com")

    assert feed(api) == {"events": [], "next_cursor": "0", "has_more": False}
    assert feed(api, after="42") == {"events": [], "next_cursor": "42", "has_more": False}


def test_a_reader_following_next_cursor_sees_each_later_change_once(
    api: ApiClient, other_tenant: Tenant
) -> None:
    seen: list[str] = []
    cursor = "0"
    for round_number in range(4):
        for i in range(round_number + 1):
            user(api.tenant, f"r{round_number}-{i}@contoso.com")
            user(other_tenant, f"r{round_number}-{i}@fabrikam.com")
        events, cursor = feed_all(api, after=cursor, limit=2)
        seen += [e["id"] for e in events]

    assert len(seen) == len(set(seen)) == 1 + 2 + 3 + 4


def test_rereading_gives_the_same_events_and_cursors(api: ApiClient, other_tenant: Tenant) -> None:
    for i in range(5):
        user(api.tenant, f"u{i}@contoso.com")
    user(other_tenant, "x@fabrikam.com")

    first = feed(api)
    user(api.tenant, "later@contoso.com")
    again = feed(api, limit=5)

    assert again["events"] == first["events"]
    assert feed(api, after="5")["events"][0]["resource"]["name"] == "later@contoso.com"


def test_each_tenant_has_its_own_positions(api: ApiClient, other_api: ApiClient) -> None:
    for i in range(3):
        user(other_api.tenant, f"x{i}@fabrikam.com")
    user(api.tenant, "ada@contoso.com")

    assert [e["cursor"] for e in feed(api)["events"]] == ["1"]
    assert [e["cursor"] for e in feed(other_api)["events"]] == ["1", "2", "3"]
    assert [e["resource"]["name"] for e in feed(other_api, after="2")["events"]] == ["x2@fabrikam.com"]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("after", "-1"),
        ("after", "abc"),
        ("after", "1.5"),
        ("after", "evt_3"),
        ("after", "²"),
        ("after", str(2**62 + 1)),
        ("after", "9" * 40),
        ("limit", "0"),
        ("limit", "1001"),
        ("limit", "-5"),
        ("limit", "ten"),
        ("limit", "³"),
    ],
)
def test_a_bad_after_or_limit_is_400(api: ApiClient, other_tenant: Tenant, param: str, value: str) -> None:
    user(api.tenant, "ada@contoso.com")
    user(other_tenant, "ada@fabrikam.com")

    response = api.get("/api/v1/events/", **{param: value})

    assert response.status_code == 400, response.content
    assert list(response.json()) == [param]
    assert "whole number" in str(response.json()[param])
