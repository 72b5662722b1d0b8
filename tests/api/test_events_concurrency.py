"""The change feed under concurrent writers: a reader that follows `next_cursor` never misses a
change, even when the transaction that made it commits after a later one was already read.

Real threads, each with its own database connection, and transactions held open on purpose: writer
A inserts its change and waits (bounded) before committing while writer B commits a later change
and a reader reads past it. PostgreSQL only: SQLite lets one writer in at a time, so A's open
transaction would simply block B and nothing would interleave.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from directory import services
from directory.models import Event, Tenant, User
from tests.api.conftest import ApiClient
from tests.api.support import ACTOR, feed, feed_all, user

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="Needs PostgreSQL: SQLite serialises writers on one database lock, so no transaction "
        "can commit out of order.",
    ),
    # serialized_rollback: the flush after each test then skips post_migrate, which would recreate
    # content types under new ids and break the browser tests that restore the originals later.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("platform_tenant_restored"),
]

WAIT = 20.0
"""Upper bound of every wait in this module; a thread that overruns it fails the test."""


@pytest.fixture
def platform_tenant_restored(db: None) -> None:
    """The root host (`testserver`, where the token is fetched) is the platform tenant's. A data
    migration creates it, but every transactional test empties the tables when it ends, so it is
    restored here if an earlier one took it (as tests/scim/test_concurrency.py does)."""
    Tenant.objects.get_or_create(
        is_platform=True, defaults={"slug": "platform", "name": "SecureLogin platform"}
    )


class Worker(threading.Thread):
    """A thread on its own database connection, closed when it ends; its exception is kept."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._work = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._work()
        except BaseException as exc:  # noqa: BLE001  re-raised by finish() in the test's thread
            self.error = exc
        finally:
            connection.close()

    def finish(self, timeout: float = WAIT) -> Any:
        self.join(timeout)
        assert not self.is_alive(), "a thread did not finish in time"
        if self.error is not None:
            raise self.error
        return self.result


def started(target: Callable[[], Any]) -> Worker:
    worker = Worker(target)
    worker.start()
    return worker


def held_open_update(
    tenant: Tenant, target: User, title: str, inserted: threading.Event, commit: threading.Event
) -> Callable[[], None]:
    """Writer A: makes its change, says so, then keeps the transaction open until told to commit."""

    def write() -> None:
        with transaction.atomic():
            services.user_update(tenant=tenant, actor=ACTOR, user=target, fields={"title": title})
            inserted.set()
            assert commit.wait(WAIT), "never told to commit"

    return write


def test_a_change_committed_after_a_later_one_was_read_is_still_read(
    api: ApiClient, other_tenant: Tenant
) -> None:
    ada = user(api.tenant, "ada@contoso.com")
    bob = user(api.tenant, "bob@contoso.com")
    fabrikam = user(other_tenant, "eve@fabrikam.com")
    _, cursor = feed_all(api)
    inserted, commit = threading.Event(), threading.Event()

    writer_a = started(held_open_update(api.tenant, ada, "slow", inserted, commit))
    try:
        assert inserted.wait(WAIT), "writer A never inserted its change"
        event_a = Event.objects.filter(tenant=api.tenant, action="user.update").values_list("pk", flat=True)
        assert not event_a.exists(), "A's change is visible before A commits"
        services.user_update(tenant=api.tenant, actor=ACTOR, user=bob, fields={"title": "fast"})
        services.user_update(tenant=other_tenant, actor=ACTOR, user=fabrikam, fields={"title": "fast"})

        first = started(lambda: feed(api, after=cursor)).finish()
    finally:
        commit.set()
    writer_a.finish()

    assert [(e["type"], e["resource"]["name"]) for e in first["events"]] == [
        ("user.updated", "bob@contoso.com")
    ]
    assert first["has_more"] is False
    later = started(lambda: feed(api, after=first["next_cursor"])).finish()
    assert [(e["resource"]["name"], e["changes"]) for e in later["events"]] == [
        ("ada@contoso.com", {"title": {"old": "", "new": "slow"}}),
    ]
    # A's row was inserted first (a smaller id) yet is placed after B: positions follow commits.
    a_row = Event.objects.get(tenant=api.tenant, action="user.update", resource_id=str(ada.scim_id))
    b_row = Event.objects.get(tenant=api.tenant, action="user.update", resource_id=str(bob.scim_id))
    assert a_row.pk < b_row.pk
    assert a_row.feed_position == b_row.feed_position + 1
    everything, _ = feed_all(api)
    assert [e["cursor"] for e in everything] == [str(n) for n in range(1, len(everything) + 1)]


