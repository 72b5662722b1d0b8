"""The token, revocation and introspection endpoints for the authorization-code grant
(security.md checks 11, 14–25)."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model

from directory import services
from directory.models import Event, Tenant, User
from oauth.models import Consent
from oauth.security import CLIENT_AUTH_FAILURES
from tests.clients import Client
from tests.oauth.support import (
    ENTRA_REDIRECT,
    OAuthClient,
    basic,
    code_from,
    consent,
    exchange,
    introspect,
    refresh,
    root_client,
    token_request,
)

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()
Grant = get_grant_model()


def pkce_pair() -> tuple[str, str]:
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@pytest.fixture
def tokens(entra: OAuthClient, manager_http: Client) -> dict[str, str]:
    response = exchange(root_client(), entra, code_from(consent(manager_http, entra)))
    assert response.status_code == 200, response.content
    return response.json()


def test_check14_code_exchange_gives_short_lived_uncached_tokens(
    entra: OAuthClient, manager_http: Client, tenant: Tenant
) -> None:
    response = exchange(root_client(), entra, code_from(consent(manager_http, entra)))
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 3600
    assert body["refresh_token"] and body["access_token"]


def test_client_secret_post_works_too_and_the_token_endpoint_answers_on_any_host(
    entra: OAuthClient, manager_http: Client, tenant: Tenant
) -> None:
    code = code_from(consent(manager_http, entra))
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": ENTRA_REDIRECT,
        "client_id": entra.client_id,
        "client_secret": entra.secret,
    }
    response = Client(HTTP_HOST="contoso.testserver").post("/oauth/token/", body)
    assert response.status_code == 200, response.content


def test_check15_a_replayed_code_is_refused_and_revokes_the_first_tokens(
    entra: OAuthClient, manager_http: Client, tenant: Tenant, other_tenant: Tenant, other_manager_http: Client
) -> None:
    other_tokens = exchange(root_client(), entra, code_from(consent(other_manager_http, entra))).json()
    code = code_from(consent(manager_http, entra))
    first = exchange(root_client(), entra, code)
    assert first.status_code == 200
    first_tokens = first.json()
    assert introspect(root_client(), entra, first_tokens["access_token"])["active"] is True
    replay = exchange(root_client(), entra, code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert introspect(root_client(), entra, first_tokens["access_token"])["active"] is False
    assert refresh(root_client(), entra, first_tokens["refresh_token"]).status_code == 400
    assert Consent.objects.get(tenant=tenant).revoked_reason == "authorization code replayed"
    # The other tenant's authorization is untouched.
    assert introspect(root_client(), entra, other_tokens["access_token"])["active"] is True
    assert Consent.objects.get(tenant=other_tenant).revoked is None


def test_a_code_presented_by_another_client_revokes_nothing(
    entra: OAuthClient, fabrikam_app: OAuthClient, manager_http: Client, tenant: Tenant
) -> None:
    code = code_from(consent(manager_http, entra))
    tokens = exchange(root_client(), entra, code).json()
    stolen = exchange(root_client(), fabrikam_app, code)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert introspect(root_client(), entra, tokens["access_token"])["active"] is True


def test_check16_an_expired_code_is_refused(entra: OAuthClient, manager_http: Client) -> None:
    code = code_from(consent(manager_http, entra))
    Grant.objects.update(expires=timezone.now() - timedelta(seconds=1))
    response = exchange(root_client(), entra, code)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.exists()


def test_check17_a_code_cannot_be_redeemed_with_another_tenants_client(
    contoso_app: OAuthClient, fabrikam_app: OAuthClient, manager_http: Client
) -> None:
    code = code_from(consent(manager_http, contoso_app))
    response = exchange(root_client(), fabrikam_app, code)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert exchange(root_client(), contoso_app, code).status_code == 200


def test_check18_a_different_redirect_uri_at_the_token_endpoint_is_invalid_grant(
    entra: OAuthClient, manager_http: Client
) -> None:
    code = code_from(consent(manager_http, entra))
    response = exchange(
        root_client(), entra, code, redirect_uri="https://aad.portal.azure.com/TokenAuthorize"
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.exists()


def test_check19_wrong_secret_is_invalid_client_and_repeated_failures_are_throttled(
    entra: OAuthClient, contoso_app: OAuthClient, manager_http: Client
) -> None:
    code = code_from(consent(manager_http, entra))
    wrong = token_request(
        root_client(),
        entra,
        "not-the-secret",
        grant_type="authorization_code",
        code=code,
        redirect_uri=ENTRA_REDIRECT,
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    for _ in range(CLIENT_AUTH_FAILURES.limit - 1):
        assert (
            token_request(root_client(), entra, "guess", grant_type="client_credentials").status_code == 401
        )
    throttled = exchange(root_client(), entra, code)
    assert throttled.status_code == 429
    assert throttled["Retry-After"] and throttled["Cache-Control"] == "no-store"
    # Another client, or the same client from another address, is not affected.
    assert (
        token_request(root_client(), contoso_app, "guess", grant_type="client_credentials").status_code == 401
    )
    elsewhere = Client(HTTP_HOST="testserver", REMOTE_ADDR="10.0.0.9")
    assert exchange(elsewhere, entra, code).status_code == 200


def test_check20_code_verifier_without_a_challenge_is_refused(
    entra: OAuthClient, manager_http: Client
) -> None:
    code = code_from(consent(manager_http, entra))
    response = exchange(root_client(), entra, code, code_verifier="v" * 64)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.exists()


def test_pkce_when_sent_is_verified(entra: OAuthClient, manager_http: Client) -> None:
    verifier, challenge = pkce_pair()
    code = code_from(consent(manager_http, entra, code_challenge=challenge, code_challenge_method="S256"))
    assert exchange(root_client(), entra, code, code_verifier="w" * 64).status_code == 400
    code = code_from(consent(manager_http, entra, code_challenge=challenge, code_challenge_method="S256"))
    assert exchange(root_client(), entra, code).status_code == 400
    code = code_from(consent(manager_http, entra, code_challenge=challenge, code_challenge_method="S256"))
    assert exchange(root_client(), entra, code, code_verifier=verifier).status_code == 200


def test_check22_refresh_rotates_and_a_replayed_refresh_token_revokes_the_family(
    entra: OAuthClient,
    tokens: dict[str, str],
    other_manager_http: Client,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    other_tokens = exchange(root_client(), entra, code_from(consent(other_manager_http, entra))).json()
    first = refresh(root_client(), entra, tokens["refresh_token"])
    assert first.status_code == 200 and first["Cache-Control"] == "no-store"
    newest = first.json()
    assert newest["refresh_token"] != tokens["refresh_token"]
    assert introspect(root_client(), entra, tokens["access_token"])["active"] is False
    replay = refresh(root_client(), entra, tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert introspect(root_client(), entra, newest["access_token"])["active"] is False
    assert refresh(root_client(), entra, newest["refresh_token"]).status_code == 400
    assert Event.objects.filter(tenant=tenant, action="credential.revoke", result="failure").count() == 1
    assert introspect(root_client(), entra, other_tokens["access_token"])["active"] is True
    assert not Event.objects.filter(tenant=other_tenant, action="credential.revoke").exists()


def test_refresh_needs_the_same_client(
    entra: OAuthClient, contoso_app: OAuthClient, tokens: dict[str, str]
) -> None:
    response = refresh(root_client(), contoso_app, tokens["refresh_token"])
    assert response.status_code == 400
    assert refresh(root_client(), entra, tokens["refresh_token"]).status_code == 200


def test_check23_tokens_codes_and_secrets_are_stored_hashed(
    entra: OAuthClient, manager_http: Client, settings: object
) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # type: ignore[attr-defined]
    from oauth.services import application_create

    application, secret = application_create(
        tenant=None,
        actor=services.Actor.system("tests"),
        name="Hashed",
        redirect_uris=[ENTRA_REDIRECT],
    )
    assert application.client_secret.startswith("pbkdf2_sha256$")
    assert check_password(secret, application.client_secret)
    client = OAuthClient(application, secret)
    page = consent(manager_http, client)
    code = code_from(page)
    assert not Grant.objects.filter(code=code).exists()
    assert Grant.objects.get().code == hashlib.sha256(code.encode()).hexdigest()
    body = exchange(root_client(), client, code).json()
    access, refresh_row = AccessToken.objects.get(), RefreshToken.objects.get()
    assert access.token == "" and refresh_row.token == ""
    assert access.token_checksum == hashlib.sha256(body["access_token"].encode()).hexdigest()
    assert refresh_row.token_checksum == hashlib.sha256(body["refresh_token"].encode()).hexdigest()
    for event in Event.objects.all():
        dumped = str(event.__dict__)
        assert secret not in dumped and code not in dumped
        assert body["access_token"] not in dumped and body["refresh_token"] not in dumped


def test_check24_revoking_the_refresh_token_ends_both(
    entra: OAuthClient, fabrikam_app: OAuthClient, tokens: dict[str, str], tenant: Tenant
) -> None:
    # Another tenant's client cannot revoke them (RFC 7009 §2.1): 200, nothing happens.
    foreign = root_client().post(
        "/oauth/revoke_token/",
        {"token": tokens["refresh_token"]},
        HTTP_AUTHORIZATION=basic(fabrikam_app.client_id, fabrikam_app.secret),
    )
    assert foreign.status_code == 200
    assert introspect(root_client(), entra, tokens["access_token"])["active"] is True
    response = root_client().post(
        "/oauth/revoke_token/",
        {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        HTTP_AUTHORIZATION=basic(entra.client_id, entra.secret),
    )
    assert response.status_code == 200
    assert introspect(root_client(), entra, tokens["access_token"])["active"] is False
    assert refresh(root_client(), entra, tokens["refresh_token"]).status_code == 400
    assert Consent.objects.get().revoked_reason == "revoked by the client"
    assert Event.objects.filter(tenant=tenant, action="credential.revoke").count() == 1


def test_check25_deprovisioning_the_approving_manager_keeps_provisioning_running(
    entra: OAuthClient,
    tokens: dict[str, str],
    manager: User,
    tenant: Tenant,
    system_actor: services.Actor,
) -> None:
    """SecureLogin's rule (architecture.md; libraries.md trap 15), deliberately the opposite of
    security.md check 25's default expectation: the tokens act for the tenant's service principal,
    so deactivating or deleting the manager who approved them (as Entra does through SCIM) changes
    nothing; managers revoke credentials explicitly instead."""
    services.user_deactivate(tenant=tenant, actor=system_actor, user=manager)
    assert introspect(root_client(), entra, tokens["access_token"])["active"] is True
    renewed = refresh(root_client(), entra, tokens["refresh_token"])
    assert renewed.status_code == 200
    services.user_delete(tenant=tenant, actor=system_actor, user=manager)
    renewed_again = refresh(root_client(), entra, renewed.json()["refresh_token"])
    assert renewed_again.status_code == 200
    assert Consent.objects.get().approver_label == "manager@contoso.com"
    assert Consent.objects.get().approved_by is None


def test_deactivating_the_tenant_stops_refresh(
    entra: OAuthClient, tokens: dict[str, str], tenant: Tenant
) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)
    assert refresh(root_client(), entra, tokens["refresh_token"]).status_code == 400


def test_check11_password_grant_is_not_offered(entra: OAuthClient, manager: User) -> None:
    response = token_request(
        root_client(), entra, grant_type="password", username=manager.username, password="x"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert not AccessToken.objects.exists()


def test_introspection_only_tells_a_client_about_its_own_tokens(
    entra: OAuthClient, contoso_app: OAuthClient, tokens: dict[str, str], tenant: Tenant
) -> None:
    own = introspect(root_client(), entra, tokens["access_token"])
    assert own["active"] is True and own["client_id"] == entra.client_id and own["scope"] == "scim"
    assert introspect(root_client(), contoso_app, tokens["access_token"]) == {"active": False}
    unauthenticated = root_client().post("/oauth/introspect/", {"token": tokens["access_token"]})
    assert unauthenticated.status_code == 401
    assert root_client().get("/oauth/introspect/", {"token": tokens["access_token"]}).status_code == 405


def test_expired_access_token_is_inactive(entra: OAuthClient, tokens: dict[str, str]) -> None:
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))
    assert introspect(root_client(), entra, tokens["access_token"])["active"] is False


def test_unknown_refresh_token_is_invalid_grant(entra: OAuthClient, tokens: dict[str, str]) -> None:
    response = refresh(root_client(), entra, "no-such-refresh-token")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert introspect(root_client(), entra, tokens["access_token"])["active"] is True
