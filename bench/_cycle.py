"""Entra's cycle split into the four phases bench/compare.py reports, and fixed-size loads.

The requests are bench/entra_cycle.py's (the same user document, group names, member batches and
incremental PATCH bodies); what differs is that the phases are timed apart (users; groups;
members; incremental) and that a server answering a lookup with an error still gets the write that
follows. Entra would stop there, but a comparison must give every server the same work: the failed
lookup is counted as unexpected, and the POST is sent as if nothing had matched. Likewise a group
POST refused with a 4xx is counted as unexpected and sent again in the core schema alone, so the
members phase still has its groups. The phases run one at a time so that bench/compare.py can run
each phase on every server in turn: a machine whose load drifts then hits all servers alike.

Every wait is bounded: each request by the client's timeout, each phase by a deadline after which
the requests not yet started are cancelled and the phase is reported as cut short.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from _common import ADSCIM_GROUP_SCHEMA, GROUP_SCHEMA, PATCH_OP, Recorder, SCIMSession, latency_summary
from entra_cycle import (
    DISABLE_BODY,
    DISABLE_EVERY,
    MEMBER_BATCH,
    eq_filter,
    group_members,
    group_name,
    user_document,
    user_name,
    user_patch_body,
)

PHASES = ("users", "groups", "members", "incremental")  # in this order
ANY_PATCH_SUCCESS = (200, 204)  # RFC 7644 §3.5.2: either, and Entra accepts both


@dataclass
class PhaseResult:
    seconds: float
    requests: int
    unexpected: int
    cut_short: bool

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class CycleResult:
    phases: dict[str, PhaseResult] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(p.requests for p in self.phases.values())

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases.values())

    @property
    def unexpected(self) -> int:
        return sum(p.unexpected for p in self.phases.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": self.seconds,
            "requests_per_second": self.requests / self.seconds if self.seconds else 0.0,
            "unexpected": self.unexpected,
            "phases": {name: {**vars(p), "requests_per_second": p.rate} for name, p in self.phases.items()},
            "operations": self.operations,
            "unexpected_samples": self.samples,
        }


def run_pool(work: Callable[[int], None], items: Iterable[int], clients: int, deadline: float) -> bool:
    """Run work(i) for every item on `clients` threads; False if the deadline cut it short."""
    pool = ThreadPoolExecutor(max_workers=clients, thread_name_prefix="bench")
    futures = [pool.submit(work, i) for i in items]
    done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_EXCEPTION)
    pool.shutdown(wait=False, cancel_futures=True)
    for future in done:
        future.result()  # re-raise a bug in the load generator itself
    if pending:
        # Requests already running end within the client timeout; wait for them, boundedly.
        wait(pending, timeout=120)
    return not pending


class Cycle:
    """One server's replay of the cycle (N users, M groups, K memberships, P incremental PATCHes)."""

    def __init__(
        self, session: SCIMSession, *, users: int, groups: int, memberships: int, incremental: int
    ) -> None:
        self.session = session
        self.users = users
        self.groups = groups
        self.memberships = memberships
        self.incremental = min(incremental, users)
        self.run_id = uuid.uuid4().hex[:6]
        self.user_ids: list[str | None] = [None] * users
        self.group_ids: list[str | None] = [None] * groups
        self.result = CycleResult()

    def _request(self, operation: str, phase: str, method: str, path: str, **kw: Any) -> Any:
        return self.session.request(operation, phase, method, path, **kw)

    def provision_user(self, index: int) -> None:
        name = user_name(self.run_id, index)
        found = self._request(
            "user filter",
            "users",
            "GET",
            "/Users",
            params={"filter": eq_filter("userName", name)},
            expect=[200],
        )
        if found is not None and found.status_code == 200 and found.json().get("Resources"):
            self.user_ids[index] = found.json()["Resources"][0]["id"]
            return
        created = self._request(
            "user POST", "users", "POST", "/Users", body=user_document(self.run_id, index), expect=[201]
        )
        if created is not None and created.status_code == 201:
            self.user_ids[index] = created.json().get("id")

    def provision_group(self, index: int) -> None:
        name = group_name(self.run_id, index)
        found = self._request(
            "group filter",
            "groups",
            "GET",
            "/Groups",
            params={"excludedAttributes": "members", "filter": eq_filter("displayName", name)},
            expect=[200],
        )
        if found is not None and found.status_code == 200 and found.json().get("Resources"):
            self.group_ids[index] = found.json()["Resources"][0]["id"]
            return
        body = {
            "schemas": [GROUP_SCHEMA, ADSCIM_GROUP_SCHEMA],
            "externalId": str(uuid.uuid4()),
            "displayName": name,
            "meta": {"resourceType": "Group"},
        }
        created = self._request("group POST", "groups", "POST", "/Groups", body=body, expect=[201])
        if created is not None and 400 <= created.status_code < 500:
            # A server refusing Entra's group (e.g. for its ADSCIM schema URN) still gets the group,
            # in the core schema alone, so that the members phase measures the same work everywhere.
            body["schemas"] = [GROUP_SCHEMA]
            created = self._request(
                "group POST again, core schema only", "groups", "POST", "/Groups", body=body, expect=[201]
            )
        if created is not None and created.status_code == 201:
            self.group_ids[index] = created.json().get("id")

    def add_members(self, index: int) -> None:
        group_id = self.group_ids[index]
        if group_id is None:
            return
        span = group_members(index, groups=self.groups, users=self.users, memberships=self.memberships)
        present = [m for m in (self.user_ids[i % self.users] for i in span) if m is not None]
        for start in range(0, len(present), MEMBER_BATCH):
            value = [{"$ref": None, "value": m} for m in present[start : start + MEMBER_BATCH]]
            self._request(
                "members PATCH (50)",
                "members",
                "PATCH",
                f"/Groups/{group_id}",
                body={
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "Add", "path": "members", "value": value}],
                },
                expect=ANY_PATCH_SUCCESS,
            )

    def update_user(self, index: int) -> None:
        user_id = self.user_ids[index]
        if user_id is None:
            return
        body = user_patch_body(self.run_id, index)
        self._request(
            "user PATCH", "incremental", "PATCH", f"/Users/{user_id}", body=body, expect=ANY_PATCH_SUCCESS
        )
        if index % DISABLE_EVERY == 0:
            self._request(
                'user PATCH active "False"',
                "incremental",
                "PATCH",
                f"/Users/{user_id}",
                body=DISABLE_BODY,
                expect=ANY_PATCH_SUCCESS,
            )

    def plan(self, phase: str) -> tuple[Callable[[int], None], range]:
        return {
            "users": (self.provision_user, range(self.users)),
            "groups": (self.provision_group, range(self.groups)),
            "members": (self.add_members, range(self.groups)),
            "incremental": (self.update_user, range(self.incremental)),
        }[phase]

    def run_phase(self, phase: str, clients: int, phase_timeout: float, label: str) -> PhaseResult:
        """One phase of the cycle; the phases must run in PHASES order (each needs the ids of the last)."""
        work, items = self.plan(phase)
        print(f"  {label}: {phase} ({len(items):,} items, {clients} clients) …", file=sys.stderr, flush=True)
        recorder = self.session.recorder
        started = time.perf_counter()
        complete = run_pool(work, items, clients, time.monotonic() + phase_timeout)
        seconds = time.perf_counter() - started
        ops = [s for op, s in recorder.operations.items() if recorder.phase_of[op] == phase]
        if not complete:
            print(f"  {label}: {phase} cut short after {phase_timeout:g} s", file=sys.stderr)
        self.result.phases[phase] = PhaseResult(
            seconds=seconds,
            requests=sum(len(s.latencies) for s in ops),
            unexpected=sum(s.unexpected for s in ops),
            cut_short=not complete,
        )
        return self.result.phases[phase]

    def finish(self) -> CycleResult:
        """The result, with every operation's latency summary."""
        for operation, stats in self.session.recorder.operations.items():
            summary = latency_summary(stats.latencies)
            self.result.operations[operation] = {
                "phase": self.session.recorder.phase_of[operation],
                "requests": len(stats.latencies),
                "unexpected": stats.unexpected,
                "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
                **{f"{k}_ms": v * 1000 for k, v in summary.items()},
            }
            if stats.samples:
                self.result.samples[operation] = stats.samples
        return self.result


