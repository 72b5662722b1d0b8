"""directory.selectors: every read is scoped by tenant, and references to another tenant's rows are
refused exactly like references to rows that do not exist."""

from __future__ import annotations

import uuid

import pytest

from directory import selectors, services
from directory.exceptions import NotFound, ReferenceNotFound
from directory.models import TenantEmailDomain, User
from tests.factories import GroupFactory, UserFactory


def test_users_by_scim_ids_resolves_ids_of_the_tenant_in_one_query(
    tenant, other_tenant, django_assert_num_queries
):
    alice, bob = UserFactory(tenant=tenant), UserFactory(tenant=tenant)
    UserFactory(tenant=other_tenant)

    with django_assert_num_queries(1):
        found = selectors.users_by_scim_ids(
            tenant=tenant, scim_ids=[str(alice.scim_id), bob.scim_id, str(alice.scim_id).upper()]
        )

    assert {u.pk for u in found} == {alice.pk, bob.pk}
    assert selectors.users_by_scim_ids(tenant=tenant, scim_ids=[]) == []


def test_users_by_scim_ids_refuses_another_tenants_user_like_an_unknown_id(tenant, other_tenant):
    alice = UserFactory(tenant=tenant)
    intruder = UserFactory(tenant=other_tenant)
    unknown = uuid.uuid4()

    with pytest.raises(ReferenceNotFound) as cross_tenant:
        selectors.users_by_scim_ids(tenant=tenant, scim_ids=[alice.scim_id, intruder.scim_id])
    with pytest.raises(ReferenceNotFound) as missing:
        selectors.users_by_scim_ids(tenant=tenant, scim_ids=[alice.scim_id, unknown])

    assert str(intruder.scim_id) in cross_tenant.value.message
    assert cross_tenant.value.message == missing.value.message.replace(str(unknown), str(intruder.scim_id))
    assert selectors.users_by_scim_ids(tenant=other_tenant, scim_ids=[intruder.scim_id]) == [intruder]


def test_users_named_keeps_the_tenants_users_and_reads_what_a_reference_needs(
    tenant, other_tenant, django_assert_num_queries
):
    alice = UserFactory(tenant=tenant)
    intruder = UserFactory(tenant=other_tenant)
    service_principal = selectors.service_principal_get(tenant=tenant)
    named = [alice.scim_id, intruder.scim_id, service_principal.scim_id, uuid.uuid4()]

    with django_assert_num_queries(1):
        found = selectors.users_named(tenant=tenant, scim_ids=named)
        assert [(u.pk, str(u.scim_id), u.display_name, u.username) for u in found] == [
            (alice.pk, str(alice.scim_id), alice.display_name, alice.username)
        ]
    assert selectors.users_named(tenant=other_tenant, scim_ids=named) == [intruder]
    assert selectors.users_named(tenant=tenant, scim_ids=[]) == []


def test_user_references_by_pk_reads_only_the_tenants_users(tenant, other_tenant, django_assert_num_queries):
    alice = UserFactory(tenant=tenant)
    intruder = UserFactory(tenant=other_tenant)

    with django_assert_num_queries(1):
        found = selectors.user_references_by_pk(tenant=tenant, pks=[alice.pk, intruder.pk])
        assert {pk: (str(u.scim_id), u.display_name) for pk, u in found.items()} == {
            alice.pk: (str(alice.scim_id), alice.display_name)
        }
    assert list(selectors.user_references_by_pk(tenant=other_tenant, pks=[alice.pk, intruder.pk])) == [
        intruder.pk
    ]


@pytest.mark.parametrize("garbage", ["not-a-uuid", "", None, 42, "1; DROP TABLE directory_user", "{}"])
def test_users_by_scim_ids_refuses_garbage_ids(tenant, other_tenant, garbage):
    alice = UserFactory(tenant=tenant)
    UserFactory(tenant=other_tenant)

    with pytest.raises(ReferenceNotFound):
        selectors.users_by_scim_ids(tenant=tenant, scim_ids=[alice.scim_id, garbage])


def test_users_by_scim_ids_refuses_the_service_principal(tenant, other_tenant):
    service_principal = selectors.service_principal_get(tenant=tenant)

    with pytest.raises(ReferenceNotFound):
        selectors.users_by_scim_ids(tenant=tenant, scim_ids=[service_principal.scim_id])
    assert selectors.service_principal_get(tenant=other_tenant) != service_principal


def test_user_list_hides_the_service_principal_and_other_tenants(tenant, other_tenant):
    alice = UserFactory(tenant=tenant)
    UserFactory(tenant=other_tenant)

    assert list(selectors.user_list(tenant=tenant)) == [alice]
    assert User.objects.filter(tenant=tenant, role=User.Role.SERVICE).count() == 1


