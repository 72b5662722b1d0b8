"""Concurrent SCIM requests against the live server, as Entra's parallel provisioning sends them.

Real concurrency: every request comes from its own thread with its own HTTP client, all released
together by a barrier, and the live server handles each in its own thread and database connection.
The guarantees come from PostgreSQL (unique indexes, row locks), so these run on PostgreSQL only;
SQLite serialises every writer on one file lock, which would prove nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.db import connection

from directory import services
from directory.models import Group, Membership, Tenant, User

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="Needs PostgreSQL: SQLite serialises all writers on one database lock, so parallel "
        "requests would never actually race.",
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("platform_on_root_host"),
]

SCIM_JSON = "application/scim+json; charset=utf-8"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PARALLEL = 8


@pytest.fixture
def platform_on_root_host(db: None) -> Tenant:
    """The live server is reached on 127.0.0.1, a root host, which the platform tenant answers. A
    data migration creates that tenant, but every transactional test empties the tables when it
    ends, so it is restored here if an earlier one took it (the bearer token picks the tenant)."""
    platform, _ = Tenant.objects.get_or_create(
        is_platform=True, defaults={"slug": "platform", "name": "SecureLogin platform"}
    )
    return platform


def base_url(live_server: Any) -> str:
    return f"{live_server.url}/scim/v2".replace("//localhost:", "//127.0.0.1:")


def in_parallel(
    calls: list[Callable[[httpx.Client], httpx.Response]], token_of: list[str], url: str
) -> list[Any]:
    """Run each call in its own thread with its own client; a barrier releases them together."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(index: int) -> None:
        headers = {
            "Authorization": f"Bearer {token_of[index]}",
            "Content-Type": SCIM_JSON,
            "Connection": "close",
        }
        with httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False) as client:
            barrier.wait(timeout=30)
            try:
                results[index] = calls[index](client)
            except httpx.HTTPError as exc:
                results[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request never finished"
    return results


def post(path: str, body: dict[str, Any]) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(path, json=body, headers={"Content-Type": SCIM_JSON})


def patch(path: str, *operations: dict[str, Any]) -> Callable[[httpx.Client], httpx.Response]:
    body = {"schemas": [PATCH_OP], "Operations": list(operations)}
    return lambda client: client.patch(path, json=body, headers={"Content-Type": SCIM_JSON})


def test_eight_parallel_creates_of_one_username_give_one_201_and_seven_409(
    live_server: Any, tenant: Tenant, other_tenant: Tenant, scim_token: str, other_scim_token: str
) -> None:
    """entra-scim.md R42, C18: the database's unique index decides, whatever the interleaving; letter
    case differs between requests (userName is unique case-insensitively). A ninth request, from
    fabrikam with the same userName at the same moment, is another tenant's user and succeeds."""
    names = ["Race.User@Contoso.com" if i % 2 else "race.user@contoso.com" for i in range(PARALLEL)]
    calls = [post("/Users", {"userName": name, "externalId": f"ext-{i}"}) for i, name in enumerate(names)]
    calls.append(post("/Users", {"userName": "race.user@contoso.com", "externalId": "ext-0"}))
    tokens = [scim_token] * PARALLEL + [other_scim_token]

    responses = in_parallel(calls, tokens, base_url(live_server))

    contoso = responses[:PARALLEL]
    assert all(isinstance(r, httpx.Response) for r in responses), responses
    assert Counter(r.status_code for r in contoso) == {201: 1, 409: PARALLEL - 1}, [r.text for r in contoso]
    for conflict in (r for r in contoso if r.status_code == 409):
        body = conflict.json()
        assert body["scimType"] == "uniqueness"
        assert body["status"] == "409"
        assert conflict.headers["Content-Type"].startswith("application/scim+json")
    assert responses[PARALLEL].status_code == 201, responses[PARALLEL].text
    assert User.objects.filter(tenant=tenant, username__iexact="race.user@contoso.com").count() == 1
    assert User.objects.filter(tenant=other_tenant, username="race.user@contoso.com").count() == 1
    winner = next(r for r in contoso if r.status_code == 201).json()
    assert User.objects.get(tenant=tenant, username__iexact="race.user@contoso.com").scim_id == uuid.UUID(
        winner["id"]
    )


def test_eight_parallel_member_additions_to_one_group_all_land(
    live_server: Any,
    tenant: Tenant,
    other_tenant: Tenant,
    scim_token: str,
    other_scim_token: str,
    system_actor: services.Actor,
) -> None:
    """Entra adds members in parallel batches (entra-scim.md R59, R61): every PATCH adds its own
    members and none is lost to another's write. A fabrikam user offered at the same moment is
    refused, and a fabrikam PATCH of the contoso group's id finds nothing."""
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Parallel")
    existing = services.user_create(tenant=tenant, actor=system_actor, username="already@contoso.com")
    group = services.membership_add(tenant=tenant, actor=system_actor, group=group, users=[existing])
    batches = [
        [
            services.user_create(tenant=tenant, actor=system_actor, username=f"m{b}-{i}@contoso.com")
            for i in range(3)
        ]
        for b in range(PARALLEL)
    ]
    stranger = services.user_create(tenant=other_tenant, actor=system_actor, username="stranger@fabrikam.com")
    path = f"/Groups/{group.scim_id}"
    calls = [
        patch(path, {"op": "Add", "path": "members", "value": [{"value": str(u.scim_id)} for u in batch]})
        for batch in batches
    ]
    calls.append(patch(path, {"op": "Add", "path": "members", "value": [{"value": str(stranger.scim_id)}]}))
    calls.append(patch(path, {"op": "Add", "path": "members", "value": [{"value": str(stranger.scim_id)}]}))
    tokens = [scim_token] * (PARALLEL + 1) + [other_scim_token]

    responses = in_parallel(calls, tokens, base_url(live_server))

    assert [r.status_code for r in responses[:PARALLEL]] == [204] * PARALLEL, [r.text for r in responses]
    assert responses[PARALLEL].status_code == 400, responses[PARALLEL].text
    assert responses[PARALLEL + 1].status_code == 404, responses[PARALLEL + 1].text
    members = set(Membership.objects.filter(group=group).values_list("user_id", flat=True))
    assert members == {existing.pk} | {u.pk for batch in batches for u in batch}
    assert not Membership.objects.filter(user=stranger).exists()
    assert Group.objects.get(pk=group.pk).version == group.version + PARALLEL
    assert not Group.objects.filter(tenant=other_tenant).exists()


ATTRIBUTE_PATCHES: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any], Any]] = [
    ({"op": "Replace", "path": "title", "value": "Director"}, lambda d: d.get("title"), "Director"),
    ({"op": "Replace", "path": "displayName", "value": "Ada L."}, lambda d: d.get("displayName"), "Ada L."),
    (
        {"op": "Replace", "path": "name.givenName", "value": "Augusta"},
        lambda d: d["name"]["givenName"],
        "Augusta",
    ),
    (
        {"op": "Replace", "path": "name.familyName", "value": "King"},
        lambda d: d["name"]["familyName"],
        "King",
    ),
    (
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "ada.king@contoso.com"},
        lambda d: [e["value"] for e in d["emails"] if e.get("type") == "work"],
        ["ada.king@contoso.com"],
    ),
    (
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+44 20 7946 0000"},
        lambda d: [p["value"] for p in d.get("phoneNumbers", []) if p.get("type") == "mobile"],
        ["+44 20 7946 0000"],
    ),
    (
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Analytics"},
        lambda d: d.get(ENTERPRISE, {}).get("department"),
        "Analytics",
    ),
    ({"op": "Replace", "path": "active", "value": "False"}, lambda d: d["active"], False),
]


