"""directory.services: the only writers. Each test also has a second tenant whose rows must stay
untouched, and checks the provisioning log (Event rows) the service writes or, for no-ops, doesn't."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from directory import services
from directory.exceptions import (
    InvalidValue,
    NotFound,
    ProtectedResource,
    TenantMismatch,
    UniquenessConflict,
)
from directory.models import (
    Event,
    Group,
    Membership,
    Tenant,
    TenantEmailDomain,
    TenantHost,
    User,
    UserAddress,
    UserEmail,
    UserPhoneNumber,
)
from directory.selectors import service_principal_get
from tests.factories import UserFactory


def event_actions(tenant: Tenant) -> list[str]:
    return list(Event.objects.filter(tenant=tenant).order_by("id").values_list("action", flat=True))


def last_event(tenant: Tenant) -> Event:
    return Event.objects.filter(tenant=tenant).latest("id")


def bulk_users(tenant: Tenant, count: int, prefix: str) -> list[User]:
    users = [User(tenant=tenant, username=f"{prefix}{n}@example.com", password="!") for n in range(count)]
    User.objects.bulk_create(users)
    return list(User.objects.filter(tenant=tenant, username__startswith=prefix).order_by("id"))


@pytest.fixture
def manager_actor(manager: User) -> services.Actor:
    return services.Actor.manager(manager)


@pytest.fixture
def alice(tenant: Tenant, system_actor: services.Actor) -> User:
    return services.user_create(
        tenant=tenant,
        actor=system_actor,
        username="Alice@Example.com",
        fields={"given_name": "Alice", "external_id": "ext-alice"},
        emails=[{"value": "alice@example.com", "type": "work", "primary": True}],
    )


@pytest.fixture
def other_alice(other_tenant: Tenant, system_actor: services.Actor) -> User:
    return services.user_create(
        tenant=other_tenant,
        actor=system_actor,
        username="alice@example.com",
        fields={"external_id": "ext-alice"},
    )


# ---------------------------------------------------------------------------------------------- tenants


def test_tenant_create_makes_hosts_domains_service_principal_and_event(system_actor, other_tenant):
    other_hosts = set(other_tenant.hosts.values_list("host", flat=True))

    tenant = services.tenant_create(
        actor=system_actor,
        slug=" Northwind ",
        name=" Northwind Traders ",
        hosts=["Login.Northwind.COM.", ""],
        email_domains=["Northwind.com"],
        display_name="Northwind",
    )

    assert (tenant.slug, tenant.name, tenant.display_name) == ("northwind", "Northwind Traders", "Northwind")
    assert tenant.is_active and not tenant.is_platform
    hosts = dict(tenant.hosts.values_list("host", "is_primary"))
    assert hosts == {"northwind.testserver": True, "login.northwind.com": False}
    assert list(tenant.email_domains.values_list("domain", "verified")) == [("northwind.com", True)]
    service_principal = service_principal_get(tenant=tenant)
    assert service_principal.role == User.Role.SERVICE
    assert not service_principal.has_usable_password()
    event = last_event(tenant)
    assert (event.action, event.actor_type, event.actor_label) == ("tenant.create", "system", "tests")
    assert event.changes["slug"] == [None, "northwind"]
    assert event.changes["hosts"] == [None, ["northwind.testserver", "login.northwind.com"]]
    assert event.changes["email_domains"] == [None, ["northwind.com"]]
    assert set(other_tenant.hosts.values_list("host", flat=True)) == other_hosts
    assert event_actions(other_tenant) == ["tenant.create"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slug": "fabrikam"}, services.TENANT_SLUG_TAKEN.format(value="fabrikam")),
        ({"slug": "FABRIKAM"}, services.TENANT_SLUG_TAKEN.format(value="fabrikam")),
        ({"hosts": ["fabrikam.testserver"]}, services.HOST_TAKEN.format(value="fabrikam.testserver")),
        ({"hosts": ["login.fabrikam.com"]}, services.HOST_TAKEN.format(value="login.fabrikam.com")),
        ({"email_domains": ["Fabrikam.com"]}, services.EMAIL_DOMAIN_TAKEN.format(value="fabrikam.com")),
    ],
)
def test_tenant_create_refuses_what_another_tenant_owns(tenant, system_actor, kwargs, message):
    other = services.tenant_create(
        actor=system_actor,
        slug="fabrikam",
        name="Fabrikam",
        hosts=["login.fabrikam.com"],
        email_domains=["fabrikam.com"],
    )
    tenants_before = Tenant.objects.count()
    users_before = User.objects.count()

    with pytest.raises(UniquenessConflict) as excinfo:
        services.tenant_create(actor=system_actor, **{"slug": "northwind", "name": "Northwind", **kwargs})

    assert excinfo.value.message == message
    assert Tenant.objects.count() == tenants_before
    assert User.objects.count() == users_before
    assert not TenantHost.objects.filter(host="northwind.testserver").exists()
    assert set(other.hosts.values_list("host", flat=True)) == {"fabrikam.testserver", "login.fabrikam.com"}
    assert set(tenant.hosts.values_list("host", flat=True)) == {"contoso.testserver"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"slug": "-bad"}, "slug"),
        ({"slug": "has space"}, "slug"),
        ({"slug": "a" * 64}, "slug"),
        ({"name": "   "}, "name"),
        ({"hosts": ["login.example.com/path"]}, "hosts"),
        ({"hosts": ["login.example.com:8443"]}, "hosts"),
        ({"hosts": ["testserver"]}, "hosts"),
        ({"hosts": ["localhost"]}, "hosts"),
        ({"email_domains": ["not a domain"]}, "email_domains"),
    ],
)
def test_tenant_create_refuses_invalid_values(system_actor, other_tenant, kwargs, field):
    with pytest.raises(InvalidValue) as excinfo:
        services.tenant_create(actor=system_actor, **{"slug": "northwind", "name": "Northwind", **kwargs})

    assert excinfo.value.field == field
    assert not Tenant.objects.filter(slug="northwind").exists()
    assert Tenant.objects.filter(pk=other_tenant.pk, is_active=True).exists()


def test_tenant_update_records_changed_attributes_and_a_noop_writes_nothing(
    tenant, other_tenant, manager_actor
):
    updated = services.tenant_update(
        tenant=tenant, actor=manager_actor, name="Contoso Ltd", primary_color="#112233"
    )

    assert (updated.name, updated.primary_color, updated.display_name) == ("Contoso Ltd", "#112233", "")
    event = last_event(tenant)
    assert event.action == "tenant.update"
    assert event.changes == {"name": ["Contoso", "Contoso Ltd"], "primary_color": ["#2563eb", "#112233"]}
    assert (event.actor_type, event.actor_user, event.actor_label) == (
        "manager",
        manager_actor.user,
        "manager@contoso.com",
    )
    events_before = Event.objects.count()

    services.tenant_update(tenant=tenant, actor=manager_actor, name="Contoso Ltd", primary_color="#112233")

    assert Event.objects.count() == events_before
    other_tenant.refresh_from_db()
    assert (other_tenant.name, other_tenant.primary_color) == ("Fabrikam", "#2563eb")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"primary_color": "red"}, "primary_color"),
        ({"primary_color": ""}, "primary_color"),
        ({"logo_url": "javascript:alert(1)"}, "logo_url"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_tenant_update_refuses_invalid_values(tenant, other_tenant, system_actor, kwargs, field):
    with pytest.raises(InvalidValue) as excinfo:
        services.tenant_update(tenant=tenant, actor=system_actor, **kwargs)

    assert excinfo.value.field == field
    tenant.refresh_from_db()
    assert (tenant.name, tenant.primary_color, tenant.logo_url) == ("Contoso", "#2563eb", "")
    assert event_actions(tenant) == ["tenant.create"]


def test_tenant_update_branding_writes_branding_event(tenant, other_tenant, system_actor):
    services.tenant_update_branding(
        tenant=tenant,
        actor=system_actor,
        display_name="Contoso Sign-in",
        logo_url="https://cdn.contoso.com/logo.png",
        primary_color="#000000",
    )

    tenant.refresh_from_db()
    assert (tenant.display_name, tenant.logo_url, tenant.primary_color) == (
        "Contoso Sign-in",
        "https://cdn.contoso.com/logo.png",
        "#000000",
    )
    assert last_event(tenant).action == "tenant.branding_update"
    assert set(last_event(tenant).changes) == {"display_name", "logo_url", "primary_color"}
    other_tenant.refresh_from_db()
    assert other_tenant.display_name == ""
    assert event_actions(other_tenant) == ["tenant.create"]


def test_tenant_deactivate_and_reactivate_are_logged_once(tenant, other_tenant, system_actor):
    services.tenant_deactivate(tenant=tenant, actor=system_actor)
    services.tenant_deactivate(tenant=tenant, actor=system_actor)
    tenant.refresh_from_db()
    assert not tenant.is_active

    services.tenant_reactivate(tenant=tenant, actor=system_actor)
    services.tenant_reactivate(tenant=tenant, actor=system_actor)
    tenant.refresh_from_db()
    assert tenant.is_active

    assert event_actions(tenant) == ["tenant.create", "tenant.deactivate", "tenant.reactivate"]
    assert Event.objects.get(tenant=tenant, action="tenant.deactivate").changes == {
        "is_active": [True, False]
    }
    other_tenant.refresh_from_db()
    assert other_tenant.is_active
    assert event_actions(other_tenant) == ["tenant.create"]


def test_tenant_delete_removes_its_data_and_logs_on_the_platform(
    tenant, other_tenant, platform_tenant, system_actor, alice, other_alice
):
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales", members=[alice])
    other_group = services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Sales", members=[other_alice]
    )

    services.tenant_delete(tenant=tenant, actor=system_actor)

    assert not Tenant.objects.filter(pk=tenant.pk).exists()
    assert not User.objects.filter(tenant_id=tenant.pk).exists()
    assert not Group.objects.filter(pk=group.pk).exists()
    assert not Event.objects.filter(tenant_id=tenant.pk).exists()
    assert not TenantHost.objects.filter(host="contoso.testserver").exists()
    event = last_event(platform_tenant)
    assert (event.action, event.resource_label) == ("tenant.delete", "contoso")
    assert event.changes == {"slug": ["contoso", None], "name": ["Contoso", None]}
    assert User.objects.filter(pk=other_alice.pk).exists()
    assert set(Membership.objects.filter(group=other_group).values_list("user_id", flat=True)) == {
        other_alice.pk
    }

    with pytest.raises(NotFound):
        services.tenant_delete(tenant=tenant, actor=system_actor)


@pytest.mark.parametrize("operation", ["tenant_deactivate", "tenant_reactivate", "tenant_delete"])
def test_platform_tenant_is_protected(platform_tenant, other_tenant, system_actor, operation):
    with pytest.raises(ProtectedResource):
        getattr(services, operation)(tenant=platform_tenant, actor=system_actor)

    platform_tenant.refresh_from_db()
    assert platform_tenant.is_active
    assert not Event.objects.filter(tenant=platform_tenant).exists()


# ------------------------------------------------------------------------------------------------ users


def test_user_create_writes_user_multi_values_and_event(tenant, other_tenant, manager, manager_actor):
    user = services.user_create(
        tenant=tenant,
        actor=manager_actor,
        username="bob@contoso.com",
        fields={"given_name": "Bob", "family_name": "Jones", "external_id": "ext-bob", "roles": ["Reader"]},
        emails=[
            {"value": "bob@contoso.com", "type": "work", "primary": True},
            {"value": "", "type": "home"},
        ],
        phone_numbers=[{"value": "+1 555 0100", "type": "mobile"}],
        addresses=[{"locality": "Redmond", "country": "US", "type": "work"}],
        manager=manager,
    )

    user.refresh_from_db()
    assert (user.tenant, user.username, user.external_id, user.role) == (
        tenant,
        "bob@contoso.com",
        "ext-bob",
        User.Role.MEMBER,
    )
    assert user.is_active and user.version == 1 and user.manager == manager
    assert not user.has_usable_password()
    assert list(user.emails.values_list("value", "type", "primary", "tenant_id")) == [
        ("bob@contoso.com", "work", True, tenant.pk)
    ]
    assert list(user.phone_numbers.values_list("value", "tenant_id")) == [("+1 555 0100", tenant.pk)]
    assert list(user.addresses.values_list("locality", "country")) == [("Redmond", "US")]
    event = last_event(tenant)
    assert (event.action, event.resource_type, event.resource_id, event.resource_label) == (
        "user.create",
        "User",
        str(user.scim_id),
        "bob@contoso.com",
    )
    assert (event.actor_type, event.actor_user, event.result) == ("manager", manager, "success")
    assert event.changes["username"] == [None, "bob@contoso.com"]
    assert event.changes["given_name"] == [None, "Bob"]
    assert event.changes["roles"] == [None, ["Reader"]]
    assert event.changes["manager"] == [None, str(manager.scim_id)]
    assert event.changes["emails"][1][0]["value"] == "bob@contoso.com"
    assert "role" not in event.changes
    assert not User.objects.filter(tenant=other_tenant, username="bob@contoso.com").exists()
    assert event_actions(other_tenant) == ["tenant.create"]


def test_user_create_with_password_can_sign_in_and_logs_no_secret(tenant, other_tenant, system_actor):
    user = services.user_create(
        tenant=tenant, actor=system_actor, username="carol", role=User.Role.MANAGER, password="s3cret-Pass!"
    )

    assert user.check_password("s3cret-Pass!")
    assert user.role == User.Role.MANAGER
    event = last_event(tenant)
    assert event.changes["role"] == [None, "manager"]
    assert "s3cret-Pass!" not in str(event.changes) and user.password not in str(event.changes)
    assert not User.objects.filter(tenant=other_tenant, username="carol").exists()


def test_user_create_as_a_scim_credential_records_the_credential(tenant, other_tenant):
    service_principal = service_principal_get(tenant=tenant)
    actor = services.Actor.for_credential(
        service_principal=service_principal, label="Entra (secret token)", credential="secret_token:7"
    )

    services.user_create(tenant=tenant, actor=actor, username="dave")

    event = last_event(tenant)
    assert (event.actor_type, event.actor_user, event.actor_label, event.credential) == (
        "credential",
        service_principal,
        "Entra (secret token)",
        "secret_token:7",
    )
    assert event_actions(other_tenant) == ["tenant.create"]


@pytest.mark.parametrize(
    ("username", "fields"),
    [
        ("alice@example.com", {}),
        ("ALICE@EXAMPLE.COM", {}),
    ],
)
def test_user_create_refuses_taken_username_case_insensitively(
    tenant, other_tenant, system_actor, alice, username, fields
):
    events_before = Event.objects.count()

    with pytest.raises(UniquenessConflict) as excinfo:
        services.user_create(tenant=tenant, actor=system_actor, username=username, fields=fields)

    assert excinfo.value.message == services.USERNAME_TAKEN.format(value=username)
    assert excinfo.value.field == "username"
    assert User.objects.filter(tenant=tenant, username__lower="alice@example.com").count() == 1
    assert Event.objects.count() == events_before

    same_in_other = services.user_create(tenant=other_tenant, actor=system_actor, username=username)
    assert same_in_other.tenant == other_tenant


def test_user_create_accepts_an_external_id_another_user_holds(tenant, other_tenant, system_actor, alice):
    """RFC 7643 §3.1: externalId has no uniqueness; two users of one tenant may share it."""
    alice2 = services.user_create(
        tenant=tenant, actor=system_actor, username="alice2", fields={"external_id": "ext-alice"}
    )

    assert alice2.external_id == "ext-alice"
    assert set(User.objects.filter(tenant=tenant, external_id="ext-alice")) == {alice, alice2}
    assert last_event(tenant).changes["external_id"] == [None, "ext-alice"]
    in_other = services.user_create(
        tenant=other_tenant, actor=system_actor, username="alice2", fields={"external_id": "ext-alice"}
    )
    assert in_other.external_id == "ext-alice"
    assert list(User.objects.filter(tenant=other_tenant, external_id="ext-alice")) == [in_other]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": "  "}, "username"),
        ({"username": "x" * 256}, "username"),
        ({"fields": {"is_active": "yes"}}, "is_active"),
        ({"fields": {"title": 7}}, "title"),
        ({"fields": {"roles": "Reader"}}, "roles"),
        ({"fields": {"password": "x"}}, ""),
        ({"role": User.Role.SERVICE}, "role"),
        (
            {"emails": [{"value": "a@x.com", "primary": True}, {"value": "b@x.com", "primary": True}]},
            "emails",
        ),
        ({"emails": [{"value": "a@x.com", "colour": "red"}]}, ""),
    ],
)
def test_user_create_refuses_invalid_values(tenant, other_tenant, system_actor, kwargs, field):
    with pytest.raises(InvalidValue) as excinfo:
        services.user_create(tenant=tenant, actor=system_actor, **{"username": "erin", **kwargs})

    assert excinfo.value.field == field
    assert not User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE).exists()
    assert not UserEmail.objects.exists()
    assert event_actions(tenant) == ["tenant.create"]


def test_user_create_keeps_several_values_of_one_type_in_the_order_sent(tenant, other_tenant, system_actor):
    """RFC 7643 §2.4 limits only `primary` to one value: two work emails and two mobile numbers are
    stored, in the order sent."""
    user = services.user_create(
        tenant=tenant,
        actor=system_actor,
        username="erin",
        emails=[
            {"value": "b@x.com", "type": "work"},
            {"value": "a@x.com", "type": "WORK", "primary": True},
            {"value": "c@x.com", "type": "work"},
        ],
        phone_numbers=[
            {"value": "+1 555 0102", "type": "mobile"},
            {"value": "+1 555 0101", "type": "mobile"},
        ],
    )

    assert list(user.emails.values_list("value", "type", "primary")) == [
        ("b@x.com", "work", False),
        ("a@x.com", "WORK", True),
        ("c@x.com", "work", False),
    ]
    assert list(user.phone_numbers.values_list("value", flat=True)) == ["+1 555 0102", "+1 555 0101"]
    assert not UserEmail.objects.filter(tenant=other_tenant).exists()


def test_user_create_refuses_manager_from_another_tenant_or_the_service_principal(
    tenant, other_tenant, system_actor, other_alice
):
    for manager in (other_alice, service_principal_get(tenant=tenant)):
        with pytest.raises(TenantMismatch):
            services.user_create(tenant=tenant, actor=system_actor, username="frank", manager=manager)

    assert not User.objects.filter(username="frank").exists()
    assert event_actions(tenant) == ["tenant.create"]


def test_user_update_applies_changes_bumps_version_and_logs_them(tenant, other_tenant, system_actor, alice):
    other_alice = services.user_create(tenant=other_tenant, actor=system_actor, username="alice@example.com")
    before = User.objects.get(pk=alice.pk)

    updated = services.user_update(
        tenant=tenant,
        actor=system_actor,
        user=alice,
        fields={"given_name": "Alicia", "title": "CFO", "external_id": "ext-alice"},
        emails=[{"value": "alicia@example.com", "type": "work", "primary": True}],
        phone_numbers=[{"value": "+44 20 7946 0000", "type": "work"}],
    )

    assert updated.version == before.version + 1
    assert updated.last_modified >= before.last_modified
    stored = User.objects.get(pk=alice.pk)
    assert (stored.given_name, stored.title, stored.version) == ("Alicia", "CFO", 2)
    assert list(stored.emails.values_list("value", flat=True)) == ["alicia@example.com"]
    assert list(stored.phone_numbers.values_list("value", flat=True)) == ["+44 20 7946 0000"]
    event = last_event(tenant)
    assert (event.action, event.resource_id) == ("user.update", str(alice.scim_id))
    assert set(event.changes) == {"given_name", "title", "emails", "phone_numbers"}
    assert event.changes["given_name"] == ["Alice", "Alicia"]
    assert event.changes["emails"][0][0]["value"] == "alice@example.com"
    assert event.changes["emails"][1][0]["value"] == "alicia@example.com"
    other_alice.refresh_from_db()
    assert (other_alice.given_name, other_alice.version) == ("", 1)


def test_user_update_without_changes_writes_no_event_and_keeps_the_version(
    tenant, other_tenant, system_actor, alice
):
    events_before = Event.objects.count()

    with CaptureQueriesContext(connection) as queries:
        result = services.user_update(
            tenant=tenant,
            actor=system_actor,
            user=alice,
            fields={"given_name": "Alice", "username": "Alice@Example.com", "external_id": "ext-alice"},
            emails=[{"value": "alice@example.com", "type": "work", "primary": True}],
            manager=None,
        )

    assert result.version == 1
    assert User.objects.get(pk=alice.pk).version == 1
    assert Event.objects.count() == events_before
    assert not [
        q for q in queries.captured_queries if q["sql"].upper().startswith(("UPDATE", "INSERT", "DELETE"))
    ]
    assert event_actions(other_tenant) == ["tenant.create"]


def test_user_update_writes_only_the_changed_columns(tenant, other_tenant, system_actor, alice):
    with CaptureQueriesContext(connection) as queries:
        services.user_update(tenant=tenant, actor=system_actor, user=alice, fields={"title": "CFO"})

    updates = [q["sql"] for q in queries.captured_queries if q["sql"].upper().startswith("UPDATE")]
    assert len(updates) == 1
    assert "title" in updates[0] and "version" in updates[0]
    assert "given_name" not in updates[0] and "username" not in updates[0]
    assert User.objects.get(pk=alice.pk).given_name == "Alice"
    assert event_actions(other_tenant) == ["tenant.create"]


def test_user_update_from_a_stale_object_keeps_the_other_attributes(
    tenant, other_tenant, system_actor, alice
):
    stale = User.objects.get(pk=alice.pk)
    services.user_update(tenant=tenant, actor=system_actor, user=alice, fields={"title": "CFO"})

    services.user_update(tenant=tenant, actor=system_actor, user=stale, fields={"department": "Finance"})

    stored = User.objects.get(pk=alice.pk)
    assert (stored.title, stored.department, stored.version) == ("CFO", "Finance", 3)
    assert event_actions(other_tenant) == ["tenant.create"]


def test_user_update_rename_to_a_taken_username_changes_nothing(tenant, other_tenant, system_actor, alice):
    bob = services.user_create(tenant=tenant, actor=system_actor, username="bob")
    services.user_create(tenant=other_tenant, actor=system_actor, username="carol")
    events_before = Event.objects.count()

    with pytest.raises(UniquenessConflict) as excinfo:
        services.user_update(
            tenant=tenant,
            actor=system_actor,
            user=bob,
            fields={"username": "ALICE@example.com", "title": "CEO"},
            emails=[{"value": "bob@example.com"}],
        )

    assert excinfo.value.message == services.USERNAME_TAKEN.format(value="ALICE@example.com")
    bob.refresh_from_db()
    assert (bob.username, bob.title, bob.version) == ("bob", "", 1)
    assert not bob.emails.exists()
    assert Event.objects.count() == events_before

    renamed = services.user_update(tenant=tenant, actor=system_actor, user=bob, fields={"username": "carol"})
    assert renamed.username == "carol"


def test_user_update_to_an_external_id_another_user_holds_is_accepted(
    tenant, other_tenant, system_actor, alice, other_alice
):
    """RFC 7643 §3.1: externalId has no uniqueness, so taking one another user holds is no conflict."""
    bob = services.user_create(tenant=tenant, actor=system_actor, username="bob")

    updated = services.user_update(
        tenant=tenant, actor=system_actor, user=bob, fields={"external_id": "ext-alice"}
    )

    assert (updated.external_id, User.objects.get(pk=bob.pk).version) == ("ext-alice", 2)
    assert last_event(tenant).changes == {"external_id": ["", "ext-alice"]}
    assert User.objects.get(pk=alice.pk).external_id == "ext-alice"
    assert User.objects.get(pk=other_alice.pk).version == 1


def test_user_create_keeps_a_manager_value_naming_nobody_and_links_it_when_that_user_arrives(
    tenant, other_tenant, system_actor
):
    """RFC 7643 §4.3: `manager.value` may name a user that is not here yet. It is stored as sent,
    linked once a user of this tenant with that externalId is created (the report's version moves),
    and never linked to a user of another tenant."""
    report = services.user_create(tenant=tenant, actor=system_actor, username="report", manager="ext-boss")
    assert (report.manager_value, report.manager_id, report.version) == ("ext-boss", None, 1)
    assert last_event(tenant).changes["manager"] == [None, "ext-boss"]

    services.user_create(
        tenant=other_tenant, actor=system_actor, username="boss", fields={"external_id": "ext-boss"}
    )
    report.refresh_from_db()
    assert (report.manager_id, report.version) == (None, 1)

    boss = services.user_create(
        tenant=tenant, actor=system_actor, username="boss", fields={"external_id": "ext-boss"}
    )
    report.refresh_from_db()
    assert (report.manager, report.manager_value, report.version) == (boss, "ext-boss", 2)


def test_a_manager_value_links_by_id_or_by_an_external_id_only_one_user_of_the_tenant_holds(
    tenant, other_tenant, system_actor, alice, other_alice
):
    """The reference resolves inside the tenant only: by scim id, or by an externalId exactly one
    user holds. An externalId two users share, the service principal's id and another tenant's
    user's id are kept as sent and never linked."""
    twin = services.user_create(
        tenant=tenant, actor=system_actor, username="twin", fields={"external_id": "shared"}
    )
    services.user_create(
        tenant=tenant, actor=system_actor, username="twin2", fields={"external_id": "shared"}
    )
    principal = service_principal_get(tenant=tenant)
    cases = {
        str(twin.scim_id): twin,
        "ext-alice": alice,
        "shared": None,
        str(principal.scim_id): None,
        str(other_alice.scim_id): None,
    }

    for n, (value, linked) in enumerate(cases.items()):
        report = services.user_create(tenant=tenant, actor=system_actor, username=f"r{n}", manager=value)
        assert (report.manager_value, report.manager) == (value, linked), value

    assert not User.objects.filter(manager__in=[principal, other_alice]).exists()
    assert User.objects.get(pk=other_alice.pk).version == 1


def test_a_user_created_with_an_external_id_others_hold_leaves_pending_reports_unlinked(
    tenant, other_tenant, system_actor
):
    """A reference by externalId links only when exactly one user of the tenant holds it; a third
    holder arriving must not pick one for the pending report."""
    for username in ("first", "second"):
        services.user_create(
            tenant=tenant, actor=system_actor, username=username, fields={"external_id": "x"}
        )
    report = services.user_create(tenant=tenant, actor=system_actor, username="report", manager="x")
    assert report.manager_id is None

    services.user_create(tenant=tenant, actor=system_actor, username="third", fields={"external_id": "x"})

    report.refresh_from_db()
    assert (report.manager_id, report.version) == (None, 1)


def test_user_update_sets_a_password_and_logs_only_that_one_was_set(
    tenant, other_tenant, system_actor, alice
):
    """RFC 7643 §4.1.1: password is write-only; the Event says it was set, never what it is."""
    updated = services.user_update(tenant=tenant, actor=system_actor, user=alice, password="n3w-Password")

    stored = User.objects.get(pk=alice.pk)
    assert stored.check_password("n3w-Password") and stored.version == 2 == updated.version
    event = last_event(tenant)
    assert event.changes == {"password": [services.PASSWORD_SET, services.PASSWORD_SET]}
    assert "n3w-Password" not in str(event.changes) and stored.password not in str(event.changes)
    with pytest.raises(InvalidValue):
        services.user_update(tenant=tenant, actor=system_actor, user=alice, password="")
    assert User.objects.get(pk=alice.pk).check_password("n3w-Password")


def test_user_update_sets_and_clears_the_manager_within_the_tenant(
    tenant, other_tenant, system_actor, manager, alice, other_alice
):
    services.user_update(tenant=tenant, actor=system_actor, user=alice, manager=manager)
    assert User.objects.get(pk=alice.pk).manager == manager
    assert last_event(tenant).changes == {"manager": [None, str(manager.scim_id)]}

    with pytest.raises(TenantMismatch):
        services.user_update(tenant=tenant, actor=system_actor, user=alice, manager=other_alice)
    with pytest.raises(TenantMismatch):
        services.user_update(
            tenant=tenant, actor=system_actor, user=alice, manager=service_principal_get(tenant=tenant)
        )
    with pytest.raises(InvalidValue):
        services.user_update(tenant=tenant, actor=system_actor, user=alice, manager=alice)
    assert User.objects.get(pk=alice.pk).manager == manager

    services.user_update(tenant=tenant, actor=system_actor, user=alice, manager=None)
    stored = User.objects.get(pk=alice.pk)
    assert (stored.manager, stored.version) == (None, 3)
    assert last_event(tenant).changes == {"manager": [str(manager.scim_id), None]}
    assert User.objects.get(pk=other_alice.pk).manager is None


def test_user_update_changes_the_role(tenant, other_tenant, system_actor, alice):
    services.user_update(tenant=tenant, actor=system_actor, user=alice, role=User.Role.MANAGER)

    assert User.objects.get(pk=alice.pk).role == User.Role.MANAGER
    assert last_event(tenant).changes == {"role": ["member", "manager"]}
    with pytest.raises(InvalidValue):
        services.user_update(tenant=tenant, actor=system_actor, user=alice, role=User.Role.SERVICE)
    assert User.objects.get(pk=alice.pk).role == User.Role.MANAGER


@pytest.mark.parametrize(
    "operation",
    [
        lambda tenant, actor, user: services.user_update(
            tenant=tenant, actor=actor, user=user, fields={"title": "x"}
        ),
        lambda tenant, actor, user: services.user_deactivate(tenant=tenant, actor=actor, user=user),
        lambda tenant, actor, user: services.user_reactivate(tenant=tenant, actor=actor, user=user),
        lambda tenant, actor, user: services.user_set_password(
            tenant=tenant, actor=actor, user=user, password="pw-123456"
        ),
        lambda tenant, actor, user: services.user_delete(tenant=tenant, actor=actor, user=user),
    ],
    ids=["update", "deactivate", "reactivate", "set_password", "delete"],
)
def test_user_writes_refuse_a_user_of_another_tenant(
    tenant, other_tenant, system_actor, other_alice, operation
):
    with pytest.raises(TenantMismatch):
        operation(tenant, system_actor, other_alice)

    stored = User.objects.get(pk=other_alice.pk)
    assert (stored.title, stored.is_active, stored.version, stored.has_usable_password()) == (
        "",
        True,
        1,
        False,
    )
    assert event_actions(tenant) == ["tenant.create"]


@pytest.mark.parametrize(
    "operation",
    [
        lambda tenant, actor, user: services.user_update(
            tenant=tenant, actor=actor, user=user, fields={"title": "x"}
        ),
        lambda tenant, actor, user: services.user_update(
            tenant=tenant, actor=actor, user=user, role=User.Role.MANAGER
        ),
        lambda tenant, actor, user: services.user_deactivate(tenant=tenant, actor=actor, user=user),
        lambda tenant, actor, user: services.user_set_password(
            tenant=tenant, actor=actor, user=user, password="pw-123456"
        ),
        lambda tenant, actor, user: services.user_delete(tenant=tenant, actor=actor, user=user),
    ],
    ids=["update", "promote", "deactivate", "set_password", "delete"],
)
def test_user_writes_refuse_the_service_principal(tenant, other_tenant, system_actor, operation):
    service_principal = service_principal_get(tenant=tenant)

    with pytest.raises(ProtectedResource):
        operation(tenant, system_actor, service_principal)

    stored = User.objects.get(pk=service_principal.pk)
    assert (stored.role, stored.is_active, stored.has_usable_password()) == ("service", True, False)
    assert event_actions(tenant) == ["tenant.create"]
    assert service_principal_get(tenant=other_tenant).role == User.Role.SERVICE


def test_user_writes_on_a_deleted_user_are_not_found(tenant, other_tenant, system_actor, alice):
    stale = User.objects.get(pk=alice.pk)
    services.user_delete(tenant=tenant, actor=system_actor, user=alice)

    with pytest.raises(NotFound):
        services.user_update(tenant=tenant, actor=system_actor, user=stale, fields={"title": "x"})
    with pytest.raises(NotFound):
        services.user_delete(tenant=tenant, actor=system_actor, user=stale)
    with pytest.raises(NotFound):
        services.user_set_password(tenant=tenant, actor=system_actor, user=stale, password="pw-123456")
    assert event_actions(tenant).count("user.delete") == 1


def test_user_deactivate_and_reactivate_keep_memberships_and_are_idempotent(
    tenant, other_tenant, system_actor, alice, other_alice
):
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales", members=[alice])

    services.user_deactivate(tenant=tenant, actor=system_actor, user=alice)
    services.user_deactivate(tenant=tenant, actor=system_actor, user=alice)
    stored = User.objects.get(pk=alice.pk)
    assert (stored.is_active, stored.version) == (False, 2)
    assert Membership.objects.filter(group=group, user=alice).exists()

    services.user_reactivate(tenant=tenant, actor=system_actor, user=alice)
    services.user_reactivate(tenant=tenant, actor=system_actor, user=alice)
    stored = User.objects.get(pk=alice.pk)
    assert (stored.is_active, stored.version) == (True, 3)

    user_events = Event.objects.filter(tenant=tenant, resource_id=str(alice.scim_id)).order_by("id")
    assert [(e.action, e.changes) for e in user_events][1:] == [
        ("user.deactivate", {"is_active": [True, False]}),
        ("user.reactivate", {"is_active": [False, True]}),
    ]
    assert User.objects.get(pk=other_alice.pk).is_active


def test_user_set_password_logs_the_change_but_never_the_password(tenant, other_tenant, system_actor, alice):
    with pytest.raises(InvalidValue):
        services.user_set_password(tenant=tenant, actor=system_actor, user=alice, password="")

    services.user_set_password(tenant=tenant, actor=system_actor, user=alice, password="n3w-Password")

    stored = User.objects.get(pk=alice.pk)
    assert stored.check_password("n3w-Password")
    event = last_event(tenant)
    assert (event.action, event.resource_id, event.changes) == ("user.set_password", str(alice.scim_id), {})
    logged = " ".join(str(v) for v in Event.objects.values_list("changes", "detail", "resource_label"))
    assert "n3w-Password" not in logged and stored.password not in logged


def test_user_delete_removes_the_user_and_moves_affected_versions_on(
    tenant, other_tenant, system_actor, alice, other_alice
):
    report = services.user_create(tenant=tenant, actor=system_actor, username="report", manager=alice)
    group = services.group_create(
        tenant=tenant, actor=system_actor, display_name="Sales", members=[alice, report]
    )
    other_group = services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Sales", members=[other_alice]
    )

    services.user_delete(tenant=tenant, actor=system_actor, user=alice)

    assert not User.objects.filter(pk=alice.pk).exists()
    assert not UserEmail.objects.filter(user_id=alice.pk).exists()
    assert list(Membership.objects.filter(group=group).values_list("user_id", flat=True)) == [report.pk]
    stored_group = Group.objects.get(pk=group.pk)
    assert stored_group.version == 2
    stored_report = User.objects.get(pk=report.pk)
    assert (stored_report.manager, stored_report.version) == (None, 2)
    event = last_event(tenant)
    assert (event.action, event.resource_id, event.resource_label) == (
        "user.delete",
        str(alice.scim_id),
        "Alice@Example.com",
    )
    assert event.changes == {"userName": ["Alice@Example.com", None]}
    assert User.objects.filter(pk=other_alice.pk).exists()
    assert Group.objects.get(pk=other_group.pk).version == 1


