"""Several webhook workers at once, each in its own thread with its own database connection.

The guarantee comes from PostgreSQL (`SELECT … FOR UPDATE SKIP LOCKED` in `deliveries_claim`), so
these run on PostgreSQL only; SQLite serialises every writer on one file lock, which would prove
nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from api.webhooks import deliver_due
from directory import services
from directory.models import Tenant, WebhookDelivery
from tests.api.webhooks_support import Hooks, Receiver, create_user, drain, hooks_for, running_receiver

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="Needs PostgreSQL: SQLite serialises all writers on one database lock, so concurrent "
        "claims would never actually race.",
    ),
    # serialized_rollback: the flush after each test then skips post_migrate, which would recreate
    # content types under new ids and break the browser tests that restore the originals later.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WORKERS = 4
SYSTEM = services.Actor.system("tests")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def hooks(receiver: Receiver, tenant: Tenant, other_tenant: Tenant, settings: Any) -> Hooks:
    return hooks_for(receiver, tenant, other_tenant, settings)


def in_parallel(work: Callable[[str], list[int]]) -> dict[str, list[int]]:
    """Run `work(worker_name)` in WORKERS threads released together by a barrier."""
    barrier = threading.Barrier(WORKERS)
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            results[name] = work(name)
        except Exception as exc:  # noqa: BLE001 - re-raised in the test thread by the assert below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(f"worker-{i}",)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_workers_claiming_at_once_never_get_the_same_delivery(hooks: Hooks) -> None:
    for i in range(40):
        create_user(hooks.tenant, f"user{i}@contoso.com")
    for i in range(8):
        create_user(hooks.other_tenant, f"user{i}@fabrikam.com")
    due = set(WebhookDelivery.objects.values_list("id", flat=True))

    def claim_until_empty(name: str) -> list[int]:
        got: list[int] = []
        while claimed := services.deliveries_claim(worker=name, limit=3):
            got += [d.pk for d in claimed]
        return got

    results = in_parallel(claim_until_empty)
    claimed = [pk for got in results.values() for pk in got]
    assert len(claimed) == len(set(claimed)), "a delivery was claimed twice"
    assert set(claimed) == due
    assert sum(1 for got in results.values() if got) >= 2, "the workers did not actually overlap"
    for name, got in results.items():
        assert set(WebhookDelivery.objects.filter(pk__in=got).values_list("claimed_by", flat=True)) <= {name}


def test_workers_sending_at_once_deliver_each_change_once_and_in_order_per_user(hooks: Hooks) -> None:
    users = [create_user(hooks.tenant, f"user{i}@contoso.com") for i in range(12)]
    for user in users:
        services.user_update(tenant=hooks.tenant, actor=SYSTEM, user=user, fields={"display_name": "Renamed"})
    create_user(hooks.other_tenant, "bob@fabrikam.com")

    def deliver_until_empty(name: str) -> list[int]:
        delivered = 0
        while (report := deliver_due(worker=name, limit=2)).claimed:
            delivered += report.delivered
        return [delivered]

    results = in_parallel(deliver_until_empty)
    assert drain().claimed == 0, "the workers left nothing due"
    assert sum(got[0] for got in results.values()) == 25

    mine = [(r.json()["resource"]["id"], r.json()["type"]) for r in hooks.mine()]
    event_ids = Counter(r.json()["id"] for r in hooks.mine())
    assert len(mine) == 24 and set(event_ids.values()) == {1}, "each change delivered exactly once"
    for user in users:
        assert [kind for rid, kind in mine if rid == str(user.scim_id)] == ["user.created", "user.updated"]
    assert [r.json()["resource"]["name"] for r in hooks.theirs()] == ["bob@fabrikam.com"]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}