@dataclass
class LoadResult:
    requests: int
    unexpected: int
    seconds: float
    p50_ms: float
    p95_ms: float
    statuses: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load(
    base_url: str,
    token: str,
    *,
    path: str,
    params: Callable[[random.Random], dict[str, str]],
    clients: int,
    requests: int,
    warm_up: int,
    timeout: float,
    deadline_seconds: float,
    check: Callable[[Any], bool] | None = None,
) -> LoadResult:
    """`requests` GETs of `path` from `clients` threads with keep-alive, after `warm_up` untimed ones;
    `check` may refuse a 200 answer (counted as unexpected)."""
    recorder = Recorder()
    session = SCIMSession(base_url=base_url, token=token, recorder=recorder, timeout=timeout)

    def one(i: int, operation: str = "load") -> None:
        rng = random.Random(i)
        response = session.request(operation, operation, "GET", path, params=params(rng), expect=[200])
        if response is not None and response.status_code == 200 and check is not None and not check(response):
            recorder.refuse(operation)

    try:
        run_pool(
            lambda i: one(i, "warm-up"), range(-warm_up, 0), clients, time.monotonic() + deadline_seconds
        )
        started = time.perf_counter()
        run_pool(one, range(requests), clients, time.monotonic() + deadline_seconds)
        seconds = time.perf_counter() - started
    finally:
        session.close()
    stats = recorder.operations["load"]
    summary = latency_summary(stats.latencies)
    return LoadResult(
        requests=len(stats.latencies),
        unexpected=stats.unexpected,
        seconds=seconds,
        p50_ms=summary["p50"] * 1000,
        p95_ms=summary["p95"] * 1000,
        statuses={str(k): v for k, v in sorted(stats.statuses.items())},
    )