# ----------------------------------------------------------------------------------------------- groups


def test_group_create_with_members_writes_memberships_and_event(
    tenant, other_tenant, system_actor, alice, other_alice
):
    bob = UserFactory(tenant=tenant)

    group = services.group_create(
        tenant=tenant,
        actor=system_actor,
        display_name="Sales",
        external_id="g-1",
        members=[alice, bob, alice],
    )

    assert (group.tenant, group.display_name, group.external_id, group.version) == (tenant, "Sales", "g-1", 1)
    assert set(Membership.objects.filter(group=group).values_list("user_id", "tenant_id")) == {
        (alice.pk, tenant.pk),
        (bob.pk, tenant.pk),
    }
    event = last_event(tenant)
    assert (event.action, event.resource_type, event.resource_id) == (
        "group.create",
        "Group",
        str(group.scim_id),
    )
    assert event.changes["displayName"] == [None, "Sales"]
    assert event.changes["externalId"] == [None, "g-1"]
    assert sorted(event.changes["members"]["added"]) == sorted([str(alice.scim_id), str(bob.scim_id)])
    assert not Group.objects.filter(tenant=other_tenant).exists()


def test_group_create_refuses_members_of_another_tenant_and_the_service_principal(
    tenant, other_tenant, system_actor, alice, other_alice
):
    for intruder in (other_alice, service_principal_get(tenant=tenant)):
        with pytest.raises(TenantMismatch):
            services.group_create(
                tenant=tenant, actor=system_actor, display_name="Sales", members=[alice, intruder]
            )

    assert not Group.objects.exists()
    assert not Membership.objects.exists()
    assert event_actions(tenant).count("group.create") == 0


