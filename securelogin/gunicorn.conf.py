"""gunicorn settings for `make run` and production.

A SCIM request is CPU-bound Python (the ORM building and reading 5–30 queries) around short
PostgreSQL round trips. On the 2-core benchmark machine (docs/benchmarks.md) one process per core
with four threads each (gthread) replayed Entra's cycle fastest; gunicorn's classic 2×cores+1 sync
workers was the slowest, by 10–30%, five processes fighting PostgreSQL for two cores. The threads
overlap the database waits; each takes its own connection from the worker's psycopg pool, so the pool
(DB_POOL_MAX_SIZE, default 8) must hold at least GUNICORN_THREADS connections.
"""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread" if threads > 1 else "sync"
# Entra gives up on a slow answer and retries the object 40 minutes later (entra-scim.md §6.3); a
# request still running after 30 s is stuck, not slow.
timeout = 30
graceful_timeout = 30
# The TLS proxy in front keeps connections to gunicorn open between requests.
keepalive = 5
# The heartbeat file on tmpfs: a worker must never block on a slow disk to prove it is alive.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-" if os.environ.get("ACCESS_LOG", "1") == "1" else None
wsgi_app = "securelogin.wsgi:application"

_pool_size = int(os.environ.get("DB_POOL_MAX_SIZE", "8"))
if threads > _pool_size:
    raise SystemExit(
        f"GUNICORN_THREADS={threads} exceeds DB_POOL_MAX_SIZE={_pool_size}: threads would queue for a "
        "database connection. Raise DB_POOL_MAX_SIZE or lower GUNICORN_THREADS."
    )
