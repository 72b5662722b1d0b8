"""Management commands: thin edges over the services, with domain errors turned into CommandError."""

from __future__ import annotations

import hashlib
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from directory import selectors, services
from directory.models import Event, Tenant, TenantEmailDomain, TenantHost, User
from oauth.models import SecretToken, token_digest
from tests.clients import Client


def run(*args: str, **options: object) -> str:
    stdout = StringIO()
    call_command(*args, stdout=stdout, stderr=StringIO(), **options)
    return stdout.getvalue()


def everything_stored_about_tokens() -> str:
    rows = [*SecretToken.objects.values(), *Event.objects.values()]
    return " ".join(str(value) for row in rows for value in row.values())


# ------------------------------------------------------------------------------------------ create_tenant


def test_create_tenant_creates_hosts_domains_and_service_principal(tenant, other_tenant):
    out = run(
        "create_tenant",
        "--slug=northwind",
        "--name=Northwind Traders",
        "--host=login.northwind.com",
        "--email-domain=northwind.com",
    )

    created = Tenant.objects.get(slug="northwind")
    assert out.startswith("Created tenant northwind (Northwind Traders) on ")
    assert "northwind.testserver" in out and "login.northwind.com" in out
    assert set(created.hosts.values_list("host", flat=True)) == {
        "northwind.testserver",
        "login.northwind.com",
    }
    assert TenantEmailDomain.objects.get(domain="northwind.com").tenant == created
    assert selectors.service_principal_get(tenant=created).tenant == created
    assert Event.objects.get(tenant=created).actor_label == "manage.py create_tenant"
    assert set(other_tenant.hosts.values_list("host", flat=True)) == {"fabrikam.testserver"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slug=contoso", "--name=Again"], "A tenant with slug 'contoso' already exists."),
        (["--slug=nw", "--name=NW", "--host=fabrikam.testserver"], "already serves another tenant"),
        (["--slug=nw", "--name=NW", "--email-domain=fabrikam.com"], "belongs to another tenant"),
        (["--slug=Not A Slug", "--name=NW"], "lowercase letters"),
        (["--slug=nw", "--name= "], "needs a name"),
    ],
)
def test_create_tenant_errors_are_command_errors(tenant, other_tenant, args, message):
    tenants_before = Tenant.objects.count()

    with pytest.raises(CommandError, match=re.escape(message)):
        run("create_tenant", *args)

    assert Tenant.objects.count() == tenants_before
    assert not TenantHost.objects.filter(host="nw.testserver").exists()


# ----------------------------------------------------------------------------------------- create_manager


def test_create_manager_prints_a_generated_password_that_works(tenant, other_tenant):
    out = run("create_manager", "--tenant=contoso", "--username=boss@contoso.com", "--email=boss@contoso.com")

    lines = out.splitlines()
    assert lines[0] == "Created manager boss@contoso.com of tenant contoso"
    assert lines[1].startswith("Password: ")
    password = lines[1].removeprefix("Password: ")
    assert len(password) >= 12
    boss = User.objects.get(tenant=tenant, username="boss@contoso.com")
    assert (boss.role, boss.is_staff, boss.email) == (User.Role.MANAGER, True, "boss@contoso.com")
    assert boss.check_password(password)
    assert password not in str(list(Event.objects.values_list("changes", flat=True)))
    assert not User.objects.filter(tenant=other_tenant, username="boss@contoso.com").exists()


def test_create_manager_with_a_given_password_does_not_print_it(tenant, other_tenant):
    out = run("create_manager", "--tenant=fabrikam", "--username=boss", "--password=given-Pass-1")

    assert out == "Created manager boss of tenant fabrikam\n"
    assert User.objects.get(tenant=other_tenant, username="boss").check_password("given-Pass-1")
    assert not User.objects.filter(tenant=tenant, username="boss").exists()