@pytest.mark.parametrize("display_name", ["Sales", "SALES", "sales"])
def test_group_create_refuses_a_taken_display_name_case_insensitively(
    tenant, other_tenant, system_actor, display_name
):
    services.group_create(tenant=tenant, actor=system_actor, display_name="Sales", external_id="g-1")

    with pytest.raises(UniquenessConflict) as excinfo:
        services.group_create(tenant=tenant, actor=system_actor, display_name=display_name)

    assert excinfo.value.message == services.DISPLAY_NAME_TAKEN.format(value=display_name)
    assert excinfo.value.field == "display_name"
    assert Group.objects.filter(tenant=tenant).count() == 1
    assert services.group_create(tenant=other_tenant, actor=system_actor, display_name=display_name)


def test_group_create_accepts_an_external_id_another_group_holds(tenant, other_tenant, system_actor):
    """RFC 7643 §3.1: a group's externalId is not unique either."""
    sales = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales", external_id="g-1")

    marketing = services.group_create(
        tenant=tenant, actor=system_actor, display_name="Marketing", external_id="g-1"
    )

    assert set(Group.objects.filter(tenant=tenant, external_id="g-1")) == {sales, marketing}
    assert services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Marketing", external_id="g-1"
    )


@pytest.mark.parametrize(
    ("display_name", "field"), [("", "display_name"), ("   ", "display_name"), ("x" * 256, "display_name")]
)
def test_group_create_refuses_invalid_display_names(tenant, other_tenant, system_actor, display_name, field):
    with pytest.raises(InvalidValue) as excinfo:
        services.group_create(tenant=tenant, actor=system_actor, display_name=display_name)

    assert excinfo.value.field == field
    assert not Group.objects.exists()


