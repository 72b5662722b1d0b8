"""Webhooks: what a receiver gets (body, headers, signature) and which changes become deliveries.

Every delivery crosses a real socket to a local receiver (tests/api/webhooks_support.py). The
second tenant has an endpoint on the same receiver in every test, and hears nothing of the first
tenant's changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from api.webhooks import (
    SECRET_UNREADABLE,
    USER_AGENT,
    deliver_due,
    send,
    signature_header,
    verify_signature,
)
from directory import services
from directory.models import Event, Tenant, WebhookDelivery
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


# ------------------------------------------------------------------------------ the signature


BODY = b'{"id":"evt_1","type":"user.created"}'
SECRET = "whsec_test-secret"


def test_a_signature_verifies_with_the_secret_that_made_it() -> None:
    assert verify_signature(SECRET, signature_header(SECRET, BODY), BODY)
    assert verify_signature(SECRET, signature_header(SECRET, BODY), BODY.decode())


@pytest.mark.parametrize(
    ("secret", "body", "age"),
    [
        pytest.param("whsec_another-secret", BODY, 0, id="wrong secret"),
        pytest.param(SECRET, BODY.replace(b"created", b"deleted"), 0, id="tampered body"),
        pytest.param(SECRET, BODY + b" ", 0, id="one byte added"),
        pytest.param(SECRET, BODY, 301, id="older than five minutes"),
        pytest.param(SECRET, BODY, -301, id="five minutes in the future"),
    ],
)
def test_a_signature_fails_for_another_secret_body_or_time(secret: str, body: bytes, age: int) -> None:
    header = signature_header(SECRET, BODY, timestamp=int(time.time()) - age)
    assert not verify_signature(secret, header, body)


def test_the_timestamp_is_signed_so_a_fresh_t_cannot_be_pasted_onto_an_old_signature() -> None:
    old = signature_header(SECRET, BODY, timestamp=int(time.time()) - 3600)
    replayed = f"t={int(time.time())},{old.split(',')[1]}"
    assert not verify_signature(SECRET, replayed, BODY)


@pytest.mark.parametrize("header", ["", "garbage", "t=abc,v1=00", "v1=00", f"t={int(time.time())}"])
def test_a_malformed_signature_header_is_refused(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY)


def test_any_matching_v1_passes_so_a_receiver_can_accept_two_secrets_while_rotating() -> None:
    now = int(time.time())
    header = signature_header(SECRET, BODY, timestamp=now)
    other = signature_header("whsec_old", BODY, timestamp=now).split(",")[1]
    assert verify_signature(SECRET, f"{header},{other}", BODY)


# --------------------------------------------------------------------------- what is delivered


def test_a_delivery_is_signed_with_the_endpoints_secret_and_carries_the_feed_event(hooks: Hooks) -> None:
    user = create_user(hooks.tenant, "ada@contoso.com", display_name="Ada")
    report = drain()
    assert (report.delivered, report.retrying, report.failed) == (1, 0, 0)

    [request] = hooks.mine()
    body = request.json()
    delivery = WebhookDelivery.objects.get(endpoint=hooks.endpoint)
    event = Event.objects.get(tenant=hooks.tenant, action="user.create")
    assert verify_signature(hooks.secret, request.headers["SecureLogin-Signature"], request.body)
    assert not verify_signature(hooks.other_secret, request.headers["SecureLogin-Signature"], request.body)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["SecureLogin-Event-Id"] == body["id"] == f"evt_{event.pk}"
    assert request.headers["SecureLogin-Delivery-Id"] == body["delivery_id"] == f"dlv_{delivery.pk}"
    assert request.headers["SecureLogin-Event-Type"] == body["type"] == "user.created"
    assert body["tenant"] == "contoso"
    assert body["resource"] == {"type": "user", "id": str(user.scim_id), "name": "ada@contoso.com"}
    assert body["changes"]["display_name"] == {"old": None, "new": "Ada"}
    assert hooks.theirs() == []


def test_a_delivered_row_records_status_latency_and_time_but_not_the_answer(hooks: Hooks) -> None:
    create_user(hooks.tenant, "ada@contoso.com")
    drain()
    delivery = WebhookDelivery.objects.get(endpoint=hooks.endpoint)
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 200, "")
    assert delivery.last_latency_ms is not None and 0 <= delivery.last_latency_ms < 5000
    assert delivery.delivered_at is not None and delivery.claimed_by == ""
    assert hooks.theirs() == []


def test_each_tenant_hears_only_its_own_changes(hooks: Hooks) -> None:
    create_user(hooks.tenant, "ada@contoso.com")
    create_user(hooks.other_tenant, "bob@fabrikam.com")
    drain()
    assert [r.json()["resource"]["name"] for r in hooks.mine()] == ["ada@contoso.com"]
    assert [r.json()["resource"]["name"] for r in hooks.theirs()] == ["bob@fabrikam.com"]
    assert [r.json()["tenant"] for r in hooks.theirs()] == ["fabrikam"]
    assert verify_signature(
        hooks.other_secret, hooks.theirs()[0].headers["SecureLogin-Signature"], hooks.theirs()[0].body
    )


# ---------------------------------------------------------------------------- the outbox rows


def test_a_change_writes_one_delivery_per_subscribed_endpoint_and_none_for_other_types(
    hooks: Hooks,
) -> None:
    groups_only, _ = services.webhook_endpoint_create(
        tenant=hooks.tenant, actor=SYSTEM, url=hooks.receiver.url("/groups"), event_types=["group.created"]
    )
    create_user(hooks.tenant, "ada@contoso.com")
    assert WebhookDelivery.objects.filter(endpoint=hooks.endpoint).count() == 1
    assert WebhookDelivery.objects.filter(endpoint=groups_only).count() == 0

    services.group_create(tenant=hooks.tenant, actor=SYSTEM, display_name="Engineering")
    assert WebhookDelivery.objects.filter(endpoint=hooks.endpoint).count() == 2
    assert list(
        WebhookDelivery.objects.filter(endpoint=groups_only).values_list("event_type", flat=True)
    ) == ["group.created"]
    drain()
    assert [r.json()["type"] for r in hooks.receiver.to("/groups")] == ["group.created"]
    assert WebhookDelivery.objects.filter(endpoint=hooks.other_endpoint).count() == 0
    assert hooks.theirs() == []


def test_a_rolled_back_change_writes_no_delivery(hooks: Hooks) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        create_user(hooks.tenant, "ada@contoso.com")
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the caller's transaction fails after the change")
    assert WebhookDelivery.objects.count() == 0
    assert drain().claimed == 0
    assert hooks.mine() == [] and hooks.theirs() == []


def test_a_disabled_endpoint_gets_no_new_deliveries_and_pending_ones_wait_untried(hooks: Hooks) -> None:
    create_user(hooks.tenant, "ada@contoso.com")
    services.webhook_endpoint_update(
        tenant=hooks.tenant, actor=SYSTEM, endpoint=hooks.endpoint, is_active=False
    )
    create_user(hooks.tenant, "bob@contoso.com")
    assert WebhookDelivery.objects.filter(endpoint=hooks.endpoint).count() == 1

    report = drain()
    delivery = WebhookDelivery.objects.get(endpoint=hooks.endpoint)
    assert report.claimed == 0
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PENDING, 0)
    assert hooks.mine() == [] and hooks.theirs() == []

    services.webhook_endpoint_update(
        tenant=hooks.tenant, actor=SYSTEM, endpoint=hooks.endpoint, is_active=True
    )
    assert drain().delivered == 1
    assert [received.json()["resource"]["name"] for received in hooks.mine()] == ["ada@contoso.com"]
    assert hooks.theirs() == []


def test_deleting_an_endpoint_drops_its_pending_deliveries(hooks: Hooks) -> None:
    create_user(hooks.tenant, "ada@contoso.com")
    services.webhook_endpoint_delete(tenant=hooks.tenant, actor=SYSTEM, endpoint=hooks.endpoint)
    assert drain().claimed == 0
    assert hooks.mine() == [] and hooks.theirs() == []


# ---------------------------------------------------------------------------- failing answers


def test_a_secret_unreadable_after_secret_key_rotation_fails_without_sending(
    hooks: Hooks, settings: Any
) -> None:
    create_user(hooks.tenant, "ada@contoso.com")
    settings.SECRET_KEY = "rotated-secret-key"
    [delivery] = services.deliveries_claim(worker=WORKER)
    assert send(delivery).error == SECRET_UNREADABLE
    assert hooks.mine() == [] and hooks.theirs() == []


def test_a_redirect_is_a_failure_and_is_not_followed(hooks: Hooks) -> None:
    hooks.receiver.status = 302
    create_user(hooks.tenant, "ada@contoso.com")
    report = deliver_due(worker=WORKER)
    delivery = WebhookDelivery.objects.get(endpoint=hooks.endpoint)
    assert report.retrying == 1
    assert (delivery.last_status_code, delivery.last_error) == (302, "HTTP 302: redirects are not followed")
    assert [r.path for r in hooks.receiver.requests] == ["/contoso"]


def test_an_error_answer_is_recorded_by_status_alone(hooks: Hooks) -> None:
    hooks.receiver.status = 503
    create_user(hooks.tenant, "ada@contoso.com")
    deliver_due(worker=WORKER)
    delivery = WebhookDelivery.objects.get(endpoint=hooks.endpoint)
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == ("pending", 503, "HTTP 503")
    assert hooks.theirs() == []


def test_an_endless_answer_is_cut_off_after_64_kib_not_read_to_the_timeout(
    hooks: Hooks, settings: Any
) -> None:
    settings.WEBHOOK_TIMEOUT_SECONDS = 10
    hooks.receiver.endless = True
    create_user(hooks.tenant, "ada@contoso.com")
    started = time.monotonic()
    report = deliver_due(worker=WORKER)
    assert report.delivered == 1
    assert time.monotonic() - started < 5
    assert hooks.theirs() == []


def test_a_receiver_trickling_its_answer_is_stopped_by_the_whole_request_deadline(
    hooks: Hooks, settings: Any
) -> None:
    """Each byte arrives well within any per-read timeout; only the 1 s total budget ends it."""
    settings.WEBHOOK_TIMEOUT_SECONDS = SHORT_TIMEOUT_SECONDS
    hooks.receiver.trickle = True
    create_user(hooks.tenant, "ada@contoso.com")
    started = time.monotonic()
    report = deliver_due(worker=WORKER)
    elapsed = time.monotonic() - started
    delivery = WebhookDelivery.objects.get(endpoint=hooks.endpoint)
    assert report.retrying == 1 and delivery.last_error == "timed out after 1 s"
    assert 0.9 < elapsed < 4
    assert hooks.theirs() == []


def test_a_refused_connection_is_a_failure_with_a_short_reason(hooks: Hooks, settings: Any) -> None:
    services.webhook_endpoint_update(
        tenant=hooks.tenant, actor=SYSTEM, endpoint=hooks.endpoint, url="http://127.0.0.1:9/closed"
    )
    create_user(hooks.tenant, "ada@contoso.com")
    assert deliver_due(worker=WORKER).retrying == 1
    delivery = WebhookDelivery.objects.get(endpoint=hooks.endpoint)
    assert delivery.last_error.startswith("connection failed:")
    assert delivery.last_status_code is None and len(delivery.last_error) < 250
    assert hooks.theirs() == []
