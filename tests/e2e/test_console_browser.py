"""The manager console in a real browser: headless Debian Chromium, driven by Playwright, against a
live server. A manager signs in through the real /admin/login/ form on the tenant's own host and
the test saves screenshots of the dashboard, the user list, a user's page and the provisioning log
(copied to docs/screenshots/ when UPDATE_DOCS_SCREENSHOTS=1)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from directory import selectors, services
from directory.models import Event, Tenant, User
from tests.e2e.conftest import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PASSWORD = "Manager-console-2026!"

PEOPLE = [
    ("Adele", "Vance", "Marketing", "Marketing Manager"),
    ("Alex", "Wilber", "Marketing", "Marketing Assistant"),
    ("Allan", "Deyoung", "IT", "IT Admin"),
    ("Christie", "Cline", "Sales", "Buyer"),
    ("Debra", "Berger", "Executive Management", "Administrative Assistant"),
    ("Diego", "Siciliani", "HR", "HR Manager"),
    ("Emily", "Braun", "Finance", "Budget Analyst"),
    ("Enrico", "Cattaneo", "Legal", "Attorney"),
    ("Grady", "Archie", "Research & Development", "Designer"),
    ("Henrietta", "Mueller", "Research & Development", "Developer"),
    ("Irvin", "Sayers", "Research & Development", "Director"),
    ("Isaiah", "Langer", "Sales", "Sales Rep"),
    ("Johanna", "Lorenz", "Engineering", "Senior Engineer"),
    ("Joni", "Sherman", "Legal", "Paralegal"),
    ("Jordan", "Miller", "Finance", "Finance Director"),
    ("Lee", "Gu", "Manufacturing", "Director"),
    ("Lidia", "Holloway", "Engineering", "Product Manager"),
    ("Lynne", "Robbins", "Retail", "Planner"),
    ("Megan", "Bowen", "Marketing", "Marketing Manager"),
    ("Miriam", "Graham", "Sales", "Director"),
    ("Nestor", "Wilke", "Operations", "Director"),
    ("Patti", "Fernandez", "Executive Management", "President"),
    ("Pradeep", "Gupta", "Finance", "Accountant"),
    ("Raul", "Razo", "Engineering", "Engineer"),
    ("Sam", "Peterson", "Operations", "Logistics Coordinator"),
    ("Sara", "Davis", "Finance", "Controller"),
    ("Sean", "Kearney", "Sales", "Account Executive"),
    ("Teresa", "Zhou", "Engineering", "Engineer"),
    ("Uma", "Patel", "HR", "Recruiter"),
    ("Vince", "Morales", "IT", "Support Engineer"),
    ("Wendy", "Cho", "Retail", "Store Manager"),
    ("Yusuf", "Amari", "Research & Development", "Data Scientist"),
    ("Zara", "Okafor", "Legal", "Compliance Officer"),
    ("Nora", "Lindqvist", "Engineering", "Staff Engineer"),
    ("Omar", "Haddad", "Operations", "Analyst"),
    ("Priya", "Raman", "IT", "Security Engineer"),
]
GROUPS = {
    "All staff": None,
    "Engineering": {"Engineering", "Research & Development"},
    "Sales & Marketing": {"Sales", "Marketing", "Retail"},
    "Finance": {"Finance"},
    "IT Admins": {"IT"},
    "Leadership": {"Executive Management"},
}


def seed_contoso() -> tuple[Tenant, User]:
    """A directory that looks like a week of Entra provisioning: users, groups, a few changes and
    deactivations, and failed requests spread over the last seven days."""
    rng = random.Random(20260501)
    system = services.Actor.system("browser test")
    tenant = services.tenant_create(
        actor=system,
        slug="contoso",
        name="Contoso",
        hosts=["contoso.localhost"],
        email_domains=["contoso.com"],
        display_name="Contoso Ltd",
    )
    manager = services.user_create(
        tenant=tenant,
        actor=system,
        username="megan.manager@contoso.com",
        fields={"given_name": "Megan", "family_name": "Manager", "display_name": "Megan Manager"},
        role=User.Role.MANAGER,
        password=PASSWORD,
    )
    entra = services.Actor.for_credential(
        service_principal=selectors.service_principal_get(tenant=tenant),
        label="secret token Entra provisioning (slt_Q2x8…)",
        credential="secret-token:1",
    )
    users = []
    for index, (given, family, department, title) in enumerate(PEOPLE):
        username = f"{given}.{family}@contoso.com".lower()
        users.append(
            services.user_create(
                tenant=tenant,
                actor=entra,
                username=username,
                fields={
                    "given_name": given,
                    "family_name": family,
                    "display_name": f"{given} {family}",
                    "department": department,
                    "title": title,
                    "external_id": f"6e1f{index:04d}-8c2b-4a53-9a4e-{rng.randrange(16**12):012x}",
                    "employee_number": f"{10400 + index}",
                },
                emails=[{"value": username, "type": "work", "primary": True}],
                phone_numbers=[{"value": f"+1 425 555 {rng.randrange(1000, 9999)}", "type": "work"}],
                addresses=[
                    {"type": "work", "locality": "Redmond", "region": "WA", "country": "US", "primary": True}
                ],
            )
        )
    by_name = {u.family_name: u for u in users}
    for user in users:
        if user.family_name not in ("Vance", "Berger"):
            services.user_update(tenant=tenant, actor=entra, user=user, manager=by_name["Berger"])
    for name, departments in GROUPS.items():
        members = [u for u in users if departments is None or u.department in departments]
        services.group_create(tenant=tenant, actor=entra, display_name=name, members=members)
    for user in users[5:9]:
        services.user_update(tenant=tenant, actor=entra, user=user, fields={"title": f"Senior {user.title}"})
    for user in (users[7], users[19], users[29]):
        services.user_deactivate(tenant=tenant, actor=entra, user=user)
    taken = "userName '{}' is already in use in this tenant."
    failures = [
        ("scim.post_user", 409, "uniqueness", taken.format("isaiah.langer@contoso.com")),
        ("scim.post_user", 409, "uniqueness", taken.format("lee.gu@contoso.com")),
        ("scim.patch_user", 400, "invalidValue", "emails: Only one of the emails can be primary."),
        ("scim.post_user", 409, "uniqueness", taken.format("sara.davis@contoso.com")),
        ("scim.patch_group", 400, "invalidValue", "No user with id 3f2a… in this tenant."),
        ("scim.post_user", 409, "uniqueness", taken.format("uma.patel@contoso.com")),
    ]
    for action, status, scim_type, detail in failures:
        services.event_record(
            tenant=tenant,
            actor=entra,
            action=action,
            result=Event.Result.FAILURE,
            status=status,
            scim_type=scim_type,
            detail=detail,
            resource_type="Group" if "group" in action else "User",
            resource_label=detail.split("'")[1] if "'" in detail else "",
            request_method="PATCH" if "patch" in action else "POST",
            request_path="/scim/v2/Groups" if "group" in action else "/scim/v2/Users",
        )
    spread_over_last_week(tenant, rng)
    return tenant, manager


def spread_over_last_week(tenant: Tenant, rng: random.Random) -> None:
    """Seeding writes every event now; a real week has its initial sync a week ago and incremental
    cycles since, so the seed moves its events back in time (test data only)."""
    now = timezone.now()
    changes = Event.objects.filter(tenant=tenant, result=Event.Result.SUCCESS).order_by("id")
    events = list(changes.values_list("id", flat=True))
    count = len(events)
    for position, event_id in enumerate(events):
        share = position / max(count - 1, 1)
        age = timedelta(days=6.6) * (1 - share) ** 1.6 + timedelta(minutes=rng.randrange(3, 50))
        Event.objects.filter(pk=event_id).update(created=now - age)
    failures = Event.objects.filter(tenant=tenant, result=Event.Result.FAILURE).order_by("id")
    for hours, event_id in zip((3, 9, 16, 29, 52, 98), failures.values_list("id", flat=True), strict=False):
        age = timedelta(hours=hours, minutes=rng.randrange(60))
        Event.objects.filter(pk=event_id).update(created=now - age)


@pytest.fixture
def browser_page(live_server, chromium):  # type: ignore[no-untyped-def]
    context = chromium.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    yield context.new_page()
    context.close()


def snap(page, name: str, *, full_page: bool = True) -> None:  # type: ignore[no-untyped-def]
    save_screenshot(page, f"console-{name}.png", full_page=full_page)


def test_manager_signs_in_and_browses_the_console(live_server, browser_page):  # type: ignore[no-untyped-def]
    _tenant, manager = seed_contoso()
    system = services.Actor.system("browser test")
    other = services.tenant_create(actor=system, slug="fabrikam", name="Fabrikam")
    services.user_create(tenant=other, actor=system, username="hidden.user@fabrikam.com")
    port = live_server.url.rsplit(":", 1)[1]
    base = f"http://contoso.localhost:{port}"
    page = browser_page

    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", manager.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    assert page.locator(".sl-health-line").count() >= 1
    assert page.locator(".sl-card-value").first.inner_text() == str(len(PEOPLE) - 3 + 1)
    assert "hidden.user" not in page.content()
    snap(page, "dashboard")

    page.click("nav.sl-nav >> text=Users")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == len(PEOPLE) + 1
    assert "hidden.user@fabrikam.com" not in page.content()
    snap(page, "users", full_page=False)

    page.fill("#searchbar", "henrietta")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    page.click("#result_list tbody tr th a")
    page.wait_for_selector("pre.sl-json")
    assert '"userName": "henrietta.mueller@contoso.com"' in page.inner_text("pre.sl-json")
    snap(page, "user-detail")

    page.click("nav.sl-nav >> text=Provisioning log")
    page.wait_for_selector("#result_list")
    assert page.locator(".sl-badge-fail").count() >= 6
    snap(page, "log", full_page=False)
