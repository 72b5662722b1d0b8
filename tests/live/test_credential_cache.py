"""The per-process SCIM credential and Host caches (directory.cache) across real gunicorn workers.

A revocation made in another process (here the test process, standing for a console on another
node or `manage.py`) is not heard by the server's workers: each stops accepting the token when its
cache entry ages out, within `SCIM_CREDENTIAL_CACHE_SECONDS` (default 5, as served here). This
server is the module's own, with the caches on; the shared one runs without them (conftest.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from directory import services
from directory.cache import DEFAULT_TTL_SECONDS
from directory.models import Tenant, User
from oauth.services import secret_token_issue, secret_token_revoke
from tests.live.conftest import LiveDatabase, serve
from tests.live.support import TIMEOUT, LiveApp, LoopbackTransport, response_checker

# The last warm-up request may still be in flight when the revocation commits.
SETTLE_SECONDS = 0.5


@pytest.fixture(scope="module")
def cached_app(live_database: LiveDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with serve(live_database, tmp_path_factory.mktemp("cached-server")) as app:
        yield app


def scim_status(app: LiveApp, tenant: Tenant, token: str) -> int:
    """One request on a new connection, so the two workers both serve some of them."""
    with httpx.Client(
        transport=LoopbackTransport(app.port, app.domain),
        timeout=TIMEOUT,
        event_hooks={"response": [response_checker(app.log_tail)]},
    ) as http:
        response = http.get(
            f"{app.tenant_url(tenant)}/scim/v2/Users",
            headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        )
    return response.status_code


def test_a_revocation_made_elsewhere_reaches_every_worker_within_the_cache_delay(
    cached_app: LiveApp,
    tenant: Tenant,
    other_tenant: Tenant,
    system_actor: services.Actor,
    fabrikam_user: User,
) -> None:
    token, raw = secret_token_issue(tenant=tenant, actor=system_actor)
    _other, other_raw = secret_token_issue(tenant=other_tenant, actor=system_actor)
    assert [scim_status(cached_app, tenant, raw) for _ in range(8)] == [200] * 8
    assert scim_status(cached_app, other_tenant, other_raw) == 200

    secret_token_revoke(tenant=tenant, actor=system_actor, token=token)
    # Every entry a worker made before the revocation ages out SCIM_CREDENTIAL_CACHE_SECONDS after
    # it was made; from then on each worker reads the revoked row.
    time.sleep(DEFAULT_TTL_SECONDS + SETTLE_SECONDS)
    assert [scim_status(cached_app, tenant, raw) for _ in range(8)] == [401] * 8
    assert scim_status(cached_app, other_tenant, other_raw) == 200
    assert scim_status(cached_app, tenant, other_raw) == 401