def test_group_update_renames_and_a_noop_writes_nothing(tenant, other_tenant, system_actor):
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales")
    other_group = services.group_create(tenant=other_tenant, actor=system_actor, display_name="Sales")

    updated = services.group_update(
        tenant=tenant, actor=system_actor, group=group, display_name="Sales EMEA", external_id="g-9"
    )

    assert (updated.display_name, updated.external_id, updated.version) == ("Sales EMEA", "g-9", 2)
    event = last_event(tenant)
    assert event.action == "group.update"
    assert event.changes == {"displayName": ["Sales", "Sales EMEA"], "externalId": ["", "g-9"]}
    events_before = Event.objects.count()

    again = services.group_update(
        tenant=tenant, actor=system_actor, group=group, display_name="Sales EMEA", external_id="g-9"
    )
    assert again.version == 2
    assert Group.objects.get(pk=group.pk).version == 2
    assert Event.objects.count() == events_before
    assert Group.objects.get(pk=other_group.pk).display_name == "Sales"


def test_group_update_to_a_taken_name_is_a_conflict_and_changes_nothing(tenant, other_tenant, system_actor):
    services.group_create(tenant=tenant, actor=system_actor, display_name="Sales")
    marketing = services.group_create(tenant=tenant, actor=system_actor, display_name="Marketing")
    services.group_create(tenant=other_tenant, actor=system_actor, display_name="Finance")

    with pytest.raises(UniquenessConflict) as excinfo:
        services.group_update(tenant=tenant, actor=system_actor, group=marketing, display_name="sALES")

    assert excinfo.value.message == services.DISPLAY_NAME_TAKEN.format(value="sALES")
    stored = Group.objects.get(pk=marketing.pk)
    assert (stored.display_name, stored.version) == ("Marketing", 1)
    renamed = services.group_update(
        tenant=tenant, actor=system_actor, group=marketing, display_name="Finance"
    )
    assert renamed.display_name == "Finance"


