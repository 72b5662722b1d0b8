"""The dashboard: counts, last contact from Entra, the request chart and the health line."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from directory import services
from directory.admin_site import failing_attribute
from directory.models import Event, Tenant
from oauth.models import SecretToken
from oauth.services import secret_token_issue
from tests.admin.conftest import Directory, entra_actor
from tests.clients import Client

INDEX = reverse("admin:index")


def dashboard(client: Client) -> dict:
    response = client.get(INDEX)
    assert response.status_code == 200
    return response.context["dashboard"]


def health_text(client: Client) -> str:
    return " ".join(str(line.text) for line in dashboard(client)["health"])


def age_events(tenant: Tenant, *, hours: float) -> None:
    Event.objects.filter(tenant=tenant).update(created=timezone.now() - timedelta(hours=hours))


def record_failures(tenant: Tenant, count: int, *, detail: str, scim_type: str = "uniqueness") -> None:
    for _ in range(count):
        services.event_record(
            tenant=tenant,
            actor=entra_actor(tenant),
            action="scim.post_user",
            result=Event.Result.FAILURE,
            status=409,
            scim_type=scim_type,
            detail=detail,
        )


def test_health_says_when_entra_never_called(
    manager_client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    services.user_create(tenant=other_tenant, actor=entra_actor(other_tenant), username="x@fabrikam.com")
    text = health_text(manager_client)
    assert "No provisioning request has reached this directory yet" in text
    assert dashboard(manager_client)["last_request"] is None


def test_health_says_how_long_entra_has_been_silent(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    age_events(ours.tenant, hours=3.2)
    text = health_text(manager_client)
    assert "No provisioning request for 3 hours" in text
    assert "secret token Entra" in text


def test_health_names_the_failure_rate_and_the_attribute(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    record_failures(ours.tenant, 2, detail="userName 'x' is already in use in this tenant.")
    record_failures(theirs.tenant, 20, detail="externalId 'y' is already in use in this tenant.")
    text = health_text(manager_client)
    requests = Event.objects.filter(tenant=ours.tenant, actor_type="credential").count()
    rate = round(100 * 3 / requests)
    assert f"{rate}% of the last 24 hours' provisioning requests failed (3 of {requests})" in text
    assert "mostly <code>uniqueness</code> on userName" in text


def test_health_is_plain_when_all_is_well(
    manager_client: Client, tenant: Tenant, other_tenant: Tenant
) -> None:
    services.user_create(tenant=tenant, actor=entra_actor(tenant), username="fresh@contoso.com")
    record_failures(other_tenant, 3, detail="userName 'x' is already in use in this tenant.")
    text = health_text(manager_client)
    assert text.startswith("Provisioning is healthy: 1 request(s) in the last 24 hours, none failed")


def test_last_request_comes_from_a_tokens_last_use(
    manager_client: Client, manager: object, tenant: Tenant, other_tenant: Tenant
) -> None:
    token, _ = secret_token_issue(tenant=tenant, actor=services.Actor.system("t"), name="Entra")
    other, _ = secret_token_issue(tenant=other_tenant, actor=services.Actor.system("t"), name="Other")
    used = timezone.now() - timedelta(minutes=5)
    SecretToken.objects.filter(pk=token.pk).update(last_used=used)
    SecretToken.objects.filter(pk=other.pk).update(last_used=timezone.now())
    last = dashboard(manager_client)["last_request"]
    assert last.when == used
    assert "Entra" in last.via


def test_charts_have_hourly_and_daily_bars_linking_into_the_log(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    Event.objects.filter(tenant=ours.tenant, result="failure").update(
        created=timezone.now() - timedelta(days=2)
    )
    hourly, daily = dashboard(manager_client)["charts"]
    assert len(hourly.bars) == 24
    assert len(daily.bars) == 7
    assert hourly.failures == 0
    assert daily.failures == 1
    assert daily.total == hourly.total + 1
    failing_day = next(bar for bar in daily.bars if bar.failure)
    assert failing_day.url.startswith(reverse("admin:directory_event_changelist"))
    assert "period=" in failing_day.url and "actor_type__exact=credential" in failing_day.url


def test_chart_bars_are_rendered_as_inline_svg(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    body = manager_client.get(INDEX).content.decode()
    assert body.count('class="sl-bar-ok"') >= 2
    assert "<script" not in body.split("<body", 1)[1].split("</header>", 1)[1]
    assert not re.search(r'(?:src|href)="(?:https?:)?//', body), "the console loads nothing from outside"


def test_failing_attribute() -> None:
    assert (
        failing_attribute(["userName 'a' is already in use.", "userName 'b' is already in use."])
        == "userName"
    )
    assert failing_attribute(["A group named 'x' already exists in this tenant."]) == "displayName"
    assert failing_attribute(["Something else."]) == ""
