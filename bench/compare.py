"""SecureLogin against the two servers a user would pick instead, in one run, on this machine only.

    .venv/bin/python bench/compare.py                       # the issue's sizes (about 15-25 minutes)
    .venv/bin/python bench/compare.py --quick               # smoke test, 3-8 minutes (mostly start-up)
    .venv/bin/python bench/compare.py --skip-growth --json /tmp/compare.json
    .venv/bin/python bench/compare.py --gunicorn-matrix --skip-peers --skip-growth

What it measures, in this order:

1. SecureLogin in its production configuration (securelogin/gunicorn.conf.py, PostgreSQL database
   `bench_compare`, recreated): Entra's initial and incremental cycle (bench/entra_cycle.py's
   requests: users filter+POST, groups filter+POST, members PATCH in batches of 50, multi-op user
   PATCHes with a value-filter path plus disables) at --clients; each phase runs on every server
   in turn (all are up at once; an idle server costs no CPU), so a drifting machine load hits them
   alike. Then `GET /Users?filter=userName eq "…"` at c=8 on the data the cycle made.
2. The floor (bench/_peers.py): a bare Django JSON view and a view doing two indexed PostgreSQL
   queries, served by gunicorn with SecureLogin's own config, at c=8, in rounds alternating with
   SecureLogin's filter load.
3. The peers, pip-installed into their own virtualenv (--peers-venv): scim2-server (in memory, one
   gunicorn worker) and django-scim2's default app (SQLite, 2 sync workers), the same cycle (1.).
   A request form a peer does not support is counted as unexpected and listed, never hidden.
4. The growth check (bench/_growth.py): on a new database with autovacuum off and no ANALYZE ever,
   userName, externalId and work-email lookups and a 50-member group PATCH at 1,000 users / 0
   memberships, then at 100,000 / 50,000, through HTTP, sequentially; the ratio of the medians.
5. With --gunicorn-matrix, SecureLogin's cycle and filter load again under other gunicorn settings.

Every wait is bounded (request timeouts, phase deadlines, server start and stop timeouts, and a
PostgreSQL statement_timeout of 30 s, gunicorn's request timeout, in SecureLogin's and the floor's
sessions, so a runaway query ends as a 500 instead of running on under later phases); every server
is stopped on the way out, on Ctrl-C and TERM too. Only loopback addresses and bench* databases
are ever used.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import _growth
import _peers
import _report
import run
from _common import Recorder, SCIMSession
from _cycle import PHASES, Cycle, LoadResult, load
from entra_cycle import eq_filter, user_name

REPO_ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = REPO_ROOT / "securelogin" / "gunicorn.conf.py"
PEER_TOKEN = "bench-compare-peer-token"
DEFAULT_MATRIX = "2x4,2x2,2x1,3x1,4x1"
QUICK = {
    "users": 120,
    "groups": 4,
    "memberships": 240,
    "incremental": 40,
    "floor_requests": 300,
    "growth_small": 100,
    "growth_users": 2_000,
    "growth_members": 1_000,
    "growth_samples": 20,
    "growth_patches": 5,
    "growth_budget": 20.0,
}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def database_url(base: str, name: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + name


STATEMENT_TIMEOUT = 30.0  # seconds: gunicorn's request timeout (securelogin/gunicorn.conf.py)


def securelogin_env(
    url: str, workers: int = 0, threads: int = 0, statement_timeout: float = STATEMENT_TIMEOUT
) -> dict[str, str]:
    """SecureLogin's production settings for a benchmark database: no access log, no debug."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": run.BENCH_SECRET_KEY,
        "SECURE_COOKIES": "0",
        "SECURELOGIN_EXTRA_ROOT_HOSTS": "127.0.0.1",
        "ACCESS_LOG": "0",
        "LOG_LEVEL": "WARNING",
    }
    if statement_timeout:
        # As bench/api.py: a query the planner gets badly wrong fails (500) at gunicorn's request
        # timeout instead of running on for minutes after the client gave up, under later phases.
        env["PGOPTIONS"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    if threads:
        env["GUNICORN_THREADS"] = str(threads)
    return env


def fresh_database(base_url: str, name: str, template: str | None) -> str:
    """A new database `name` (dropped first if it exists), a copy of the migrated `template` when
    given: migrating SecureLogin takes 20-40 s here, so it is done once per run."""
    import psycopg

    url = database_url(base_url, name)
    if template is None:
        run.ensure_database(url, recreate=True)
        return url
    with psycopg.connect(database_url(base_url, "postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return url


def migrated_template(args: argparse.Namespace) -> str:
    progress("SecureLogin: migrating a template database …")
    url = fresh_database(args.database_url, "bench_compare_template", None)
    run.manage(securelogin_env(url), "migrate", "--no-input", "-v", "0")
    return run.database_name(url)


def start_securelogin(url: str, env: dict[str, str], slug: str) -> tuple[run.Server, str]:
    """A tenant and a SCIM token in the migrated database, and gunicorn with the production config."""
    token = run.prepare(env, slug)
    server = run.Server(env, run.free_port())
    server.wait_ready()
    return server, token


class Target:
    """A server under test and its cycle (one keep-alive client per thread)."""

    def __init__(self, name: str, base_url: str, token: str, args: argparse.Namespace) -> None:
        self.name = name
        self.base_url = base_url
        self.token = token
        self.session = SCIMSession(base_url=base_url, token=token, recorder=Recorder(), timeout=args.timeout)
        self.cycle = Cycle(
            self.session,
            users=args.users,
            groups=args.groups,
            memberships=args.memberships,
            incremental=args.incremental,
        )


def run_cycles(targets: list[Target], args: argparse.Namespace) -> dict[str, Any]:
    """Each phase on every server in turn, so the machine's drifting load hits all alike."""
    try:
        for phase in PHASES:
            for target in targets:
                target.cycle.run_phase(phase, args.clients, args.phase_timeout, target.name)
    finally:
        for target in targets:
            target.session.close()
    return {target.name: target.cycle.finish().to_json() for target in targets}


def filter_params(cycle: Cycle, upper: bool = False) -> Any:
    def params(rng: random.Random) -> dict[str, str]:
        name = user_name(cycle.run_id, rng.randrange(cycle.users))
        return {"filter": eq_filter("userName", name)} if not upper else {"userName": name.upper()}

    return params


def run_loads(loads: dict[str, tuple[str, str, str, Any, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Each load (base URL, token, path, params, check) at c=8, in --load-rounds alternating rounds."""
    rounds: dict[str, list[LoadResult]] = {name: [] for name in loads}
    per_round = max(1, args.floor_requests // args.load_rounds)
    for r in range(args.load_rounds):
        for name, (base, token, path, params, check) in loads.items():
            progress(f"c=8 load, round {r + 1}/{args.load_rounds}: {name} …")
            rounds[name].append(
                load(
                    base, token, path=path, params=params, clients=8, requests=per_round,
                    warm_up=min(50, per_round), timeout=args.timeout, deadline_seconds=args.phase_timeout,
                    check=check,
                )
            )  # fmt: skip
    result = {}
    for name, parts in rounds.items():
        seconds = sum(p.seconds for p in parts)
        result[name] = {
            "requests": sum(p.requests for p in parts),
            "seconds": seconds,
            "requests_per_second": sum(p.requests for p in parts) / seconds if seconds else 0.0,
            "rounds_requests_per_second": [p.rate for p in parts],
            "p50_ms": statistics.median(p.p50_ms for p in parts),
            "p95_ms": statistics.median(p.p95_ms for p in parts),
            "unexpected": sum(p.unexpected for p in parts),
        }
    return result


def measure_main(args: argparse.Namespace, results: dict[str, Any], template: str, work: Path) -> None:
    """SecureLogin and the peers through the cycle; then SecureLogin's filter against the floor."""
    servers: list[Any] = []
    try:
        progress("SecureLogin: tenant, token, gunicorn (securelogin/gunicorn.conf.py) …")
        url = fresh_database(args.database_url, "bench_compare", template)
        server, token = start_securelogin(url, securelogin_env(url), "bench")
        servers.append(server)
        targets = [Target("SecureLogin", server.base_url, token, args)]
        if not args.skip_peers:
            python = _peers.ensure_peer_venv(Path(args.peers_venv))
            results["peer_versions"] = _peers.peer_versions(python)
            progress("scim2-server and django-scim2: starting …")
            peer, base = _peers.start_scim2_server(
                python, work, run.free_port(), PEER_TOKEN, threads=args.scim2_server_threads
            )
            servers.append(peer)
            targets.append(Target("scim2-server", base, PEER_TOKEN, args))
            peer, base = _peers.start_django_scim2(python, work, run.free_port(), PEER_TOKEN)
            servers.append(peer)
            targets.append(Target("django-scim2", base, PEER_TOKEN, args))
        results["cycles"] = run_cycles(targets, args)
        for peer in servers[1:]:
            peer.stop()
        del servers[1:]
        ours = targets[0].cycle
        loads = {
            'SecureLogin GET /Users?filter=userName eq "…"': (
                server.base_url, token, "/Users", filter_params(ours),
                lambda response: response.json().get("totalResults") == 1,
            ),
        }  # fmt: skip
        if not args.skip_floor:
            progress("Floor: database, bare and two-query Django views under SecureLogin's gunicorn config …")
            floor_url = fresh_database(args.database_url, "bench_compare_floor", None)
            _peers.seed_floor(floor_url, PEER_TOKEN, [user_name(ours.run_id, i) for i in range(ours.users)])
            floor = _peers.start_floor(
                Path(sys.executable), work, run.free_port(), run.database_name(floor_url),
                securelogin_env(floor_url), GUNICORN_CONF,
            )  # fmt: skip
            servers.append(floor)
            base = f"http://127.0.0.1:{floor.port}"
            loads["floor: bare Django JSON view"] = (base, PEER_TOKEN, "/bare", lambda rng: {}, None)
            loads["floor: two indexed queries"] = (
                base, PEER_TOKEN, "/twoquery", filter_params(ours, upper=True),
                lambda response: response.json().get("totalResults") == 1,
            )  # fmt: skip
        results["floor"]["loads"] = run_loads(loads, args)
    finally:
        for server in servers:
            server.stop()


def measure_growth(args: argparse.Namespace, template: str) -> dict[str, Any]:
    """See bench/_growth.py."""
    url = fresh_database(args.database_url, "bench_compare_growth", template)
    env = securelogin_env(url)
    _growth.disable_autovacuum(url)
    _growth.prepare_clone_table(url)
    token = run.prepare(env, "growth")
    server = run.Server(env, run.free_port())
    server.wait_ready()
    rng = random.Random(7)
    small, large, members = args.growth_small, args.growth_users, args.growth_members
    session = _growth.new_session(server.base_url, token, args.timeout)
    try:
        progress(f"Growth: {small:,} users through SCIM POST at c={args.clients} …")
        ids = _growth.post_users(session, [_growth.number(i) for i in range(small)], args.clients)
        group_id = _growth.create_group(session, "growth-big")
        outsiders = list(ids.values())
        measured: dict[str, Any] = {}
        sizes = {
            "small": f"{small:,} users / 0 memberships",
            "large": f"{large:,} users / {members:,} memberships",
        }
        progress(f"Growth: measuring at {sizes['small']} …")
        measured["small"] = _growth.measure(
            _growth.new_session(server.base_url, token, args.timeout),
            population=small,
            group_id=group_id,
            outsiders=outsiders,
            samples=args.growth_samples,
            patches=args.growth_patches,
            budget=args.growth_budget,
            rng=rng,
        )
        progress(f"Growth: cloning up to {large:,} users from a SCIM-created prototype (SQL, no ANALYZE) …")
        before = _growth.max_event_id(url)
        proto = _growth.post_users(session, [_growth.MARKER], 1)[_growth.MARKER]
        _growth.clone_users(url, proto, before, small, large)
        before = _growth.max_event_id(url)
        added = session.request(
            "setup add",
            "setup",
            "PATCH",
            f"/Groups/{group_id}",
            body=_growth.members_op("Add", [proto]),
            expect=[200, 204],
        )
        if added is None or added.status_code not in (200, 204):
            raise RuntimeError("could not add the prototype to the group")
        _growth.clone_memberships(url, proto, group_id, before, range(small, small + members))
        session.request("setup delete", "setup", "DELETE", f"/Users/{proto}", expect=[204])
        problems = _growth.check_clone(session, _growth.number(small), group_id)
        problems += _growth.check_clone(session, _growth.number(large - 1), None)
        measured["clone_check"] = problems or "cloned users read back as sent"
        measured["rows"] = _growth.counts(url, "growth")
        progress(f"Growth: rows now {measured['rows']}; clone check: {measured['clone_check']}")
        progress(f"Growth: measuring at {sizes['large']} …")
        measured["large"] = _growth.measure(
            _growth.new_session(server.base_url, token, args.timeout),
            population=large,
            group_id=group_id,
            outsiders=outsiders,
            samples=args.growth_samples,
            patches=args.growth_patches,
            budget=args.growth_budget,
            rng=rng,
        )
        measured["never_analysed"] = _growth.never_analysed(url)
        measured["sizes"] = sizes
        return measured
    finally:
        session.close()
        server.stop()


def measure_matrix(args: argparse.Namespace, template: str) -> dict[str, Any]:
    """SecureLogin's cycle and filter load under each WORKERSxTHREADS gunicorn setting. All of them
    are started at once (an idle server costs memory only, not CPU) and each phase runs on each in
    turn, so a drift of the machine's load does not decide the ranking."""
    servers: list[run.Server] = []
    targets: list[Target] = []
    try:
        for k, config in enumerate(args.matrix.split(",")):
            workers, threads = (int(x) for x in config.lower().split("x"))
            label = f"{workers} × {threads} ({'gthread' if threads > 1 else 'sync'})"
            progress(f"gunicorn matrix: starting {label} …")
            url = fresh_database(args.database_url, f"bench_compare_matrix_{k}", template)
            server, token = start_securelogin(url, securelogin_env(url, workers, threads), "bench")
            servers.append(server)
            targets.append(Target(label, server.base_url, token, args))
        cycles = run_cycles(targets, args)
        loads = {
            t.name: (
                t.base_url,
                t.token,
                "/Users",
                filter_params(t.cycle),
                lambda r: r.json().get("totalResults") == 1,
            )
            for t in targets
        }
        filters = run_loads(loads, args)
    finally:
        for server in servers:
            server.stop()
    return {name: {"cycle": cycles[name], "filter": filters[name]} for name in cycles}


def print_report(results: dict[str, Any]) -> None:
    a = results["arguments"]
    print(
        f"\nEntra cycle: {a['users']:,} users, {a['groups']:,} groups, {a['memberships']:,} memberships, "
        f"{a['incremental']:,} incremental user PATCHes (+ a disable every 10th), C={a['clients']}\n"
    )
    if results["cycles"]:
        print(_report.cycle_rows(results["cycles"]))
        table, results["verdicts"]["phases"] = _report.phase_comparison(results["cycles"])
        print(f"\nPer phase, req/s (unexpected statuses):\n{table}")
        lines = _report.unsupported(results["cycles"])
        print("\nUnexpected statuses:" if lines else "\nUnexpected statuses: none.")
        print("\n".join(lines))
    if results["floor"]["loads"]:
        table, results["verdicts"]["floor"] = _report.floor_section(results["floor"])
        print(f"\nFloor (same machine, same run):\n{table}")
    if results.get("growth"):
        growth = results["growth"]
        table, results["verdicts"]["growth"] = _report.growth_section(growth)
        print(f"\nGrowth, autovacuum off, never analysed ({growth['never_analysed']}):\n{table}")
        print(f"rows: {growth['rows']}; clone check: {growth['clone_check']}")
    if results.get("matrix"):
        print(f"\nSecureLogin under other gunicorn settings:\n{_report.matrix_section(results['matrix'])}")
    if results.get("peer_versions"):
        print(f"\nPeers: {results['peer_versions']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--clients", type=int, default=8, help="Concurrent clients for the cycle (8).")
    add("--users", type=int, default=2000)
    add("--groups", type=int, default=20)
    add("--memberships", type=int, default=4000)
    add("--incremental", type=int, default=200, help="Incremental user PATCHes (200; a disable every 10th).")
    add("--floor-requests", type=int, default=3000, help="Requests per c=8 load (floor and filter).")
    add("--load-rounds", type=int, default=3, help="Alternating rounds the c=8 loads are split into.")
    add("--growth-small", type=int, default=1_000, help="Users before growth (1,000).")
    add("--growth-users", type=int, default=100_000, help="Users after growth (100,000).")
    add("--growth-members", type=int, default=50_000, help="Members of the big group after growth (50,000).")
    add("--growth-samples", type=int, default=200, help="Requests per lookup and size.")
    add("--growth-patches", type=int, default=40, help="50-member PATCHes per size.")
    add("--growth-budget", type=float, default=180.0, help="Seconds per operation and size at most.")
    add("--skip-peers", action="store_true")
    add("--skip-floor", action="store_true")
    add("--skip-growth", action="store_true")
    add("--gunicorn-matrix", action="store_true", help=f"Also measure --matrix settings ({DEFAULT_MATRIX}).")
    add("--matrix", default=DEFAULT_MATRIX, help="WORKERSxTHREADS,… for --gunicorn-matrix.")
    add("--scim2-server-threads", type=int, default=4, help="gthread threads of scim2-server's one worker.")
    add("--timeout", type=float, default=60.0, help="Per-request timeout in seconds.")
    add("--phase-timeout", type=float, default=1800.0, help="Deadline of one phase or load in seconds.")
    add("--peers-venv", default=str(Path(tempfile.gettempdir()) / "securelogin-bench-peers"))
    add("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_compare", help="Server and user.")
    add("--json", metavar="PATH", help="Also write the results as JSON.")
    add("--quick", action="store_true", help="Small sizes: a smoke test of the whole command.")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    if args.growth_members + args.growth_small > args.growth_users:
        parser.error("--growth-members must leave room for the first --growth-small users")
    if min(args.users, args.groups, args.clients, args.growth_small) < 1 or args.growth_small < 50:
        parser.error("sizes must be positive (and --growth-small at least 50)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A TERM (timeout, CI) unwinds like Ctrl-C, so every server started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    results: dict[str, Any] = {
        "arguments": vars(args),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
        "cycles": {},
        "floor": {"clients": 8, "loads": {}},
        "verdicts": {},
    }
    status = 0
    try:
        with tempfile.TemporaryDirectory(prefix="securelogin-compare-") as tmp:
            template = migrated_template(args)
            measure_main(args, results, template, Path(tmp))
            if not args.skip_growth:
                results["growth"] = measure_growth(args, template)
            if args.gunicorn_matrix:
                results["matrix"] = measure_matrix(args, template)
    except BaseException as stop:  # noqa: BLE001 - reported below, never swallowed silently
        # The servers are stopped by now; report what was measured before the interruption (a
        # shared machine's PostgreSQL may be restarted under a long run, say).
        traceback.print_exc()
        results["interrupted"] = repr(stop)
        status = 1 if isinstance(stop, Exception) else 130
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["seconds"] = time.monotonic() - started
    if "interrupted" in results:
        print(f"\nINTERRUPTED ({results['interrupted']}): only the parts measured before are reported.")
    print_report(results)
    print(f"\nTook {results['seconds'] / 60:.1f} min; load average at start/end {results['machine']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return status


if __name__ == "__main__":
    sys.exit(main())
