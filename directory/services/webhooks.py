"""Writers of the change feed and of webhook state (endpoints and the delivery outbox).

The feed's order is the order in which changes become visible, not the order their rows were
inserted: a transaction that inserted event 10 may commit after the one that inserted event 11,
and a reader that had moved past 11 would never see 10. So positions are given only to committed
events, by `feed_stamp`, under the tenant row's lock, in id order; an event committed late simply
gets a later position. Within one resource, id order is already commit order, because every
writer holds the resource's row lock while it inserts its event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from directory.exceptions import InvalidValue, NotFound
from directory.feed import EVENT_TYPES, FEED_ACTIONS
from directory.models import Event, Tenant, WebhookDelivery, WebhookEndpoint
from directory.secrets import encrypt, new_webhook_secret
from directory.services import WEBHOOK_RETRY_WINDOW as DELIVERY_RETRY_WINDOW
from directory.services import Actor, event_record
from directory.urlsafety import webhook_url_check

__all__ = [
    "DELIVERY_LEASE",
    "DELIVERY_RETRY_WINDOW",
    "deliveries_claim",
    "delivery_failed",
    "delivery_redeliver",
    "delivery_succeeded",
    "feed_stamp",
    "retry_delay",
    "webhook_endpoint_create",
    "webhook_endpoint_delete",
    "webhook_endpoint_rotate_secret",
    "webhook_endpoint_update",
]

FEED_STAMP_BATCH = 5000
DELIVERY_LEASE = timedelta(seconds=60)
"""How long a claimed delivery stays a worker's; longer than a send may take (timeout 10 s)."""
MAX_ENDPOINTS_PER_TENANT = 20


# ------------------------------------------------------------------------------------------ feed