def test_group_writes_refuse_a_group_of_another_tenant(
    tenant, other_tenant, system_actor, alice, other_alice
):
    other_group = services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Sales", members=[other_alice]
    )

    with pytest.raises(TenantMismatch):
        services.group_update(tenant=tenant, actor=system_actor, group=other_group, display_name="Mine")
    with pytest.raises(TenantMismatch):
        services.membership_add(tenant=tenant, actor=system_actor, group=other_group, users=[alice])
    with pytest.raises(TenantMismatch):
        services.membership_remove(tenant=tenant, actor=system_actor, group=other_group, users=[alice])
    with pytest.raises(TenantMismatch):
        services.membership_set(tenant=tenant, actor=system_actor, group=other_group, users=[])
    with pytest.raises(TenantMismatch):
        services.group_delete(tenant=tenant, actor=system_actor, group=other_group)

    stored = Group.objects.get(pk=other_group.pk)
    assert (stored.display_name, stored.version) == ("Sales", 1)
    assert list(Membership.objects.filter(group=other_group).values_list("user_id", flat=True)) == [
        other_alice.pk
    ]
    assert event_actions(tenant) == ["tenant.create", "user.create"]


def test_group_delete_removes_memberships_but_not_users(
    tenant, other_tenant, system_actor, alice, other_alice
):
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales", members=[alice])
    other_group = services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Sales", members=[other_alice]
    )
    stale = Group.objects.get(pk=group.pk)

    services.group_delete(tenant=tenant, actor=system_actor, group=group)

    assert not Group.objects.filter(pk=group.pk).exists()
    assert not Membership.objects.filter(group_id=group.pk).exists()
    assert User.objects.filter(pk=alice.pk).exists()
    event = last_event(tenant)
    assert (event.action, event.resource_id, event.changes) == (
        "group.delete",
        str(group.scim_id),
        {"displayName": ["Sales", None]},
    )
    assert Membership.objects.filter(group=other_group, user=other_alice).exists()
    with pytest.raises(NotFound):
        services.group_delete(tenant=tenant, actor=system_actor, group=stale)
    with pytest.raises(NotFound):
        services.membership_add(tenant=tenant, actor=system_actor, group=stale, users=[alice])


