"""directory.prepared: a queryset compiled once and run again with other values answers exactly as
the queryset would, inside the tenant it is given."""

from __future__ import annotations

import uuid

import pytest
from django.db.models import QuerySet

from directory import selectors
from directory.models import Tenant, User
from directory.prepared import NotPreparable, PreparedQuery
from tests.factories import UserEmailFactory, UserFactory


def by_username(tenant_id: int, value: str) -> QuerySet[User]:
    users = selectors.user_list(tenant=Tenant(pk=tenant_id))
    return users.filter(username__lower=value.lower()).order_by("id")[:5]


def test_runs_answer_as_the_queryset_does_in_each_tenant(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = UserEmailFactory(user__tenant=tenant, user__username="Ada@Example.com").user
    theirs = UserFactory(tenant=other_tenant, username="ada@example.com")
    prepared = PreparedQuery(by_username, tenant_id=int, value=str)

    for value in ("ada@example.com", "ADA@EXAMPLE.COM"):
        got = prepared.run(tenant_id=tenant.pk, value=value)
        assert got == list(by_username(tenant.pk, value)) == [mine]
        assert prepared.run(tenant_id=other_tenant.pk, value=value) == [theirs]
    assert prepared.run(tenant_id=tenant.pk, value="nobody@example.com") == []

    found = prepared.run(tenant_id=tenant.pk, value="ada@example.com")[0]
    # Converted as the ORM converts: the JSON copy is a dict, the id a UUID, the row saveable.
    assert found.multi_values == mine.multi_values and isinstance(found.multi_values, dict)
    assert found.multi_values["emails"][0]["value"] == "Ada@Example.com"
    assert found.scim_id == mine.scim_id and isinstance(found.scim_id, uuid.UUID)
    assert found.tenant_id == tenant.pk and found._state.adding is False


def test_uuid_values_reach_the_query_on_either_database(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = UserFactory(tenant=tenant)
    theirs = UserFactory(tenant=other_tenant)

    def by_scim_id(tenant_id: int, scim_id: uuid.UUID) -> QuerySet[User]:
        return selectors.user_list(tenant=Tenant(pk=tenant_id)).filter(scim_id=scim_id)

    prepared = PreparedQuery(by_scim_id, tenant_id=int, scim_id=uuid.UUID)

    assert prepared.run(tenant_id=tenant.pk, scim_id=mine.scim_id) == [mine]
    assert prepared.run(tenant_id=tenant.pk, scim_id=theirs.scim_id) == []


@pytest.mark.parametrize(
    "build",
    [
        # The value decides the SQL (a LIMIT): no parameter carries it.
        lambda tenant_id, value: User.objects.filter(tenant_id=tenant_id)[: len(value)],
        # The value is transformed on its way in (a pattern): not the value itself.
        lambda tenant_id, value: User.objects.filter(tenant_id=tenant_id, username__contains=value),
        # Not one model's own columns.
        lambda tenant_id, value: User.objects.filter(tenant_id=tenant_id, username=value).values("id"),
    ],
    ids=["limit", "pattern", "values"],
)
def test_values_that_shape_the_sql_are_refused(tenant: Tenant, build) -> None:
    with pytest.raises(NotPreparable):
        PreparedQuery(build, tenant_id=int, value=str).run(tenant_id=tenant.pk, value="x")


def test_insert_writes_the_row_save_would(tenant: Tenant, other_tenant: Tenant) -> None:
    from django.db.models.signals import post_save

    from directory.models import Event
    from directory.prepared import insert

    heard: list[tuple[int, bool]] = []

    def listener(sender: type[Event], instance: Event, created: bool, **kwargs: object) -> None:
        heard.append((instance.pk, created))

    post_save.connect(listener, sender=Event, dispatch_uid="test_prepared.listener")
    try:
        event = insert(
            Event(tenant=tenant, action="user.create", resource_type="User", changes={"title": [None, "é"]})
        )
    finally:
        post_save.disconnect(dispatch_uid="test_prepared.listener", sender=Event)

    stored = Event.objects.get(pk=event.pk)
    assert stored.tenant_id == tenant.pk and stored.changes == {"title": [None, "é"]}
    assert stored.created is not None and stored.created == event.created  # auto_now_add ran
    assert event._state.adding is False and heard == [(event.pk, True)]
    assert not Event.objects.filter(tenant=other_tenant, action="user.create").exists()
    assert insert(Event(tenant=other_tenant, action="user.create")).pk != event.pk


def test_insert_keeps_the_databases_uniqueness_errors(tenant: Tenant, other_tenant: Tenant) -> None:
    from django.db import IntegrityError, transaction

    from directory.prepared import insert

    insert(User(tenant=tenant, username="taken@example.com"))
    insert(User(tenant=other_tenant, username="taken@example.com"))  # another tenant: no conflict
    with pytest.raises(IntegrityError), transaction.atomic():
        insert(User(tenant=tenant, username="taken@example.com"))


def test_update_writes_only_the_columns_named(tenant: Tenant, other_tenant: Tenant) -> None:
    from django.db import DatabaseError

    from directory.prepared import update

    mine = UserFactory(tenant=tenant, title="Engineer", department="R&D")
    theirs = UserFactory(tenant=other_tenant, title="Engineer")
    before = mine.last_modified
    mine.title, mine.department = "Senior Engineer", "Ignored"

    update(mine, ["title", "last_modified"])

    stored = User.objects.get(pk=mine.pk)
    assert (stored.title, stored.department) == ("Senior Engineer", "R&D")
    assert stored.last_modified > before  # auto_now ran
    assert User.objects.get(pk=theirs.pk).title == "Engineer"
    gone = User.objects.get(pk=theirs.pk)
    User.objects.filter(pk=gone.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        update(gone, ["title"])
