"""A stand-in Entra served over HTTP on 127.0.0.1, for what FakeEntra alone cannot do: be fetched
from an App Federation Metadata URL (console "Refresh now", `sso_configure --saml-metadata URL`)
and answer a real browser (the e2e test). SecureLogin accepts loopback IdP URLs only with
SSO_ALLOW_LOCAL_IDP on.

GET /<tid>/federationmetadata.xml   the IdP metadata (entity id, sign-on URL, signing certificate)
GET /<tid>/saml2?SAMLRequest=…      reads the AuthnRequest with pysaml2's Server and answers with a
                                    page that auto-posts a signed response for `self.upn` to the ACS
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from saml2 import BINDING_HTTP_REDIRECT

from tests.sso.support import FakeEntra, KeyPair, SpUrls, encode


class LocalSamlEntra(FakeEntra):
    """FakeEntra whose entity id and sign-on URL are on the local server."""

    def __init__(self, *, base_url: str, tid: str, keys: KeyPair, sp_metadata: str) -> None:
        self.base_url = base_url
        super().__init__(tid=tid, keys=keys, sp_metadata=sp_metadata)
        self.entity_id = f"{base_url}/{tid}/"
        self.sso_url = f"{base_url}/{tid}/saml2"
        self.slo_url = f"{base_url}/{tid}/saml2/logout"
        self.server = self._server(self.sign_keys)

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/{self.tid}/federationmetadata.xml"


class SamlIdpServer:
    """The HTTP server; `entra` answers, `upn`/`object_id` say who "signs in", `requests` logs
    the paths asked for."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.http = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        self.entra: LocalSamlEntra | None = None
        self.sp: SpUrls | None = None
        self.upn = ""
        self.object_id = ""
        self.requests: list[str] = []

    def trust(self, *, tid: str, keys: KeyPair, sp_metadata: str, sp: SpUrls) -> LocalSamlEntra:
        self.entra = LocalSamlEntra(base_url=self.base_url, tid=tid, keys=keys, sp_metadata=sp_metadata)
        self.sp = sp
        return self.entra

    def answer(self, path: str) -> tuple[int, str, bytes]:
        self.requests.append(path)
        entra, sp = self.entra, self.sp
        if entra is None or sp is None:
            return 503, "text/plain", b"not configured"
        parts = urlsplit(path)
        if parts.path == urlsplit(entra.metadata_url).path:
            return 200, "application/samlmetadata+xml", entra.metadata_xml().encode()
        if parts.path == urlsplit(entra.sso_url).path:
            query = parse_qs(parts.query)
            request = entra.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
            xml = entra.response_xml(
                sp=sp, upn=self.upn, object_id=self.object_id, in_response_to=request.message.id
            )
            relay = query.get("RelayState", [""])[0]
            return 200, "text/html; charset=utf-8", auto_post_page(sp.acs, encode(xml), relay).encode()
        return 404, "text/plain", b"not found"


def auto_post_page(acs: str, saml_response: str, relay_state: str) -> str:
    """What Entra's sign-in ends with: a form that posts the response to the ACS by itself."""
    relay = (
        f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">' if relay_state else ""
    )
    return (
        "<!doctype html><html><head><title>Local Entra</title></head>"
        '<body><p>Signing you in…</p><form method="post" action="'
        f'{html.escape(acs)}"><input type="hidden" name="SAMLResponse" value="{saml_response}">{relay}'
        '<noscript><button type="submit">Continue</button></noscript></form>'
        "<script>document.forms[0].submit()</script></body></html>"
    )


@contextmanager
def saml_idp_server() -> Iterator[SamlIdpServer]:
    holder: list[SamlIdpServer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = holder[0].answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test output is not the place for an access log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(SamlIdpServer(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