def test_a_feed_read_does_not_wait_for_an_open_writer(api: ApiClient, other_tenant: Tenant) -> None:
    """Reading positions committed changes under the tenant row's lock; a writer's open transaction
    holds no lock a reader needs, so the read answers at once instead of queueing behind it."""
    ada = user(api.tenant, "ada@contoso.com")
    user(other_tenant, "eve@fabrikam.com")
    inserted, commit = threading.Event(), threading.Event()

    writer = started(held_open_update(api.tenant, ada, "slow", inserted, commit))
    try:
        assert inserted.wait(WAIT)
        began = time.monotonic()
        reader = started(lambda: feed(api))
        reader.join(5.0)
        blocked = reader.is_alive()
    finally:
        commit.set()
    writer.finish()
    body = reader.finish()

    assert not blocked, f"the read waited {time.monotonic() - began:.1f} s for the writer's commit"
    assert [e["type"] for e in body["events"]] == ["user.created"]


def test_readers_following_cursors_see_every_change_of_concurrent_writers_exactly_once(
    api: ApiClient, other_api: ApiClient
) -> None:
    """Six writers commit in an order nobody chose (random pauses inside their transactions) while
    two readers of each tenant follow `next_cursor` with small pages. When the writers are done and
    the readers have drained the feed, each reader has seen every change of its tenant exactly once,
    and each resource's changes in the order they were made."""
    rng = random.Random(20261203)
    tenants = [api.tenant, other_api.tenant]
    people = {t.pk: [user(t, f"w{i}@{t.slug}.com") for i in range(6)] for t in tenants}
    pauses = [[rng.uniform(0, 0.03) for _ in range(8)] for _ in range(6)]
    writing = threading.Event()
    writing.set()

    def writer(index: int) -> Callable[[], None]:
        def write() -> None:
            for step, pause in enumerate(pauses[index]):
                for tenant in tenants:
                    target = people[tenant.pk][index]
                    with transaction.atomic():
                        services.user_update(
                            tenant=tenant, actor=ACTOR, user=target, fields={"title": f"t{step}"}
                        )
                        time.sleep(pause)

        return write

    def reader(client: ApiClient) -> Callable[[], list[dict[str, Any]]]:
        def read() -> list[dict[str, Any]]:
            seen: list[dict[str, Any]] = []
            cursor = "0"
            deadline = time.monotonic() + WAIT
            while writing.is_set() and time.monotonic() < deadline:
                body = feed(client, after=cursor, limit=3)
                seen += body["events"]
                cursor = body["next_cursor"]
            events, _ = feed_all(client, after=cursor, limit=3)
            return seen + events

        return read

    readers = [started(reader(c)) for c in (api, api, other_api, other_api)]
    writers = [started(writer(i)) for i in range(6)]
    for worker in writers:
        worker.finish(WAIT * 2)
    writing.clear()
    results = [worker.finish(WAIT * 2) for worker in readers]

    for client, seen in zip((api, api, other_api, other_api), results, strict=True):
        stored = list(
            Event.objects.filter(tenant=client.tenant, action__startswith="user.")
            .order_by("feed_position")
            .values_list("pk", "resource_id", "feed_position")
        )
        assert all(position is not None for _, _, position in stored)
        assert [e["id"] for e in seen] == [f"evt_{pk}" for pk, _, _ in stored], "missed or repeated"
        assert len(seen) == 6 + 6 * 8
        for person in people[client.tenant.pk]:
            mine = [e for e in seen if e["resource"]["id"] == str(person.scim_id)]
            assert mine[0]["type"] == "user.created", person.username
            titles = [e["changes"]["title"]["new"] for e in mine[1:]]
            assert titles == [f"t{step}" for step in range(8)], person.username
