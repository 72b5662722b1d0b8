"""Tenant isolation across the console: a manager of contoso reaches nothing of fabrikam by URL id,
list, search, filter, autocomplete, action or export, and an operator on the root host sees both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.urls import reverse

from directory.models import Event, Membership, Tenant, User
from oauth.models import Application, ClientSecret, Consent, SecretToken
from oauth.services import application_create, client_secret_create, consent_record, secret_token_issue
from tests.admin.conftest import Directory
from tests.clients import Client


@pytest.fixture
def their_credentials(theirs: Directory, other_manager: User) -> dict[str, Any]:
    token, _ = secret_token_issue(tenant=theirs.tenant, actor=theirs.entra, name="Fabrikam token")
    application, _ = application_create(
        tenant=theirs.tenant,
        actor=theirs.entra,
        name="Fabrikam client credentials",
        grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    secret, _ = client_secret_create(tenant=theirs.tenant, actor=theirs.entra, application=application)
    consent = consent_record(
        tenant=theirs.tenant,
        manager=other_manager,
        application=application,
        code_digest="f" * 64,
        scope="scim",
    )
    return {"token": token, "application": application, "secret": secret, "consent": consent}


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:{name}", args=args)


OBJECT_PAGES: dict[str, Callable[[Directory, dict[str, Any]], str]] = {
    "user change": lambda d, c: url("directory_user_change", d.alice.pk),
    "user delete": lambda d, c: url("directory_user_delete", d.alice.pk),
    "user history": lambda d, c: url("directory_user_history", d.alice.pk),
    "group change": lambda d, c: url("directory_group_change", d.group.pk),
    "group delete": lambda d, c: url("directory_group_delete", d.group.pk),
    "group history": lambda d, c: url("directory_group_history", d.group.pk),
    "membership change": lambda d, c: url(
        "directory_membership_change", Membership.objects.filter(group=d.group).first().pk
    ),
    "event detail": lambda d, c: url(
        "directory_event_change", Event.objects.filter(tenant=d.tenant).first().pk
    ),
    "secret token": lambda d, c: url("oauth_secrettoken_change", c["token"].pk),
    "application": lambda d, c: url("oauth_application_change", c["application"].pk),
    "client secret": lambda d, c: url("oauth_clientsecret_change", c["secret"].pk),
    "consent": lambda d, c: url("oauth_consent_change", c["consent"].pk),
}

POST_ENDPOINTS: dict[str, Callable[[Directory, dict[str, Any]], str]] = {
    "user change": lambda d, c: url("directory_user_change", d.alice.pk),
    "user delete": lambda d, c: url("directory_user_delete", d.alice.pk),
    "group change": lambda d, c: url("directory_group_change", d.group.pk),
    "group delete": lambda d, c: url("directory_group_delete", d.group.pk),
    "secret token revoke": lambda d, c: url("oauth_secrettoken_revoke", c["token"].pk),
    "application new secret": lambda d, c: url("oauth_application_new_secret", c["application"].pk),
    "application disable": lambda d, c: url("oauth_application_disable", c["application"].pk),
    "application revoke own secret": lambda d, c: url(
        "oauth_application_revoke_own_secret", c["application"].pk
    ),
    "application revoke secret": lambda d, c: url(
        "oauth_application_revoke_secret", c["application"].pk, c["secret"].pk
    ),
}


@pytest.mark.parametrize("page", list(OBJECT_PAGES))
def test_other_tenants_objects_answer_404_by_url_id(
    manager_client: Client, ours: Directory, theirs: Directory, their_credentials: dict, page: str
) -> None:
    response = manager_client.get(OBJECT_PAGES[page](theirs, their_credentials))
    assert response.status_code == 404


@pytest.mark.parametrize("page", list(OBJECT_PAGES))
def test_own_objects_open(
    other_manager_client: Client, ours: Directory, theirs: Directory, their_credentials: dict, page: str
) -> None:
    """The same URLs work for the tenant that owns them, so the 404s above are about scoping."""
    response = other_manager_client.get(OBJECT_PAGES[page](theirs, their_credentials), follow=True)
    assert response.status_code == 200


@pytest.mark.parametrize("endpoint", list(POST_ENDPOINTS))
def test_other_tenants_objects_cannot_be_changed_by_post(
    manager_client: Client, ours: Directory, theirs: Directory, their_credentials: dict, endpoint: str
) -> None:
    """Forged by a signed-in manager holding a valid token of their own console: the 404 comes
    from scoping, not from CSRF."""
    before = Event.objects.filter(tenant=theirs.tenant).count()
    data = {"post": "yes", "username": "stolen", "display_name": "stolen"}
    response = manager_client.csrf_post(
        POST_ENDPOINTS[endpoint](theirs, their_credentials), data, form_path=url("index")
    )
    assert response.status_code == 404
    assert Event.objects.filter(tenant=theirs.tenant).count() == before
    theirs.alice.refresh_from_db()
    assert theirs.alice.username.startswith("theirs.")
    assert SecretToken.objects.get(pk=their_credentials["token"].pk).revoked is None
    assert not Application.objects.get(pk=their_credentials["application"].pk).disabled
    assert ClientSecret.objects.get(pk=their_credentials["secret"].pk).revoked is None


def test_tenant_admin_and_oauth_tokens_are_closed_to_managers(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    assert manager_client.get(url("directory_tenant_changelist")).status_code == 403
    assert manager_client.get(url("directory_tenant_change", theirs.tenant.pk)).status_code == 403
    assert manager_client.get(url("directory_tenant_change", ours.tenant.pk)).status_code == 403
    assert manager_client.get(url("oauth2_provider_accesstoken_changelist")).status_code == 403


CHANGELISTS = {
    "users": ("directory_user_changelist", lambda d, c: [d.alice.username, d.bob.username]),
    "groups": ("directory_group_changelist", lambda d, c: [d.group.display_name]),
    "log": ("directory_event_changelist", lambda d, c: [d.alice.username, "theirs-ext-bob"]),
    "secret tokens": ("oauth_secrettoken_changelist", lambda d, c: [c["token"].name]),
    "applications": ("oauth_application_changelist", lambda d, c: [c["application"].name]),
    "client secrets": ("oauth_clientsecret_changelist", lambda d, c: [c["secret"].prefix]),
    "consents": ("oauth_consent_changelist", lambda d, c: [c["consent"].approver_label]),
}


@pytest.mark.parametrize("changelist", list(CHANGELISTS))
def test_other_tenants_rows_never_appear_in_lists(
    manager_client: Client, ours: Directory, theirs: Directory, their_credentials: dict, changelist: str
) -> None:
    name, markers = CHANGELISTS[changelist]
    response = manager_client.get(url(name))
    assert response.status_code == 200
    assert all(str(pk) not in _result_pks(response) for pk in _tenant_pks(theirs.tenant, name))
    body = response.content.decode()
    for marker in markers(theirs, their_credentials):
        assert marker not in body


def _result_pks(response: Any) -> set[str]:
    return {str(obj.pk) for obj in response.context["cl"].result_list}


def _tenant_pks(tenant: Tenant, changelist: str) -> list[int]:
    models = {
        "directory_user_changelist": User.objects.filter(tenant=tenant),
        "directory_group_changelist": tenant.groups.all(),
        "directory_event_changelist": Event.objects.filter(tenant=tenant),
        "oauth_secrettoken_changelist": SecretToken.objects.filter(tenant=tenant),
        "oauth_application_changelist": Application.objects.filter(tenant=tenant),
        "oauth_clientsecret_changelist": ClientSecret.objects.filter(application__tenant=tenant),
        "oauth_consent_changelist": Consent.objects.filter(tenant=tenant),
    }
    return list(models[changelist].values_list("pk", flat=True))


@pytest.mark.parametrize(
    ("changelist", "term"),
    [
        ("directory_user_changelist", "theirs.alice@fabrikam.com"),
        ("directory_user_changelist", "theirs"),
        ("directory_user_changelist", "theirs-ext-bob"),
        ("directory_user_changelist", "Alice"),
        ("directory_group_changelist", "Theirs Staff"),
        ("directory_event_changelist", "theirs.alice@fabrikam.com"),
        ("oauth_secrettoken_changelist", "Fabrikam"),
    ],
)
def test_searches_never_return_other_tenants_rows(
    manager_client: Client,
    ours: Directory,
    theirs: Directory,
    their_credentials: dict,
    changelist: str,
    term: str,
) -> None:
    response = manager_client.get(url(changelist), {"q": term})
    assert response.status_code == 200
    theirs_pks = {str(pk) for pk in _tenant_pks(theirs.tenant, changelist)}
    assert not (_result_pks(response) & theirs_pks)


def test_search_by_resource_id_of_another_tenant_finds_nothing(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.get(url("directory_event_changelist"), {"q": str(theirs.alice.scim_id)})
    assert list(response.context["cl"].result_list) == []
    own = manager_client.get(url("directory_event_changelist"), {"q": str(ours.alice.scim_id)})
    assert {e.resource_id for e in own.context["cl"].result_list} == {str(ours.alice.scim_id)}


@pytest.mark.parametrize(
    ("model_name", "field_name"),
    [("group", "members"), ("user", "manager"), ("membership", "user"), ("event", "actor_user")],
)
def test_autocompletes_offer_only_the_tenants_users(
    manager_client: Client, ours: Directory, theirs: Directory, model_name: str, field_name: str
) -> None:
    for term in ("", "alice", "theirs.alice@fabrikam.com"):
        response = manager_client.get(
            url("autocomplete"),
            {"app_label": "directory", "model_name": model_name, "field_name": field_name, "term": term},
        )
        assert response.status_code == 200
        ids = {row["id"] for row in response.json()["results"]}
        assert str(theirs.alice.pk) not in ids
        assert str(theirs.bob.pk) not in ids
    found = manager_client.get(
        url("autocomplete"),
        {"app_label": "directory", "model_name": model_name, "field_name": field_name, "term": "ours.alice"},
    )
    assert {row["id"] for row in found.json()["results"]} == {str(ours.alice.pk)}


def test_group_filter_lists_only_the_tenants_groups(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    body = manager_client.get(url("directory_user_changelist")).content.decode()
    assert ours.group.display_name in body
    assert theirs.group.display_name not in body
    response = manager_client.get(url("directory_user_changelist"), {"group": str(theirs.group.pk)})
    assert list(response.context["cl"].result_list) == []


def test_department_filter_lists_only_the_tenants_departments(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    body = manager_client.get(url("directory_user_changelist")).content.decode()
    assert "ours-sales" in body
    assert "theirs-sales" not in body


def test_actions_ignore_other_tenants_rows(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    for action in ("deactivate_users", "reactivate_users", "delete_selected"):
        manager_client.submit(
            url("directory_user_changelist"),
            {"action": action, "_selected_action": [theirs.alice.pk, theirs.bob.pk], "post": "yes"},
        )
    theirs.alice.refresh_from_db()
    assert theirs.alice.is_active
    assert User.objects.filter(pk=theirs.bob.pk).exists()
    assert not Event.objects.filter(tenant=theirs.tenant, actor_type=Event.ActorType.MANAGER).exists()


def test_export_contains_only_the_tenants_users(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        url("directory_user_changelist"),
        {"action": "export_users_csv", "_selected_action": [ours.alice.pk, theirs.alice.pk, theirs.bob.pk]},
    )
    body = b"".join(response.streaming_content).decode()
    assert ours.alice.username in body
    assert "fabrikam" not in body


def test_export_of_all_rows_contains_only_the_tenants_users(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        url("directory_user_changelist"),
        {"action": "export_users_csv", "select_across": "1", "_selected_action": [ours.alice.pk]},
    )
    body = b"".join(response.streaming_content).decode()
    assert ours.alice.username in body and ours.bob.username in body
    assert "fabrikam" not in body


def test_dashboard_counts_only_the_tenant(manager_client: Client, ours: Directory, theirs: Directory) -> None:
    dashboard = manager_client.get(url("index")).context["dashboard"]
    assert dashboard["counts"].users_active == 3  # alice, bob and the manager
    assert dashboard["counts"].groups == 1
    assert dashboard["counts"].memberships == 1
    assert all(row["event"].tenant_id == ours.tenant.pk for row in dashboard["recent"])


def test_branding_changes_only_the_tenant_of_the_host(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        url("branding"), {"display_name": "Contoso Ltd", "logo_url": "", "primary_color": "#112233"}
    )
    assert response.status_code == 302
    theirs.tenant.refresh_from_db()
    ours.tenant.refresh_from_db()
    assert ours.tenant.primary_color == "#112233"
    assert theirs.tenant.primary_color != "#112233"
    assert not Event.objects.filter(tenant=theirs.tenant, action="tenant.branding_update").exists()


def test_a_manager_session_does_not_open_another_tenants_console(
    manager: User, ours: Directory, theirs: Directory
) -> None:
    client = Client(HTTP_HOST="fabrikam.testserver")
    client.force_login(manager, backend="directory.backends.TenantModelBackend")
    response = client.get(url("directory_user_changelist"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_members_cannot_open_the_console(tenant: Tenant, ours: Directory, theirs: Directory) -> None:
    client = Client(HTTP_HOST="contoso.testserver")
    client.force_login(ours.alice, backend="directory.backends.TenantModelBackend")
    assert client.get(url("index")).status_code == 302


def test_operator_sees_every_tenant_with_a_tenant_filter(
    operator_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = operator_client.get(url("directory_user_changelist"))
    usernames = {u.username for u in response.context["cl"].result_list}
    assert {ours.alice.username, theirs.alice.username} <= usernames
    filtered = operator_client.get(url("directory_user_changelist"), {"tenant__id__exact": theirs.tenant.pk})
    assert {u.tenant_id for u in filtered.context["cl"].result_list} == {theirs.tenant.pk}
    index = operator_client.get(url("index"))
    assert {row["tenant"].slug for row in index.context["operator_tenants"]} == {"contoso", "fabrikam"}


def test_operator_login_does_not_work_on_a_tenant_host(operator: User, ours: Directory) -> None:
    client = Client(HTTP_HOST="contoso.testserver")
    client.force_login(operator, backend="directory.backends.TenantModelBackend")
    assert client.get(url("directory_user_changelist")).status_code == 302


def test_djangos_shared_permission_groups_are_not_in_the_console(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    assert manager_client.get("/admin/auth/group/").status_code == 404
