"""OpenID Connect between tenants: Contoso and Fabrikam each trust their own Entra (issuer, tid,
client). Entra signs every tenant's tokens with the same keys, so a signature proves nothing
about the tenant: the issuer, audience and `tid` do, and the user lookup is scoped to the host's
tenant. A sign-in started on one tenant's host never completes on another's."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from axes.models import AccessAttempt
from django.core.cache import cache

from directory import services
from directory.exceptions import InvalidValue
from directory.models import Event, Tenant, User
from directory.tenancy import tenant_primary_host
from sso import oidc
from sso import services as sso_services
from sso.linking import REASONS
from tests.sso import oidc_provider
from tests.sso.conftest import ALICE, ALICE_OID, CONTOSO_TID, FRANK
from tests.sso.oidc_provider import FRANK_OID, LocalEntra, SigningKey, oidc_sign_in, signed_in_user_id, start
from tests.sso.support import tenant_http

contoso_op_fixture = oidc_provider.contoso_op_fixture
fabrikam_op_fixture = oidc_provider.fabrikam_op_fixture
local_idp_fixture = oidc_provider.local_idp_fixture
op_keys_fixture = oidc_provider.op_keys_fixture
op_server_fixture = oidc_provider.op_server_fixture


def refusal(tenant: Tenant) -> Event:
    return Event.objects.filter(tenant=tenant, action=sso_services.SIGN_IN_REFUSED).latest("id")


def test_each_tenant_signs_in_only_its_own_users(
    contoso_op: LocalEntra,
    fabrikam_op: LocalEntra,
    alice: User,
    frank: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    at_fabrikam = tenant_http(other_tenant)
    response = oidc_sign_in(at_fabrikam, fabrikam_op, FRANK)
    assert response.status_code == 302 and response["Location"] == "/account/"
    assert signed_in_user_id(at_fabrikam) == str(frank.pk)

    # Fabrikam's Entra vouching for Alice (same UPN, same object id) finds nobody at Fabrikam.
    alice_at_fabrikam = tenant_http(other_tenant)
    response = oidc_sign_in(alice_at_fabrikam, fabrikam_op, ALICE, oid=ALICE_OID)
    assert response.status_code == 403 and b"has not been provisioned yet" in response.content
    assert signed_in_user_id(alice_at_fabrikam) is None
    assert refusal(other_tenant).detail == REASONS["not_provisioned"]

    # Contoso's Entra vouching for Frank finds nobody at Contoso.
    frank_at_contoso = tenant_http(tenant)
    response = oidc_sign_in(frank_at_contoso, contoso_op, FRANK)
    assert response.status_code == 403 and b"has not been provisioned yet" in response.content
    assert signed_in_user_id(frank_at_contoso) is None
    assert not Event.objects.filter(tenant=tenant, action=sso_services.SIGN_IN).exists()
    assert not AccessAttempt.objects.exists()


@pytest.mark.parametrize(
    ("differs", "reason"),
    [
        ({"iss", "aud", "tid"}, "issuer"),
        ({"aud", "tid"}, "audience"),
        ({"tid"}, "Entra tenant (tid"),
    ],
)
def test_another_tenants_token_signed_with_the_shared_keys_never_signs_in(
    differs: set[str],
    reason: str,
    contoso_op: LocalEntra,
    fabrikam_op: LocalEntra,
    op_keys: dict[str, SigningKey],
    alice: User,
    tenant: Tenant,
) -> None:
    """Fabrikam's Entra publishes the same signing key as Contoso's (as Entra does): a token it
    issued for Fabrikam's client, delivered to Contoso's callback, is refused."""
    fabrikam_op.keys = list(contoso_op.keys)
    theirs = {"iss": fabrikam_op.issuer, "aud": fabrikam_op.client_id, "tid": fabrikam_op.tid}

    def fabrikam_token(claims: dict[str, Any]) -> str:
        return fabrikam_op.sign({**claims, **{name: theirs[name] for name in differs}})

    http = tenant_http(tenant)
    response = oidc_sign_in(http, contoso_op, ALICE, oid=ALICE_OID, forge=fabrikam_token)
    assert response.status_code == 403
    assert signed_in_user_id(http) is None
    assert reason in refusal(tenant).detail


def test_token_signed_with_another_tenants_own_key_is_refused(
    contoso_op: LocalEntra,
    fabrikam_op: LocalEntra,
    op_keys: dict[str, SigningKey],
    alice: User,
    tenant: Tenant,
) -> None:
    http = tenant_http(tenant)
    response = oidc_sign_in(http, contoso_op, ALICE, signer=op_keys["fabrikam"])
    assert response.status_code == 403
    assert signed_in_user_id(http) is None
    assert "does not publish" in refusal(tenant).detail


def test_sign_in_started_on_one_tenant_never_completes_on_another(
    contoso_op: LocalEntra,
    fabrikam_op: LocalEntra,
    alice: User,
    frank: User,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    """One browser (the test client sends its cookies to every host): the state Contoso's login
    made is not Fabrikam's, and the code Contoso's Entra issued is not redeemable at Fabrikam's."""
    http = tenant_http(tenant)
    callback = contoso_op.authorize(start(http), upn=ALICE)
    fabrikam_host = tenant_primary_host(other_tenant.slug)
    response = http.get(callback, secure=True, HTTP_HOST=fabrikam_host)
    assert response.status_code == 400
    assert signed_in_user_id(http) is None
    assert refusal(other_tenant).detail.startswith("No sign-in with this state")
    # Fabrikam's own login in the same browser, answered with Contoso's code: its token endpoint
    # refuses the code (and it was minted for Contoso's client and redirect URI anyway).
    code = parse_qs(urlsplit(callback).query)["code"][0]
    location = http.get("/oidc/login/", secure=True, HTTP_HOST=fabrikam_host)["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    response = http.get(f"/oidc/callback/?code={code}&state={state}", secure=True, HTTP_HOST=fabrikam_host)
    assert response.status_code == 400
    assert "invalid_grant" in refusal(other_tenant).detail
    assert signed_in_user_id(http) is None
    assert not Event.objects.filter(action=sso_services.SIGN_IN).exists()


def test_another_tenants_object_id_is_never_matched(
    contoso_op: LocalEntra,
    frank: User,
    tenant: Tenant,
    other_tenant: Tenant,
    system_actor: services.Actor,
) -> None:
    services.user_update(
        tenant=other_tenant, actor=system_actor, user=frank, fields={"external_id": FRANK_OID}
    )
    sso_services.sso_settings_update(tenant=tenant, actor=system_actor, match_object_id_to_external_id=True)
    http = tenant_http(tenant)
    response = oidc_sign_in(http, contoso_op, FRANK, oid=FRANK_OID)
    assert response.status_code == 403 and b"has not been provisioned yet" in response.content
    assert signed_in_user_id(http) is None


# ------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "issuer",
    [
        "https://evil.example/11111111-1111-4111-8111-111111111111/v2.0",
        "https://login.microsoftonline.com.evil.example/x/v2.0",
        "http://login.microsoftonline.com/x/v2.0",
        "https://login.microsoftonline.com:8443/x/v2.0",
        "https://user@login.microsoftonline.com/x/v2.0",
        "http://127.0.0.1:9/x/v2.0",
    ],
)
def test_issuer_must_be_a_microsoft_login_host(
    issuer: str, tenant: Tenant, system_actor: services.Actor
) -> None:
    with pytest.raises(InvalidValue) as refused:
        sso_services.sso_settings_update(tenant=tenant, actor=system_actor, oidc_issuer=issuer)
    assert refused.value.field == "oidc_issuer"


