"""Flatness benchmark: does a request cost the same in a small tenant and in a big one?

Entra's matching queries (`userName eq`, `emails[type eq "work"].value eq`) must not slow down as a
tenant grows, and adding 50 members to a group must not depend on how many members it already has
(entra-scim.md R61). This script measures p50/p95 of:

- `GET /Users?filter=userName eq "…"` in a tenant of 1,000 users and in one of 100,000 users;
- `GET /Users?filter=emails[type eq "work"].value eq "…"` in both tenants;
- `PATCH /Groups/{id}` adding 50 members to an empty group and to a group of 50,000 members (and
  removing them again, which also restores the big group for the next run).

NO ANALYZE: the seeded tables are measured with the statistics they have (none, on a server with
autovacuum off, or whatever autoanalyze did since), as production has them right after growth.
bench/compare.py's growth check is the stricter version of this benchmark (a new database with
autovacuum off, rows cloned from a prototype the services wrote).

SEEDING BYPASSES THE SERVICES. To build 100,000 users in seconds, the seeding step writes users,
emails and memberships with `bulk_create` straight into the benchmark database: no Events, no
validation, no version bumps. That is acceptable only here, in bench/, on a throw-away
benchmark database; everything else in SecureLogin writes through directory.services. Tenants and
tokens are still created by the services.

The server under test must serve the same database:

    createdb -h 127.0.0.1 -U postgres bench_flat
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_flat … gunicorn -c securelogin/gunicorn.conf.py
    .venv/bin/python bench/flatness.py --database-url postgres://postgres@127.0.0.1:5432/bench_flat \\
        --base-url http://127.0.0.1:8000/scim/v2

Requests are sent one at a time (latency, not throughput, is the question), to loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from _common import (
    GROUP_SCHEMA,
    PATCH_OP,
    Recorder,
    SCIMSession,
    format_table,
    latency_summary,
    milliseconds,
    require_loopback,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED_BATCH = 5000
MEMBER_BATCH = 50
WARM_UP = 20


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", "bench-only-not-secret")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "securelogin.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


def user_name(slug: str, index: int) -> str:
    return f"flat-{index:06d}@{slug}.example"


def work_email(slug: str, index: int) -> str:
    return f"mail-{index:06d}@{slug}.example"


def seed_tenant(slug: str, users: int, group_size: int) -> tuple[Any, Any]:
    """The tenant `slug` with `users` users (each with one work email) and, if `group_size`, a
    group holding the first `group_size` of them. Idempotent: only what is missing is written.

    Tenant creation goes through directory.services; the bulk rows do NOT (see the module doc)."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from directory import selectors, services
    from directory.models import Group, Membership, Tenant, User, UserEmail

    actor = services.Actor.system("bench/flatness.py")
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        tenant = services.tenant_create(actor=actor, slug=slug, name=f"Flatness {slug}")
    existing = set(selectors.user_list(tenant=tenant).values_list("username", flat=True))
    missing = [i for i in range(users) if user_name(slug, i) not in existing]
    started = time.perf_counter()
    unusable = make_password(None)
    for offset in range(0, len(missing), SEED_BATCH):
        chunk = missing[offset : offset + SEED_BATCH]
        with transaction.atomic():
            created = User.objects.bulk_create(
                [
                    User(
                        tenant=tenant,
                        username=user_name(slug, i),
                        external_id=str(uuid.uuid4()),
                        display_name=f"Flat User {i}",
                        given_name="Flat",
                        family_name=f"User {i}",
                        password=unusable,
                    )
                    for i in chunk
                ]
            )
            UserEmail.objects.bulk_create(
                [
                    UserEmail(tenant=tenant, user=u, type="work", primary=True, value=work_email(slug, i))
                    for u, i in zip(created, chunk, strict=True)
                ]
            )
    group = None
    if group_size:
        name = f"flat-big-{group_size}"
        group = Group.objects.filter(tenant=tenant, display_name=name).first()
        if group is None:
            group = services.group_create(tenant=tenant, actor=actor, display_name=name)
        wanted = [user_name(slug, i) for i in range(group_size)]
        present = set(Membership.objects.filter(group=group).values_list("user__username", flat=True))
        to_add = [n for n in wanted if n not in present]
        ids = dict(
            selectors.user_list(tenant=tenant).filter(username__in=to_add).values_list("username", "pk")
        )
        for offset in range(0, len(to_add), SEED_BATCH):
            with transaction.atomic():
                Membership.objects.bulk_create(
                    [
                        Membership(tenant=tenant, group=group, user_id=ids[n])
                        for n in to_add[offset : offset + SEED_BATCH]
                    ],
                    ignore_conflicts=True,
                )
    print(
        f"  seeded {slug}: {len(missing)} new users in {time.perf_counter() - started:.1f}s "
        f"(now {users} users{f', group of {group_size}' if group_size else ''})",
        file=sys.stderr,
    )
    return tenant, group


