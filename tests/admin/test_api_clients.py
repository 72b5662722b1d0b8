"""API clients in the console: a manager creates one for the tenant's own software, sees its client
id and secret once, and the token endpoint and /api/v1/ accept exactly what was chosen; disabling it
stops both. They live on their own page, never on the OAuth applications page, and another tenant's
API clients do not exist as far as the console is concerned."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.hashers import check_password
from django.urls import reverse

from directory.models import Event
from oauth.models import ApiClient, Application
from oauth.services import api_client_create, application_create
from tests.admin.conftest import Directory, events_of
from tests.clients import Client
from tests.oauth.support import basic

ADD = "admin:oauth_apiclient_add"
CHANGELIST = "admin:oauth_apiclient_changelist"


def token_request(client_id: str, secret: str, **params: str) -> Any:
    """What the tenant's software sends: client credentials as HTTP Basic, CSRF-free as for any
    non-browser client."""
    return Client().post(
        "/oauth/token/",
        {"grant_type": "client_credentials", **params},
        HTTP_AUTHORIZATION=basic(client_id, secret),
    )


def api_get(token: str, path: str = "/api/v1/users/") -> Any:
    return Client().get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def create_in_console(client: Client, **data: Any) -> tuple[ApiClient, str, Any]:
    response = client.submit(reverse(ADD), data)
    assert response.status_code == 200, response.content.decode()[:2000]
    secrets = dict(response.context["secrets"])
    api_client = ApiClient.objects.get(client_id=secrets["Client ID"])
    return api_client, secrets["Client secret"], response


def test_creating_an_api_client_shows_the_secret_once_and_the_token_carries_the_chosen_scope(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    """The whole path a manager takes: create, copy the secret, the software fetches a token and
    reads users; the scope left unticked is not granted."""
    api_client, secret, response = create_in_console(
        manager_client, name="HR sync", scopes=["directory:read"]
    )
    assert "no-store" in response["Cache-Control"]
    assert api_client.tenant == ours.tenant and api_client.scope_list == ["directory:read"]
    assert api_client.authorization_grant_type == Application.GRANT_CLIENT_CREDENTIALS
    assert check_password(secret, api_client.client_secret)
    for page in (
        reverse(CHANGELIST),
        reverse("admin:oauth_apiclient_change", args=[api_client.pk]),
    ):
        body = manager_client.get(page).content.decode()
        assert api_client.client_id in body and secret not in body

    token = token_request(api_client.client_id, secret)
    assert token.status_code == 200, token.content
    assert token.json()["scope"] == "directory:read"
    users = api_get(token.json()["access_token"])
    assert users.status_code == 200, users.content
    assert ours.alice.username in users.content.decode()
    assert theirs.alice.username not in users.content.decode()
    assert api_get(token.json()["access_token"], "/api/v1/events/").status_code == 403

    api_client.refresh_from_db()
    assert api_client.last_used is not None
    (event,) = events_of(ours.tenant, "credential.application_create")
    assert event.actor_type == Event.ActorType.MANAGER
    assert secret not in str(event.changes)
    assert not events_of(theirs.tenant, "credential.application_create")


def test_both_scopes_are_ticked_by_default_and_both_are_granted(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    page = manager_client.get(reverse(ADD)).content.decode()
    assert page.count('name="scopes"') == 2 and page.count("checked") == 2
    assert "/oauth/token/" in page and "/api/v1/" in page
    api_client, secret, _ = create_in_console(
        manager_client, name="Feed reader", scopes=["directory:read", "events:read"]
    )
    token = token_request(api_client.client_id, secret)
    assert token.status_code == 200
    assert set(token.json()["scope"].split()) == {"directory:read", "events:read"}
    assert api_get(token.json()["access_token"], "/api/v1/events/").status_code == 200


def test_an_api_client_cannot_get_a_scim_token(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    api_client, secret, _ = create_in_console(manager_client, name="Reader", scopes=["directory:read"])
    refused = token_request(api_client.client_id, secret, scope="scim")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    wider = token_request(api_client.client_id, secret, scope="directory:read events:read")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_the_form_refuses_no_scope_and_scopes_outside_the_api(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    none = manager_client.submit(reverse(ADD), {"name": "Nothing"})
    assert none.status_code == 200 and "Choose at least one scope." in none.content.decode()
    scim = manager_client.submit(reverse(ADD), {"name": "Writer", "scopes": ["scim"]})
    assert scim.status_code == 200 and "scim is not one of the available choices" in scim.content.decode()
    assert not Application.objects.exists()


def test_disabling_an_api_client_stops_its_token_requests_and_its_tokens(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    api_client, secret = api_client_create(tenant=ours.tenant, actor=ours.entra, name="Ours")
    their_client, their_secret = api_client_create(tenant=theirs.tenant, actor=theirs.entra, name="Theirs")
    token = token_request(api_client.client_id, secret).json()["access_token"]
    their_token = token_request(their_client.client_id, their_secret).json()["access_token"]
    assert api_get(token).status_code == 200

    change_page = reverse("admin:oauth_apiclient_change", args=[api_client.pk])
    disable = reverse("admin:oauth_apiclient_disable", args=[api_client.pk])
    assert manager_client.get(disable).status_code == 405
    response = manager_client.submit(change_page, action=disable)
    assert response.status_code == 302
    api_client.refresh_from_db()
    assert api_client.disabled
    assert token_request(api_client.client_id, secret).status_code == 401
    assert api_get(token).status_code == 401
    assert "Disable API client" not in manager_client.get(change_page).content.decode()
    assert events_of(ours.tenant, "credential.application_disable")
    assert api_get(their_token).status_code == 200
    assert not events_of(theirs.tenant, "credential.application_disable")


def test_disabling_selected_api_clients_from_the_list(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    first, _ = api_client_create(tenant=ours.tenant, actor=ours.entra, name="First")
    second, _ = api_client_create(tenant=ours.tenant, actor=ours.entra, name="Second")
    manager_client.submit(
        reverse(CHANGELIST),
        {"action": "disable_api_clients", "_selected_action": [first.pk, second.pk]},
    )
    assert ApiClient.objects.filter(tenant=ours.tenant, disabled=True).count() == 2


def test_api_clients_and_oauth_applications_are_listed_apart(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    """One row, one page: an API client is not an OAuth application the manager could give a new
    SCIM secret to, and a provisioning client is not an API client."""
    api_client, _ = api_client_create(tenant=ours.tenant, actor=ours.entra, name="Directory reader")
    provisioning, _ = application_create(
        tenant=ours.tenant,
        actor=ours.entra,
        name="Entra provisioning",
        grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    applications = manager_client.get(reverse("admin:oauth_application_changelist")).content.decode()
    api_clients = manager_client.get(reverse(CHANGELIST)).content.decode()
    assert "Entra provisioning" in applications and "Directory reader" not in applications
    assert "Directory reader" in api_clients and "Entra provisioning" not in api_clients
    assert 'href="/admin/oauth/apiclient/"' in applications
    not_here = (
        reverse("admin:oauth_application_change", args=[api_client.pk]),
        reverse("admin:oauth_apiclient_change", args=[provisioning.pk]),
    )
    for path in not_here:
        assert manager_client.get(path).status_code == 404


def test_another_tenants_api_client_is_404(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    their_client, _ = api_client_create(tenant=theirs.tenant, actor=theirs.entra, name="Fabrikam reader")
    assert "Fabrikam reader" not in manager_client.get(reverse(CHANGELIST)).content.decode()
    their_page = reverse("admin:oauth_apiclient_change", args=[their_client.pk])
    assert manager_client.get(their_page).status_code == 404
    response = manager_client.csrf_post(
        reverse("admin:oauth_apiclient_disable", args=[their_client.pk]), form_path=reverse(CHANGELIST)
    )
    assert response.status_code == 404
    manager_client.submit(
        reverse(CHANGELIST), {"action": "disable_api_clients", "_selected_action": [their_client.pk]}
    )
    their_client.refresh_from_db()
    assert not their_client.disabled
    assert not events_of(theirs.tenant, "credential.application_disable")


def test_operators_see_every_tenants_api_clients_and_create_one_for_a_tenant(
    operator_client: Client, ours: Directory, theirs: Directory
) -> None:
    api_client_create(tenant=ours.tenant, actor=ours.entra, name="Contoso reader")
    response = operator_client.get(reverse(CHANGELIST))
    body = response.content.decode()
    assert "Contoso reader" in body and "column-tenant" in body
    created, secret, _ = create_in_console(
        operator_client, tenant=theirs.tenant.pk, name="Fabrikam reader", scopes=["events:read"]
    )
    assert created.tenant == theirs.tenant and created.scope_list == ["events:read"]
    assert token_request(created.client_id, secret).json()["scope"] == "events:read"
    assert events_of(theirs.tenant, "credential.application_create")
    assert len(events_of(ours.tenant, "credential.application_create")) == 1