@pytest.mark.parametrize(
    "issuer",
    [
        f"https://login.microsoftonline.com/{CONTOSO_TID}/v2.0",
        f"https://login.microsoftonline.us/{CONTOSO_TID}/v2.0",
        f"https://login.partner.microsoftonline.cn/{CONTOSO_TID}/v2.0",
        "",
    ],
)
def test_microsoft_issuers_are_accepted(issuer: str, tenant: Tenant, system_actor: services.Actor) -> None:
    sso = sso_services.sso_settings_update(tenant=tenant, actor=system_actor, oidc_issuer=issuer)
    assert sso.oidc_issuer == issuer


def test_default_issuer_is_entras_v2_issuer_of_the_tenant(
    tenant: Tenant, system_actor: services.Actor
) -> None:
    """Without an issuer set, sign-in goes to login.microsoftonline.com/<tid>/v2.0 (its discovery
    document seeded in the cache here, so no request leaves the machine)."""
    sso = sso_services.sso_settings_update(
        tenant=tenant,
        actor=system_actor,
        oidc_enabled=True,
        oidc_tenant_id=CONTOSO_TID,
        oidc_client_id="6f1b7c3e-0000-4000-8000-00000000c1d0",
        oidc_client_secret="s3cret",
    )
    issuer = f"https://login.microsoftonline.com/{CONTOSO_TID}/v2.0"
    assert sso.oidc_issuer_effective == issuer
    base = f"https://login.microsoftonline.com/{CONTOSO_TID}"
    cache.set(
        oidc._cache_key("discovery", issuer),
        {
            "issuer": issuer,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_auth_methods": ["client_secret_post"],
        },
    )
    location = start(tenant_http(tenant))
    assert location.startswith(f"{base}/oauth2/v2.0/authorize?client_id=6f1b7c3e-")
    params = parse_qs(urlsplit(location).query)
    assert params["redirect_uri"] == ["https://contoso.testserver/oidc/callback/"]
    assert params["code_challenge_method"] == ["S256"]
