"""Sending webhook deliveries: the signed request, the SSRF guard at send time, and one worker pass.

The outbox rows are written by the directory services in the change's own transaction
(`directory.services._outbox_write`) and leased by `services.deliveries_claim`; this module turns
a leased row into one HTTP POST and reports the outcome back through `services.delivery_succeeded`
or `services.delivery_failed`, which schedule the retries.

Signing. The body is the feed event (`api.events.event_payload`) plus `delivery_id` and `tenant`,
serialised once; the exact bytes sent are the bytes signed:

    SecureLogin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The timestamp is inside the MAC, so a captured request cannot be replayed later than the
receiver's tolerance (five minutes in `verify_signature`, the reference check the README shows).

Where the request goes. The URL is checked again before every send (`webhook_url_check`: a host
that was public at registration may resolve to 10.0.0.5 today), and the connection is made only
to an address that check approved: `_PinnedBackend` is the network layer under httpcore, and its
`connect_tcp` ignores the name and dials the approved addresses. The URL itself is unchanged, so
TLS still sends the host name as SNI and verifies the certificate against it, and the Host header
is the registered one. There is therefore no second DNS lookup for an attacker to rebind between
check and connect. httpcore (httpx's transport) is used directly because httpx exposes no public
hook for the network backend; it also reads no proxy variables from the environment (a proxy would
resolve the name itself) and never follows redirects.

Bounds. One deadline covers connect, TLS, writing the request and reading the answer (10 s, or
WEBHOOK_TIMEOUT_SECONDS): every socket operation is given only the time left. At most 64 KiB of the
answer is read, and it is never stored: a receiver's error page could echo anything. Resolving the
name happens before the deadline starts and is bounded by the system resolver's own timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import httpcore
import httpx
from django.conf import settings
from django.db.models import prefetch_related_objects
from django.utils import timezone

from api.events import event_payload
from directory import services, urlsafety
from directory.exceptions import DirectoryError
from directory.models import WebhookDelivery
from directory.secrets import decrypt

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "SecureLogin-Signature"
USER_AGENT = "SecureLogin-Webhooks/1"
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
SIGNATURE_TOLERANCE_SECONDS = 300
LEASE_MARGIN_SECONDS = 5.0
"""A claimed delivery is only sent while its lease outlasts a whole send by this much, so a send
never runs past the lease into another worker's retry of the same row."""

SECRET_UNREADABLE = "signing secret unreadable; rotate it"
ENDPOINT_DISABLED = "endpoint is disabled"


def timeout_seconds() -> float:
    """The whole-request budget; tests lower it with the WEBHOOK_TIMEOUT_SECONDS setting."""
    return float(getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


# ------------------------------------------------------------------------------------------ signing


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes | str,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """The receiver's check, as the README shows it: the raw body (before any JSON parsing), the
    `SecureLogin-Signature` header and the endpoint's secret. True only when a `v1` signature
    matches and `t` is within `tolerance` seconds of now; comparison in constant time."""
    if isinstance(body, str):
        body = body.encode()
    timestamp: int | None = None
    candidates: list[str] = []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The feed's event shape plus which delivery this is and whose tenant it concerns."""
    payload = event_payload(delivery.event)
    payload["delivery_id"] = delivery_public_id(delivery)
    payload["tenant"] = delivery.tenant.slug
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def delivery_public_id(delivery: WebhookDelivery) -> str:
    return f"dlv_{delivery.pk}"


# ------------------------------------------------------------------------------------- the network


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation gets at most the time left before the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.start_tls(
            ssl_context, server_hostname, self._left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the addresses the SSRF guard approved, never to what the name resolves to now."""

    def __init__(self, *, host: str, addresses: Iterable[str], deadline: float) -> None:
        self._host = host
        self._addresses = list(addresses)
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if host.strip("[]").lower() != self._host:
            raise httpcore.ConnectError(f"refused to connect to {host!r}: not the checked host")
        error: Exception = httpcore.ConnectError("no approved address")
        for address in self._addresses:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("deadline passed")
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=left if timeout is None else min(timeout, left),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not webhook targets")


@cache
def _ssl_context() -> ssl.SSLContext:
    """Certificates verified against certifi's roots, as httpx does; built once per process."""
    return httpcore.default_ssl_context()


# ----------------------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class Outcome:
    """One attempt. `error` is short, for the console; it never holds the secret or the answer."""

    ok: bool
    status_code: int | None = None
    latency_ms: int | None = None
    error: str = ""


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def _post(url: str, addresses: list[str], headers: Mapping[str, str], body: bytes, budget: float) -> Outcome:
    target = httpx.URL(url)
    host = target.raw_host.decode("ascii").lower()
    started = time.monotonic()
    deadline = started + budget
    backend = _PinnedBackend(host=host, addresses=addresses, deadline=deadline)

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    timeouts = {"connect": budget, "read": budget, "write": budget, "pool": budget}
    try:
        with (
            httpcore.ConnectionPool(
                ssl_context=_ssl_context(), network_backend=backend, max_connections=1, retries=0
            ) as pool,
            pool.stream(
                "POST",
                str(target),
                headers=[(k.encode(), v.encode()) for k, v in headers.items()],
                content=body,
                extensions={"timeout": timeouts},
            ) as response,
        ):
            status = response.status
            received = 0
            try:
                for chunk in response.iter_stream():
                    received += len(chunk)
                    if received >= MAX_RESPONSE_BYTES:
                        break
            except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError):
                # The status line decides; a receiver that answered 200 and then dawdles over its
                # body has still got the event.
                pass
    except httpcore.TimeoutException:
        return Outcome(ok=False, latency_ms=elapsed_ms(), error=f"timed out after {budget:g} s")
    except httpcore.ConnectError as exc:
        return Outcome(ok=False, latency_ms=elapsed_ms(), error=f"connection failed: {_short(exc)}")
    except httpcore.NetworkError as exc:
        return Outcome(ok=False, latency_ms=elapsed_ms(), error=f"network error: {_short(exc)}")
    except httpcore.ProtocolError as exc:
        return Outcome(ok=False, latency_ms=elapsed_ms(), error=f"bad HTTP answer: {_short(exc)}")
    except (httpcore.UnsupportedProtocol, httpx.InvalidURL, UnicodeError) as exc:
        return Outcome(ok=False, error=f"invalid URL: {_short(exc)}")
    latency = elapsed_ms()
    if 200 <= status < 300:
        return Outcome(ok=True, status_code=status, latency_ms=latency)
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    else:
        error = f"HTTP {status}"
    return Outcome(ok=False, status_code=status, latency_ms=latency, error=error)


def send(delivery: WebhookDelivery, *, timestamp: int | None = None) -> Outcome:
    """POST one delivery to its endpoint, signed; never raises for anything the receiver, the
    network or the stored secret does. 2xx is success; any other status (a 3xx included: a
    redirect could point anywhere), a timeout or a connection error is a failure."""
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        return Outcome(ok=False, error=ENDPOINT_DISABLED)
    secret = decrypt(endpoint.secret_encrypted)
    if secret is None:
        return Outcome(ok=False, error=SECRET_UNREADABLE)
    try:
        addresses = urlsafety.webhook_url_check(endpoint.url)
    except DirectoryError as exc:
        return Outcome(ok=False, error=f"refused: {exc.message}")
    body = delivery_body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secret, body, timestamp=timestamp),
        "SecureLogin-Event-Id": f"evt_{delivery.event_id}",
        "SecureLogin-Delivery-Id": delivery_public_id(delivery),
        "SecureLogin-Event-Type": delivery.event_type,
    }
    return _post(endpoint.url, addresses, headers, body, timeout_seconds())


