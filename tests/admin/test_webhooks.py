"""Webhooks in the console: endpoints added, edited, rotated and deleted through the services, the
signing secret shown once, refused URLs shown on the form, and the delivery log with Redeliver.
Another tenant's endpoints and deliveries answer 404 and never appear in a list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from django.utils import timezone

from directory import services
from directory.models import Event, WebhookDelivery, WebhookEndpoint
from directory.secrets import decrypt
from directory.services.webhooks import MAX_ENDPOINTS_PER_TENANT
from tests.admin.conftest import Directory, events_of
from tests.clients import Client

ENDPOINTS = "admin:directory_webhookendpoint_changelist"
ADD = "admin:directory_webhookendpoint_add"
LOG = "admin:directory_webhookdelivery_changelist"
HOOK = "https://hooks.contoso.example/directory"
# A log page: tenant host, session, user; then the endpoint named in the title, the endpoint
# filter's choices, the bounded count and the page itself (endpoint and resource label joined).
LOG_PAGE_QUERIES = 7
Status = WebhookDelivery.Status


def endpoint_of(directory: Directory, url: str = HOOK, **kwargs: Any) -> tuple[WebhookEndpoint, str]:
    return services.webhook_endpoint_create(tenant=directory.tenant, actor=directory.entra, url=url, **kwargs)


def change_url(endpoint: WebhookEndpoint) -> str:
    return reverse("admin:directory_webhookendpoint_change", args=[endpoint.pk])


def log_url(endpoint: WebhookEndpoint, **params: str) -> str:
    return f"{reverse(LOG)}?{urlencode({'endpoint': endpoint.pk, **params})}"


def redeliver_action(delivery: WebhookDelivery, page: str) -> str:
    """The Redeliver button's formaction on `page`: it brings the manager back to that page."""
    url = reverse("admin:directory_webhookdelivery_redeliver", args=[delivery.pk])
    return f"{url}?{urlencode({'next': page})}"


def with_deliveries(directory: Directory, endpoint: WebhookEndpoint) -> list[WebhookDelivery]:
    """Three changes heard by the endpoint: one failed, one delivered, one still pending."""
    services.user_update(
        tenant=directory.tenant, actor=directory.entra, user=directory.alice, fields={"title": "CFO"}
    )
    services.user_update(
        tenant=directory.tenant, actor=directory.entra, user=directory.bob, fields={"title": "CTO"}
    )
    services.group_update(
        tenant=directory.tenant, actor=directory.entra, group=directory.group, display_name="Board"
    )
    failed, delivered, pending = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id")
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=failed.pk).update(
        status=Status.FAILED, attempts=9, last_status_code=503, last_error="HTTP 503 from the endpoint"
    )
    WebhookDelivery.objects.filter(pk=delivered.pk).update(
        status=Status.DELIVERED, attempts=1, last_status_code=204, last_latency_ms=1234, delivered_at=now
    )
    for delivery in (failed, delivered, pending):
        delivery.refresh_from_db()
    return [failed, delivered, pending]


# -------------------------------------------------------------------------------------- endpoints


def test_adding_an_endpoint_shows_its_signing_secret_once(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        reverse(ADD),
        {"url": HOOK, "description": "HR system", "event_types": ["user.created", "user.deleted"]},
    )
    assert response.status_code == 200, response.content.decode()[:3000]
    assert "no-store" in response["Cache-Control"]
    secret = response.context["secret"]
    endpoint = WebhookEndpoint.objects.get(tenant=ours.tenant)
    assert secret.startswith("whsec_") and decrypt(endpoint.secret_encrypted) == secret
    assert endpoint.url == HOOK and endpoint.description == "HR system"
    assert endpoint.event_types == ["user.created", "user.deleted"]
    for page in (reverse(ENDPOINTS), change_url(endpoint)):
        body = manager_client.get(page).content.decode()
        assert HOOK in body and secret not in body
    assert endpoint.secret_prefix in manager_client.get(change_url(endpoint)).content.decode()
    (event,) = events_of(ours.tenant, "webhook.create")
    assert event.actor_type == Event.ActorType.MANAGER and secret not in str(event.changes)
    assert not WebhookEndpoint.objects.filter(tenant=theirs.tenant).exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://10.0.0.5/hook", "must not point at private or local addresses"),
        ("https://127.0.0.1/hook", "must not point at private or local addresses"),
        ("https://[::1]/hook", "must not point at private or local addresses"),
        ("https://169.254.169.254/latest/meta-data", "must not point at private or local addresses"),
        ("http://hooks.contoso.example/directory", "Webhook URLs must use https://"),
    ],
)
def test_a_refused_url_is_an_error_on_the_form(
    manager_client: Client, ours: Directory, theirs: Directory, url: str, message: str
) -> None:
    response = manager_client.submit(reverse(ADD), {"url": url, "description": "", "event_types": []})
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors["url"])
    assert url in response.content.decode()  # the form keeps what the manager typed
    assert not WebhookEndpoint.objects.exists()

    endpoint, _ = endpoint_of(ours)
    edited = manager_client.submit(
        change_url(endpoint), {"url": url, "description": "", "event_types": [], "is_active": "on"}
    )
    assert edited.status_code == 200 and message in edited.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.url == HOOK
    assert not events_of(ours.tenant, "webhook.update")