@transaction.atomic
def feed_stamp(*, tenant: Tenant, limit: int = FEED_STAMP_BATCH) -> int:
    """Give feed positions to the tenant's committed, not yet positioned directory changes, in id
    order; returns how many. Concurrent stampers of one tenant queue on the tenant row, and each
    reads the unstamped rows only after it holds the lock, so no position is given twice.

    The lock is `FOR NO KEY UPDATE`: every writer's INSERT of an Event takes a key-share lock on
    the tenant row through the foreign key, which a plain `FOR UPDATE` would make wait. The
    positions are given by one UPDATE over a numbered subquery (PostgreSQL, and SQLite ≥ 3.33),
    not row by row: 5,000 events cost one statement instead of a second of ORM work."""
    head = (
        Tenant.objects.select_for_update(no_key=True)
        .filter(pk=tenant.pk)
        .values_list("feed_head", flat=True)
        .first()
    )
    if head is None:
        raise NotFound("Tenant not found.")
    table = connection.ops.quote_name(Event._meta.db_table)
    actions = ", ".join(["%s"] * len(FEED_ACTIONS))
    sql = (
        f"UPDATE {table} SET feed_position = %s + ranked.rn FROM ("
        f" SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS rn FROM {table}"
        f" WHERE tenant_id = %s AND feed_position IS NULL AND action IN ({actions})"
        f" ORDER BY id LIMIT %s"
        f") AS ranked WHERE {table}.id = ranked.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [head, tenant.pk, *FEED_ACTIONS, limit])
        stamped = cursor.rowcount
    if stamped:
        Tenant.objects.filter(pk=tenant.pk).update(feed_head=head + stamped)
    return stamped


# ------------------------------------------------------------------------------------- endpoints


def _clean_event_types(event_types: Iterable[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(event_types or []))
    unknown = [t for t in chosen if t not in EVENT_TYPES]
    if unknown:
        raise InvalidValue(
            f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(EVENT_TYPES)}.",
            field="event_types",
        )
    return chosen


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    if len(url) > 2048:
        raise InvalidValue("The webhook URL is longer than 2048 characters.", field="url")
    webhook_url_check(url, resolve_host=False)
    return url


def _endpoint_changes(endpoint: WebhookEndpoint) -> dict[str, list[object]]:
    return {"url": [None, endpoint.url], "event_types": [None, endpoint.event_types or ["*"]]}


@transaction.atomic
def webhook_endpoint_create(
    *,
    tenant: Tenant,
    actor: Actor,
    url: str,
    event_types: Sequence[str] | None = None,
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret, which is shown once."""
    if tenant.is_platform:
        raise InvalidValue("Webhooks belong to a customer tenant, not the platform.")
    if WebhookEndpoint.objects.filter(tenant=tenant).count() >= MAX_ENDPOINTS_PER_TENANT:
        raise InvalidValue(f"A tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints.")
    secret = new_webhook_secret()
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant,
        url=_clean_url(url),
        description=description[:200],
        event_types=_clean_event_types(event_types),
        secret_encrypted=encrypt(secret),
        secret_prefix=secret[:12],
        created_by=actor.user if actor.user is not None and actor.user.pk else None,
    )
    event_record(
        tenant=tenant,
        actor=actor,
        action="webhook.create",
        resource_type="WebhookEndpoint",
        resource_id=str(endpoint.pk),
        resource_label=endpoint.url[:255],
        changes=_endpoint_changes(endpoint),
    )
    return endpoint, secret


def _lock_endpoint(tenant: Tenant, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    locked = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk, tenant=tenant).first()
    if locked is None:
        raise NotFound("Webhook endpoint not found.")
    return locked


@transaction.atomic
def webhook_endpoint_update(
    *,
    tenant: Tenant,
    actor: Actor,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    locked = _lock_endpoint(tenant, endpoint)
    values: dict[str, object] = {}
    if url is not None:
        values["url"] = _clean_url(url)
    if event_types is not None:
        values["event_types"] = _clean_event_types(event_types)
    if description is not None:
        values["description"] = description[:200]
    if is_active is not None:
        values["is_active"] = bool(is_active)
    changes = {k: [getattr(locked, k), v] for k, v in values.items() if getattr(locked, k) != v}
    if not changes:
        return locked
    for name, (_, new) in changes.items():
        setattr(locked, name, new)
    locked.save(update_fields=list(changes))
    event_record(
        tenant=tenant,
        actor=actor,
        action="webhook.update",
        resource_type="WebhookEndpoint",
        resource_id=str(locked.pk),
        resource_label=locked.url[:255],
        changes=changes,
    )
    return locked


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, tenant: Tenant, actor: Actor, endpoint: WebhookEndpoint
) -> tuple[WebhookEndpoint, str]:
    locked = _lock_endpoint(tenant, endpoint)
    secret = new_webhook_secret()
    locked.secret_encrypted = encrypt(secret)
    locked.secret_prefix = secret[:12]
    locked.save(update_fields=["secret_encrypted", "secret_prefix"])
    event_record(
        tenant=tenant,
        actor=actor,
        action="webhook.rotate_secret",
        resource_type="WebhookEndpoint",
        resource_id=str(locked.pk),
        resource_label=locked.url[:255],
    )
    return locked, secret


@transaction.atomic
def webhook_endpoint_delete(*, tenant: Tenant, actor: Actor, endpoint: WebhookEndpoint) -> None:
    """Deleting an endpoint drops its outbox rows with it: nothing is sent there any more."""
    locked = _lock_endpoint(tenant, endpoint)
    event_record(
        tenant=tenant,
        actor=actor,
        action="webhook.delete",
        resource_type="WebhookEndpoint",
        resource_id=str(locked.pk),
        resource_label=locked.url[:255],
        changes={"url": [locked.url, None]},
    )
    locked.delete()


# ------------------------------------------------------------------------------------ deliveries


def retry_delay(attempts: int) -> timedelta:
    """Exponential back-off: 30 s, 1 min, 2 min, … doubling to at most an hour between tries."""
    return timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def _due(now: datetime) -> Q:
    return Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


@transaction.atomic
def deliveries_claim(*, worker: str, limit: int = 20, now: datetime | None = None) -> list[WebhookDelivery]:
    """Lease up to `limit` due deliveries to `worker`, oldest first, for every tenant (the worker is
    the platform's). A delivery is due only when no earlier delivery of the same endpoint and
    resource is still pending, so one resource's changes arrive in order; a disabled endpoint's
    deliveries wait, untried, until it is enabled again. `SKIP LOCKED` lets
    several workers claim at once without waiting on each other's rows (PostgreSQL; SQLite runs
    one writer at a time anyway)."""
    now = now or timezone.now()
    earlier_pending = WebhookDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        resource_key=OuterRef("resource_key"),
        status=WebhookDelivery.Status.PENDING,
        id__lt=OuterRef("id"),
    )
    claimed = list(
        WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(_due(now), endpoint__is_active=True)
        .exclude(Exists(earlier_pending))
        .order_by("next_attempt_at", "id")[:limit]
    )
    if claimed:
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
            claimed_until=now + DELIVERY_LEASE, claimed_by=worker[:128]
        )
        for delivery in claimed:
            delivery.claimed_until = now + DELIVERY_LEASE
            delivery.claimed_by = worker[:128]
    return claimed


def _finish(delivery: WebhookDelivery, worker: str, **values: object) -> bool:
    """Record an attempt's outcome, unless the lease was lost (another worker took the row after
    this one overran its lease): then this worker's result is dropped, the other's stands."""
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, claimed_by=worker[:128], status=WebhookDelivery.Status.PENDING
    ).update(claimed_until=None, claimed_by="", attempts=F("attempts") + 1, **values)
    return updated == 1


@transaction.atomic
def delivery_succeeded(
    *, delivery: WebhookDelivery, worker: str, status_code: int, latency_ms: int, now: datetime | None = None
) -> bool:
    now = now or timezone.now()
    return _finish(
        delivery,
        worker,
        status=WebhookDelivery.Status.DELIVERED,
        last_status_code=status_code,
        last_error="",
        last_latency_ms=latency_ms,
        last_attempt_at=now,
        delivered_at=now,
    )


@transaction.atomic
def delivery_failed(
    *,
    delivery: WebhookDelivery,
    worker: str,
    error: str,
    status_code: int | None = None,
    latency_ms: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Schedule the next try with back-off, or mark the delivery failed once the retry window since
    the change has passed."""
    now = now or timezone.now()
    attempts = delivery.attempts + 1
    next_attempt = now + retry_delay(attempts)
    give_up = next_attempt > delivery.retry_until
    return _finish(
        delivery,
        worker,
        status=WebhookDelivery.Status.FAILED if give_up else WebhookDelivery.Status.PENDING,
        next_attempt_at=delivery.next_attempt_at if give_up else next_attempt,
        last_status_code=status_code,
        last_error=error[:500],
        last_latency_ms=latency_ms,
        last_attempt_at=now,
    )


@transaction.atomic
def delivery_redeliver(*, tenant: Tenant, actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """A manager's "Redeliver": the delivery is pending again, due now, with a fresh retry window."""
    locked = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk, tenant=tenant).first()
    if locked is None:
        raise NotFound("Webhook delivery not found.")
    now = timezone.now()
    locked.status = WebhookDelivery.Status.PENDING
    locked.next_attempt_at = now
    locked.claimed_until = None
    locked.claimed_by = ""
    locked.retry_until = now + DELIVERY_RETRY_WINDOW
    locked.save(update_fields=["status", "next_attempt_at", "claimed_until", "claimed_by", "retry_until"])
    event_record(
        tenant=tenant,
        actor=actor,
        action="webhook.redeliver",
        resource_type="WebhookDelivery",
        resource_id=str(locked.pk),
        resource_label=f"{locked.event_type} #{locked.event_id}",
    )
    return locked

