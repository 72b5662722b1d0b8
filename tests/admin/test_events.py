"""The provisioning log: filters, search, and the detail page with old → new and failure facts."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from directory import services
from directory.admin import period_bounds
from directory.models import Event
from tests.admin.conftest import Directory
from tests.clients import Client

CHANGELIST = reverse("admin:directory_event_changelist")


def actions(client: Client, **params: str) -> list[str]:
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return [e.action for e in response.context["cl"].result_list]


def test_filters_by_result_action_resource_type_and_actor(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    assert actions(manager_client, result__exact="failure") == ["scim.post_user"]
    assert set(actions(manager_client, action="group.create")) == {"group.create"}
    assert actions(manager_client, action="scim.*") == ["scim.post_user"]
    assert set(actions(manager_client, resource_type="Group")) == {"group.create"}
    assert "tenant.create" not in actions(manager_client, actor_type__exact="credential")


def test_filters_by_period_preset_day_and_hour(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    old = Event.objects.filter(tenant=ours.tenant, action="group.create")
    old.update(created=timezone.now() - timedelta(days=3))
    assert "group.create" not in actions(manager_client, period="24h")
    assert "group.create" in actions(manager_client, period="7d")
    day = (timezone.now() - timedelta(days=3)).strftime("%Y-%m-%d")
    assert "group.create" in actions(manager_client, period=day)
    hour = (timezone.now() - timedelta(days=3)).strftime("%Y-%m-%dT%H")
    assert actions(manager_client, period=hour) == ["group.create"]
    assert actions(manager_client, period="garbage") == []


def test_period_bounds() -> None:
    start, end = period_bounds("2026-05-01T13")
    assert (start.isoformat(), end - start) == ("2026-05-01T13:00:00+00:00", timedelta(hours=1))
    start, end = period_bounds("2026-05-01")
    assert end - start == timedelta(days=1)
    assert period_bounds("2026-13-45") is None
    assert period_bounds("yesterday") is None


def test_search_by_username_finds_events_under_the_current_name(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    services.user_update(
        tenant=ours.tenant, actor=ours.entra, user=ours.bob, fields={"username": "robert@contoso.com"}
    )
    response = manager_client.get(CHANGELIST, {"q": "ROBERT@contoso.com"})
    found = response.context["cl"].result_list
    assert {e.action for e in found} == {"user.create", "user.update"}
    assert {e.resource_id for e in found} == {str(ours.bob.scim_id)}


def test_search_by_label_prefix_finds_failures_without_a_resource_id(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.get(CHANGELIST, {"q": "ours.alice"})
    assert "scim.post_user" in {e.action for e in response.context["cl"].result_list}


def test_detail_shows_old_and_new_values(manager_client: Client, ours: Directory, theirs: Directory) -> None:
    services.user_update(tenant=ours.tenant, actor=ours.entra, user=ours.alice, fields={"title": "Director"})
    event = Event.objects.get(tenant=ours.tenant, action="user.update")
    body = manager_client.get(reverse("admin:directory_event_change", args=[event.pk])).content.decode()
    assert '<code>title</code></th><td class="sl-old">—</td>' in body
    assert '<td class="sl-new">Director</td>' in body
    assert reverse("admin:directory_user_change", args=[ours.alice.pk]) in body


def test_detail_names_added_and_removed_members(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    services.membership_set(tenant=ours.tenant, actor=ours.entra, group=ours.group, users=[ours.bob])
    event = Event.objects.get(tenant=ours.tenant, action="group.members_set")
    body = manager_client.get(reverse("admin:directory_event_change", args=[event.pk])).content.decode()
    assert f'<td class="sl-old">{ours.alice.username}</td>' in body
    assert f'<td class="sl-new">{ours.bob.username}</td>' in body


def test_detail_of_a_failure_shows_status_scim_type_and_detail(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    event = Event.objects.get(tenant=ours.tenant, result="failure")
    response = manager_client.get(reverse("admin:directory_event_change", args=[event.pk]))
    body = response.content.decode()
    for text in ("409", "uniqueness", "is already in use in this tenant", "/scim/v2/Users", "POST"):
        assert text in body
    assert "theirs" not in body


def test_the_log_is_read_only(manager_client: Client, ours: Directory, theirs: Directory) -> None:
    event = Event.objects.filter(tenant=ours.tenant).first()
    # With a valid token, so the 403 is the admin's read-only permission and not the CSRF check.
    change = reverse("admin:directory_event_change", args=[event.pk])
    assert manager_client.csrf_post(change, {}).status_code == 403
    assert manager_client.get(reverse("admin:directory_event_delete", args=[event.pk])).status_code == 403
    assert manager_client.get(reverse("admin:directory_event_add")).status_code == 403