# ------------------------------------------------------------------------------------------ memberships


def member_ids(group: Group) -> set[int]:
    return set(Membership.objects.filter(group=group).values_list("user_id", flat=True))


def test_membership_add_adds_only_new_members(tenant, other_tenant, system_actor, alice, other_alice):
    bob, carol = UserFactory(tenant=tenant), UserFactory(tenant=tenant)
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales", members=[alice])
    other_group = services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Sales", members=[other_alice]
    )

    result = services.membership_add(
        tenant=tenant, actor=system_actor, group=group, users=[alice, bob, carol, bob]
    )

    assert member_ids(group) == {alice.pk, bob.pk, carol.pk}
    assert result.version == 2 == Group.objects.get(pk=group.pk).version
    event = last_event(tenant)
    assert (event.action, event.resource_id) == ("group.members_add", str(group.scim_id))
    assert sorted(event.changes["members"]["added"]) == sorted([str(bob.scim_id), str(carol.scim_id)])
    assert set(Membership.objects.filter(group=group).values_list("tenant_id", flat=True)) == {tenant.pk}
    assert member_ids(other_group) == {other_alice.pk}


def test_membership_add_of_present_members_is_a_noop(tenant, other_tenant, system_actor, alice):
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales", members=[alice])
    events_before = Event.objects.count()

    services.membership_add(tenant=tenant, actor=system_actor, group=group, users=[alice])
    services.membership_add(tenant=tenant, actor=system_actor, group=group, users=[])

    assert Group.objects.get(pk=group.pk).version == 1
    assert Event.objects.count() == events_before
    assert member_ids(group) == {alice.pk}
    assert event_actions(other_tenant) == ["tenant.create"]