def test_parallel_patches_of_different_attributes_of_one_user_lose_nothing(
    live_server: Any,
    tenant: Tenant,
    other_tenant: Tenant,
    scim_token: str,
    system_actor: services.Actor,
) -> None:
    """Entra may update one user from several workers at once (entra-scim.md §6.1). Each PATCH reads
    and rewrites the user, so without the row lock a later write would put back an attribute the
    other changed, or drop an email or phone number written in between. Three rounds, to give the
    interleavings a chance; fabrikam's user of the same userName is never touched."""
    for round_number in range(3):
        user = services.user_create(
            tenant=tenant,
            actor=system_actor,
            username=f"ada{round_number}@contoso.com",
            fields={
                "title": "Analyst",
                "display_name": "Ada",
                "given_name": "Ada",
                "family_name": "Lovelace",
            },
            emails=[
                {"type": "work", "value": "ada@contoso.com", "primary": True},
                {"type": "other", "value": "ada@example.com"},
            ],
            phone_numbers=[{"type": "work", "value": "+44 20 7946 0001"}],
        )
        twin = services.user_create(
            tenant=other_tenant,
            actor=system_actor,
            username=f"ada{round_number}@contoso.com",
            fields={"title": "Fabrikam"},
        )
        path = f"/Users/{user.scim_id}"
        calls = [patch(path, operation) for operation, _, _ in ATTRIBUTE_PATCHES]
        calls.append(patch(f"/Users/{twin.scim_id}", {"op": "Replace", "path": "title", "value": "Nope"}))
        tokens = [scim_token] * len(calls)

        responses = in_parallel(calls, tokens, base_url(live_server))

        assert [r.status_code for r in responses[:-1]] == [204] * len(ATTRIBUTE_PATCHES), [
            r.text for r in responses
        ]
        assert responses[-1].status_code == 404
        with httpx.Client(headers={"Authorization": f"Bearer {scim_token}"}, trust_env=False) as client:
            document = client.get(f"{base_url(live_server)}{path}").json()
        for _, read, expected in ATTRIBUTE_PATCHES:
            assert read(document) == expected, document
        assert [e["value"] for e in document["emails"] if e.get("type") == "other"] == ["ada@example.com"]
        assert [p["value"] for p in document["phoneNumbers"] if p.get("type") == "work"] == [
            "+44 20 7946 0001"
        ]
        assert User.objects.get(pk=user.pk).version == user.version + len(ATTRIBUTE_PATCHES)
        twin.refresh_from_db()
        assert twin.title == "Fabrikam"
        assert twin.version == 1
