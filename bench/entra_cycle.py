"""Replay a Microsoft Entra provisioning cycle against a RUNNING SecureLogin server and report
throughput and latency per operation.

What Entra sends (entra-scim.md §2.1, §2.3, §2.11, §6.1), with C parallel clients:

1. initial cycle, users: for each of N users, `GET /Users?filter=userName eq "…"`, then `POST /Users`
   when nothing matched (201);
2. initial cycle, groups: for each of M groups, `GET /Groups?excludedAttributes=members&filter=
   displayName eq "…"`, `POST /Groups`, then `PATCH` `Add members` in batches of 50 until the group
   holds its share of the K memberships (204);
3. incremental cycle: a `PATCH` of several attributes for every user (Entra's multi-op form, with a
   value-filter path), and a disable (`active` as the string "False", as Entra sends it without the
   aadOptscim062020 flag) for every tenth user.

Object names carry a run id, so repeated runs against one database never collide; a user or group
that already exists (same run id) is matched instead of created, exactly as Entra would.

    .venv/bin/python bench/entra_cycle.py --base-url http://127.0.0.1:8000/scim/v2 --token slt_… \\
        --users 10000 --groups 100 --memberships 20000 --clients 8

Only loopback servers are accepted. The tables grow from nothing during the run and nothing here
runs ANALYZE: the server is measured with the statistics production has during a first cycle.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import (
    ADSCIM_GROUP_SCHEMA,
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    PATCH_OP,
    USER_SCHEMA,
    Recorder,
    SCIMSession,
    format_table,
    latency_summary,
    milliseconds,
    require_loopback,
)

MEMBER_BATCH = 50
DISABLE_EVERY = 10


def user_name(run_id: str, index: int) -> str:
    return f"bench-{run_id}-{index:06d}@contoso.example"


def group_name(run_id: str, index: int) -> str:
    return f"bench-{run_id}-group-{index:04d}"


def user_document(run_id: str, index: int) -> dict[str, Any]:
    """The body Entra POSTs (entra-scim.md §2.3), with the default attribute mappings (§6.4)."""
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA],
        "externalId": str(uuid.uuid4()),
        "userName": user_name(run_id, index),
        "active": True,
        "displayName": f"Bench User {index}",
        "title": "Engineer",
        "emails": [{"primary": True, "type": "work", "value": user_name(run_id, index)}],
        "phoneNumbers": [{"type": "work", "value": f"+1 555 {index:07d}"}],
        "name": {"formatted": f"Bench User {index}", "familyName": f"User {index}", "givenName": "Bench"},
        "meta": {"resourceType": "User"},
        "roles": [],
        ENTERPRISE_SCHEMA: {"employeeNumber": str(index), "department": f"Department {index % 20}"},
    }


def user_patch_body(run_id: str, index: int) -> dict[str, Any]:
    """Entra's incremental update of a user (entra-scim.md §2.11): several operations in one PATCH,
    one of them through a value-filter path, one into the enterprise extension."""
    return {
        "schemas": [PATCH_OP],
        "Operations": [
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": f"renamed-{user_name(run_id, index)}",
            },
            {"op": "Replace", "path": "name.familyName", "value": f"Renamed {index}"},
            {"op": "Replace", "path": "title", "value": "Senior Engineer"},
            {"op": "Add", "path": f"{ENTERPRISE_SCHEMA}:department", "value": "Retail"},
        ],
    }


# Entra disables a user with `active` as the string "False" when the app has no aadOptscim062020 flag.
DISABLE_BODY: dict[str, Any] = {
    "schemas": [PATCH_OP],
    "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
}


def eq_filter(attribute: str, value: str) -> str:
    return f'{attribute} eq "{value}"'


def group_members(group: int, *, groups: int, users: int, memberships: int) -> range:
    """Indices of the users in `group`: the K memberships spread evenly over the M groups, each
    group a contiguous (wrapping) run of distinct users."""
    size = memberships // groups + (1 if group < memberships % groups else 0)
    size = min(size, users)
    start = group * users // groups
    return range(start, start + size)


class EntraCycle:
    def __init__(self, args: argparse.Namespace, session: SCIMSession) -> None:
        self.args = args
        self.session = session
        self.user_ids: list[str | None] = [None] * args.users

    def provision_user(self, index: int) -> None:
        name = user_name(self.args.run_id, index)
        response = self.session.request(
            "GET /Users?filter=userName eq",
            "initial: users",
            "GET",
            "/Users",
            params={"filter": eq_filter("userName", name)},
            expect=[200],
        )
        if response is None or response.status_code != 200:
            return
        found = response.json().get("Resources") or []
        if found:
            self.user_ids[index] = found[0]["id"]
            return
        created = self.session.request(
            "POST /Users",
            "initial: users",
            "POST",
            "/Users",
            body=user_document(self.args.run_id, index),
            expect=[201],
        )
        if created is not None and created.status_code == 201:
            self.user_ids[index] = created.json()["id"]

    def provision_group(self, index: int) -> None:
        name = group_name(self.args.run_id, index)
        response = self.session.request(
            "GET /Groups?filter=displayName eq",
            "initial: groups",
            "GET",
            "/Groups",
            params={"excludedAttributes": "members", "filter": eq_filter("displayName", name)},
            expect=[200],
        )
        if response is None or response.status_code != 200:
            return
        found = response.json().get("Resources") or []
        if found:
            group_id = found[0]["id"]
        else:
            created = self.session.request(
                "POST /Groups",
                "initial: groups",
                "POST",
                "/Groups",
                body={
                    "schemas": [GROUP_SCHEMA, ADSCIM_GROUP_SCHEMA],
                    "externalId": str(uuid.uuid4()),
                    "displayName": name,
                    "meta": {"resourceType": "Group"},
                },
                expect=[201],
            )
            if created is None or created.status_code != 201:
                return
            group_id = created.json()["id"]
        members = [
            self.user_ids[i % self.args.users]
            for i in group_members(
                index, groups=self.args.groups, users=self.args.users, memberships=self.args.memberships
            )
        ]
        present = [m for m in members if m is not None]
        for start in range(0, len(present), MEMBER_BATCH):
            batch = present[start : start + MEMBER_BATCH]
            self.session.request(
                "PATCH /Groups add 50 members",
                "initial: groups",
                "PATCH",
                f"/Groups/{group_id}",
                body={
                    "schemas": [PATCH_OP],
                    "Operations": [
                        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": m} for m in batch]}
                    ],
                },
                expect=[204],
            )

    def update_user(self, index: int) -> None:
        user_id = self.user_ids[index]
        if user_id is None:
            return
        self.session.request(
            "PATCH /Users attributes",
            "incremental",
            "PATCH",
            f"/Users/{user_id}",
            body=user_patch_body(self.args.run_id, index),
            expect=[200, 204],
        )
        if index % DISABLE_EVERY == 0:
            self.session.request(
                'PATCH /Users active "False"',
                "incremental",
                "PATCH",
                f"/Users/{user_id}",
                body=DISABLE_BODY,
                expect=[200, 204],
            )


def run_phase(name: str, work: Callable[[int], None], items: Iterable[int], clients: int) -> float:
    print(f"  {name} …", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="entra") as pool:
        for future in [pool.submit(work, i) for i in items]:
            future.result()
    return time.perf_counter() - started


def report(recorder: Recorder, phases: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    total_requests = sum(len(s.latencies) for s in recorder.operations.values())
    total_seconds = sum(phases.values())
    rows = []
    result: dict[str, Any] = {"operations": {}, "phases": {}, "total": {}}
    for operation, stats in recorder.operations.items():
        phase = recorder.phase_of[operation]
        summary = latency_summary(stats.latencies)
        rate = len(stats.latencies) / phases[phase] if phases[phase] else 0.0
        rows.append(
            [
                operation,
                phase,
                str(len(stats.latencies)),
                str(stats.unexpected),
                f"{rate:.1f}",
                milliseconds(summary["p50"]),
                milliseconds(summary["p95"]),
                milliseconds(summary["p99"]),
                milliseconds(summary["max"]),
            ]
        )
        result["operations"][operation] = {
            "phase": phase,
            "requests": len(stats.latencies),
            "unexpected": stats.unexpected,
            "statuses": dict(stats.statuses),
            "requests_per_second": rate,
            **{k: v * 1000 for k, v in summary.items()},
        }
    everything = [x for s in recorder.operations.values() for x in s.latencies]
    summary = latency_summary(everything)
    rate = total_requests / total_seconds if total_seconds else 0.0
    rows.append(
        [
            "TOTAL",
            "all",
            str(total_requests),
            str(recorder.unexpected),
            f"{rate:.1f}",
            milliseconds(summary["p50"]),
            milliseconds(summary["p95"]),
            milliseconds(summary["p99"]),
            milliseconds(summary["max"]),
        ]
    )
    result["total"] = {
        "requests": total_requests,
        "unexpected": recorder.unexpected,
        "seconds": total_seconds,
        "requests_per_second": rate,
        **{k: v * 1000 for k, v in summary.items()},
    }
    print(
        f"\nEntra cycle: users={args.users} groups={args.groups} memberships={args.memberships} "
        f"clients={args.clients} run-id={args.run_id}\n"
    )
    headers = [
        "operation",
        "phase",
        "requests",
        "unexpected",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
    ]
    print(format_table(headers, rows))
    print()
    phase_rows = []
    for phase, seconds in phases.items():
        count = sum(
            len(s.latencies) for op, s in recorder.operations.items() if recorder.phase_of[op] == phase
        )
        phase_rows.append([phase, str(count), f"{seconds:.1f}", f"{count / seconds:.1f}" if seconds else "-"])
        result["phases"][phase] = {"requests": count, "seconds": seconds}
    print(format_table(["phase", "requests", "seconds", "req/s"], phase_rows))
    for operation, stats in recorder.operations.items():
        for sample in stats.samples:
            print(f"unexpected response to {operation}: {sample}", file=sys.stderr)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url", default="http://127.0.0.1:8000/scim/v2", help="SCIM base URL (loopback only)."
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("SCIM_TOKEN", ""),
        help="Tenant bearer token (default: $SCIM_TOKEN).",
    )
    parser.add_argument("--users", type=int, default=1000, help="N users to provision.")
    parser.add_argument("--groups", type=int, default=10, help="M groups to provision.")
    parser.add_argument(
        "--memberships", type=int, default=2000, help="K memberships, spread over the groups."
    )
    parser.add_argument("--clients", type=int, default=8, help="C parallel clients.")
    parser.add_argument(
        "--run-id", default=secrets.token_hex(3), help="Suffix of object names (default: random)."
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="Per-request timeout in seconds.")
    parser.add_argument("--json", metavar="FILE", help="Also write the results as JSON to FILE.")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("--token (or $SCIM_TOKEN) is required: manage.py issue_scim_token --tenant SLUG")
    for name in ("users", "groups", "clients"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.memberships < 0:
        parser.error("--memberships cannot be negative")
    require_loopback(args.base_url)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recorder = Recorder()
    session = SCIMSession(base_url=args.base_url, token=args.token, recorder=recorder, timeout=args.timeout)
    cycle = EntraCycle(args, session)
    phases: dict[str, float] = {}
    try:
        probe = session.request(
            "GET /Users (probe)", "probe", "GET", "/Users", params={"count": "1"}, expect=[200]
        )
        if probe is None or probe.status_code != 200:
            print(f"The server did not accept the token: {probe.status_code if probe else 'no answer'}.")
            return 2
        recorder.operations.clear()
        recorder.phase_of.clear()
        phases["initial: users"] = run_phase(
            "initial: users", cycle.provision_user, range(args.users), args.clients
        )
        phases["initial: groups"] = run_phase(
            "initial: groups", cycle.provision_group, range(args.groups), args.clients
        )
        phases["incremental"] = run_phase("incremental", cycle.update_user, range(args.users), args.clients)
    finally:
        session.close()
    result = report(recorder, phases, args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"arguments": {k: v for k, v in vars(args).items() if k != "token"}, **result},
                handle,
                indent=2,
            )
    return 1 if recorder.unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