def issue_token(tenant: Any) -> tuple[Any, str]:
    from directory import services
    from oauth.services import secret_token_issue

    return secret_token_issue(
        tenant=tenant, actor=services.Actor.system("bench/flatness.py"), name="flatness benchmark"
    )


def revoke_token(tenant: Any, token: Any) -> None:
    from directory import services
    from oauth.services import secret_token_revoke

    secret_token_revoke(tenant=tenant, actor=services.Actor.system("bench/flatness.py"), token=token)


def measure_filters(
    tenants: list[tuple[SCIMSession, str, str, int]], samples: int, rng: random.Random
) -> None:
    """Both tenants sample by sample in turn, so a hiccup of the machine hits both
    alike instead of whichever tenant happened to be measured at that moment."""
    for session, _, slug, _ in tenants:
        for i in range(WARM_UP):
            session.request(
                "warm-up",
                "warm-up",
                "GET",
                "/Users",
                params={"filter": f'userName eq "{user_name(slug, i)}"'},
                expect=[200],
            )
    for _ in range(samples):
        for session, label, slug, users in tenants:
            i = rng.randrange(users)
            response = session.request(
                f"userName eq ({label})",
                label,
                "GET",
                "/Users",
                params={"filter": f'userName eq "{user_name(slug, i)}"'},
                expect=[200],
            )
            check_single(response, f"userName eq {user_name(slug, i)}")
        for session, label, slug, users in tenants:
            i = rng.randrange(users)
            response = session.request(
                f'emails[type eq "work"].value eq ({label})',
                label,
                "GET",
                "/Users",
                params={"filter": f'emails[type eq "work"].value eq "{work_email(slug, i)}"'},
                expect=[200],
            )
            check_single(response, f"email {work_email(slug, i)}")


def check_single(response: Any, what: str) -> None:
    if response is not None and response.status_code == 200 and response.json().get("totalResults") != 1:
        sys.exit(f"{what} did not match exactly one user: {response.text[:300]}")


def member_patch(op: str, members: list[str]) -> dict[str, Any]:
    return {
        "schemas": [PATCH_OP],
        "Operations": [{"op": op, "path": "members", "value": [{"value": m} for m in members]}],
    }


