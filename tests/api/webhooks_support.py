"""A real HTTP receiver for the webhook tests, and the two tenants' endpoints pointing at it.

The receiver is a `ThreadingHTTPServer` on 127.0.0.1 in a thread: every delivery in these tests
crosses a real socket, so signing, headers, timeouts and refusals are observed as a customer's
server would see them. Each tenant's endpoint has its own path, so "the second tenant's endpoint
received nothing" is one list being empty.

The fixtures themselves live in each test module (a few lines each), built from what is here.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from api.webhooks import PassReport, deliver_due
from directory import services
from directory.models import Tenant, WebhookEndpoint

TEST_TIMEOUT_SECONDS = 5.0
"""The sender's budget here: generous, as a loaded test machine answers slowly even on loopback;
the tests about timeouts lower it to SHORT_TIMEOUT_SECONDS."""
SHORT_TIMEOUT_SECONDS = 1.0
WORKER = "tests:1:worker-a"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What the server records and how it answers. `statuses` are used up first, then `status`;
    `stall` holds each answer back (until `release` is set, or `stall` seconds pass); `trickle`
    sends the answer one byte at a time; `endless` follows a 200 with a body that never ends."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    status: int = 200
    stall: float = 0.0
    trickle: bool = False
    endless: bool = False
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.popleft() if self.statuses else self.status


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with receiver.lock:
            receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
        receiver.arrived.set()
        if receiver.stall:
            receiver.release.wait(receiver.stall)
        if receiver.trickle:
            self._trickle(receiver)
            return
        status = receiver.next_status()
        if receiver.endless:
            self._endless(receiver)
            return
        answer = b'{"received": true}'
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", receiver.url("/redirected"))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _trickle(self, receiver: Receiver) -> None:
        """A status line and headers dribbled out a byte at a time: no single read waits long,
        so only a deadline on the whole request stops the sender."""
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
            if receiver.release.is_set():
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.05)

    def _endless(self, receiver: Receiver) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 8192
        while not receiver.release.is_set():
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on what arrived instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The sender hangs up on stalled and endless answers on purpose; that is not an error."""


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = Receiver(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.receiver
    finally:
        server.receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Hooks:
    """The first tenant's endpoint (every event type) and the second tenant's, on one receiver."""

    receiver: Receiver
    tenant: Tenant
    endpoint: WebhookEndpoint
    secret: str
    other_tenant: Tenant
    other_endpoint: WebhookEndpoint
    other_secret: str

    def mine(self) -> list[Received]:
        return self.receiver.to("/contoso")

    def theirs(self) -> list[Received]:
        return self.receiver.to("/fabrikam")


def hooks_for(receiver: Receiver, tenant: Tenant, other_tenant: Tenant, settings: Any) -> Hooks:
    """Loopback http:// endpoints need WEBHOOK_ALLOW_PRIVATE, as only tests and local trials do."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT_SECONDS = TEST_TIMEOUT_SECONDS
    actor = services.Actor.system("tests")
    endpoint, secret = services.webhook_endpoint_create(
        tenant=tenant, actor=actor, url=receiver.url("/contoso")
    )
    other_endpoint, other_secret = services.webhook_endpoint_create(
        tenant=other_tenant, actor=actor, url=receiver.url("/fabrikam")
    )
    return Hooks(receiver, tenant, endpoint, secret, other_tenant, other_endpoint, other_secret)


def drain(*, now: datetime | None = None, worker: str = WORKER, limit: int = 20) -> PassReport:
    """Run worker passes until nothing is due at `now`, as `run_webhook_worker --once` does."""
    total = PassReport()
    for _ in range(100):
        report = deliver_due(worker=worker, limit=limit, now=now)
        if not report.claimed:
            return total
        total.add(report)
    raise AssertionError("deliveries kept coming due")


def create_user(tenant: Tenant, username: str, **fields: Any) -> Any:
    return services.user_create(
        tenant=tenant, actor=services.Actor.system("tests"), username=username, fields=fields or None
    )
