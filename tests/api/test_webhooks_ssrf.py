"""Where webhooks may point: https only, public addresses only, checked at registration and again
before every send, and the connection made only to an address that check approved.

WEBHOOK_ALLOW_PRIVATE (tests, local trials) lifts the address rule and allows http:// to loopback;
with it off, the local receiver is exactly the kind of target that must be refused.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from api.webhooks import deliver_due
from directory import services, urlsafety
from directory.exceptions import InvalidValue
from directory.models import Tenant, WebhookDelivery
from tests.api.webhooks_support import WORKER, Hooks, Receiver, create_user, hooks_for, running_receiver

SYSTEM = services.Actor.system("tests")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def hooks(receiver: Receiver, tenant: Tenant, other_tenant: Tenant, settings: Any) -> Hooks:
    return hooks_for(receiver, tenant, other_tenant, settings)


REFUSED = [
    ("http://hooks.example.com/x", "Webhook URLs must use https://."),
    ("ftp://hooks.example.com/x", "Webhook URLs must use https://."),
    ("https://user:pw@hooks.example.com/x", "The webhook URL must not carry credentials."),
    ("https://127.0.0.1/x", "private or local"),
    ("https://10.1.2.3/x", "private or local"),
    ("https://172.16.0.1/x", "private or local"),
    ("https://192.168.0.10/x", "private or local"),
    ("https://100.64.0.1/x", "private or local"),
    ("https://0.0.0.0/x", "private or local"),
    ("https://169.254.169.254/latest/meta-data/", "private or local"),
    ("https://[::1]/x", "private or local"),
    ("https://[fe80::1]/x", "private or local"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "private or local"),
    ("https://[::ffff:127.0.0.1]/x", "private or local"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_registration_refuses_non_https_and_private_or_metadata_addresses(
    tenant: Tenant, other_tenant: Tenant, settings: Any, url: str, reason: str
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(InvalidValue, match=reason.replace(".", r"\.")):
        services.webhook_endpoint_create(tenant=tenant, actor=SYSTEM, url=url)
    assert not tenant.webhook_endpoints.exists() and not other_tenant.webhook_endpoints.exists()


def test_registration_accepts_a_public_https_url_without_resolving_it(
    tenant: Tenant, other_tenant: Tenant, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    endpoint, secret = services.webhook_endpoint_create(
        tenant=tenant, actor=SYSTEM, url="https://hooks.contoso.example/securelogin"
    )
    assert endpoint.url == "https://hooks.contoso.example/securelogin" and secret.startswith("whsec_")
    assert not other_tenant.webhook_endpoints.exists()


def test_allow_private_permits_http_to_loopback_only(
    tenant: Tenant, other_tenant: Tenant, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    services.webhook_endpoint_create(tenant=tenant, actor=SYSTEM, url="http://127.0.0.1:8080/x")
    services.webhook_endpoint_create(tenant=tenant, actor=SYSTEM, url="https://10.1.2.3/x")
    with pytest.raises(InvalidValue, match="must use https"):
        services.webhook_endpoint_create(tenant=tenant, actor=SYSTEM, url="http://10.1.2.3/x")
    assert not other_tenant.webhook_endpoints.exists()


def test_a_loopback_endpoint_is_refused_at_send_once_allow_private_is_off(
    hooks: Hooks, settings: Any
) -> None:
    create_user(hooks.tenant, "ada@contoso.com")
    settings.WEBHOOK_ALLOW_PRIVATE = False
    report = deliver_due(worker=WORKER)
    delivery = WebhookDelivery.objects.get(endpoint=hooks.endpoint)
    assert report.retrying == 1
    assert delivery.last_error == "refused: Webhook URLs must use https://."
    assert hooks.receiver.requests == []


def test_a_name_that_now_resolves_to_a_private_address_is_refused_at_send(
    hooks: Hooks, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered while public (registration does not resolve); today its DNS says 10.0.0.7."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    services.webhook_endpoint_update(
        tenant=hooks.tenant, actor=SYSTEM, endpoint=hooks.endpoint, url="https://hooks.contoso.example/x"
    )
    monkeypatch.setattr(urlsafety, "resolve", lambda host, port: ["203.0.113.9", "10.0.0.7"])
    create_user(hooks.tenant, "ada@contoso.com")
    assert deliver_due(worker=WORKER).retrying == 1
    delivery = WebhookDelivery.objects.get(endpoint=hooks.endpoint)
    assert delivery.last_error == "refused: The webhook host resolves to a private or local address."
    assert hooks.receiver.requests == []


def test_the_sender_connects_to_the_address_the_check_approved_and_never_resolves_again(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second lookup between check and connect, so DNS cannot be rebound in between; the Host
    header (and, over TLS, SNI and the certificate check) still name the registered host."""
    services.webhook_endpoint_update(
        tenant=hooks.tenant,
        actor=SYSTEM,
        endpoint=hooks.endpoint,
        url=f"http://localhost:{hooks.receiver.port}/contoso",
    )
    checked: list[str] = []
    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host: str, port: int) -> list[str]:
        checked.append(host)
        return ["127.0.0.1"]

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(str(host))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(urlsafety, "resolve", resolve)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    create_user(hooks.tenant, "ada@contoso.com")
    assert deliver_due(worker=WORKER).delivered == 1
    assert checked == ["localhost"]
    assert "localhost" not in looked_up
    [request] = hooks.mine()
    assert request.headers["Host"] == f"localhost:{hooks.receiver.port}"
    assert hooks.theirs() == []