def test_create_manager_promotes_an_existing_user_and_resets_the_password(tenant, other_tenant, system_actor):
    alice = services.user_create(tenant=tenant, actor=system_actor, username="Alice")
    other_alice = services.user_create(tenant=other_tenant, actor=system_actor, username="alice")

    out = run("create_manager", "--tenant=contoso", "--username=alice")

    password = out.splitlines()[1].removeprefix("Password: ")
    assert out.splitlines()[0] == "Updated manager Alice of tenant contoso"
    alice.refresh_from_db()
    assert alice.role == User.Role.MANAGER and alice.check_password(password)
    assert User.objects.filter(tenant=tenant).exclude(role=User.Role.SERVICE).count() == 1
    other_alice.refresh_from_db()
    assert other_alice.role == User.Role.MEMBER and not other_alice.has_usable_password()


def test_create_manager_errors_are_command_errors(tenant, other_tenant):
    with pytest.raises(CommandError, match="No tenant with slug 'northwind'"):
        run("create_manager", "--tenant=northwind", "--username=boss")
    with pytest.raises(CommandError, match="userName is required"):
        run("create_manager", "--tenant=contoso", "--username= ")
    with pytest.raises(CommandError):
        run("create_manager", "--username=boss")

    assert not User.objects.filter(username="boss").exists()


# --------------------------------------------------------------------------------------- issue_scim_token


def test_issue_scim_token_prints_the_token_alone_and_stores_only_its_digest(tenant, other_tenant):
    out = run("issue_scim_token", "--tenant=contoso")

    assert out.endswith("\n") and out.count("\n") == 1
    raw = out.strip()
    assert re.fullmatch(r"slt_[A-Za-z0-9_-]{40,}", raw)
    token = SecretToken.objects.get(tenant=tenant)
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest() == token_digest(raw)
    assert raw.startswith(token.prefix) and len(token.prefix) < len(raw) // 2
    assert token.is_valid() and token.expires is None
    assert raw not in everything_stored_about_tokens()
    assert not SecretToken.objects.filter(tenant=other_tenant).exists()


def test_issue_scim_token_with_expiry_and_name(tenant, other_tenant):
    raw = run("issue_scim_token", "--tenant=fabrikam", "--expires-days=30", "--name=Entra").strip()

    token = SecretToken.objects.get(digest=token_digest(raw))
    assert (token.tenant, token.name) == (other_tenant, "Entra")
    assert token.expires is not None and token.is_valid()
    assert not SecretToken.objects.filter(tenant=tenant).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant=northwind"], "No tenant with slug"),
        (["--tenant=platform"], "platform tenant"),
        (["--tenant=contoso", "--expires-days=0"], "positive number of days"),
        (["--tenant=contoso", "--expires-days=-3"], "positive number of days"),
    ],
)
def test_issue_scim_token_errors_are_command_errors(tenant, other_tenant, args, message):
    stdout = StringIO()
    with pytest.raises(CommandError, match=message):
        call_command("issue_scim_token", *args, stdout=stdout)

    assert stdout.getvalue() == ""
    assert not SecretToken.objects.exists()


def test_issue_scim_token_refuses_an_inactive_tenant(tenant, other_tenant, system_actor):
    services.tenant_deactivate(tenant=tenant, actor=system_actor)

    with pytest.raises(CommandError, match="inactive"):
        run("issue_scim_token", "--tenant=contoso")

    assert not SecretToken.objects.exists()
    assert run("issue_scim_token", "--tenant=fabrikam").startswith("slt_")


# -------------------------------------------------------------------------------------------- seed_demo


def seed_output(out: str) -> dict[str, str]:
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep and key in {"Sign in", "Username", "Password", "SCIM base", "SCIM token"}:
            fields[key] = value.strip()
    return fields