# ------------------------------------------------------------------------------------- worker pass


@dataclass
class PassReport:
    """What one claim-and-send pass did, for the worker's line per batch."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    lost: int = 0
    """Finished by another worker after this one's lease ran out; our result was dropped."""
    deferred: int = 0
    """Claimed but not sent (lease too short or asked to stop); picked up again once the lease ends."""
    errors: list[str] = field(default_factory=list)

    def add(self, other: PassReport) -> None:
        for name in ("claimed", "delivered", "retrying", "failed", "lost", "deferred"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> str:
        text = (
            f"{self.delivered} delivered, {self.retrying} to retry, {self.failed} failed"
            f" (of {self.claimed} claimed)"
        )
        extra = [f"{n} {name}" for name, n in (("lost lease", self.lost), ("deferred", self.deferred)) if n]
        return text + (f"; {', '.join(extra)}" if extra else "")


def _send_safely(delivery: WebhookDelivery) -> Outcome:
    try:
        return send(delivery)
    except Exception as exc:
        # A bug here must not leave the row leased by a worker that keeps running; it is retried
        # with back-off like any failure, and the traceback goes to the log.
        logger.exception("webhook delivery %s: unexpected error while sending", delivery.pk)
        return Outcome(ok=False, error=f"internal error: {type(exc).__name__}")


def deliver_due(
    *,
    worker: str,
    limit: int = 20,
    now: datetime | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PassReport:
    """Claim up to `limit` due deliveries for `worker`, send each, record each outcome. `now`
    drives time in tests; a worker passes None and reads the clock at each step."""
    report = PassReport()
    claimed = services.deliveries_claim(worker=worker, limit=limit, now=now)
    report.claimed = len(claimed)
    prefetch_related_objects(claimed, "event", "endpoint", "tenant")
    budget = timeout_seconds()
    for delivery in claimed:
        current = now or timezone.now()
        lease_left = (delivery.claimed_until - current).total_seconds() if delivery.claimed_until else 0
        if should_stop() or lease_left < budget + LEASE_MARGIN_SECONDS:
            report.deferred += 1
            continue
        outcome = _send_safely(delivery)
        if outcome.ok:
            assert outcome.status_code is not None
            recorded = services.delivery_succeeded(
                delivery=delivery,
                worker=worker,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms or 0,
                now=now,
            )
            if recorded:
                report.delivered += 1
        else:
            recorded = services.delivery_failed(
                delivery=delivery,
                worker=worker,
                error=outcome.error,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                now=now,
            )
            if recorded:
                status = (
                    WebhookDelivery.objects.filter(pk=delivery.pk).values_list("status", flat=True).first()
                )
                if status == WebhookDelivery.Status.FAILED:
                    report.failed += 1
                else:
                    report.retrying += 1
                report.errors.append(f"{delivery_public_id(delivery)}: {outcome.error}")
        if not recorded:
            report.lost += 1
    return report
