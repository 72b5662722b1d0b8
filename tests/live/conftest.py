"""The live HTTP layer: the real app served by gunicorn on 127.0.0.1, driven with httpx only.

Django's test client calls the WSGI handler in-process and skips CSRF, which once let
/oauth/token/ answer every real client with Django's CSRF 403 page while the suite stayed green.
Here nothing is simulated: requests cross the loopback interface to gunicorn, started the way
production starts it (`securelogin/gunicorn.conf.py`, `securelogin.wsgi:application`, two gthread
workers), once per session on a free port, and stopped at the end.

The server runs `tests.settings`: the production settings module plus the suite's MD5 password
hasher, so the client secrets and passwords the ORM fixtures hash verify in the server, and the
suite's hosts (tenants on `<slug>.testserver`; `testserver` and 127.0.0.1 are root hosts).

Both processes use the test database, so every live test is transactional: fixtures commit where
the server can read them, the server's writes are visible to the ORM, and the tables are flushed
after each test. On PostgreSQL that is pytest-django's `test_<name>`. SQLite's test database lives
in memory, which no other process can open, so it is copied to a file once per session and, for
the duration of each live test only, the `default` connection is swapped to that file; the rest of
the suite keeps its in-memory database.

Hosts: `LoopbackTransport` connects every request to 127.0.0.1:<port> and keeps the URL's host in
the Host header, so the admin's browser keeps one cookie jar per host (root and tenant) as a real
browser does, and redirects to `contoso.testserver:<port>` are followed unchanged.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from pytest_django import DjangoDbBlocker

from directory import services
from directory.models import Tenant, User
from directory.tenancy import tenant_primary_host
from oauth.models import Application
from oauth.services import application_create
from tests.conftest import PASSWORD
from tests.live.support import (
    ENTRA_REDIRECT,
    SHARED_USERNAME,
    TIMEOUT,
    Authorization,
    Browser,
    EntraBackend,
    LiveApp,
    LoopbackTransport,
    OAuthClient,
    query,
    response_checker,
    token_body,
)

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 30
STOP_SECONDS = 15


@dataclass(frozen=True)
class LiveDatabase:
    url: str
    sqlite_file: Path | None


def _postgres_url(settings_dict: dict[str, str]) -> str:
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}"


@pytest.fixture(scope="session")
def live_database(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, tmp_path_factory: pytest.TempPathFactory
) -> LiveDatabase:
    """The test database as a URL another process can open."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        return LiveDatabase(_postgres_url(connection.settings_dict), None)
    assert connection.vendor == "sqlite", f"no live server recipe for {connection.vendor}"
    if not connection.is_in_memory_db():
        return LiveDatabase(f"sqlite:///{connection.settings_dict['NAME']}", None)
    path = tmp_path_factory.mktemp("live-db") / "db.sqlite3"
    with django_db_blocker.unblock():
        connection.ensure_connection()
        target = sqlite3.connect(path)
        try:
            connection.connection.backup(target)
        finally:
            target.close()
    return LiveDatabase(f"sqlite:///{path}", path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _gunicorn_command() -> list[str]:
    """gunicorn with the production config file. Since gunicorn 25.1 a master also opens a control
    socket at one fixed path per user; the test server needs none, and must not take the one of a
    `make run` on the same machine."""
    from gunicorn.config import KNOWN_SETTINGS

    command = [sys.executable, "-m", "gunicorn", "--config", "securelogin/gunicorn.conf.py"]
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        command.append("--no-control-socket")
    return command


def _wait_until_serving(process: subprocess.Popen[bytes], app: LiveApp) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{app.log_tail()}")
        try:
            httpx.get(f"http://127.0.0.1:{app.port}/login/", timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return
    raise RuntimeError(f"gunicorn did not answer within {STARTUP_SECONDS}s:\n{app.log_tail()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the master, which stops its workers; the process group we started is killed
    only if it is still there after STOP_SECONDS."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_SECONDS)


@contextmanager
def serve(live_database: LiveDatabase, log_dir: Path, **settings_env: str) -> Iterator[LiveApp]:
    """gunicorn with two gthread workers on a free port, on the test database; `settings_env`
    adds environment settings (tests/live/test_credential_cache.py serves with the caches on)."""
    app = LiveApp(
        port=_free_port(), domain=settings.SECURELOGIN_BASE_DOMAIN, log_path=log_dir / "gunicorn.log"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": live_database.url,
        "SECRET_KEY": settings.SECRET_KEY,
        "SECURELOGIN_BASE_DOMAIN": app.domain,
        "HOST": "127.0.0.1",
        "PORT": str(app.port),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
        "ACCESS_LOG": "1",
        "PYTHONUNBUFFERED": "1",
        **settings_env,
    }
    with app.log_path.open("wb") as log:
        process = subprocess.Popen(
            _gunicorn_command(),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_serving(process, app)
        yield app
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def live_app(live_database: LiveDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """The server every live test shares, with the per-process Host and SCIM credential caches off
    (SCIM_CREDENTIAL_CACHE_SECONDS=0): the tables are flushed after each test and the next test
    recreates contoso and fabrikam under new ids on the same hosts, which the server's workers never
    hear of, so a cached host or credential would outlive its test. Production never reuses a host
    for a new tenant row within seconds; the caches' cross-process delay has a live test of its own
    (test_credential_cache.py) on a server of its own."""
    with serve(
        live_database, tmp_path_factory.mktemp("live-server"), SCIM_CREDENTIAL_CACHE_SECONDS="0"
    ) as app:
        yield app


@pytest.fixture
def _live_connection(live_app: LiveApp, live_database: LiveDatabase) -> Iterator[None]:
    """On SQLite, point this process's `default` connection at the file the server opens."""
    if live_database.sqlite_file is None:
        yield
        return
    original = connections[DEFAULT_DB_ALIAS]
    swapped = original.__class__(
        {**original.settings_dict, "NAME": str(live_database.sqlite_file)}, DEFAULT_DB_ALIAS
    )
    connections[DEFAULT_DB_ALIAS] = swapped
    try:
        yield
    finally:
        swapped.close()
        connections[DEFAULT_DB_ALIAS] = original


@pytest.fixture(autouse=True)
def live_db(_live_connection: None, transactional_db: None) -> Tenant:
    """Committed data for both processes, flushed afterwards. A flush also takes the platform
    tenant (a data migration's row), which the root host needs, so it is restored here."""
    platform, _ = Tenant.objects.get_or_create(
        is_platform=True, defaults={"slug": "platform", "name": "SecureLogin platform"}
    )
    return platform


@pytest.fixture
def new_http(live_app: LiveApp) -> Iterator[Callable[[], httpx.Client]]:
    """httpx clients bound to the served app, each checking every response (support.py)."""
    opened: list[httpx.Client] = []

    def make() -> httpx.Client:
        client = httpx.Client(
            transport=LoopbackTransport(live_app.port, live_app.domain),
            timeout=TIMEOUT,
            follow_redirects=False,
            event_hooks={"response": [response_checker(live_app.log_tail)]},
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


@pytest.fixture
def browser(new_http: Callable[[], httpx.Client]) -> Browser:
    return Browser(new_http())


@pytest.fixture
def entra(new_http: Callable[[], httpx.Client], live_app: LiveApp) -> EntraBackend:
    return EntraBackend(new_http(), live_app.root_url)


@pytest.fixture
def entra_client(system_actor: services.Actor) -> OAuthClient:
    """The platform-wide gallery registration, as `manage.py ensure_entra_client` makes it."""
    application, secret = application_create(
        tenant=None, actor=system_actor, name="Microsoft Entra ID", redirect_uris=[ENTRA_REDIRECT]
    )
    return OAuthClient(application.client_id, secret)


@pytest.fixture
def contoso_cc(tenant: Tenant, system_actor: services.Actor) -> OAuthClient:
    """A tenant-bound client-credentials application (`create_oauth_client --grant client-credentials`)."""
    application, secret = application_create(
        tenant=tenant,
        actor=system_actor,
        name="Contoso provisioning",
        grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    return OAuthClient(application.client_id, secret)


@pytest.fixture
def fabrikam_user(other_tenant: Tenant, system_actor: services.Actor) -> User:
    """Fabrikam's user under the userName Contoso's tests provision too: uniqueness is per tenant,
    and nothing of this row may ever reach a Contoso credential."""
    return services.user_create(tenant=other_tenant, actor=system_actor, username=SHARED_USERNAME)


@pytest.fixture
def connect_entra(browser: Browser, live_app: LiveApp) -> Callable[[OAuthClient, User], Authorization]:
    """The Entra admin pressing **Authorize**: Entra's global Authorization URL on the root host →
    go-to-domain → the same request on the tenant's host → tenant sign-in → consent → Entra's
    redirect URI with the code and Entra's own `state` (RFC 6749 §4.1.1–4.1.2)."""

    def connect(client: OAuthClient, manager: User) -> Authorization:
        tenant = manager.tenant
        tenant_origin = live_app.tenant_url(tenant)
        state = secrets.token_urlsafe(16)
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": ENTRA_REDIRECT,
            "state": state,
            "scope": "scim",
        }
        response = browser.get(f"{live_app.root_url}/oauth/authorize/?{urlencode(params)}")
        assert response.status_code == 302, response.text[:500]
        assert response.headers["Location"].startswith("/login/?next=")

        page = browser.follow(response)
        assert page.status_code == 200 and 'name="domain"' in page.text
        response = browser.submit(page, domain=tenant.slug)
        assert response.status_code == 302, response.text[:500]
        location = response.headers["Location"]
        assert location.startswith(f"{tenant_origin}/oauth/authorize/?"), location
        assert query(location) == params

        response = browser.follow(response)
        assert response.status_code == 302, response.text[:500]
        assert response.headers["Location"].startswith("/login/?next=")
        page = browser.follow(response)
        assert page.status_code == 200 and f"Sign in to {tenant.name}" in page.text
        response = browser.submit(page, username=manager.username, password=PASSWORD)
        assert response.status_code == 302, response.text[:500]
        assert response.headers["Location"] == location.removeprefix(tenant_origin)
        assert browser.cookie("sessionid", tenant_primary_host(tenant.slug))
        assert browser.cookie("sessionid", live_app.domain) is None

        page = browser.follow(response)
        assert page.status_code == 200 and f"to provision {tenant.name}" in page.text, page.text[:500]
        response = browser.submit(page, button="allow")
        assert response.status_code == 302, response.text[:500]
        redirect = response.headers["Location"]
        assert redirect.startswith(f"{ENTRA_REDIRECT}?"), redirect
        answer = query(redirect)
        assert answer["state"] == state
        return Authorization(code=answer["code"], state=answer["state"], issuer=answer.get("iss", ""))

    return connect


@pytest.fixture
def entra_tokens(
    connect_entra: Callable[[OAuthClient, User], Authorization],
    entra: EntraBackend,
    entra_client: OAuthClient,
    manager: User,
) -> dict[str, object]:
    """A connected Contoso: the tokens Entra holds after Authorize and the code exchange."""
    authorization = connect_entra(entra_client, manager)
    return token_body(entra.exchange_code(entra_client, authorization.code))
