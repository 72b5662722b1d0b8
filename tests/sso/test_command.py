"""`manage.py sso_configure` (and `sso_refresh_metadata`): the console's writes from the shell,
through sso.services, printing what to paste into Entra. Fabrikam is configured next to Contoso
and never changes."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from directory import services
from directory.models import Event, Tenant, User
from sso import services as sso_services
from sso.models import SsoSettings
from tests.sso.conftest import CONTOSO_TID, sp_metadata
from tests.sso.saml_idp_server import SamlIdpServer, saml_idp_server
from tests.sso.support import FakeEntra, KeyPair, SpUrls

CLIENT_ID = "00000000-0000-4000-8000-00000000c11d"
SECRET = "Qx8~entra-client-secret-value"


def run(*args: str, stdin: str = "") -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("sso_configure", *args, stdout=out, stderr=err, stdin=io.StringIO(stdin))
    return out.getvalue(), err.getvalue()


def settings_of(tenant: Tenant) -> SsoSettings:
    return sso_services.sso_settings_for(tenant)


@pytest.fixture
def metadata_file(tmp_path: Path, tenant: Tenant, keys: dict[str, KeyPair]) -> tuple[Path, FakeEntra]:
    entra = FakeEntra(tid=CONTOSO_TID, keys=keys["contoso"], sp_metadata=sp_metadata(tenant))
    path = tmp_path / "Contoso.xml"
    path.write_text(entra.metadata_xml())
    return path, entra


@pytest.fixture
def served_idp(settings, tenant: Tenant, keys: dict[str, KeyPair]) -> Iterator[SamlIdpServer]:  # type: ignore[no-untyped-def]
    with saml_idp_server() as idp:
        idp.trust(
            tid=CONTOSO_TID, keys=keys["contoso"], sp_metadata=sp_metadata(tenant), sp=SpUrls.of(tenant)
        )
        yield idp


def test_saml_from_a_metadata_file_prints_the_values_for_entra(
    tenant: Tenant, other_tenant: Tenant, fabrikam_entra: FakeEntra, metadata_file: tuple[Path, FakeEntra]
) -> None:
    path, entra = metadata_file
    out, err = run("--tenant", "contoso", "--saml-metadata", str(path), "--idp-initiated")
    sso = settings_of(tenant)
    assert (sso.saml_enabled, sso.idp_entity_id, sso.allow_idp_initiated) == (True, entra.entity_id, True)
    for line in (
        "Identifier (Entity ID):  https://contoso.testserver/saml2/metadata/",
        "Reply URL (ACS):         https://contoso.testserver/saml2/acs/",
        "Sign on URL:             https://contoso.testserver/saml2/login/",
        "Logout Url:              https://contoso.testserver/saml2/ls/",
        "Redirect URI:            https://contoso.testserver/oidc/callback/",
        f"SAML sign-in:    on — IdP {entra.entity_id}",
        "IdP-initiated sign-in: allowed",
        "Password sign-in: everyone",
    ):
        assert line in out, line
    assert "fabrikam" not in out and err == ""
    actions = list(Event.objects.filter(tenant=tenant).values_list("action", "actor_label").order_by("id"))
    assert ("sso.saml_metadata_set", "manage.py sso_configure") in actions
    assert ("sso.settings_update", "manage.py sso_configure") in actions
    assert settings_of(other_tenant).idp_entity_id == fabrikam_entra.entity_id
    assert not Event.objects.filter(tenant=other_tenant, actor_label="manage.py sso_configure").exists()


def test_without_a_protocol_it_only_prints(tenant: Tenant) -> None:
    out, _ = run("--tenant", "Contoso")
    assert "Reply URL (ACS):         https://contoso.testserver/saml2/acs/" in out
    assert "SAML sign-in:    off — no identity provider yet" in out
    assert not SsoSettings.objects.filter(tenant=tenant).exists()
    assert not Event.objects.filter(tenant=tenant, action__startswith="sso.").exists()


def test_the_public_scheme_and_port_come_from_settings(settings, tenant: Tenant) -> None:  # type: ignore[no-untyped-def]
    settings.SSO_PUBLIC_SCHEME, settings.SSO_PUBLIC_PORT = "http", "8000"
    out, _ = run("--tenant", "contoso")
    assert "Identifier (Entity ID):  http://contoso.testserver:8000/saml2/metadata/" in out


def test_saml_from_the_app_federation_metadata_url(
    settings, tenant: Tenant, served_idp: SamlIdpServer
) -> None:  # type: ignore[no-untyped-def]
    url = served_idp.entra.metadata_url  # type: ignore[union-attr]
    with pytest.raises(CommandError, match="must be https:// on a Microsoft login host"):
        run("--tenant", "contoso", "--saml-metadata", url)
    assert not settings_of(tenant).saml_enabled
    settings.SSO_ALLOW_LOCAL_IDP = True
    out, _ = run("--tenant", "contoso", "--saml-metadata", url)
    sso = settings_of(tenant)
    assert (sso.saml_enabled, sso.idp_metadata_url) == (True, url)
    assert sso.idp_metadata_fetched_at is not None
    assert f"IdP {served_idp.entra.entity_id}" in out  # type: ignore[union-attr]


def test_oidc_client_is_stored_with_the_secret_encrypted_and_never_printed(
    settings,
    tenant: Tenant,
    other_tenant: Tenant,  # type: ignore[no-untyped-def]
) -> None:
    out, _ = run(
        "--tenant",
        "contoso",
        "--oidc-tenant-id",
        CONTOSO_TID,
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-client-secret",
        SECRET,
    )
    sso = settings_of(tenant)
    assert (sso.oidc_enabled, sso.oidc_tenant_id, sso.oidc_client_id) == (True, CONTOSO_TID, CLIENT_ID)
    assert sso.oidc_client_secret_encrypted and SECRET not in sso.oidc_client_secret_encrypted
    assert SECRET not in out
    assert f"issuer https://login.microsoftonline.com/{CONTOSO_TID}/v2.0" in out and "secret set" in out
    event = Event.objects.get(tenant=tenant, action="sso.settings_update")
    assert SECRET not in str(event.changes)
    assert not SsoSettings.objects.filter(tenant=other_tenant).exists()


def test_the_client_secret_can_come_from_stdin(tenant: Tenant) -> None:
    run(
        "--tenant",
        "contoso",
        "--oidc-tenant-id",
        CONTOSO_TID,
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-client-secret",
        "-",
        stdin=SECRET + "\n",
    )
    from directory.secrets import decrypt

    assert decrypt(settings_of(tenant).oidc_client_secret_encrypted) == SECRET


def test_a_loopback_oidc_issuer_needs_sso_allow_local_idp(settings, tenant: Tenant) -> None:  # type: ignore[no-untyped-def]
    args = (
        "--tenant",
        "contoso",
        "--oidc-tenant-id",
        CONTOSO_TID,
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-client-secret",
        SECRET,
        "--oidc-issuer",
        "http://127.0.0.1:5556/v2.0",
    )
    with pytest.raises(CommandError, match="Microsoft login host"):
        run(*args)
    assert not settings_of(tenant).oidc_enabled
    settings.SSO_ALLOW_LOCAL_IDP = True
    out, _ = run(*args)
    assert settings_of(tenant).oidc_issuer == "http://127.0.0.1:5556/v2.0"
    assert "issuer http://127.0.0.1:5556/v2.0" in out


def test_enforcement_with_break_glass_managers(
    tenant: Tenant,
    manager: User,
    other_manager: User,
    alice: User,
    metadata_file: tuple[Path, FakeEntra],
) -> None:
    path, _ = metadata_file
    with pytest.raises(CommandError, match=re.escape("has no user 'manager@fabrikam.com'")):
        run(
            "--tenant",
            "contoso",
            "--saml-metadata",
            str(path),
            "--enforce",
            "--break-glass",
            other_manager.username,
        )
    assert not SsoSettings.objects.filter(tenant=tenant).exists()  # checked before anything is written
    with pytest.raises(CommandError, match=re.escape(sso_services.BREAK_GLASS_MANAGERS_ONLY)):
        run("--tenant", "contoso", "--saml-metadata", str(path), "--enforce", "--break-glass", alice.username)
    out, err = run(
        "--tenant", "contoso", "--saml-metadata", str(path), "--enforce", "--break-glass", manager.username
    )
    sso = settings_of(tenant)
    assert sso.enforce_sso and list(sso.break_glass.all()) == [manager]
    assert "Password sign-in: break-glass managers only (manager@contoso.com)" in out and err == ""
    out, _ = run("--tenant", "contoso")
    assert settings_of(tenant).enforce_sso, "omitting --enforce leaves it as it is"
    out, _ = run("--tenant", "contoso", "--no-enforce")
    assert not settings_of(tenant).enforce_sso and "Password sign-in: everyone" in out


def test_enforcing_without_break_glass_warns(tenant: Tenant, metadata_file: tuple[Path, FakeEntra]) -> None:
    _, err = run("--tenant", "contoso", "--saml-metadata", str(metadata_file[0]), "--enforce")
    assert "no break-glass manager is chosen" in err


def test_enforcing_without_a_protocol_is_refused(tenant: Tenant) -> None:
    with pytest.raises(CommandError, match="can only be required once SAML or OpenID Connect is on"):
        run("--tenant", "contoso", "--enforce")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tenant", "nope"), "No tenant with slug 'nope'"),
        (("--tenant", "platform"), sso_services.PLATFORM_HAS_NO_SSO),
        (
            ("--tenant", "contoso", "--oidc-tenant-id", CONTOSO_TID),
            "also needs --oidc-client-id, --oidc-client-secret",
        ),
        (("--tenant", "contoso", "--saml-metadata", "/no/such/file.xml"), "Cannot read /no/such/file.xml"),
        (
            ("--tenant", "contoso", "--saml-metadata", "x.xml", "--oidc-client-id", CLIENT_ID),
            "either --saml-metadata or the --oidc-",
        ),
    ],
)
def test_refusals_are_command_errors(tenant: Tenant, args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args)
    assert not SsoSettings.objects.filter(tenant=tenant).exists()


def test_a_file_that_is_not_metadata_changes_nothing(tenant: Tenant, tmp_path: Path) -> None:
    path = tmp_path / "bad.xml"
    path.write_text("<html/>")
    with pytest.raises(CommandError, match="is not SAML metadata"):
        run("--tenant", "contoso", "--saml-metadata", str(path))
    assert settings_of(tenant).idp_entity_id == ""


def test_sso_refresh_metadata_fetches_every_url_and_reports_failures(
    settings,  # type: ignore[no-untyped-def]
    tenant: Tenant,
    other_tenant: Tenant,
    served_idp: SamlIdpServer,
    fabrikam_entra: FakeEntra,
    system_actor: services.Actor,
) -> None:
    settings.SSO_ALLOW_LOCAL_IDP = True
    url = served_idp.entra.metadata_url  # type: ignore[union-attr]
    sso_services.saml_metadata_fetch(tenant=tenant, actor=system_actor, url=url)
    first = settings_of(tenant).idp_metadata_fetched_at
    out = io.StringIO()
    call_command("sso_refresh_metadata", stdout=out)
    assert out.getvalue().startswith(f"contoso: {served_idp.entra.entity_id}")  # type: ignore[union-attr]
    assert "fabrikam" not in out.getvalue()  # uploaded metadata, no URL
    assert settings_of(tenant).idp_metadata_fetched_at > first
    served_idp.entra = None  # the URL now answers 503
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 tenant"):
        call_command("sso_refresh_metadata", stdout=io.StringIO(), stderr=err)
    assert "contoso: The metadata could not be fetched: the server answered 503." in err.getvalue()
    assert settings_of(tenant).idp_entity_id  # the stored IdP is kept
