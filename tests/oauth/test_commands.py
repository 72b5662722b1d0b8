"""manage.py create_oauth_client and ensure_entra_client."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.hashers import check_password
from django.core.management import CommandError, call_command

from directory.models import Event, Tenant
from oauth.models import Application


def run(*args: str) -> dict[str, str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return dict(line.split(": ", 1) for line in out.getvalue().splitlines() if ": " in line)


def test_create_oauth_client_for_a_tenant(tenant: Tenant, other_tenant: Tenant) -> None:
    printed = run(
        "create_oauth_client",
        "--name",
        "Contoso Entra",
        "--redirect-uri",
        "https://portal.azure.com/TokenAuthorize",
        "--tenant",
        "contoso",
    )
    application = Application.objects.get(client_id=printed["client_id"])
    assert application.tenant == tenant
    assert application.authorization_grant_type == Application.GRANT_AUTHORIZATION_CODE
    assert application.redirect_uris == "https://portal.azure.com/TokenAuthorize"
    assert check_password(printed["client_secret"], application.client_secret)
    assert Event.objects.filter(tenant=tenant, action="credential.application_create").count() == 1
    assert not Event.objects.filter(tenant=other_tenant, action="credential.application_create").exists()


def test_create_oauth_client_credentials(tenant: Tenant, other_tenant: Tenant) -> None:
    printed = run(
        "create_oauth_client", "--name", "CC", "--tenant", "contoso", "--grant", "client-credentials"
    )
    application = Application.objects.get(client_id=printed["client_id"])
    assert application.authorization_grant_type == Application.GRANT_CLIENT_CREDENTIALS
    assert application.tenant == tenant
    assert not other_tenant.applications.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("--name", "X", "--grant", "client-credentials"),
        ("--name", "X"),
        ("--name", "X", "--redirect-uri", "https://x.example/cb", "--tenant", "nope"),
        ("--name", "X", "--redirect-uri", "http://x.example/cb"),
    ],
)
def test_create_oauth_client_errors(tenant: Tenant, args: tuple[str, ...]) -> None:
    with pytest.raises(CommandError):
        run("create_oauth_client", *args)
    assert not Application.objects.exists()


def test_ensure_entra_client_is_idempotent_and_rotates_its_secret(
    tenant: Tenant, platform_tenant: Tenant
) -> None:
    first = run("ensure_entra_client", "--base-url", "http://localhost:8000")
    assert first["Entra token URL"] == "http://localhost:8000/oauth/token/"
    second = run("ensure_entra_client")
    application = Application.objects.get()
    assert first["Entra client_id"] == second["Entra client_id"] == application.client_id
    assert application.tenant is None and application.name == "Microsoft Entra ID"
    assert application.redirect_uris == "https://portal.azure.com/TokenAuthorize"
    assert first["Entra client_secret"] != second["Entra client_secret"]
    assert check_password(second["Entra client_secret"], application.client_secret)
    assert not check_password(first["Entra client_secret"], application.client_secret)
    assert Event.objects.filter(tenant=platform_tenant, action__startswith="credential.").count() == 2
    assert not Event.objects.filter(tenant=tenant, action__startswith="credential.").exists()


def test_ensure_entra_client_restores_entras_redirect_uri_through_the_service(
    tenant: Tenant, platform_tenant: Tenant
) -> None:
    run("ensure_entra_client")
    Application.objects.update(redirect_uris="https://example.com/callback")
    run("ensure_entra_client")
    application = Application.objects.get()
    assert application.redirect_uris == "https://example.com/callback https://portal.azure.com/TokenAuthorize"
    update = Event.objects.get(tenant=platform_tenant, action="credential.application_update")
    assert update.changes["redirect_uris"][1][-1] == "https://portal.azure.com/TokenAuthorize"
    assert not Event.objects.filter(tenant=tenant, action__startswith="credential.").exists()
