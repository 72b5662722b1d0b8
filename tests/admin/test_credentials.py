"""Credentials in the console: created through oauth.services, the secret shown once, revocable."""

from __future__ import annotations

from django.contrib.auth.hashers import check_password
from django.urls import reverse

from directory.models import Event, User
from oauth.models import Application, ClientSecret, SecretToken, token_digest
from oauth.services import application_create, secret_token_issue
from tests.admin.conftest import Directory, events_of
from tests.clients import Client


def test_issuing_a_secret_token_shows_it_once_and_stores_its_digest(
    manager_client: Client, manager: User, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        reverse("admin:oauth_secrettoken_add"), {"name": "Entra provisioning", "expires_days": "365"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    ((_label, raw),) = response.context["secrets"]
    token = SecretToken.objects.get(tenant=ours.tenant)
    assert raw.startswith("slt_") and token.digest == token_digest(raw)
    assert token.created_by == manager
    assert token.expires is not None
    assert (
        raw
        not in manager_client.get(reverse("admin:oauth_secrettoken_change", args=[token.pk])).content.decode()
    )
    assert raw not in manager_client.get(reverse("admin:oauth_secrettoken_changelist")).content.decode()
    (event,) = events_of(ours.tenant, "credential.secret_token_issue")
    assert event.actor_type == Event.ActorType.MANAGER
    assert raw not in str(event.changes) + event.resource_label + event.detail
    assert not SecretToken.objects.filter(tenant=theirs.tenant).exists()


def test_secret_token_list_shows_approver_expiry_and_last_use(
    manager_client: Client, manager: User, ours: Directory, theirs: Directory
) -> None:
    issued = manager_client.submit(
        reverse("admin:oauth_secrettoken_add"), {"name": "Entra", "expires_days": ""}
    )
    assert issued.status_code == 200 and issued.context["secrets"]
    body = manager_client.get(reverse("admin:oauth_secrettoken_changelist")).content.decode()
    for text in ("Entra", manager.username, "active", "approved by", "last used"):
        assert text.lower() in body.lower()


def test_revoking_a_secret_token_by_button_and_by_action(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    first, _ = secret_token_issue(tenant=ours.tenant, actor=ours.entra, name="first")
    second, _ = secret_token_issue(tenant=ours.tenant, actor=ours.entra, name="second")
    assert manager_client.get(reverse("admin:oauth_secrettoken_revoke", args=[first.pk])).status_code == 405
    manager_client.submit(
        reverse("admin:oauth_secrettoken_change", args=[first.pk]),
        action=reverse("admin:oauth_secrettoken_revoke", args=[first.pk]),
    )
    manager_client.submit(
        reverse("admin:oauth_secrettoken_changelist"),
        {"action": "revoke_secret_tokens", "_selected_action": [second.pk]},
    )
    assert not SecretToken.objects.filter(tenant=ours.tenant, revoked__isnull=True).exists()
    assert len(events_of(ours.tenant, "credential.secret_token_revoke")) == 2


def test_creating_an_application_shows_client_id_and_secret_once(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        reverse("admin:oauth_application_add"),
        {
            "name": "Entra gallery app",
            "authorization_grant_type": Application.GRANT_CLIENT_CREDENTIALS,
            "redirect_uris": "",
            "secret_expires_days": "730",
        },
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    assert "no-store" in response["Cache-Control"]
    secrets = dict(response.context["secrets"])
    application = Application.objects.get(tenant=ours.tenant)
    assert secrets["Client ID"] == application.client_id
    assert check_password(secrets["Client secret"], application.client_secret)
    assert events_of(ours.tenant, "credential.application_create")
    assert not Application.objects.filter(tenant=theirs.tenant).exists()


def test_an_invalid_application_is_refused_with_the_services_message(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        reverse("admin:oauth_application_add"),
        {
            "name": "No redirect",
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": "",
            "secret_expires_days": "365",
        },
    )
    assert response.status_code == 200
    assert "needs a redirect URI" in response.content.decode()
    assert not Application.objects.exists()


def test_client_secrets_are_created_revoked_and_applications_disabled(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    application, _ = application_create(
        tenant=ours.tenant, actor=ours.entra, name="Ours", grant_type=Application.GRANT_CLIENT_CREDENTIALS
    )
    change_page = reverse("admin:oauth_application_change", args=[application.pk])
    created = manager_client.submit(
        change_page, action=reverse("admin:oauth_application_new_secret", args=[application.pk])
    )
    raw = dict(created.context["secrets"])["Client secret"]
    secret = ClientSecret.objects.get(application=application)
    assert check_password(raw, secret.hashed_secret)
    page = manager_client.get(change_page).content.decode()
    assert raw not in page and f"{secret.prefix}…" in page
    for action in (
        reverse("admin:oauth_application_revoke_secret", args=[application.pk, secret.pk]),
        reverse("admin:oauth_application_revoke_own_secret", args=[application.pk]),
        reverse("admin:oauth_application_disable", args=[application.pk]),
    ):
        manager_client.submit(change_page, action=action)
    secret.refresh_from_db()
    application.refresh_from_db()
    assert secret.revoked is not None
    assert not application.own_secret_is_valid()
    assert application.disabled
    actions = [e.action for e in Event.objects.filter(tenant=ours.tenant, resource_type="OAuthApplication")]
    for action in (
        "credential.client_secret_create",
        "credential.client_secret_revoke",
        "credential.application_disable",
    ):
        assert action in actions
    assert not Event.objects.filter(
        tenant=theirs.tenant, action__startswith="credential.client_secret"
    ).exists()


def test_operator_issues_a_token_for_a_chosen_tenant(
    operator_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = operator_client.submit(
        reverse("admin:oauth_secrettoken_add"),
        {"tenant": theirs.tenant.pk, "name": "ops", "expires_days": "90"},
    )
    assert response.status_code == 200
    assert SecretToken.objects.get(name="ops").tenant == theirs.tenant
    assert not SecretToken.objects.filter(tenant=ours.tenant).exists()
