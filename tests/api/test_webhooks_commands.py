"""`manage.py webhook_add` and `manage.py run_webhook_worker`, as an operator runs them."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from api.webhooks import verify_signature
from directory.models import Event, Tenant, WebhookDelivery, WebhookEndpoint
from tests.api.webhooks_support import Hooks, Receiver, create_user, hooks_for, running_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def hooks(receiver: Receiver, tenant: Tenant, other_tenant: Tenant, settings: Any) -> Hooks:
    return hooks_for(receiver, tenant, other_tenant, settings)


def run(*args: str) -> list[str]:
    stdout = StringIO()
    call_command(*args, stdout=stdout, stderr=StringIO())
    return stdout.getvalue().splitlines()


# ---------------------------------------------------------------------------------- webhook_add


def test_webhook_add_prints_the_secret_alone_last_and_that_secret_signs_deliveries(
    hooks: Hooks, receiver: Receiver
) -> None:
    lines = run(
        "webhook_add",
        "--tenant",
        "contoso",
        "--url",
        receiver.url("/added"),
        "--event",
        "user.created",
        "--event",
        "user.deleted",
        "--description",
        "HR sync",
    )
    secret = lines[-1]
    endpoint = WebhookEndpoint.objects.get(url=receiver.url("/added"))
    assert secret.startswith("whsec_") and secret == secret.strip() and " " not in secret
    assert secret not in "\n".join(lines[:-1])
    assert endpoint.secret_prefix == secret[:12] and secret not in endpoint.secret_encrypted
    assert (endpoint.tenant, endpoint.event_types, endpoint.description) == (
        hooks.tenant,
        ["user.created", "user.deleted"],
        "HR sync",
    )
    assert Event.objects.filter(
        tenant=hooks.tenant, action="webhook.create", actor_label="manage.py webhook_add"
    )

    create_user(hooks.tenant, "ada@contoso.com")
    run("run_webhook_worker", "--once")
    [request] = receiver.to("/added")
    assert verify_signature(secret, request.headers["SecureLogin-Signature"], request.body)
    assert not verify_signature(hooks.secret, request.headers["SecureLogin-Signature"], request.body)
    assert hooks.theirs() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nobody", "--url", "https://hooks.example.com/x"], "No tenant with slug 'nobody'."),
        (["--tenant", "contoso", "--url", "http://hooks.example.com/x"], "Webhook URLs must use https://."),
        (["--tenant", "contoso", "--url", "https://10.0.0.1/x"], "must not point at private or local"),
        (
            ["--tenant", "contoso", "--url", "https://hooks.example.com/x", "--event", "user.exploded"],
            "Unknown event type(s): user.exploded.",
        ),
    ],
)
def test_webhook_add_reports_domain_errors_as_command_errors(
    tenant: Tenant, other_tenant: Tenant, settings: Any, args: list[str], message: str
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(CommandError) as raised:
        run("webhook_add", *args)
    assert message in str(raised.value)
    assert not WebhookEndpoint.objects.exists()


# ---------------------------------------------------------------------------- run_webhook_worker


def test_the_worker_once_delivers_what_is_due_and_prints_its_summary(hooks: Hooks) -> None:
    hooks.receiver.statuses.append(500)
    create_user(hooks.tenant, "ada@contoso.com")
    create_user(hooks.tenant, "bob@contoso.com")
    lines = run("run_webhook_worker", "--once", "--batch", "5")

    assert lines[0].startswith("webhook worker ") and "batch 5" in lines[0]
    assert "batch: 1 delivered, 1 to retry, 0 failed (of 2 claimed)" in lines
    assert any(line.strip().startswith("dlv_") and line.endswith(": HTTP 500") for line in lines)
    assert lines[-1] == "webhook worker stopped (done): 1 delivered, 1 to retry, 0 failed (of 2 claimed)"
    statuses = sorted(
        WebhookDelivery.objects.filter(endpoint=hooks.endpoint).values_list("status", flat=True)
    )
    assert statuses == ["delivered", "pending"]
    assert hooks.theirs() == []


def test_the_worker_with_nothing_due_says_so_and_exits(hooks: Hooks) -> None:
    lines = run("run_webhook_worker", "--once")
    assert lines[-1] == "webhook worker stopped (done): 0 delivered, 0 to retry, 0 failed (of 0 claimed)"
    assert hooks.mine() == [] and hooks.theirs() == []


def test_the_worker_polls_until_its_time_limit(hooks: Hooks) -> None:
    started = time.monotonic()
    lines = run("run_webhook_worker", "--poll-seconds", "0.05", "--max-seconds", "0.5")
    assert 0.4 < time.monotonic() - started < 3
    assert lines[-1].startswith("webhook worker stopped (time limit reached)")
    assert hooks.mine() == [] and hooks.theirs() == []


def test_the_running_worker_refreshes_stale_saml_metadata_hourly_but_not_once(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker `make run` starts also keeps each tenant's IdP metadata fresh (daily refresh,
    checked hourly); a `--once` run (cron, tests) delivers only."""
    from api.management.commands import run_webhook_worker

    calls: list[str] = []

    def refresh(*, actor: Any) -> tuple[int, int]:
        calls.append(actor.label)
        return 1, 0

    monkeypatch.setattr(run_webhook_worker, "saml_metadata_refresh_stale", refresh)
    lines = run("run_webhook_worker", "--poll-seconds", "0.05", "--max-seconds", "0.3")
    assert calls == ["background worker"]
    assert "SAML metadata refreshed for 1 tenant(s), 0 failed" in lines
    run("run_webhook_worker", "--once")
    assert calls == ["background worker"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_lets_the_current_delivery_finish_then_exits_cleanly(
    hooks: Hooks, signum: signal.Signals
) -> None:
    """The signal arrives while the receiver is holding back its answer: that delivery is still
    recorded as delivered, the next one of the batch is left for its lease to run out."""
    received: list[int] = []

    def outer_handler(sig: int, frame: Any) -> None:
        """Stands in for pytest's own handling, and catches a signal that came too late."""
        received.append(sig)

    previous = signal.signal(signum, outer_handler)
    try:
        hooks.receiver.stall = 5
        create_user(hooks.tenant, "ada@contoso.com")
        create_user(hooks.tenant, "bob@contoso.com")

        def stop_mid_send() -> None:
            hooks.receiver.arrived.wait(5)
            os.kill(os.getpid(), signum)
            time.sleep(0.2)
            hooks.receiver.release.set()

        stopper = threading.Thread(target=stop_mid_send)
        stopper.start()
        started = time.monotonic()
        lines = run("run_webhook_worker", "--max-seconds", "20")
        stopper.join()
        assert time.monotonic() - started < 8
        assert lines[-1] == (
            f"webhook worker stopped ({signal.Signals(signum).name} received): "
            "1 delivered, 0 to retry, 0 failed (of 2 claimed); 1 deferred"
        )
        assert len(hooks.mine()) == 1
        statuses = sorted(
            WebhookDelivery.objects.filter(endpoint=hooks.endpoint).values_list("status", "attempts")
        )
        assert statuses == [("delivered", 1), ("pending", 0)]
        assert received == [], "the worker's handler took the signal, not the one before it"
        assert signal.getsignal(signum) is outer_handler, "the worker put the earlier handler back"
    finally:
        signal.signal(signum, previous)
    assert hooks.theirs() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "--batch must be at least 1."),
        (["--poll-seconds", "0"], "--poll-seconds must be positive."),
        (["--max-seconds", "-1"], "--max-seconds must not be negative."),
    ],
)
def test_the_worker_refuses_nonsense_options(
    tenant: Tenant, other_tenant: Tenant, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        run("run_webhook_worker", *args)
