"""/api/v1/users/: the representation, every filter, cursor pagination, a user's groups, and the
tenant boundary (fabrikam's users and ids exist in every test and never show)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from directory import selectors, services
from directory.models import Tenant, User
from tests.api.conftest import ApiClient
from tests.api.support import ACTOR, group, ids, user, walk

pytestmark = pytest.mark.django_db

USERS = "/api/v1/users/"


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=UTC)


def set_modified(target: User, moment: str) -> None:
    User.objects.filter(pk=target.pk).update(last_modified=at(moment))


# ------------------------------------------------------------------------------------- representation


def test_a_user_is_served_in_the_apis_own_names(api: ApiClient, other_tenant: Tenant) -> None:
    ada = user(
        api.tenant,
        "ada@contoso.com",
        fields={
            "external_id": "ext-ada",
            "display_name": "Ada Lovelace",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "title": "Analyst",
            "department": "Research",
            "division": "R&D",
            "organization": "Contoso",
            "cost_center": "CC-1",
            "employee_number": "42",
        },
        emails=[
            {"type": "work", "value": "ada@contoso.com", "primary": True},
            {"type": "home", "value": "ada@example.com"},
        ],
    )
    user(other_tenant, "ada@contoso.com")

    response = api.get(f"{USERS}{ada.scim_id}/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "id": str(ada.scim_id),
        "user_name": "ada@contoso.com",
        "external_id": "ext-ada",
        "active": True,
        "display_name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "title": "Analyst",
        "department": "Research",
        "division": "R&D",
        "organization": "Contoso",
        "cost_center": "CC-1",
        "employee_number": "42",
        "emails": [
            {"value": "ada@contoso.com", "type": "work", "primary": True},
            {"value": "ada@example.com", "type": "home", "primary": False},
        ],
        "manager": None,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }
    assert datetime.fromisoformat(body["created_at"]) == User.objects.get(pk=ada.pk).created
    assert response["Content-Type"] == "application/json"


def test_a_resolved_manager_has_its_id_and_the_reference_as_sent(
    api: ApiClient, other_tenant: Tenant
) -> None:
    boss = user(api.tenant, "boss@contoso.com", fields={"external_id": "emp-1"})
    report = user(api.tenant, "report@contoso.com", manager=boss)
    by_external_id = user(api.tenant, "other@contoso.com", manager="emp-1")
    user(other_tenant, "boss@fabrikam.com")

    assert api.get(f"{USERS}{report.scim_id}/").json()["manager"] == {
        "id": str(boss.scim_id),
        "reference": str(boss.scim_id),
    }
    assert api.get(f"{USERS}{by_external_id.scim_id}/").json()["manager"] == {
        "id": str(boss.scim_id),
        "reference": "emp-1",
    }


def test_an_unresolved_manager_reference_has_id_null_until_that_user_arrives(
    api: ApiClient, other_tenant: Tenant
) -> None:
    """Entra may send a report before its manager; the API says what was sent and links it later.
    A fabrikam user with that externalId does not resolve a contoso reference."""
    user(other_tenant, "boss@fabrikam.com", fields={"external_id": "emp-77"})
    report = user(api.tenant, "report@contoso.com", manager="emp-77")

    assert api.get(f"{USERS}{report.scim_id}/").json()["manager"] == {"id": None, "reference": "emp-77"}

    boss = user(api.tenant, "boss@contoso.com", fields={"external_id": "emp-77"})
    listed = {item["id"]: item for item in walk(api, USERS)}
    assert listed[str(report.scim_id)]["manager"] == {"id": str(boss.scim_id), "reference": "emp-77"}


# --------------------------------------------------------------------------------------------- list


def test_the_list_is_the_tenants_users_in_creation_order_without_the_service_principal(
    api: ApiClient, other_api: ApiClient
) -> None:
    contoso = [user(api.tenant, f"u{i}@contoso.com") for i in (3, 1, 2)]
    fabrikam = [user(other_api.tenant, f"u{i}@fabrikam.com") for i in range(2)]
    service_principal = selectors.service_principal_get(tenant=api.tenant)

    listed = walk(api, USERS)

    assert ids(listed) == [str(u.scim_id) for u in contoso]
    assert str(service_principal.scim_id) not in ids(listed)
    assert ids(walk(other_api, USERS)) == [str(u.scim_id) for u in fabrikam]


def test_limit_sets_the_page_size_up_to_500(api: ApiClient, other_tenant: Tenant) -> None:
    for i in range(7):
        user(api.tenant, f"u{i}@contoso.com")
    user(other_tenant, "x@fabrikam.com")

    first = api.get(USERS, limit=3).json()

    assert len(first["results"]) == 3
    assert first["next"] is not None
    assert first["previous"] is None
    assert len(api.get(USERS).json()["results"]) == 7
    assert len(api.get(USERS, limit=10_000).json()["results"]) == 7


def test_following_next_returns_every_user_exactly_once(api: ApiClient, other_tenant: Tenant) -> None:
    created = [user(api.tenant, f"u{i:02d}@contoso.com") for i in range(23)]
    for i in range(5):
        user(other_tenant, f"u{i:02d}@fabrikam.com")

    listed = walk(api, USERS, limit=5)

    assert ids(listed) == [str(u.scim_id) for u in created]


def test_paging_is_stable_while_users_are_added_between_pages(api: ApiClient, other_tenant: Tenant) -> None:
    """A cursor names a position, not an offset: users created while a client pages neither shift
    the pages it has yet to read nor repeat users it has read; the new ones come at the end."""
    created = [user(api.tenant, f"u{i:02d}@contoso.com") for i in range(12)]
    added: list[User] = []

    def add_users(page: int) -> None:
        added.append(user(api.tenant, f"late{page}@contoso.com"))
        user(other_tenant, f"late{page}@fabrikam.com")

    listed = walk(api, USERS, limit=4, between_pages=add_users)

    assert ids(listed) == [str(u.scim_id) for u in created + added]
    assert len(set(ids(listed))) == len(listed)


def test_a_deleted_user_between_pages_is_skipped_not_repeated(api: ApiClient, other_tenant: Tenant) -> None:
    created = [user(api.tenant, f"u{i:02d}@contoso.com") for i in range(9)]
    user(other_tenant, "x@fabrikam.com")

    doomed = {0: 3, 1: 7}  # after page n, delete the first user the next page would have held

    def delete_next(page: int) -> None:
        victim = created[doomed[page]]
        services.user_delete(tenant=api.tenant, actor=ACTOR, user=victim)

    listed = walk(api, USERS, limit=3, between_pages=delete_next)

    assert ids(listed) == [str(u.scim_id) for i, u in enumerate(created) if i not in doomed.values()]


# ------------------------------------------------------------------------------------------ filters


def test_active_filter(api: ApiClient, other_tenant: Tenant) -> None:
    on = user(api.tenant, "on@contoso.com")
    off = user(api.tenant, "off@contoso.com")
    services.user_deactivate(tenant=api.tenant, actor=ACTOR, user=off)
    other_off = user(other_tenant, "off@fabrikam.com")
    services.user_deactivate(tenant=other_tenant, actor=ACTOR, user=other_off)

    assert ids(walk(api, USERS, active="true")) == [str(on.scim_id)]
    assert ids(walk(api, USERS, active="false")) == [str(off.scim_id)]
    assert ids(walk(api, USERS, active="False")) == [str(off.scim_id)]
    assert ids(walk(api, USERS, active="1")) == [str(on.scim_id)]
    assert ids(walk(api, USERS, active="")) == [str(on.scim_id), str(off.scim_id)]


def test_user_name_filter_is_exact_and_case_insensitive(api: ApiClient, other_tenant: Tenant) -> None:
    ada = user(api.tenant, "Ada.Lovelace@Contoso.com")
    user(api.tenant, "ada.lovelace@contoso.com.evil")
    user(other_tenant, "ada.lovelace@contoso.com")

    assert ids(walk(api, USERS, userName="ada.lovelace@contoso.com")) == [str(ada.scim_id)]
    assert ids(walk(api, USERS, userName="ADA.LOVELACE@CONTOSO.COM")) == [str(ada.scim_id)]
    assert walk(api, USERS, userName="ada.lovelace") == []


def test_email_filter_matches_any_email_case_insensitively_once_per_user(
    api: ApiClient, other_tenant: Tenant
) -> None:
    ada = user(
        api.tenant,
        "ada@contoso.com",
        emails=[
            {"type": "work", "value": "ada@contoso.com", "primary": True},
            {"type": "home", "value": "Ada.Private@Example.com"},
            {"type": "other", "value": "ada.private@example.com"},
        ],
    )
    user(api.tenant, "bob@contoso.com", emails=[{"type": "work", "value": "bob@contoso.com"}])
    user(other_tenant, "ada@fabrikam.com", emails=[{"type": "work", "value": "ada.private@example.com"}])

    assert ids(walk(api, USERS, email="ADA.PRIVATE@example.COM")) == [str(ada.scim_id)]
    assert ids(walk(api, USERS, email="ada@contoso.com")) == [str(ada.scim_id)]
    assert walk(api, USERS, email="ada") == []


def test_external_id_filter_is_exact(api: ApiClient, other_tenant: Tenant) -> None:
    ada = user(api.tenant, "ada@contoso.com", fields={"external_id": "EXT-1"})
    user(api.tenant, "bob@contoso.com", fields={"external_id": "EXT-10"})
    user(other_tenant, "ada@fabrikam.com", fields={"external_id": "EXT-1"})

    assert ids(walk(api, USERS, externalId="EXT-1")) == [str(ada.scim_id)]
    assert walk(api, USERS, externalId="ext-1") == []


def test_group_filter_lists_direct_members_of_the_tenants_group_only(
    api: ApiClient, other_tenant: Tenant
) -> None:
    ada, bob, _carol = (user(api.tenant, f"{n}@contoso.com") for n in ("ada", "bob", "carol"))
    staff = group(api.tenant, "Staff", [bob, ada])
    stranger = user(other_tenant, "eve@fabrikam.com")
    theirs = group(other_tenant, "Staff", [stranger])

    assert ids(walk(api, USERS, group=str(staff.scim_id))) == [str(ada.scim_id), str(bob.scim_id)]
    assert walk(api, USERS, group=str(theirs.scim_id)) == []


def test_updated_after_filter(api: ApiClient, other_tenant: Tenant) -> None:
    old = user(api.tenant, "old@contoso.com")
    new = user(api.tenant, "new@contoso.com")
    twin = user(other_tenant, "new@fabrikam.com")
    set_modified(old, "2026-01-01T00:00:00")
    set_modified(new, "2026-06-01T00:00:00")
    set_modified(twin, "2026-06-01T00:00:00")

    assert ids(walk(api, USERS, updated_after="2026-03-01T00:00:00Z")) == [str(new.scim_id)]
    assert ids(walk(api, USERS, updated_after="2026-03-01T02:00:00+02:00")) == [str(new.scim_id)]
    assert ids(walk(api, USERS, updated_after="2025-12-31T23:59:59Z")) == [str(old.scim_id), str(new.scim_id)]
    assert walk(api, USERS, updated_after="2026-06-01T00:00:00Z") == []


def test_filters_combine(api: ApiClient, other_tenant: Tenant) -> None:
    ada = user(api.tenant, "ada@contoso.com", fields={"department": "R"})
    bob = user(api.tenant, "bob@contoso.com")
    staff = group(api.tenant, "Staff", [ada, bob])
    services.user_deactivate(tenant=api.tenant, actor=ACTOR, user=bob)
    group(other_tenant, "Staff", [user(other_tenant, "bob@fabrikam.com")])

    assert ids(walk(api, USERS, group=str(staff.scim_id), active="false")) == [str(bob.scim_id)]
    assert walk(api, USERS, group=str(staff.scim_id), userName="carol@contoso.com") == []


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("active", "maybe", "Use true or false."),
        ("group", "not-a-uuid", "Not a valid id."),
        ("updated_after", "yesterday", "Use an ISO 8601 date-time with a zone"),
        ("updated_after", "2026-03-01T00:00:00", "Use an ISO 8601 date-time with a zone"),
        ("updated_after", "2026-13-45T00:00:00Z", "Use an ISO 8601 date-time with a zone"),
    ],
)
def test_a_bad_filter_value_is_400_naming_the_parameter(
    api: ApiClient, other_tenant: Tenant, param: str, value: str, message: str
) -> None:
    user(api.tenant, "ada@contoso.com")
    user(other_tenant, "ada@fabrikam.com")

    response = api.get(USERS, **{param: value})

    assert response.status_code == 400, response.content
    body = response.json()
    assert list(body) == [param]
    assert message in str(body[param])


# ----------------------------------------------------------------------------------- a user's groups


def test_a_users_groups_with_their_member_counts(api: ApiClient, other_tenant: Tenant) -> None:
    """The counts are of the whole group, not of the join that found the user's groups."""
    ada, bob, carol = (user(api.tenant, f"{n}@contoso.com") for n in ("ada", "bob", "carol"))
    everyone = group(api.tenant, "Everyone", [ada, bob, carol])
    group(api.tenant, "Others", [bob, carol])
    pair = group(api.tenant, "Pair", [carol, ada])
    group(api.tenant, "Empty")
    group(other_tenant, "Everyone", [user(other_tenant, "ada@fabrikam.com")])

    listed = walk(api, f"{USERS}{ada.scim_id}/groups/")

    assert [(g["id"], g["display_name"], g["member_count"]) for g in listed] == [
        (str(everyone.scim_id), "Everyone", 3),
        (str(pair.scim_id), "Pair", 2),
    ]
    assert walk(api, f"{USERS}{carol.scim_id}/groups/", limit=1)[1]["display_name"] == "Others"