def test_membership_add_refuses_users_of_another_tenant_and_the_service_principal(
    tenant, other_tenant, system_actor, alice, other_alice
):
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales")

    for intruder in (other_alice, service_principal_get(tenant=tenant)):
        with pytest.raises(TenantMismatch):
            services.membership_add(tenant=tenant, actor=system_actor, group=group, users=[alice, intruder])
        with pytest.raises(TenantMismatch):
            services.membership_set(tenant=tenant, actor=system_actor, group=group, users=[alice, intruder])
        with pytest.raises(TenantMismatch):
            services.membership_remove(tenant=tenant, actor=system_actor, group=group, users=[intruder])

    assert member_ids(group) == set()
    assert Group.objects.get(pk=group.pk).version == 1
    assert not Membership.objects.filter(user=other_alice).exists()


def test_membership_remove_removes_exactly_the_given_members(
    tenant, other_tenant, system_actor, alice, other_alice
):
    bob, carol, outsider = UserFactory(tenant=tenant), UserFactory(tenant=tenant), UserFactory(tenant=tenant)
    group = services.group_create(
        tenant=tenant, actor=system_actor, display_name="Sales", members=[alice, bob, carol]
    )
    other_group = services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Sales", members=[other_alice]
    )

    result = services.membership_remove(
        tenant=tenant, actor=system_actor, group=group, users=[bob, outsider, bob]
    )

    assert member_ids(group) == {alice.pk, carol.pk}
    assert result.version == 2
    event = last_event(tenant)
    assert (event.action, event.changes) == (
        "group.members_remove",
        {"members": {"removed": [str(bob.scim_id)]}},
    )
    events_before = Event.objects.count()

    services.membership_remove(tenant=tenant, actor=system_actor, group=group, users=[bob, outsider])

    assert Event.objects.count() == events_before
    assert Group.objects.get(pk=group.pk).version == 2
    assert member_ids(other_group) == {other_alice.pk}


def test_membership_set_makes_the_membership_exactly_the_given_users(
    tenant, other_tenant, system_actor, alice, other_alice
):
    bob, carol = UserFactory(tenant=tenant), UserFactory(tenant=tenant)
    group = services.group_create(
        tenant=tenant, actor=system_actor, display_name="Sales", members=[alice, bob]
    )
    other_group = services.group_create(
        tenant=other_tenant, actor=system_actor, display_name="Sales", members=[other_alice]
    )

    services.membership_set(tenant=tenant, actor=system_actor, group=group, users=[bob, carol, carol])

    assert member_ids(group) == {bob.pk, carol.pk}
    event = last_event(tenant)
    assert event.action == "group.members_set"
    assert event.changes == {"members": {"added": [str(carol.scim_id)], "removed": [str(alice.scim_id)]}}
    assert Group.objects.get(pk=group.pk).version == 2
    events_before = Event.objects.count()

    services.membership_set(tenant=tenant, actor=system_actor, group=group, users=[carol, bob])
    assert Event.objects.count() == events_before
    assert Group.objects.get(pk=group.pk).version == 2

    services.membership_set(tenant=tenant, actor=system_actor, group=group, users=[])
    assert member_ids(group) == set()
    removed = last_event(tenant).changes["members"]
    assert set(removed) == {"removed"}
    assert sorted(removed["removed"]) == sorted([str(bob.scim_id), str(carol.scim_id)])
    assert User.objects.filter(pk__in=[bob.pk, carol.pk]).count() == 2
    assert member_ids(other_group) == {other_alice.pk}


