"""The tenant boundary of /api/v1/: the tenant comes from the token, and another tenant's id is not
found (404, exactly like an id that never existed) on every endpoint; the service principal is
never served."""

from __future__ import annotations

import json

import pytest

from directory import selectors, services
from directory.models import Tenant
from tests.api.conftest import ApiClient
from tests.api.support import ACTOR, feed_all, group, user, walk

pytestmark = pytest.mark.django_db


def populate(tenant: Tenant) -> dict[str, str]:
    """A small directory with a change of every kind; returns the ids a leak would show."""
    ada = user(
        tenant,
        f"ada@{tenant.slug}.com",
        fields={"external_id": f"ext-{tenant.slug}"},
        emails=[{"type": "work", "value": f"ada@{tenant.slug}.com", "primary": True}],
    )
    bob = user(tenant, f"bob@{tenant.slug}.com", manager=ada)
    staff = group(tenant, f"{tenant.slug} staff", [ada])
    services.membership_add(tenant=tenant, actor=ACTOR, group=staff, users=[bob])
    services.user_update(tenant=tenant, actor=ACTOR, user=bob, fields={"title": f"{tenant.slug} title"})
    return {"user": str(ada.scim_id), "report": str(bob.scim_id), "group": str(staff.scim_id)}


def paths_for(ids: dict[str, str]) -> list[str]:
    return [
        f"/api/v1/users/{ids['user']}/",
        f"/api/v1/users/{ids['user']}/groups/",
        f"/api/v1/groups/{ids['group']}/",
        f"/api/v1/groups/{ids['group']}/members/",
    ]


def test_another_tenants_ids_are_404_on_every_endpoint(api: ApiClient, other_api: ApiClient) -> None:
    ours, theirs = populate(api.tenant), populate(other_api.tenant)

    for path in paths_for(theirs):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not found."}, response.content
    for path in paths_for(ours):
        assert api.get(path).status_code == 200, path
        assert other_api.get(path).status_code == 404, path


def test_another_tenants_ids_look_exactly_like_unknown_ids(api: ApiClient, other_api: ApiClient) -> None:
    theirs = populate(other_api.tenant)
    unknown = {key: "00000000-0000-4000-8000-000000000000" for key in theirs}

    for foreign, missing in zip(paths_for(theirs), paths_for(unknown), strict=True):
        a, b = api.get(foreign), api.get(missing)
        assert (a.status_code, a.content) == (b.status_code, b.content), foreign


def test_another_tenants_credential_never_reads_this_tenants_data(
    api: ApiClient, other_api: ApiClient
) -> None:
    """Everything fabrikam's token can reach, page by page, holds nothing of contoso's."""
    ours = populate(api.tenant)
    theirs = populate(other_api.tenant)

    seen: list[object] = []
    seen += walk(other_api, "/api/v1/users/")
    seen += walk(other_api, "/api/v1/groups/")
    for path in paths_for(theirs):
        response = other_api.get(path)
        assert response.status_code == 200, path
        seen.append(response.json())
    events, _ = feed_all(other_api)
    seen += events
    for value in (ours["group"], ours["user"], ours["report"]):
        seen.append(other_api.get("/api/v1/users/", group=value).json())

    dumped = json.dumps(seen)
    for leak in (*ours.values(), "contoso"):
        assert leak not in dumped, leak
    assert theirs["user"] in dumped
    assert {e["resource"]["id"] for e in events} == set(theirs.values())


def test_filters_never_reach_into_another_tenant(api: ApiClient, other_api: ApiClient) -> None:
    populate(api.tenant)
    theirs = populate(other_api.tenant)

    for params, matches in (
        ({"userName": "ada@fabrikam.com"}, 1),
        ({"email": "ada@fabrikam.com"}, 1),
        ({"externalId": "ext-fabrikam"}, 1),
        ({"group": theirs["group"]}, 2),
    ):
        assert walk(api, "/api/v1/users/", **params) == [], params
        assert len(walk(other_api, "/api/v1/users/", **params)) == matches, params


def test_the_service_principal_is_never_served(api: ApiClient, other_api: ApiClient) -> None:
    populate(api.tenant)
    populate(other_api.tenant)
    principal = selectors.service_principal_get(tenant=api.tenant)
    sid = str(principal.scim_id)

    listed = walk(api, "/api/v1/users/") + walk(api, "/api/v1/users/", active="true")
    assert sid not in {u["id"] for u in listed}
    assert walk(api, "/api/v1/users/", userName=principal.username) == []
    for path in (f"/api/v1/users/{sid}/", f"/api/v1/users/{sid}/groups/"):
        assert api.get(path).status_code == 404, path
    for staff in walk(api, "/api/v1/groups/"):
        assert sid not in {m["id"] for m in walk(api, f"/api/v1/groups/{staff['id']}/members/")}
    events, _ = feed_all(api)
    assert sid not in json.dumps(events)
