"""Webhook retries, giving up, redelivery, order per resource and leases of dead workers.

Time is driven through the services' `now=` parameters: a retry is due at the row's
`next_attempt_at`, so a test asks the worker to run "then" instead of waiting for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from api.webhooks import deliver_due
from directory import services
from directory.exceptions import NotFound
from directory.models import Tenant, WebhookDelivery
from tests.api.webhooks_support import (
    SHORT_TIMEOUT_SECONDS,
    WORKER,
    Hooks,
    Receiver,
    create_user,
    drain,
    hooks_for,
    running_receiver,
)

SYSTEM = services.Actor.system("tests")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def hooks(receiver: Receiver, tenant: Tenant, other_tenant: Tenant, settings: Any) -> Hooks:
    return hooks_for(receiver, tenant, other_tenant, settings)


def only_delivery(hooks: Hooks) -> WebhookDelivery:
    return WebhookDelivery.objects.get(endpoint=hooks.endpoint)


def test_a_500_is_retried_later_and_delivered_once_the_receiver_recovers(hooks: Hooks) -> None:
    hooks.receiver.status = 500
    create_user(hooks.tenant, "ada@contoso.com")
    before = timezone.now()
    assert deliver_due(worker=WORKER).retrying == 1

    delivery = only_delivery(hooks)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at > before + timedelta(seconds=25)
    assert drain().claimed == 0, "not due before its next attempt"

    hooks.receiver.status = 200
    assert drain(now=delivery.next_attempt_at).delivered == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert len(hooks.mine()) == 2
    assert hooks.mine()[0].body == hooks.mine()[1].body, "a retry resends the same event"
    assert hooks.theirs() == []


def test_a_timeout_is_retried_later_and_delivered_once_the_receiver_answers(
    hooks: Hooks, settings: Any
) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = SHORT_TIMEOUT_SECONDS
    hooks.receiver.stall = 5
    create_user(hooks.tenant, "ada@contoso.com")
    started = time.monotonic()
    assert deliver_due(worker=WORKER).retrying == 1
    assert 0.9 < time.monotonic() - started < 4, "the sender's 1 s budget, not the receiver's 5 s"

    delivery = only_delivery(hooks)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error == "timed out after 1 s"
    assert delivery.next_attempt_at > timezone.now()

    hooks.receiver.stall = 0
    assert drain(now=delivery.next_attempt_at).delivered == 1
    assert only_delivery(hooks).status == WebhookDelivery.Status.DELIVERED
    assert hooks.theirs() == []


def test_after_24_hours_of_failures_a_delivery_is_failed_then_redeliver_sends_it(hooks: Hooks) -> None:
    hooks.receiver.status = 500
    create_user(hooks.tenant, "ada@contoso.com")
    delivery = only_delivery(hooks)
    for _ in range(60):
        if delivery.status != WebhookDelivery.Status.PENDING:
            break
        deliver_due(worker=WORKER, now=delivery.next_attempt_at)
        delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_attempt_at is not None
    assert delivery.retry_until - timedelta(hours=1) <= delivery.last_attempt_at <= delivery.retry_until
    assert delivery.attempts == len(hooks.mine()) > 20
    assert drain(now=delivery.retry_until + timedelta(days=7)).claimed == 0, "a failed row is never due"

    with pytest.raises(NotFound):
        services.delivery_redeliver(tenant=hooks.other_tenant, actor=SYSTEM, delivery=delivery)
    services.delivery_redeliver(tenant=hooks.tenant, actor=SYSTEM, delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING

    hooks.receiver.status = 200
    assert drain().delivered == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("delivered", 200)
    assert hooks.theirs() == []


def test_changes_of_one_user_arrive_in_order_even_when_the_first_fails_at_first(hooks: Hooks) -> None:
    hooks.receiver.statuses.append(500)
    ada = create_user(hooks.tenant, "ada@contoso.com")
    services.user_update(tenant=hooks.tenant, actor=SYSTEM, user=ada, fields={"display_name": "Ada L."})
    first, second = WebhookDelivery.objects.filter(endpoint=hooks.endpoint).order_by("id")

    report = deliver_due(worker=WORKER)
    assert (report.claimed, report.retrying) == (1, 1), "the update waits behind the create"
    bob = create_user(hooks.tenant, "bob@contoso.com")
    assert drain().delivered == 1, "another user's change is not held up"
    second.refresh_from_db()
    assert second.status == WebhookDelivery.Status.PENDING and second.attempts == 0

    first.refresh_from_db()
    assert drain(now=first.next_attempt_at).delivered == 2
    sent = [(r.json()["type"], r.json()["resource"]["id"]) for r in hooks.mine()]
    assert sent == [
        ("user.created", str(ada.scim_id)),
        ("user.created", str(bob.scim_id)),
        ("user.created", str(ada.scim_id)),
        ("user.updated", str(ada.scim_id)),
    ]
    assert hooks.theirs() == []


def test_a_dead_workers_claim_is_taken_over_once_its_lease_runs_out(hooks: Hooks) -> None:
    create_user(hooks.tenant, "ada@contoso.com")
    claimed_at = timezone.now()
    [claimed] = services.deliveries_claim(worker="worker-a", now=claimed_at)
    # worker-a dies here, holding the lease.
    assert deliver_due(worker="worker-b", now=claimed_at + timedelta(seconds=30)).claimed == 0

    after_lease = claimed_at + services.DELIVERY_LEASE + timedelta(seconds=1)
    assert deliver_due(worker="worker-b", now=after_lease).delivered == 1
    assert not services.delivery_succeeded(delivery=claimed, worker="worker-a", status_code=200, latency_ms=5)
    assert not services.delivery_failed(delivery=claimed, worker="worker-a", error="late")
    delivery = only_delivery(hooks)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 1, "")
    assert len(hooks.mine()) == 1
    assert hooks.theirs() == []


def test_a_send_that_could_outlive_its_lease_is_not_started(hooks: Hooks, settings: Any) -> None:
    """Otherwise a slow send could still be running when another worker retries the row, and the
    late copy could land after the resource's next change."""
    settings.WEBHOOK_TIMEOUT_SECONDS = services.DELIVERY_LEASE.total_seconds() - 2
    create_user(hooks.tenant, "ada@contoso.com")
    report = deliver_due(worker=WORKER)
    assert (report.claimed, report.deferred, report.delivered) == (1, 1, 0)
    assert hooks.mine() == [] and only_delivery(hooks).attempts == 0
    assert hooks.theirs() == []
