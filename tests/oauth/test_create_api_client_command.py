"""manage.py create_api_client: an operator's way to give a tenant's software access to /api/v1/.
Scripts read its output, so the `client_id: ` and `client_secret: ` lines are a format to keep."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.hashers import check_password
from django.core.management import CommandError, call_command

from directory import services
from directory.models import Event, Tenant
from oauth.models import Application
from tests.clients import Client
from tests.oauth.support import basic


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_api_client", *args, stdout=out)
    return out.getvalue().splitlines()


def token_scope(client_id: str, secret: str) -> str:
    response = Client().post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(client_id, secret)
    )
    assert response.status_code == 200, response.content
    return response.json()["scope"]


def test_prints_the_client_id_the_secret_and_how_to_ask_for_a_token(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    lines = run("--tenant", "contoso", "--name", "HR sync")
    assert len(lines) == 3
    client_id_line, secret_line, hint = lines
    assert client_id_line.startswith("client_id: ") and secret_line.startswith("client_secret: ")
    client_id = client_id_line.removeprefix("client_id: ")
    secret = secret_line.removeprefix("client_secret: ")
    application = Application.objects.get(client_id=client_id)
    assert application.tenant == tenant and application.name == "HR sync"
    assert application.is_api_client and application.scope_list == ["directory:read", "events:read"]
    assert check_password(secret, application.client_secret)
    assert "grant_type=client_credentials" in hint and "https://contoso.testserver/oauth/token/" in hint
    assert client_id in hint and secret not in hint
    assert set(token_scope(client_id, secret).split()) == {"directory:read", "events:read"}
    (event,) = Event.objects.filter(action="credential.application_create")
    assert event.tenant == tenant and event.actor_type == Event.ActorType.SYSTEM
    assert not other_tenant.applications.exists()


def test_scopes_can_be_narrowed_and_the_base_url_given(tenant: Tenant, other_tenant: Tenant) -> None:
    lines = run("--tenant", "contoso", "--scope", "events:read", "--base-url", "http://localhost:8000/")
    printed = dict(line.split(": ", 1) for line in lines[:2])
    application = Application.objects.get(client_id=printed["client_id"])
    assert application.scope_list == ["events:read"]
    assert token_scope(printed["client_id"], printed["client_secret"]) == "events:read"
    assert "http://localhost:8000/oauth/token/" in lines[2]


@pytest.mark.parametrize(
    "args",
    [
        ("--tenant", "nope"),
        ("--tenant", "platform"),
        ("--tenant", "fabrikam"),  # made inactive below
        ("--tenant", "contoso", "--scope", "scim"),
        ("--tenant", "contoso", "--name", "   "),
        ("--name", "no tenant"),
    ],
)
def test_refusals_are_command_errors_and_create_nothing(
    tenant: Tenant, other_tenant: Tenant, platform_tenant: Tenant, args: tuple[str, ...]
) -> None:
    services.tenant_deactivate(tenant=other_tenant, actor=services.Actor.system("tests"))
    with pytest.raises(CommandError):
        run(*args)
    assert not Application.objects.exists()