def measure_member_adds(
    session: SCIMSession,
    *,
    tenant: Any,
    big_group: Any,
    group_size: int,
    repetitions: int,
    rng: random.Random,
) -> None:
    """Add 50 users who are not members yet, to the big group and to fresh empty groups; then take
    them out of the big group again (timed too) so every run starts from the same group."""
    from directory import selectors

    outsiders = list(
        selectors.user_list(tenant=tenant)
        .exclude(memberships__group=big_group)
        .values_list("scim_id", flat=True)[: repetitions * MEMBER_BATCH]
    )
    outsiders = [str(u) for u in outsiders]
    rng.shuffle(outsiders)
    if len(outsiders) < repetitions * MEMBER_BATCH:
        sys.exit("Not enough users outside the big group; seed a larger tenant.")
    run = uuid.uuid4().hex[:6]
    for r in range(repetitions):
        batch = outsiders[r * MEMBER_BATCH : (r + 1) * MEMBER_BATCH]
        session.request(
            f"add 50 members (group of {group_size})",
            "members",
            "PATCH",
            f"/Groups/{big_group.scim_id}",
            body=member_patch("Add", batch),
            expect=[204],
        )
        created = session.request(
            "setup: POST empty group",
            "setup",
            "POST",
            "/Groups",
            body={"schemas": [GROUP_SCHEMA], "displayName": f"flat-empty-{run}-{r}"},
            expect=[201],
        )
        if created is None or created.status_code != 201:
            sys.exit("Could not create an empty group.")
        empty_id = created.json()["id"]
        session.request(
            "add 50 members (empty group)",
            "members",
            "PATCH",
            f"/Groups/{empty_id}",
            body=member_patch("Add", batch),
            expect=[204],
        )
        session.request("setup: DELETE group", "setup", "DELETE", f"/Groups/{empty_id}", expect=[204])
    for r in range(repetitions):
        batch = outsiders[r * MEMBER_BATCH : (r + 1) * MEMBER_BATCH]
        session.request(
            f"remove 50 members (group of {group_size + repetitions * MEMBER_BATCH})",
            "members",
            "PATCH",
            f"/Groups/{big_group.scim_id}",
            body=member_patch("Remove", batch),
            expect=[204],
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url", default="http://127.0.0.1:8000/scim/v2", help="SCIM base URL (loopback only)."
    )
    parser.add_argument("--database-url", required=True, help="The benchmark database the server serves.")
    parser.add_argument("--small", type=int, default=1_000, help="Users in the small tenant.")
    parser.add_argument("--large", type=int, default=100_000, help="Users in the large tenant.")
    parser.add_argument("--group-size", type=int, default=50_000, help="Members of the big group.")
    parser.add_argument("--samples", type=int, default=300, help="Requests per filter and tenant.")
    parser.add_argument("--repetitions", type=int, default=40, help="50-member PATCHes per group kind.")
    parser.add_argument("--seed", type=int, default=7, help="Random seed for the sampled users.")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--json", metavar="FILE", help="Also write the results as JSON to FILE.")
    args = parser.parse_args(argv)
    require_loopback(args.base_url)
    if not 0 < args.group_size < args.large:
        parser.error("--group-size must be between 1 and --large - 1")
    if args.repetitions * MEMBER_BATCH > args.large - args.group_size:
        parser.error("--repetitions × 50 must not exceed --large - --group-size")
    if min(args.small, args.large, args.samples, args.repetitions) < 1:
        parser.error("sizes, samples and repetitions must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_django(args.database_url)
    rng = random.Random(args.seed)
    print("Seeding (bulk_create, bypassing services; benchmark databases only) …", file=sys.stderr)
    small_slug, large_slug = f"flat-{args.small}", f"flat-{args.large}"
    small, _ = seed_tenant(small_slug, args.small, 0)
    large, big_group = seed_tenant(large_slug, args.large, args.group_size)
    recorder = Recorder()
    tokens = [(small, *issue_token(small)), (large, *issue_token(large))]
    sessions = [
        SCIMSession(base_url=args.base_url, token=raw, recorder=recorder, timeout=args.timeout)
        for _, _, raw in tokens
    ]
    try:
        print("Measuring filters …", file=sys.stderr)
        measure_filters(
            [
                (sessions[0], f"{args.small:,} users", small_slug, args.small),
                (sessions[1], f"{args.large:,} users", large_slug, args.large),
            ],
            args.samples,
            rng,
        )
        print("Measuring member PATCHes …", file=sys.stderr)
        measure_member_adds(
            sessions[1],
            tenant=large,
            big_group=big_group,
            group_size=args.group_size,
            repetitions=args.repetitions,
            rng=rng,
        )
    finally:
        for session in sessions:
            session.close()
        for tenant, token, _ in tokens:
            revoke_token(tenant, token)
    rows = []
    result: dict[str, Any] = {}
    for operation, stats in recorder.operations.items():
        if operation.startswith(("warm-up", "setup")):
            continue
        summary = latency_summary(stats.latencies)
        rows.append(
            [
                operation,
                str(len(stats.latencies)),
                str(stats.unexpected),
                milliseconds(summary["p50"]),
                milliseconds(summary["p95"]),
                milliseconds(summary["p99"]),
            ]
        )
        result[operation] = {
            "requests": len(stats.latencies),
            "unexpected": stats.unexpected,
            **{k: v * 1000 for k, v in summary.items()},
        }
    print(f"\nFlatness ({args.small:,} vs {args.large:,} users; group of {args.group_size:,} vs empty)\n")
    print(format_table(["operation", "requests", "unexpected", "p50 ms", "p95 ms", "p99 ms"], rows))
    for operation, stats in recorder.operations.items():
        for sample in stats.samples:
            print(f"unexpected response to {operation}: {sample}", file=sys.stderr)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"arguments": {k: v for k, v in vars(args).items() if k != "database_url"}, **result},
                handle,
                indent=2,
            )
    return 1 if recorder.unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
