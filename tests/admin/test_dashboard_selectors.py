"""The console's read selectors: tenant-scoped aggregates for the dashboard and the detail pages."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from directory import selectors, services
from directory.models import Event, User
from tests.admin.conftest import Directory


def test_directory_counts_are_per_tenant(ours: Directory, theirs: Directory) -> None:
    services.user_deactivate(tenant=theirs.tenant, actor=theirs.entra, user=theirs.bob)
    ours_counts = selectors.directory_counts(tenant=ours.tenant)
    theirs_counts = selectors.directory_counts(tenant=theirs.tenant)
    assert (ours_counts.users_active, ours_counts.users_inactive, ours_counts.groups) == (3, 0, 1)
    assert (theirs_counts.users_active, theirs_counts.users_inactive) == (2, 1)


def test_provisioning_activity_buckets_successes_and_failures(ours: Directory, theirs: Directory) -> None:
    now = timezone.now()
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    Event.objects.filter(tenant=ours.tenant, action="group.create").update(
        created=since + timedelta(minutes=5)
    )
    buckets = selectors.provisioning_activity(tenant=ours.tenant, since=since, unit="hour")
    assert [b.start for b in buckets] == [since + timedelta(hours=h) for h in range(3)]
    assert (buckets[0].success, buckets[0].failure) == (1, 0)
    assert sum(b.success for b in buckets) == 3  # two user.create and the group.create
    assert sum(b.failure for b in buckets) == 1
    days = selectors.provisioning_activity(tenant=ours.tenant, since=now - timedelta(days=6), unit="day")
    assert len(days) == 7
    assert sum(b.total for b in days) == 4


def test_manager_changes_are_not_provisioning_requests(
    ours: Directory, theirs: Directory, manager: User
) -> None:
    services.user_update(
        tenant=ours.tenant, actor=services.Actor.manager(manager), user=ours.bob, fields={"title": "x"}
    )
    assert not selectors.provisioning_requests(tenant=ours.tenant).filter(action="user.update").exists()


def test_provisioning_failures_summarise_the_tenants_failures(ours: Directory, theirs: Directory) -> None:
    summary = selectors.provisioning_failures(tenant=ours.tenant, since=timezone.now() - timedelta(hours=1))
    assert summary.total == 1
    assert summary.by_scim_type == [("uniqueness", 1)]
    assert summary.top_details == ["userName 'ours.alice@contoso.com' is already in use in this tenant."]


def test_last_provisioning_request_ignores_other_tenants(ours: Directory, theirs: Directory) -> None:
    Event.objects.filter(tenant=ours.tenant).update(created=timezone.now() - timedelta(hours=5))
    last = selectors.last_provisioning_request(tenant=ours.tenant)
    assert timezone.now() - last.when > timedelta(hours=4)
    Event.objects.filter(tenant=ours.tenant).update(created=timezone.now() - timedelta(days=40))
    assert selectors.last_provisioning_request(tenant=ours.tenant) is None


def test_user_groups_and_resource_events_stay_in_the_tenant(ours: Directory, theirs: Directory) -> None:
    assert list(selectors.user_groups(tenant=ours.tenant, user=ours.alice)) == [ours.group]
    assert list(selectors.user_groups(tenant=ours.tenant, user=theirs.alice)) == []
    events = selectors.resource_events(tenant=ours.tenant, resource_id=str(theirs.alice.scim_id))
    assert list(events) == []


def test_department_values_are_distinct_and_per_tenant(ours: Directory, theirs: Directory) -> None:
    assert selectors.user_department_values(tenant=ours.tenant) == ["ours-sales"]