@pytest.mark.parametrize("group_size", [5, 200])
def test_membership_add_and_remove_cost_the_same_queries_whatever_the_group_size(
    tenant, other_tenant, system_actor, group_size, django_assert_num_queries
):
    members = bulk_users(tenant, group_size, "member")
    newcomers = bulk_users(tenant, 3, "newcomer")
    bulk_users(other_tenant, group_size, "member")
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Big", members=members)

    with django_assert_num_queries(MEMBERSHIP_ADD_QUERIES) as added:
        services.membership_add(tenant=tenant, actor=system_actor, group=group, users=newcomers)
    with django_assert_num_queries(MEMBERSHIP_REMOVE_QUERIES) as removed:
        services.membership_remove(
            tenant=tenant, actor=system_actor, group=group, users=[*newcomers, members[0]]
        )

    assert len(member_ids(group)) == group_size - 1
    membership_reads = [
        q["sql"]
        for q in [*added.captured_queries, *removed.captured_queries]
        if q["sql"].upper().startswith("SELECT") and "directory_membership" in q["sql"]
    ]
    assert len(membership_reads) == 2
    assert all('"user_id" IN (' in sql for sql in membership_reads), "only the k given users are read"
    assert not Membership.objects.filter(tenant=other_tenant).exists()


# The lock, the read of the k given users' memberships, one insert or delete, the version bump (the
# locked group's next version is known, so it is not read back), the event, the read of the
# tenant's webhook endpoints for the outbox (commit adc0410), and the savepoint pair of the
# service's own transaction inside the test's.
MEMBERSHIP_ADD_QUERIES = 8
MEMBERSHIP_REMOVE_QUERIES = 8


# ------------------------------------------------------------------------------------------ atomicity


def test_a_failure_after_the_first_write_leaves_nothing_half_written(
    tenant, other_tenant, system_actor, alice, monkeypatch
):
    group = services.group_create(tenant=tenant, actor=system_actor, display_name="Sales")
    counts_before = {
        model: model.objects.count()
        for model in (
            User,
            UserEmail,
            UserPhoneNumber,
            UserAddress,
            Group,
            Membership,
            Event,
            Tenant,
            TenantHost,
        )
    }

    def fail(**kwargs):
        raise RuntimeError("event store unavailable")

    monkeypatch.setattr(services, "event_record", fail)
    attempts = [
        lambda: services.user_create(
            tenant=tenant,
            actor=system_actor,
            username="bob",
            emails=[{"value": "bob@contoso.com"}],
            phone_numbers=[{"value": "+1"}],
            addresses=[{"locality": "Oslo"}],
        ),
        lambda: services.user_update(
            tenant=tenant, actor=system_actor, user=alice, fields={"title": "CEO"}, emails=[]
        ),
        lambda: services.user_delete(tenant=tenant, actor=system_actor, user=alice),
        lambda: services.group_create(tenant=tenant, actor=system_actor, display_name="Ops", members=[alice]),
        lambda: services.membership_add(tenant=tenant, actor=system_actor, group=group, users=[alice]),
        lambda: services.membership_set(tenant=tenant, actor=system_actor, group=group, users=[alice]),
        lambda: services.group_delete(tenant=tenant, actor=system_actor, group=group),
        lambda: services.tenant_create(actor=system_actor, slug="northwind", name="Northwind"),
        lambda: services.tenant_deactivate(tenant=tenant, actor=system_actor),
    ]
    for attempt in attempts:
        with pytest.raises(RuntimeError):
            attempt()

    assert {model: model.objects.count() for model in counts_before} == counts_before
    stored = User.objects.get(pk=alice.pk)
    assert (stored.title, stored.version, stored.emails.count()) == ("", 1, 1)
    assert Group.objects.get(pk=group.pk).version == 1
    assert Tenant.objects.get(pk=tenant.pk).is_active
    assert Tenant.objects.get(pk=other_tenant.pk).is_active
    assert not TenantEmailDomain.objects.filter(domain__startswith="northwind").exists()


# ---------------------------------------------------------------------------------------- operators


def test_user_set_operator_only_on_the_platform_tenant(
    platform_tenant, tenant, other_tenant, system_actor, manager
):
    operator = services.user_create(
        tenant=platform_tenant, actor=system_actor, username="ops", role=User.Role.MANAGER
    )

    granted = services.user_set_operator(
        tenant=platform_tenant, actor=system_actor, user=operator, is_operator=True
    )
    services.user_set_operator(tenant=platform_tenant, actor=system_actor, user=operator, is_operator=True)

    assert granted.is_superuser and granted.version == 2
    assert event_actions(platform_tenant) == ["user.create", "user.operator_grant"]
    assert last_event(platform_tenant).changes == {"is_superuser": [False, True]}
    with pytest.raises(InvalidValue):
        services.user_set_operator(tenant=tenant, actor=system_actor, user=manager, is_operator=True)
    with pytest.raises(TenantMismatch):
        services.user_set_operator(tenant=platform_tenant, actor=system_actor, user=manager, is_operator=True)
    assert not User.objects.get(pk=manager.pk).is_superuser
    assert not User.objects.filter(tenant=other_tenant, is_superuser=True).exists()

    services.user_set_operator(tenant=platform_tenant, actor=system_actor, user=operator, is_operator=False)
    assert not User.objects.get(pk=operator.pk).is_superuser
    assert last_event(platform_tenant).action == "user.operator_revoke"


def test_conflicts_on_non_ascii_names_get_the_specific_message(tenant, other_tenant, system_actor):
    services.user_create(tenant=tenant, actor=system_actor, username="Ärne")
    services.group_create(tenant=tenant, actor=system_actor, display_name="Økonomi")

    with pytest.raises(UniquenessConflict) as user_conflict:
        services.user_create(tenant=tenant, actor=system_actor, username="Ärne")
    with pytest.raises(UniquenessConflict) as group_conflict:
        services.group_create(tenant=tenant, actor=system_actor, display_name="Økonomi")

    assert user_conflict.value.message == services.USERNAME_TAKEN.format(value="Ärne")
    assert group_conflict.value.message == services.DISPLAY_NAME_TAKEN.format(value="Økonomi")
    assert (
        services.user_create(tenant=other_tenant, actor=system_actor, username="Ärne").tenant == other_tenant
    )