def test_a_refusal_of_the_service_is_a_message_on_the_page(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    """The per-tenant endpoint cap is the service's rule: the manager reads it, nothing breaks."""
    for index in range(MAX_ENDPOINTS_PER_TENANT):
        endpoint_of(ours, url=f"https://hooks.contoso.example/{index}")
    response = manager_client.submit(reverse(ADD), {"url": "https://one-too-many.contoso.example/"})
    assert response.status_code == 302
    messages = [str(m) for m in manager_client.get(response["Location"]).context["messages"]]
    assert any(f"at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints" in m for m in messages)
    assert WebhookEndpoint.objects.filter(tenant=ours.tenant).count() == MAX_ENDPOINTS_PER_TENANT


def test_editing_an_endpoint_goes_through_the_service(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    endpoint, secret = endpoint_of(ours, description="old")
    response = manager_client.submit(
        change_url(endpoint),
        {
            "url": "https://hooks.contoso.example/v2",
            "description": "new",
            "event_types": ["group.deleted", "user.created"],
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.contoso.example/v2" and endpoint.description == "new"
    assert endpoint.event_types == ["user.created", "group.deleted"]
    assert not endpoint.is_active
    assert decrypt(endpoint.secret_encrypted) == secret
    (event,) = events_of(ours.tenant, "webhook.update")
    assert set(event.changes) == {"url", "description", "event_types", "is_active"}


def test_rotating_the_secret_shows_the_new_one_once(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    endpoint, old = endpoint_of(ours)
    rotate = reverse("admin:directory_webhookendpoint_rotate_secret", args=[endpoint.pk])
    assert manager_client.get(rotate).status_code == 405
    response = manager_client.submit(change_url(endpoint), action=rotate)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new = response.context["secret"]
    endpoint.refresh_from_db()
    assert new != old and decrypt(endpoint.secret_encrypted) == new
    assert new not in manager_client.get(change_url(endpoint)).content.decode()
    assert len(events_of(ours.tenant, "webhook.rotate_secret")) == 1


def test_deleting_an_endpoint_drops_its_deliveries(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    endpoint, _ = endpoint_of(ours)
    with_deliveries(ours, endpoint)
    delete_page = reverse("admin:directory_webhookendpoint_delete", args=[endpoint.pk])
    response = manager_client.submit(delete_page, {"post": "yes"})
    assert response.status_code == 302
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert not WebhookDelivery.objects.filter(tenant=ours.tenant).exists()
    assert len(events_of(ours.tenant, "webhook.delete")) == 1


def test_the_endpoint_list_shows_the_last_delivery_and_the_backlog(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    endpoint, _ = endpoint_of(ours, event_types=["user.updated"])
    quiet, _ = endpoint_of(ours, url="https://quiet.contoso.example/hook")
    services.user_update(tenant=ours.tenant, actor=ours.entra, user=ours.alice, fields={"title": "CFO"})
    services.user_update(tenant=ours.tenant, actor=ours.entra, user=ours.bob, fields={"title": "CTO"})
    first = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id").first()
    WebhookDelivery.objects.filter(pk=first.pk).update(status=Status.FAILED, last_status_code=500)
    WebhookDelivery.objects.filter(endpoint=quiet).delete()
    their_endpoint, _ = endpoint_of(theirs, url="https://hooks.fabrikam.example/x")
    response = manager_client.get(reverse(ENDPOINTS))
    rows = {row.pk: row for row in response.context["cl"].result_list}
    assert set(rows) == {endpoint.pk, quiet.pk}
    assert (rows[endpoint.pk].pending_total, rows[endpoint.pk].failed_total) == (1, 1)
    assert rows[endpoint.pk].newest_status == Status.PENDING
    assert rows[quiet.pk].newest_status is None
    body = response.content.decode()
    assert "user.updated" in body and "none yet" in body
    assert 'class="active" aria-current="page">Webhooks</a>' in body
    assert log_url(endpoint, status__exact="failed").replace("&", "&amp;") in body
    assert their_endpoint.url not in body


# ------------------------------------------------------------------------------------ delivery log


def test_the_delivery_log_shows_an_endpoints_deliveries_newest_first(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    endpoint, _ = endpoint_of(ours)
    failed, delivered, pending = with_deliveries(ours, endpoint)
    their_endpoint, _ = endpoint_of(theirs, url="https://hooks.fabrikam.example/x")
    with_deliveries(theirs, their_endpoint)

    response = manager_client.get(log_url(endpoint))
    assert response.status_code == 200
    assert [d.pk for d in response.context["cl"].result_list] == [pending.pk, delivered.pk, failed.pk]
    body = response.content.decode()
    for text in ("user.updated", "group.updated", "HTTP 503 from the endpoint", "1,234 ms", "204", "503"):
        assert text in body
    assert ours.alice.username in body and "Board" in body
    assert f"Deliveries to {HOOK}" in body
    assert body.count(">Redeliver</button>") == 2

    failures = manager_client.get(log_url(endpoint, status__exact="failed"))
    assert [d.pk for d in failures.context["cl"].result_list] == [failed.pk]
    everything = manager_client.get(reverse(LOG)).context["cl"].result_list
    assert {d.tenant_id for d in everything} == {ours.tenant.pk}
    assert not manager_client.get(log_url(their_endpoint)).context["cl"].result_list


def test_redeliver_puts_a_delivery_back_in_the_outbox(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    endpoint, _ = endpoint_of(ours)
    failed, delivered, _pending = with_deliveries(ours, endpoint)
    page = log_url(endpoint, status__exact="failed")
    before = timezone.now()
    response = manager_client.submit(page, action=redeliver_action(failed, page))
    assert response.status_code == 302 and response["Location"] == page
    failed.refresh_from_db()
    assert failed.status == Status.PENDING
    assert before - timedelta(seconds=1) <= failed.next_attempt_at <= timezone.now()
    assert failed.retry_until > timezone.now() + timedelta(hours=23)
    messages = [str(m) for m in manager_client.get(page).context["messages"]]
    assert any("queued again" in m for m in messages)

    all_page = log_url(endpoint)
    manager_client.submit(all_page, action=redeliver_action(delivered, all_page))
    delivered.refresh_from_db()
    assert delivered.status == Status.PENDING
    assert len(events_of(ours.tenant, "webhook.redeliver")) == 2
    get = manager_client.get(reverse("admin:directory_webhookdelivery_redeliver", args=[failed.pk]))
    assert get.status_code == 405


def test_redeliver_from_the_delivery_page_and_by_action(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    endpoint, _ = endpoint_of(ours)
    failed, delivered, _pending = with_deliveries(ours, endpoint)
    detail = reverse("admin:directory_webhookdelivery_change", args=[failed.pk])
    response = manager_client.submit(
        detail, action=reverse("admin:directory_webhookdelivery_redeliver", args=[failed.pk])
    )
    assert response.status_code == 302 and response["Location"] == log_url(endpoint)
    manager_client.submit(
        log_url(endpoint), {"action": "redeliver_deliveries", "_selected_action": [delivered.pk]}
    )
    assert set(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("status", flat=True)) == {
        Status.PENDING
    }


def test_redeliver_never_sends_the_manager_off_site(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    endpoint, _ = endpoint_of(ours)
    failed, _delivered, _pending = with_deliveries(ours, endpoint)
    url = reverse("admin:directory_webhookdelivery_redeliver", args=[failed.pk])
    response = manager_client.csrf_post(
        f"{url}?{urlencode({'next': 'https://evil.example/'})}", form_path=log_url(endpoint)
    )
    assert response.status_code == 302 and response["Location"] == log_url(endpoint)


def test_a_page_of_the_log_costs_the_same_queries_at_three_and_at_a_hundred_deliveries(
    manager_client: Client,
    ours: Directory,
    theirs: Directory,
    django_assert_max_num_queries: Callable,
) -> None:
    endpoint, _ = endpoint_of(ours)
    with_deliveries(ours, endpoint)
    page = log_url(endpoint)
    manager_client.get(page)
    with django_assert_max_num_queries(LOG_PAGE_QUERIES):
        assert len(manager_client.get(page).context["cl"].result_list) == 3

    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(
            tenant=ours.tenant,
            action="user.update",
            resource_type="User",
            resource_id=f"user-{index}",
            resource_label=f"grown{index}@contoso.com",
        )
        for index in range(120)
    )
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            tenant=ours.tenant,
            endpoint=endpoint,
            event=event,
            event_type="user.updated",
            resource_key=f"User:{event.resource_id}",
            status=(Status.FAILED, Status.DELIVERED, Status.PENDING)[index % 3],
            last_error="timeout" if index % 3 == 0 else "",
            next_attempt_at=now,
            retry_until=now + timedelta(hours=24),
        )
        for index, event in enumerate(events)
    )
    with django_assert_max_num_queries(LOG_PAGE_QUERIES):
        response = manager_client.get(page)
    assert len(response.context["cl"].result_list) == 100
    with django_assert_max_num_queries(LOG_PAGE_QUERIES):
        assert len(manager_client.get(page + "&p=2").context["cl"].result_list) == 23


# -------------------------------------------------------------------------------------- isolation


def test_another_tenants_endpoints_and_deliveries_are_404(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    endpoint_of(ours)
    their_endpoint, their_secret = endpoint_of(theirs, url="https://hooks.fabrikam.example/x")
    their_failed, _delivered, _pending = with_deliveries(theirs, their_endpoint)
    for path in (
        change_url(their_endpoint),
        reverse("admin:directory_webhookendpoint_delete", args=[their_endpoint.pk]),
        reverse("admin:directory_webhookdelivery_change", args=[their_failed.pk]),
    ):
        assert manager_client.get(path).status_code == 404, path
    form_path = reverse(ENDPOINTS)
    for path in (
        reverse("admin:directory_webhookendpoint_rotate_secret", args=[their_endpoint.pk]),
        reverse("admin:directory_webhookdelivery_redeliver", args=[their_failed.pk]),
        reverse("admin:directory_webhookendpoint_delete", args=[their_endpoint.pk]),
    ):
        assert manager_client.csrf_post(path, {"post": "yes"}, form_path=form_path).status_code == 404, path
    edit = manager_client.csrf_post(
        change_url(their_endpoint), {"url": "https://evil.example/x"}, form_path=form_path
    )
    assert edit.status_code == 404
    manager_client.csrf_post(
        reverse(LOG),
        {"action": "redeliver_deliveries", "_selected_action": [their_failed.pk]},
        form_path=reverse(LOG),
    )
    manager_client.csrf_post(
        form_path, {"action": "delete_selected", "_selected_action": [their_endpoint.pk], "post": "yes"}
    )
    their_endpoint.refresh_from_db()
    their_failed.refresh_from_db()
    assert their_endpoint.url == "https://hooks.fabrikam.example/x"
    assert decrypt(their_endpoint.secret_encrypted) == their_secret
    assert their_failed.status == Status.FAILED
    assert not Event.objects.filter(tenant=theirs.tenant, action__startswith="webhook.").exclude(
        action="webhook.create"
    )
    assert their_endpoint.url not in manager_client.get(reverse(ENDPOINTS)).content.decode()


def test_operators_see_every_tenants_endpoints_and_redeliver_for_them(
    operator_client: Client, ours: Directory, theirs: Directory
) -> None:
    with_deliveries(ours, endpoint_of(ours)[0])
    their_endpoint, _ = endpoint_of(theirs, url="https://hooks.fabrikam.example/x")
    their_failed, _delivered, _pending = with_deliveries(theirs, their_endpoint)
    body = operator_client.get(reverse(ENDPOINTS)).content.decode()
    assert HOOK in body and their_endpoint.url in body and "column-tenant" in body
    log = operator_client.get(reverse(LOG))
    assert {d.tenant_id for d in log.context["cl"].result_list} == {theirs.tenant.pk, ours.tenant.pk}
    page = log_url(their_endpoint)
    operator_client.submit(page, action=redeliver_action(their_failed, page))
    their_failed.refresh_from_db()
    assert their_failed.status == Status.PENDING
    assert events_of(theirs.tenant, "webhook.redeliver")

    response = operator_client.submit(
        reverse(ADD), {"tenant": theirs.tenant.pk, "url": "https://second.fabrikam.example/x"}
    )
    assert response.status_code == 200 and response.context["secret"].startswith("whsec_")
    assert WebhookEndpoint.objects.filter(tenant=theirs.tenant).count() == 2
