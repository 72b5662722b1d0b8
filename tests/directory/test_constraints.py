"""Database constraints that SCIM relies on, on both SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from directory.models import Group, User
from tests.factories import GroupFactory, UserFactory


def test_username_is_unique_per_tenant_case_insensitively(tenant, other_tenant):
    UserFactory(tenant=tenant, username="Alice@Example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(tenant=tenant, username="alice@example.com")
    UserFactory(tenant=other_tenant, username="alice@example.com")
    assert User.objects.filter(username__lower="alice@example.com").count() == 2


def test_external_id_may_be_shared_by_users_and_by_groups(tenant, other_tenant):
    """RFC 7643 §3.1: externalId has no uniqueness, so no constraint refuses a second one."""
    UserFactory(tenant=tenant, external_id="ext-1")
    UserFactory(tenant=tenant, external_id="ext-1")
    UserFactory(tenant=tenant, external_id="")
    UserFactory(tenant=tenant, external_id="")
    UserFactory(tenant=other_tenant, external_id="ext-1")
    GroupFactory(tenant=tenant, external_id="g-1")
    GroupFactory(tenant=tenant, external_id="g-1")
    assert User.objects.filter(tenant=tenant, external_id="ext-1").count() == 2
    assert Group.objects.filter(tenant=tenant, external_id="g-1").count() == 2


def test_group_display_name_is_unique_per_tenant_case_insensitively(tenant, other_tenant):
    GroupFactory(tenant=tenant, display_name="Sales")
    with pytest.raises(IntegrityError), transaction.atomic():
        GroupFactory(tenant=tenant, display_name="SALES")
    GroupFactory(tenant=other_tenant, display_name="sales")
    assert Group.objects.count() == 2


def test_membership_is_unique_per_group_and_user(tenant, other_tenant):
    from directory.models import Membership

    group = GroupFactory(tenant=tenant)
    user = UserFactory(tenant=tenant)
    Membership.objects.create(tenant=tenant, group=group, user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(tenant=tenant, group=group, user=user)
    other_group = GroupFactory(tenant=other_tenant)
    Membership.objects.create(tenant=other_tenant, group=other_group, user=UserFactory(tenant=other_tenant))
    assert Membership.objects.filter(tenant=tenant).count() == 1


def test_growing_tables_are_analysed_early_on_postgresql(tenant, other_tenant):
    """Migration 0003: fresh statistics while a tenant's first cycle fills the tables."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("autovacuum storage parameters exist on PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN "
            "('directory_user', 'directory_useremail', 'directory_membership', 'directory_group')"
        )
        options = dict(cursor.fetchall())
    assert set(options) == {
        "directory_user",
        "directory_useremail",
        "directory_membership",
        "directory_group",
    }
    assert all(opts == ["autovacuum_analyze_scale_factor=0.02"] for opts in options.values())