def test_seed_demo_is_idempotent_and_prints_working_credentials(other_tenant, monkeypatch):
    monkeypatch.delenv("DEMO_MANAGER_PASSWORD", raising=False)
    first = run("seed_demo", "--port=8765")
    second = run("seed_demo", "--port=8765")

    contoso = Tenant.objects.get(slug="contoso")
    assert Tenant.objects.filter(slug="contoso").count() == 1
    assert list(contoso.hosts.values_list("host", flat=True)) == ["contoso.testserver"]
    managers = User.objects.filter(tenant=contoso, role=User.Role.MANAGER)
    assert [m.username for m in managers] == ["manager"]
    assert User.objects.filter(tenant=contoso).count() == 2

    one, two = seed_output(first), seed_output(second)
    assert re.search(r"^SCIM token: slt_\S+$", second, re.MULTILINE)
    assert two["Sign in"] == "http://contoso.testserver:8765/admin/login/"
    assert two["SCIM base"] == "http://contoso.testserver:8765/scim/v2/"
    assert two["Username"] == "manager"
    assert managers[0].check_password(two["Password"])
    assert not managers[0].check_password(one["Password"])

    latest = SecretToken.objects.get(digest=token_digest(two["SCIM token"]))
    assert latest.tenant == contoso and latest.is_valid()
    earlier = SecretToken.objects.get(digest=token_digest(one["SCIM token"]))
    assert earlier.revoked is not None and not earlier.is_valid()
    assert two["SCIM token"] not in everything_stored_about_tokens()
    assert not SecretToken.objects.filter(tenant=other_tenant).exists()

    scim_user = f"/scim/v2/Users/{managers[0].scim_id}"
    scim = Client(HTTP_HOST="contoso.testserver")
    read = scim.get(scim_user, HTTP_AUTHORIZATION=f"Bearer {two['SCIM token']}")
    assert read.status_code == 200 and read.json()["userName"] == "manager"
    assert scim.get(scim_user, HTTP_AUTHORIZATION=f"Bearer {one['SCIM token']}").status_code == 401
    assert list(Event.objects.filter(tenant=other_tenant).values_list("action", flat=True)) == [
        "tenant.create"
    ]


def test_seed_demo_signs_the_manager_in_to_the_admin(other_tenant, client, monkeypatch):
    monkeypatch.setenv("DEMO_MANAGER_PASSWORD", "demo-Pass-42")
    fields = seed_output(run("seed_demo"))

    response = client.submit(
        "/admin/login/",
        {"username": fields["Username"], "password": fields["Password"], "next": "/admin/"},
        HTTP_HOST="contoso.testserver",
    )

    assert fields["Password"] == "demo-Pass-42"
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    assert client.get("/admin/", HTTP_HOST="contoso.testserver").status_code == 200
    refused = client.submit(
        "/admin/login/",
        {"username": fields["Username"], "password": fields["Password"]},
        HTTP_HOST="fabrikam.testserver",
    )
    assert refused.status_code == 200 and refused.context["user"].is_anonymous


def test_seed_demo_repairs_a_deactivated_tenant_and_demoted_manager(other_tenant, system_actor):
    run("seed_demo")
    contoso = Tenant.objects.get(slug="contoso")
    manager = User.objects.get(tenant=contoso, username="manager")
    services.user_update(
        tenant=contoso, actor=system_actor, user=manager, fields={"is_active": False}, role=User.Role.MEMBER
    )
    services.tenant_deactivate(tenant=contoso, actor=system_actor)

    run("seed_demo")

    contoso.refresh_from_db()
    manager.refresh_from_db()
    assert contoso.is_active
    assert manager.is_active and manager.role == User.Role.MANAGER
    assert other_tenant.is_active


def test_create_manager_operator_administers_every_tenant_from_the_root_host(
    tenant, other_tenant, platform_tenant, manager, other_manager, client
):
    out = run("create_manager", "--tenant=platform", "--username=ops", "--password=ops-Pass-77", "--operator")

    assert out == "Created platform operator ops of tenant platform\n"
    response = client.submit(
        "/admin/login/",
        {"username": "ops", "password": "ops-Pass-77", "next": "/admin/"},
        HTTP_HOST="testserver",
    )
    assert response.status_code == 302
    users_page = client.get("/admin/directory/user/", HTTP_HOST="testserver")
    assert users_page.status_code == 200
    assert b"manager@contoso.com" in users_page.content and b"manager@fabrikam.com" in users_page.content


def test_create_manager_operator_is_refused_for_a_customer_tenant(tenant, other_tenant):
    with pytest.raises(CommandError, match="platform tenant"):
        run("create_manager", "--tenant=contoso", "--username=boss", "--operator")

    assert not User.objects.filter(username="boss").exists()
    assert not User.objects.filter(is_superuser=True).exists()