def test_user_get_and_group_get_stay_inside_the_tenant(tenant, other_tenant):
    alice, intruder = UserFactory(tenant=tenant), UserFactory(tenant=other_tenant)
    group, other_group = GroupFactory(tenant=tenant), GroupFactory(tenant=other_tenant)
    service_principal = selectors.service_principal_get(tenant=tenant)

    assert selectors.user_get(tenant=tenant, scim_id=str(alice.scim_id)) == alice
    assert selectors.group_get(tenant=tenant, scim_id=group.scim_id) == group
    for scim_id in (intruder.scim_id, service_principal.scim_id, "garbage", uuid.uuid4()):
        with pytest.raises(NotFound):
            selectors.user_get(tenant=tenant, scim_id=scim_id)
    for scim_id in (other_group.scim_id, "garbage", uuid.uuid4()):
        with pytest.raises(NotFound):
            selectors.group_get(tenant=tenant, scim_id=scim_id)


def test_group_list_member_ids_and_event_list_are_tenant_scoped(tenant, other_tenant, system_actor):
    alice, intruder = UserFactory(tenant=tenant), UserFactory(tenant=other_tenant)
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales", members=[alice])
    other_group = services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Sales", members=[intruder]
    )

    assert list(selectors.group_list(tenant=tenant)) == [group]
    assert selectors.group_member_ids(tenant=tenant, group=group) == {alice.pk}
    assert selectors.group_member_ids(tenant=tenant, group=other_group) == set()
    assert {e.tenant_id for e in selectors.event_list(tenant=tenant)} == {tenant.pk}
    assert list(selectors.event_list(tenant=tenant).values_list("action", flat=True))[:1] == ["group.create"]


def test_tenant_get_finds_slugs_case_insensitively(tenant, other_tenant):
    assert selectors.tenant_get(slug="contoso") == tenant
    assert selectors.tenant_get(slug=" Fabrikam ") == other_tenant
    with pytest.raises(NotFound):
        selectors.tenant_get(slug="northwind")


def test_tenant_for_host_resolves_stored_hosts_and_the_root(
    tenant, other_tenant, platform_tenant, system_actor
):
    custom = services.tenant_create(
        actor=system_actor, slug="northwind", name="Northwind", hosts=["login.nw.com"]
    )

    assert selectors.tenant_for_host(host="contoso.testserver") == tenant
    assert selectors.tenant_for_host(host="fabrikam.testserver") == other_tenant
    assert selectors.tenant_for_host(host="login.nw.com") == custom
    assert selectors.tenant_for_host(host="testserver") == platform_tenant
    assert selectors.tenant_for_host(host="localhost") == platform_tenant
    assert selectors.tenant_for_host(host="unknown.testserver") is None
    assert selectors.tenant_for_host(host="contoso.testserver.evil.com") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("contoso", "contoso"),
        ("  CONTOSO ", "contoso"),
        ("fabrikam", "fabrikam"),
        ("contoso.testserver", "contoso"),
        ("Contoso.TestServer:8000", "contoso"),
        ("login.contoso-custom.com", "contoso"),
        ("alice@contoso.com", "contoso"),
        ("Alice@CONTOSO.com", "contoso"),
        ("contoso.com", "contoso"),
        ("bob@fabrikam.com", "fabrikam"),
        ("alice@unverified.example", None),
        ("unverified.example", None),
        ("alice@nowhere.example", None),
        ("northwind", None),
        ("platform", None),
        ("testserver", None),
        ("", None),
        ("   ", None),
        ("a" * 321, None),
    ],
)
def test_tenant_for_domain_input(tenant, other_tenant, system_actor, value, expected):
    services.tenant_deactivate(
        tenant=services.tenant_create(
            actor=system_actor, slug="northwind", name="Northwind", email_domains=["northwind.com"]
        ),
        actor=system_actor,
    )
    tenant.hosts.create(host="login.contoso-custom.com")
    TenantEmailDomain.objects.create(tenant=other_tenant, domain="unverified.example", verified=False)

    found = selectors.tenant_for_domain_input(value=value)

    assert (found.slug if found else None) == expected


def test_tenant_for_domain_input_hides_inactive_tenants_however_they_are_named(
    tenant, other_tenant, system_actor
):
    services.tenant_deactivate(tenant=tenant, actor=system_actor)

    for value in ("contoso", "contoso.testserver", "alice@contoso.com", "contoso.com"):
        assert selectors.tenant_for_domain_input(value=value) is None
    assert selectors.tenant_for_domain_input(value="fabrikam") == other_tenant


def test_tenant_primary_host_and_service_principal(tenant, other_tenant):
    assert selectors.tenant_primary_host(tenant=tenant) == "contoso.testserver"
    assert selectors.tenant_primary_host(tenant=other_tenant) == "fabrikam.testserver"
    assert selectors.service_principal_get(tenant=tenant).tenant == tenant
