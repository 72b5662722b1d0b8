"""One command for the benchmarks (`make bench`): prepare a benchmark database, serve it with gunicorn
exactly as production would (securelogin/gunicorn.conf.py), replay an Entra cycle against it with
bench/entra_cycle.py, optionally run bench/flatness.py, and stop the server again.

    .venv/bin/python bench/run.py                       # 1,000 users, 10 groups, 2,000 memberships, C=8
    .venv/bin/python bench/run.py --users 10000 --groups 100 --memberships 20000 --clients 8
    .venv/bin/python bench/run.py --flatness            # also the 1k-vs-100k flatness benchmark
    .venv/bin/python bench/run.py --flatness-only       # only that one

The database must be PostgreSQL on this machine (the default is postgres://postgres@127.0.0.1:5432/
bench_scim; flatness uses bench_flat); it is created when missing and migrated, never dropped
unless --recreate is given. The server listens on a free port of 127.0.0.1 and is always stopped.

Statistics: this runner never runs ANALYZE (it used to stand in for autoanalyze when the server had
autovacuum off). A benchmark measures the database as production has it, and an initial cycle grows
the directory tables from nothing within minutes, before autoanalyze comes by: the planner still has
the statistics of the empty tables (none) while the cycle runs. Queries that need fresh statistics
to stay fast show up here as they would in a tenant's first cycle.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
BENCH_SECRET_KEY = "bench-only-not-secret"
READY_TIMEOUT = 60.0


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def ensure_database(url: str, *, recreate: bool) -> None:
    """Create the benchmark database (connected to the `postgres` maintenance database)."""
    import psycopg

    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or (parts.hostname or "") not in LOOPBACK:
        sys.exit(f"Benchmarks run on a PostgreSQL server of this machine only, not {url!r}.")
    name = database_name(url)
    if not name.startswith("bench"):
        sys.exit(f"Refusing database {name!r}: benchmark databases are named bench*.")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and recreate:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')
            print(f"Created database {name}.", file=sys.stderr)


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout.strip()


def prepare(env: dict[str, str], slug: str) -> str:
    """Make sure the benchmark tenant exists, and mint a fresh SCIM token for it."""
    result = subprocess.run(
        [PYTHON, "manage.py", "create_tenant", "--slug", slug, "--name", "Benchmark"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 and "already exists" not in result.stderr:
        sys.exit(f"create_tenant failed:\n{result.stderr.strip()}")
    return manage(env, "issue_scim_token", "--tenant", slug, "--name", "benchmark").splitlines()[-1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """gunicorn with securelogin/gunicorn.conf.py in its own process group, stopped on exit."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.log_path = Path(tempfile.gettempdir()) / "securelogin-bench-gunicorn.log"
        self.log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "-c", "securelogin/gunicorn.conf.py"],
            cwd=REPO_ROOT,
            env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/scim/v2"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/ServiceProviderConfig", timeout=2, trust_env=False).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit(f"gunicorn did not answer within a minute; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def run_benchmark(database_url: str, args: argparse.Namespace, command: list[str], *, recreate: bool) -> int:
    ensure_database(database_url, recreate=recreate)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": BENCH_SECRET_KEY,
        "SECURE_COOKIES": "0",
        "SECURELOGIN_EXTRA_ROOT_HOSTS": "127.0.0.1",
        "ACCESS_LOG": "0",
        "LOG_LEVEL": "WARNING",
    }
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    manage(env, "migrate", "--no-input", "-v", "0")
    token = prepare(env, args.tenant) if "--token" in command else ""
    server = Server(env, free_port())
    try:
        server.wait_ready()
        full = [PYTHON, str(BENCH_DIR / command[0]), "--base-url", server.base_url, *command[1:]]
        if token:
            full[full.index("--token") + 1] = token
        print(f"$ {' '.join(c if c != token else 'slt_…' for c in full)}", file=sys.stderr)
        return subprocess.run(full, cwd=REPO_ROOT, env=env, check=False).returncode
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_scim"),
    )
    parser.add_argument(
        "--flatness-database-url",
        default=os.environ.get("BENCH_FLAT_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_flat"),
    )
    parser.add_argument("--tenant", default="bench", help="Slug of the benchmark tenant.")
    parser.add_argument("--workers", type=int, default=0, help="WEB_CONCURRENCY (default: the config's).")
    parser.add_argument("--threads", type=int, default=0, help="GUNICORN_THREADS (default: the config's).")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--memberships", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--recreate", action="store_true", help="Drop and recreate the database first.")
    parser.add_argument("--flatness", action="store_true", help="Also run bench/flatness.py.")
    parser.add_argument("--flatness-only", action="store_true", help="Run bench/flatness.py only.")
    parser.add_argument(
        "--json", metavar="PREFIX", help="Write PREFIX-cycle.json (and PREFIX-flatness.json)."
    )
    args = parser.parse_args(argv)
    cycle = [
        "entra_cycle.py",
        "--token",
        "",
        "--users",
        str(args.users),
        "--groups",
        str(args.groups),
        "--memberships",
        str(args.memberships),
        "--clients",
        str(args.clients),
    ]
    if args.json:
        cycle += ["--json", f"{args.json}-cycle.json"]
    status = 0
    if not args.flatness_only:
        status = run_benchmark(args.database_url, args, cycle, recreate=args.recreate)
    if args.flatness or args.flatness_only:
        flatness = ["flatness.py", "--database-url", args.flatness_database_url]
        if args.json:
            flatness += ["--json", f"{args.json}-flatness.json"]
        status = run_benchmark(args.flatness_database_url, args, flatness, recreate=False) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
