"""Shared parts of the benchmarks: loopback-only HTTP clients, latency statistics, report tables.

The benchmarks only ever talk to a server on this machine (127.0.0.1, ::1 or localhost): they send
thousands of writes, and pointing them at a shared or production endpoint by mistake would be harmful.
"""

from __future__ import annotations

import http.client
import json
import math
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

SCIM_JSON = "application/scim+json; charset=utf-8"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ADSCIM_GROUP_SCHEMA = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
SAMPLE_FAILURES = 5


def require_loopback(base_url: str) -> str:
    """The base URL without a trailing slash, or exit if it is not served by this machine."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in LOOPBACK_HOSTS:
        sys.exit(f"Refusing to benchmark {base_url!r}: only http(s)://127.0.0.1, ::1 or localhost.")
    return base_url.rstrip("/")


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (the value below which `fraction` of the samples fall)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class OperationStats:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: int = 0
    samples: list[str] = field(default_factory=list)


class Recorder:
    """Latency and status of every request, per operation name; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.operations: dict[str, OperationStats] = defaultdict(OperationStats)
        self.phase_of: dict[str, str] = {}

    def record(
        self, operation: str, phase: str, seconds: float, status: int, expected: bool, body: str
    ) -> None:
        with self._lock:
            stats = self.operations[operation]
            self.phase_of.setdefault(operation, phase)
            stats.latencies.append(seconds)
            stats.statuses[status] += 1
            if not expected:
                stats.unexpected += 1
                if len(stats.samples) < SAMPLE_FAILURES:
                    stats.samples.append(f"{status} {body[:300]}")

    def refuse(self, operation: str) -> None:
        """Count an answer whose status was expected but whose content was wrong."""
        with self._lock:
            self.operations[operation].unexpected += 1

    @property
    def unexpected(self) -> int:
        return sum(s.unexpected for s in self.operations.values())


@dataclass
class Response:
    """What a benchmark reads of an answer: its status and its body."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class SCIMSession:
    """One keep-alive connection per thread, with the bearer token, timing every request into a
    Recorder.

    The client is the standard library's http.client, not httpx: the load generator shares this
    2-core machine with the servers it measures, and httpx spends ~1.2 ms of CPU on each request
    against ~0.2 ms for http.client (measured with a trivial WSGI app under gunicorn, c=8;
    docs/benchmarks.md "The load generator"). A heavy client takes a core from the server and
    squeezes every server's rate towards the client's own ceiling. http.client reconnects by itself
    when a server closes the connection after each answer (gunicorn's sync workers do).
    """

    def __init__(self, *, base_url: str, token: str, recorder: Recorder, timeout: float) -> None:
        self.base_url = require_loopback(base_url)
        parts = urlsplit(self.base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._https = parts.scheme == "https"
        self._prefix = parts.path
        self.token = token
        self.recorder = recorder
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/scim+json"}
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._connections_lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=self.timeout)
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def _exchange(self, method: str, target: str, content: bytes | None) -> Response:
        headers = self._headers if content is None else {**self._headers, "Content-Type": SCIM_JSON}
        try:
            return self._send(method, target, headers, content)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # A kept-alive connection the server closed while idle: once more, on a new one.
            self._connection().close()
            return self._send(method, target, headers, content)

    def _send(self, method: str, target: str, headers: dict[str, str], content: bytes | None) -> Response:
        connection = self._connection()
        connection.request(method, target, body=content, headers=headers)
        answer = connection.getresponse()
        return Response(answer.status, answer.read())

    def request(
        self,
        operation: str,
        phase: str,
        method: str,
        path: str,
        *,
        expect: Iterable[int],
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> Response | None:
        content = json.dumps(body).encode() if body is not None else None
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        started = time.perf_counter()
        try:
            response = self._exchange(method, target, content)
        except (OSError, http.client.HTTPException) as exc:
            self.recorder.record(operation, phase, time.perf_counter() - started, 0, False, repr(exc))
            return None
        elapsed = time.perf_counter() - started
        ok = response.status_code in set(expect)
        self.recorder.record(operation, phase, elapsed, response.status_code, ok, "" if ok else response.text)
        return response

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            " | ".join(
                c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def milliseconds(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def latency_summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50": percentile(ordered, 0.50),
        "p95": percentile(ordered, 0.95),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1] if ordered else math.nan,
    }
