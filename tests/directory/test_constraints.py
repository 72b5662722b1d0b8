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


def test_external_id_is_unique_per_tenant_only_when_set(tenant, other_tenant):
    UserFactory(tenant=tenant, external_id="ext-1")
    UserFactory(tenant=tenant, external_id="")
    UserFactory(tenant=tenant, external_id="")
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(tenant=tenant, external_id="ext-1")
    UserFactory(tenant=other_tenant, external_id="ext-1")


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
