"""Directory API benchmark: what /api/v1/ sustains on a tenant of 100,000 users, read by N clients.

One command, on a throw-away PostgreSQL database of this machine (`bench_api`, dropped first and
again at the end unless --keep):

    .venv/bin/python bench/api.py                    # 100,000 users, C=8
    .venv/bin/python bench/api.py --users 10000 --clients 4 --lookups 200

It migrates the database, seeds one tenant, creates an API client with the services and fetches its
token from /oauth/token/ (client_secret_basic), serves the app with gunicorn exactly as production
would (securelogin/gunicorn.conf.py, via bench/run.py's Server) on a free port of 127.0.0.1, and
measures with C concurrent clients (one thread and one keep-alive httpx client each), in two stages.
The server's database sessions get `statement_timeout` 30 s (gunicorn's request timeout): a query
the planner gets badly wrong fails as a 500, counted, instead of running on under the next phases.

Stage 1, as seeded: nothing has been analysed (see STATISTICS), so these are the first reads after
a bulk import on a server whose autovacuum has not come by:

1. users, 100 a page: one client reads the first --cold-pages pages;
2. `userName` lookups (the name in upper case: the match is case-insensitive) and `email` lookups
   (a work or a second address) of random users, --cold-lookups per client;
3. the change feed from `after=0`, 1,000 events a page, to the end, by each of the C clients at once:
   "cold" (no event has a feed position yet; the reads position them, 5,000 per read, under the
   tenant row's lock), then again "warm".

Stage 2, the full reads, still WITHOUT ANALYZE (a benchmark measures the database as production has
it right after an import; no benchmark here ever runs ANALYZE; --stage1-only skips stage 2):

4. users, 100 a page, following `next`: one client walks the whole tenant (every page, so the last
   page can be compared with the first), then the C clients walk it again together, each from the
   start of its own slice of pages (the first walk's `next` links) to the slice's end;
5. the lookups of 2, --lookups per client.

Throughput (requests/s and items/s over the phase's wall time) and latency percentiles per phase.

SEEDING BYPASSES THE SERVICES for bulk: users, their emails and one `user.created` log row per user
(the row `services.user_create` writes, with the same `changes`) are inserted with `bulk_create`;
a sample of real changes then goes through `directory.services` (updates, deactivations, groups,
memberships), so the end of the feed looks like provisioning. Like bench/flatness.py, acceptable
only here, on a throw-away database.

STATISTICS: no ANALYZE ever runs. The first reads after a bulk import do not get one either:
autovacuum analyses a table when it next comes by, and this benchmark's PostgreSQL runs with
autovacuum off. The run prints the autovacuum setting and whether the tables were ever analysed.

Loopback only, every loop bounded by the arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from _common import format_table, latency_summary, milliseconds, require_loopback
from run import BENCH_SECRET_KEY, REPO_ROOT, Server, ensure_database, free_port, manage

SLUG = "apibench"
SEED_BATCH = 5000
PAGE = 100
FEED_PAGE = 1000
GROUPS = 100
GROUP_SIZE = 200
TIMEOUT = 60.0
COLD = " [no statistics]"
MAX_WALK = 100_000
"""No walk follows more `next` links than this, whatever the server answers."""


def user_name(index: int) -> str:
    return f"user.{index:06d}@{SLUG}.example"


def work_email(index: int) -> str:
    return f"first.last.{index:06d}@{SLUG}.example"


def second_email(index: int) -> str:
    return f"u{index:06d}@mail.{SLUG}.example"


def index(user: Any) -> int:
    """The seeding index a user's name was made from (user_name)."""
    return int(user.username.split("@")[0].removeprefix("user."))


# ------------------------------------------------------------------------------------------ seeding


def setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("SECRET_KEY", BENCH_SECRET_KEY)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "securelogin.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


