"""The IdP's metadata: upload (parsed and checked with pysaml2), the App Federation Metadata URL
fetch (SSRF guard: Microsoft login hosts over https only, no redirects, 10 s deadline, 1 MiB cap),
certificate rules (unexpired, at most two during a rollover), and the values given to Entra."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from directory.exceptions import InvalidValue
from directory.models import Event, Tenant
from sso import entra_values, metadata
from sso import services as sso_services
from sso.models import SsoSettings
from tests.sso.conftest import sp_metadata
from tests.sso.support import FakeEntra, KeyPair, make_key_pair


@pytest.fixture
def entra_metadata(tenant: Tenant, keys: dict[str, KeyPair]) -> str:
    return FakeEntra(tid="meta", keys=keys["contoso"], sp_metadata=sp_metadata(tenant)).metadata_xml()


# ------------------------------------------------------------------------------------------ upload


def test_uploaded_metadata_sets_the_idp(tenant: Tenant, entra_metadata: str, keys, system_actor) -> None:
    sso = sso_services.saml_metadata_set(tenant=tenant, actor=system_actor, xml=entra_metadata.encode())
    assert sso.idp_entity_id == "https://sts.windows.test/meta/"
    assert sso.idp_sso_url == "https://login.microsoftonline.test/meta/saml2"
    assert sso.idp_slo_url == "https://login.microsoftonline.test/meta/saml2/logout"
    (cert,) = sso.idp_certificates
    assert cert["pem"].strip() == keys["contoso"].cert_pem.strip()
    assert cert["not_after"] > "2026" and len(cert["sha256"]) == 64
    assert not sso.saml_enabled, "uploading metadata does not switch SAML on"
    event = Event.objects.get(tenant=tenant, action="sso.saml_metadata_set")
    assert event.changes["idp_entity_id"] == ["", "https://sts.windows.test/meta/"]
    assert "BEGIN CERTIFICATE" not in str(event.changes)
    again = Event.objects.count()
    sso_services.saml_metadata_set(tenant=tenant, actor=system_actor, xml=entra_metadata)
    assert Event.objects.count() == again, "the same file again changes nothing"


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("", "empty"),
        ("not xml at all", "could not be parsed"),
        ('<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>', "0 identity providers"),
        ("<!DOCTYPE x [<!ENTITY a SYSTEM 'file:///etc/passwd'>]><x>&a;</x>", "could not be parsed"),
    ],
)
def test_bad_metadata_is_refused_and_changes_nothing(
    tenant: Tenant, system_actor, xml: str, message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        sso_services.saml_metadata_set(tenant=tenant, actor=system_actor, xml=xml)
    assert not SsoSettings.objects.filter(tenant=tenant).exclude(idp_entity_id="").exists()


def test_sp_metadata_is_not_idp_metadata(tenant: Tenant, system_actor) -> None:
    with pytest.raises(InvalidValue, match="0 identity providers"):
        sso_services.saml_metadata_set(tenant=tenant, actor=system_actor, xml=sp_metadata(tenant))


def test_metadata_larger_than_one_mib_is_refused(tenant: Tenant, entra_metadata: str, system_actor) -> None:
    padded = entra_metadata + "<!--" + "x" * (1024 * 1024) + "-->"
    with pytest.raises(InvalidValue, match="larger than 1 MiB"):
        sso_services.saml_metadata_set(tenant=tenant, actor=system_actor, xml=padded)


def test_an_expired_certificate_is_refused(tenant: Tenant, tmp_path: Path, system_actor) -> None:
    expired = make_key_pair(tmp_path, "expired", days=-1)
    with pytest.raises(InvalidValue, match="expired"):
        sso_services.sso_settings_update(
            tenant=tenant, actor=system_actor, idp_certificates=[expired.cert_pem]
        )


def test_a_weak_key_is_refused(tenant: Tenant, tmp_path: Path, system_actor) -> None:
    weak = make_key_pair(tmp_path, "weak", bits=1024)
    with pytest.raises(InvalidValue, match="1024-bit"):
        sso_services.sso_settings_update(tenant=tenant, actor=system_actor, idp_certificates=[weak.cert_pem])


def test_at_most_two_certificates_newest_first(tenant: Tenant, tmp_path: Path, system_actor) -> None:
    old, new, third = (
        make_key_pair(tmp_path, n, days=d) for n, d in (("old", 30), ("new", 900), ("third", 400))
    )
    sso = sso_services.sso_settings_update(
        tenant=tenant, actor=system_actor, idp_certificates=[old.cert_pem, new.cert_pem]
    )
    assert [c["pem"].strip() for c in sso.idp_certificates] == [new.cert_pem.strip(), old.cert_pem.strip()]
    with pytest.raises(InvalidValue, match="At most 2"):
        sso_services.sso_settings_update(
            tenant=tenant, actor=system_actor, idp_certificates=[old.cert_pem, new.cert_pem, third.cert_pem]
        )
    base64_only = "".join(new.cert_pem.strip().splitlines()[1:-1])
    sso = sso_services.sso_settings_update(tenant=tenant, actor=system_actor, idp_certificates=[base64_only])
    assert len(sso.idp_certificates) == 1, 'Entra\'s "Certificate (Base64)" works as well as PEM'


def test_saml_cannot_be_switched_on_without_an_idp(tenant: Tenant, system_actor) -> None:
    with pytest.raises(InvalidValue, match="entity id, sign-on URL and a signing certificate"):
        sso_services.sso_settings_update(tenant=tenant, actor=system_actor, saml_enabled=True)


@pytest.mark.parametrize(
    "url", ["http://login.example/saml2", "javascript:alert(1)", "https://user:pw@login.example/"]
)
def test_idp_urls_must_be_https(tenant: Tenant, system_actor, url: str) -> None:
    with pytest.raises(InvalidValue):
        sso_services.sso_settings_update(tenant=tenant, actor=system_actor, idp_sso_url=url)


# ------------------------------------------------------------------------------------- URL guard


@pytest.mark.parametrize(
    "url",
    [
        "https://login.microsoftonline.com/tid/federationmetadata/2007-06/federationmetadata.xml?appid=x",
        "https://login.microsoftonline.us/tid/federationmetadata/2007-06/federationmetadata.xml",
        "https://login.chinacloudapi.cn/tid/federationmetadata/2007-06/federationmetadata.xml",
        "https://LOGIN.MICROSOFTONLINE.COM:443/tid/federationmetadata/2007-06/federationmetadata.xml",
    ],
)
def test_microsoft_login_hosts_are_allowed(url: str) -> None:
    assert metadata.check_metadata_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://login.microsoftonline.com/tid/federationmetadata.xml",
        "https://login.microsoftonline.com.evil.example/x",
        "https://evil.example/login.microsoftonline.com/x",
        "https://login.microsoftonline.com:8443/x",
        "https://user@login.microsoftonline.com/x",
        "https://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8000/x",
        "https://localhost/x",
        "file:///etc/passwd",
        "gopher://login.microsoftonline.com/x",
        "",
    ],
)
def test_every_other_url_is_refused(url: str) -> None:
    with pytest.raises(InvalidValue, match="Microsoft login host"):
        metadata.check_metadata_url(url)


def test_local_idp_urls_need_the_local_switch(settings) -> None:
    settings.SSO_ALLOW_LOCAL_IDP = True
    assert metadata.check_metadata_url("http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"
    for url in ("http://10.0.0.1/x", "http://evil.example/x", "http://169.254.169.254/x"):
        with pytest.raises(InvalidValue):
            metadata.check_metadata_url(url)


def test_a_refused_url_is_never_fetched_or_stored(tenant: Tenant, system_actor, monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("fetched")

    monkeypatch.setattr(metadata.httpx, "Client", no_network)
    with pytest.raises(InvalidValue):
        sso_services.saml_metadata_fetch(tenant=tenant, actor=system_actor, url="https://evil.example/m.xml")
    with pytest.raises(InvalidValue):
        sso_services.sso_settings_update(
            tenant=tenant, actor=system_actor, idp_metadata_url="https://evil.example/"
        )
    assert not SsoSettings.objects.filter(tenant=tenant).exclude(idp_metadata_url="").exists()
    event = Event.objects.get(tenant=tenant, action="sso.saml_metadata_fetch")
    assert event.result == Event.Result.FAILURE and "Microsoft login host" in event.detail


# ------------------------------------------------------------------------- fetching from 127.0.0.1


class _Handler(BaseHTTPRequestHandler):
    body = b""

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        if self.path == "/metadata.xml":
            self._send(self.server.metadata)  # type: ignore[attr-defined]
        elif self.path == "/big.xml":
            self._send(b"<x>" + b"a" * (1024 * 1024 + 10) + b"</x>", length=False)
        elif self.path == "/slow.xml":
            time.sleep(2)
            self._send(self.server.metadata)  # type: ignore[attr-defined]
        elif self.path == "/trickle.xml":
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b" " * 10)
                self.wfile.flush()
                time.sleep(0.1)
        elif self.path == "/redirect.xml":
            self.send_response(302)
            self.send_header("Location", "/metadata.xml")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def _send(self, body: bytes, *, length: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def local_idp(entra_metadata: str, settings) -> Iterator[str]:
    """A plain http.server on 127.0.0.1 serving the IdP metadata (SSO_ALLOW_LOCAL_IDP on)."""
    settings.SSO_ALLOW_LOCAL_IDP = True
    settings.SSO_METADATA_FETCH_TIMEOUT = 1.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.metadata = entra_metadata.encode()  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_from_a_local_idp_sets_the_idp(tenant: Tenant, local_idp: str, system_actor) -> None:
    sso = sso_services.saml_metadata_fetch(tenant=tenant, actor=system_actor, url=f"{local_idp}/metadata.xml")
    assert sso.idp_entity_id == "https://sts.windows.test/meta/"
    assert sso.idp_metadata_url == f"{local_idp}/metadata.xml"
    assert sso.idp_metadata_fetched_at is not None
    # On demand again, from the stored URL: nothing changed but the time of the fetch.
    before = sso.idp_metadata_fetched_at
    again = sso_services.saml_metadata_fetch(tenant=tenant, actor=system_actor)
    assert again.idp_metadata_fetched_at > before
    assert (
        Event.objects.filter(tenant=tenant, action="sso.saml_metadata_fetch", result="success").count() == 2
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/big.xml", "larger than 1 MiB"),
        ("/slow.xml", "no complete answer within 1 s"),
        ("/trickle.xml", "no complete answer within 1 s"),
        ("/redirect.xml", "answered 302"),
        ("/missing.xml", "answered 404"),
    ],
)
def test_fetch_failures_keep_the_stored_idp(
    tenant: Tenant, local_idp: str, system_actor, path: str, message: str
) -> None:
    sso_services.saml_metadata_fetch(tenant=tenant, actor=system_actor, url=f"{local_idp}/metadata.xml")
    started = time.monotonic()
    with pytest.raises(InvalidValue, match=message):
        sso_services.saml_metadata_fetch(tenant=tenant, actor=system_actor, url=f"{local_idp}{path}")
    assert time.monotonic() - started < 1.9
    sso = SsoSettings.objects.get(tenant=tenant)
    assert sso.idp_entity_id == "https://sts.windows.test/meta/"
    assert sso.idp_metadata_url == f"{local_idp}/metadata.xml"
    failed = Event.objects.filter(tenant=tenant, action="sso.saml_metadata_fetch", result="failure").get()
    assert message.split(" ")[0] in failed.detail


def test_stale_metadata_is_refreshed_and_fresh_metadata_is_left_alone(
    tenant: Tenant, other_tenant: Tenant, local_idp: str, system_actor
) -> None:
    """The background worker's daily refresh: a tenant fetched more than a day ago (or whose last
    fetch failed) is fetched again; one fetched an hour ago is not; a failing URL is counted and
    keeps the stored IdP."""
    from datetime import timedelta

    from django.utils import timezone

    sso_services.saml_metadata_fetch(tenant=tenant, actor=system_actor, url=f"{local_idp}/metadata.xml")
    sso_services.saml_metadata_fetch(
        tenant=other_tenant, actor=system_actor, url=f"{local_idp}/metadata.xml"
    )
    day_old = timezone.now() - timedelta(hours=25)
    SsoSettings.objects.filter(tenant=tenant).update(idp_metadata_fetched_at=day_old)
    fresh = SsoSettings.objects.get(tenant=other_tenant).idp_metadata_fetched_at

    assert sso_services.saml_metadata_refresh_stale(actor=system_actor) == (1, 0)
    assert SsoSettings.objects.get(tenant=tenant).idp_metadata_fetched_at > day_old
    assert SsoSettings.objects.get(tenant=other_tenant).idp_metadata_fetched_at == fresh
    assert sso_services.saml_metadata_refresh_stale(actor=system_actor) == (0, 0)

    SsoSettings.objects.filter(tenant=tenant).update(
        idp_metadata_url=f"{local_idp}/missing.xml", idp_metadata_fetched_at=day_old
    )
    assert sso_services.saml_metadata_refresh_stale(actor=system_actor) == (0, 1)
    assert SsoSettings.objects.get(tenant=tenant).idp_entity_id == "https://sts.windows.test/meta/"


# ---------------------------------------------------------------------------- values for Entra


def test_values_to_paste_into_entra(tenant: Tenant, settings) -> None:
    values = entra_values.saml_values(tenant)
    assert values.entity_id == "https://contoso.testserver/saml2/metadata/"
    assert values.reply_url == "https://contoso.testserver/saml2/acs/"
    assert values.sign_on_url == "https://contoso.testserver/saml2/login/"
    assert values.logout_url == "https://contoso.testserver/saml2/ls/"
    assert entra_values.oidc_redirect_uri(tenant) == "https://contoso.testserver/oidc/callback/"
    settings.SSO_PUBLIC_SCHEME, settings.SSO_PUBLIC_PORT = "http", "8000"
    assert entra_values.saml_values(tenant).reply_url == "http://contoso.testserver:8000/saml2/acs/"