def seed(users: int, sample: int, rng: random.Random) -> tuple[Any, int]:
    """The tenant with `users` users (a work email each, a second email for every fifth, a
    manager for all but the first batch), their `user.created` rows, GROUPS groups, and `sample`
    changes through the services. Returns the tenant and the number of feed events."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from directory import selectors, services
    from directory.feed import FEED_ACTIONS
    from directory.models import Event, Group, Membership, User, UserEmail

    started = time.perf_counter()
    system = services.Actor.system("bench/api.py")
    tenant = services.tenant_create(actor=system, slug=SLUG, name="API benchmark")
    principal = selectors.service_principal_get(tenant=tenant)
    entra = services.Actor.for_credential(
        service_principal=principal, label="secret token benchmark (slt_bnch…)", credential="secret-token:0"
    )
    unusable = make_password(None)
    ids: list[int] = []
    manager_values: list[str] = []
    for offset in range(0, users, SEED_BATCH):
        chunk = range(offset, min(users, offset + SEED_BATCH))
        with transaction.atomic():
            rows = User.objects.bulk_create(
                [
                    User(
                        tenant=tenant,
                        # the manager is user i // 10, when it is in an earlier batch (not the first's)
                        manager_id=ids[i // 10] if i // 10 < offset else None,
                        manager_value=manager_values[i // 10] if i // 10 < offset else "",
                        username=user_name(i),
                        external_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        display_name=f"First Last {i}",
                        given_name="First",
                        family_name=f"Last {i}",
                        department=f"Department {i % 40}",
                        title="Engineer",
                        password=unusable,
                    )
                    for i in chunk
                ]
            )
            ids += [u.pk for u in rows]
            manager_values += [str(u.scim_id) for u in rows]
            emails = [
                UserEmail(tenant=tenant, user=u, type="work", primary=True, value=work_email(i))
                for u, i in zip(rows, chunk, strict=True)
            ]
            emails += [
                UserEmail(tenant=tenant, user=u, type="other", value=second_email(i))
                for u, i in zip(rows, chunk, strict=True)
                if i % 5 == 0
            ]
            UserEmail.objects.bulk_create(emails)
            Event.objects.bulk_create(
                [
                    Event(
                        tenant=tenant,
                        actor_type=entra.type,
                        actor_user=principal,
                        actor_label=entra.label,
                        credential=entra.credential,
                        action="user.create",
                        resource_type="User",
                        resource_id=str(u.scim_id),
                        resource_label=u.username,
                        changes={
                            "external_id": [None, u.external_id],
                            "display_name": [None, u.display_name],
                            "given_name": [None, u.given_name],
                            "family_name": [None, u.family_name],
                            "title": [None, u.title],
                            "department": [None, u.department],
                            "username": [None, u.username],
                            "emails": [
                                None,
                                [{"value": work_email(i), "type": "work", "primary": True, "display": ""}],
                            ],
                        },
                        request_method="POST",
                        request_path="/scim/v2/Users",
                    )
                    for u, i in zip(rows, chunk, strict=True)
                ]
            )
        print(f"  users: {offset + len(chunk):,}", end="\r", file=sys.stderr, flush=True)
    groups = Group.objects.bulk_create(
        [Group(tenant=tenant, display_name=f"Bench group {g:03d}") for g in range(GROUPS)]
    )
    Membership.objects.bulk_create(
        [
            Membership(tenant=tenant, group=g, user_id=user_id)
            for g in groups
            for user_id in rng.sample(ids, min(GROUP_SIZE, len(ids)))
        ],
        ignore_conflicts=True,
        batch_size=SEED_BATCH,
    )
    print(f"  seeded {users:,} users in bulk in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    started = time.perf_counter()
    pool = list(User.objects.filter(pk__in=rng.sample(ids, min(len(ids), sample))))
    for step in range(sample):
        person = pool[step % len(pool)]
        kind = step % 10
        if kind < 6:
            services.user_update(
                tenant=tenant,
                actor=entra,
                user=person,
                fields={"title": f"Title {step}", "department": "R&D"},
            )
        elif kind == 6:
            services.user_deactivate(tenant=tenant, actor=entra, user=person)
        elif kind == 7:
            services.membership_add(tenant=tenant, actor=entra, group=groups[step % GROUPS], users=[person])
        elif kind == 8:
            services.group_create(
                tenant=tenant,
                actor=entra,
                display_name=f"Sample group {step}",
                members=pool[step : step + 20],
            )
        else:
            services.user_update(
                tenant=tenant,
                actor=entra,
                user=person,
                emails=[
                    {"type": "work", "value": work_email(index(person)), "primary": True},
                    *(
                        [{"type": "other", "value": second_email(index(person))}]
                        if index(person) % 5 == 0
                        else []
                    ),
                    {"type": "other", "value": f"added.{step}@{SLUG}.example"},
                ],
            )
    events = Event.objects.filter(tenant=tenant, action__in=FEED_ACTIONS).count()
    print(
        f"  {sample:,} changes through directory.services in {time.perf_counter() - started:.0f} s; "
        f"{events:,} feed events, none positioned yet",
        file=sys.stderr,
    )
    return tenant, events


def statistics_note(database_url: str) -> str:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        autovacuum = connection.execute("SHOW autovacuum").fetchone()
        rows = connection.execute(
            "SELECT relname, last_analyze, last_autoanalyze FROM pg_stat_user_tables "
            "WHERE relname IN ('directory_user', 'directory_useremail', 'directory_event')"
        ).fetchall()
    analysed = [name for name, manual, auto in rows if manual or auto]
    return (
        f"autovacuum={autovacuum[0] if autovacuum else '?'}; no ANALYZE after seeding; "
        f"analysed before the first request: {', '.join(sorted(analysed)) or 'none of user, email, event'}"
    )


def api_token(base_url: str, tenant: Any) -> str:
    from directory import services
    from oauth.services import api_client_create

    application, secret = api_client_create(
        tenant=tenant, actor=services.Actor.system("bench/api.py"), name="API benchmark"
    )
    response = httpx.post(
        f"{base_url}/oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=(application.client_id, secret),
        timeout=TIMEOUT,
        trust_env=False,
    )
    response.raise_for_status()
    body = response.json()
    assert set(body["scope"].split()) == {"directory:read", "events:read"}, body
    return body["access_token"]


# ---------------------------------------------------------------------------------------- measuring


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    items: int = 0
    errors: list[str] = field(default_factory=list)
    failed: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, seconds: float, items: int) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.items += items

    def fail(self, message: str) -> None:
        """A request that got no 200 (or a 200 with the wrong answer): counted, a few kept."""
        with self.lock:
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(message)

    def row(self) -> list[str]:
        stats = latency_summary(self.latencies)
        requests = len(self.latencies)
        return [
            self.name,
            f"{requests:,}",
            f"{self.failed:,}",
            f"{self.items:,}",
            f"{self.seconds:.1f}",
            f"{requests / self.seconds:.1f}" if self.seconds else "-",
            f"{self.items / self.seconds:,.0f}" if self.seconds else "-",
            milliseconds(stats["p50"]),
            milliseconds(stats["p95"]),
            milliseconds(stats["p99"]),
            milliseconds(stats["max"]),
        ]

    def summary(self) -> dict[str, Any]:
        stats = latency_summary(self.latencies)
        return {
            "requests": len(self.latencies),
            "failed": self.failed,
            "items": self.items,
            "seconds": round(self.seconds, 2),
            "requests_per_second": round(len(self.latencies) / self.seconds, 2) if self.seconds else None,
            "items_per_second": round(self.items / self.seconds, 1) if self.seconds else None,
            **{k: round(v * 1000, 2) for k, v in stats.items()},
            "errors": self.errors,
        }


class Api:
    """One keep-alive client per thread, all with the bearer token, every request timed."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = require_loopback(base_url)
        self.token = token
        self.local = threading.local()

    def client(self) -> httpx.Client:
        client = getattr(self.local, "client", None)
        if client is None:
            client = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
                timeout=TIMEOUT,
                trust_env=False,
            )
            self.local.client = client
        return client

    def get(self, phase: Phase, url: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
        if url.startswith("http"):
            require_loopback(url)
        started = time.perf_counter()
        try:
            response = self.client().get(url, params=params)
        except httpx.HTTPError as exc:
            phase.fail(repr(exc))
            return None
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            phase.fail(f"{response.status_code} {' '.join(response.text.split())[:200]}")
            return None
        body = response.json()
        items = body.get("results", body.get("events", []))
        phase.record(elapsed, len(items))
        return body


def run_clients(phase: Phase, work: list[Callable[[], None]]) -> Phase:
    """Each callable in its own thread, started together; the phase's wall time is theirs."""
    barrier = threading.Barrier(len(work) + 1)

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
        except Exception as exc:  # noqa: BLE001  a client's crash is reported, the others go on
            phase.fail(repr(exc))

    threads = [threading.Thread(target=run, args=(job,), daemon=True) for job in work]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started
    return phase


def walk(api: Api, phase: Phase, start: str, pages: int, links: list[str] | None = None) -> None:
    """Follow `next` from `start` for at most `pages` pages; optionally keep every page's URL."""
    url: str | None = start
    for _ in range(min(pages, MAX_WALK)):
        if url is None:
            return
        if links is not None:
            links.append(url)
        body = api.get(phase, url)
        if body is None:
            return
        url = body["next"]


def read_feed(api: Api, phase: Phase, max_pages: int) -> None:
    after = "0"
    for _ in range(max_pages):
        body = api.get(phase, "/api/v1/events/", {"after": after, "limit": str(FEED_PAGE)})
        if body is None:
            return
        after = body["next_cursor"]
        if not body["has_more"]:
            return


def lookups(api: Api, phase: Phase, count: int, users: int, rng: random.Random, kind: str) -> None:
    for _ in range(count):
        i = rng.randrange(users)
        if kind == "userName":
            params = {"userName": user_name(i).upper()}
        else:
            params = {"email": second_email(i) if i % 5 == 0 and rng.random() < 0.5 else work_email(i)}
        body = api.get(phase, "/api/v1/users/", params)
        if body is not None and len(body["results"]) != 1:
            phase.fail(f"{params} matched {len(body['results'])} users")


def measure(api: Api, args: argparse.Namespace, events: int) -> list[Phase]:
    """Stage 1 as seeded (no statistics): a few pages and lookups, and the whole feed, cold then
    warm. Stage 2, still never analysed: the whole user list, walked by one client and by C, and
    the lookups in full. The feed's queries do not depend on statistics (see docs/benchmarks.md)."""
    rng = random.Random(args.seed)
    pages = -(-args.users // PAGE)
    cold = COLD
    phases: list[Phase] = []

    first_pages = Phase(f"users, {PAGE} a page, 1 client, the first {args.cold_pages} pages{cold}")
    run_clients(
        first_pages, [lambda: walk(api, first_pages, f"/api/v1/users/?limit={PAGE}", args.cold_pages)]
    )
    phases.append(first_pages)
    phases += lookup_phases(api, args, rng, args.cold_lookups, cold)

    feed_pages = -(-events // FEED_PAGE) + 1
    for label in ("cold: the reads position them", "warm"):
        phase = Phase(f"events, {FEED_PAGE:,} a page from after=0, {args.clients} clients, {label}{cold}")
        run_clients(phase, [lambda p=phase: read_feed(api, p, feed_pages)] * args.clients)
        phases.append(phase)

    if not args.analyze:
        return phases
    analysed = " [stage 2, never analysed]"

    whole = Phase(f"users, {PAGE} a page, 1 client walking all {pages:,} pages{analysed}")
    links: list[str] = []
    run_clients(whole, [lambda: walk(api, whole, f"/api/v1/users/?limit={PAGE}", pages + 1, links)])
    phases.append(whole)
    if len(links) >= 20:
        first, last = Phase("  its first 10 pages"), Phase("  its last 10 pages")
        first.latencies, last.latencies = whole.latencies[:10], whole.latencies[-10:]
        phases += [first, last]

    share = -(-len(links) // args.clients)
    slices = [(links[k * share], share) for k in range(args.clients) if k * share < len(links)]
    together = Phase(f"users, {PAGE} a page, {len(slices)} clients on slices of {share} pages{analysed}")
    run_clients(together, [lambda s=s, n=n: walk(api, together, s, n) for s, n in slices])
    phases.append(together)
    phases += lookup_phases(api, args, rng, args.lookups, analysed)
    return phases


def lookup_phases(
    api: Api, args: argparse.Namespace, rng: random.Random, count: int, label: str
) -> list[Phase]:
    phases = []
    for kind in ("userName", "email"):
        phase = Phase(f"users?{kind}= (random user), {args.clients} clients × {count}{label}")
        seeds = [rng.randrange(2**32) for _ in range(args.clients)]
        run_clients(
            phase,
            [
                lambda s=s, k=kind, p=phase: lookups(api, p, count, args.users, random.Random(s), k)
                for s in seeds
            ],
        )
        phases.append(phase)
    return phases


# --------------------------------------------------------------------------------------------- main


def drop_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_API_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_api"),
        help="A PostgreSQL database of this machine named bench*; dropped and created anew.",
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2000, help="Changes made through the services.")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--lookups", type=int, default=250, help="userName and email lookups per client in stage 2."
    )
    parser.add_argument("--workers", type=int, default=0, help="WEB_CONCURRENCY (default: the config's).")
    parser.add_argument("--threads", type=int, default=0, help="GUNICORN_THREADS (default: the config's).")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--cold-pages", type=int, default=5, help="User pages read in stage 1 (1 client; 5).")
    parser.add_argument(
        "--cold-lookups", type=int, default=1, help="userName and email lookups per client in stage 1."
    )
    parser.add_argument(
        "--stage1-only",
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="Stop after stage 1 (no full user walk, no full lookups).",
    )
    parser.add_argument(
        "--statement-timeout",
        type=int,
        default=30,
        help="The server's PostgreSQL statement_timeout in seconds (30, gunicorn's timeout; 0: none).",
    )
    parser.add_argument("--json", metavar="FILE", help="Also write the numbers as JSON.")
    args = parser.parse_args(argv)
    if (
        min(args.users, args.clients, args.sample, args.cold_pages) < 1
        or min(args.lookups, args.cold_lookups) < 0
    ):
        parser.error("--users, --clients, --sample and --cold-pages must be positive, lookups not negative")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
    command = shlex.join([os.path.relpath(sys.executable, REPO_ROOT), "bench/api.py", *sys.argv[1:]])
    print(f"$ {command}", file=sys.stderr)
    ensure_database(args.database_url, recreate=True)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": BENCH_SECRET_KEY,
        "SECURE_COOKIES": "0",
        "SECURELOGIN_EXTRA_ROOT_HOSTS": "127.0.0.1",
        "ACCESS_LOG": "0",
        "LOG_LEVEL": "WARNING",
    }
    if args.statement_timeout:
        # A request still running after gunicorn's 30 s is stuck (securelogin/gunicorn.conf.py); the
        # database gives up on its query too instead of burning the CPU the next phases measure.
        env["PGOPTIONS"] = f"-c statement_timeout={args.statement_timeout * 1000}"
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    manage(env, "migrate", "--no-input", "-v", "0")
    setup_django(args.database_url)
    from django.db import connections

    server: Server | None = None
    try:
        tenant, events = seed(args.users, args.sample, random.Random(args.seed))
        note = statistics_note(args.database_url)
        server = Server(env, free_port())
        server.wait_ready()
        base_url = f"http://127.0.0.1:{server.port}"
        token = api_token(base_url, tenant)
        connections.close_all()
        print(f"  {note}", file=sys.stderr)
        print(f"  measuring against {base_url} with {args.clients} clients", file=sys.stderr)
        phases = measure(Api(base_url, token), args, events)
    finally:
        if server is not None:
            server.stop()
            with contextlib.suppress(ProcessLookupError):  # workers the master left behind
                os.killpg(server.process.pid, signal.SIGKILL)
        connections.close_all()
        if not args.keep:
            drop_database(args.database_url)

    headers = [
        "phase",
        "ok",
        "failed",
        "items",
        "s",
        "req/s",
        "items/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
    ]
    print(f"$ {command}")
    print(f"{args.users:,} users, {events:,} feed events; {note}")
    print(format_table(headers, [p.row() for p in phases]))
    errors = [(p.name, e) for p in phases for e in p.errors]
    for name, error in errors:
        print(f"FAILED {name}: {error}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "command": command,
                    "users": args.users,
                    "events": events,
                    "statistics": note,
                    **{p.name.strip(): p.summary() for p in phases},
                },
                out,
                indent=2,
            )
    # Failures without statistics are a finding (statement timeouts); anywhere else, a fault.
    return 1 if any(COLD not in name for name, _ in errors) else 0


if __name__ == "__main__":
    sys.exit(main())
