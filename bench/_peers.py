"""The servers bench/compare.py measures SecureLogin against, and the floor it measures it by.

Everything here is generated at run time into a throw-away directory; no peer code is ever copied
into this repository (the peers are pip-installed into their own virtualenv):

- **scim2-server** (python-scim, PyPI `scim2-server`): its WSGI application over its in-memory
  storage, built the way its own `scim2-server` command builds it (default schemas, resource types
  and service provider configuration, one static bearer token), served by gunicorn with ONE worker:
  the storage lives in the process's memory, so a second worker would be a second, disjoint
  directory. The worker has threads, as the command's own threading server does; the storage takes
  a lock around every operation.
- **django-scim2** (PyPI `django-scim2`): a tiny Django project using django_scim's default URLs,
  views, adapters and filter parsers. Its default adapters need the SCIM id fields of its model
  mixins, so the project's user is `AbstractSCIMUserMixin + AbstractUser` and its group a model with
  `AbstractSCIMGroupMixin` (the set-up its documentation describes). SQLite (with WAL and
  IMMEDIATE transactions, as SecureLogin configures SQLite), gunicorn with 2 sync workers. A
  middleware of ours authenticates one fixed bearer token as a superuser (django_scim's views only
  check `request.user.is_authenticated`); the superuser is loaded once per worker, so the peer pays
  no authentication query at all.
- **the floor**: a tiny Django project on PostgreSQL with a bare JSON view and a view doing the two
  indexed queries any authenticated lookup needs (the token by its unique digest, then the user by
  (tenant, lower(userName))), served with SecureLogin's own gunicorn configuration.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

PEER_REQUIREMENTS = ["scim2-server~=0.8.0", "django-scim2~=0.23.0", "gunicorn>=23"]
READY_TIMEOUT = 60.0
PIP_TIMEOUT = 900.0
STOP_TIMEOUT = 30.0


def ensure_peer_venv(path: Path) -> Path:
    """The peers' virtualenv at `path` (created, or reused when it already holds these pins);
    returns its python. A separate environment, so the peers' Django and pins never touch .venv."""
    python = path / "bin" / "python"
    marker = path / ".securelogin-bench-peers"
    wanted = "\n".join(PEER_REQUIREMENTS)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"Installing the peers into {path} (pip, a minute or two) …", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=PIP_TIMEOUT)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_REQUIREMENTS],
        check=True,
        timeout=PIP_TIMEOUT,
    )
    marker.write_text(wanted)
    return python


def peer_versions(python: Path) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({p: m.version(p) for p in ('scim2-server', 'scim2-models', 'django-scim2', "
        "'scim2-filter-parser', 'Django', 'gunicorn')}))"
    )
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=60, check=True)
    import json

    return json.loads(out.stdout)


class Gunicorn:
    """One gunicorn master in its own process group, with its log in the work directory; always
    stopped (TERM, then KILL after STOP_TIMEOUT)."""

    def __init__(
        self, name: str, argv: list[str], *, cwd: Path, env: dict[str, str], port: int, log_dir: Path
    ) -> None:
        self.name = name
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, path: str, headers: dict[str, str] | None = None) -> None:
        """Poll `path` until it answers 2xx, for at most READY_TIMEOUT seconds."""
        deadline = time.monotonic() + READY_TIMEOUT
        url = f"http://127.0.0.1:{self.port}{path}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(url, headers=headers, timeout=2, trust_env=False).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.name} did not answer {path} within {READY_TIMEOUT:g} s; see {self.log_path}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()


# ------------------------------------------------------------------------------------ scim2-server

SCIM2_SERVER_APP = '''\
"""Generated by SecureLogin's bench/compare.py: scim2-server's WSGI application, built as its
`scim2-server` command builds it, with one static bearer token."""
import os

from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

config = load_default_service_provider_config()
config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
provider = ScimProvider.from_discovery(
    load_default_schemas().values(), load_default_resource_types().values(), config=config
)
application = BearerTokenApplication(
    InMemoryStorage(),
    provider,
    service=ScimService(provider, secret=os.environ["PEER_SECRET"]),
    bearer_tokens=[os.environ["PEER_TOKEN"]],
)
'''


def start_scim2_server(
    python: Path, work: Path, port: int, token: str, *, threads: int = 4
) -> tuple[Gunicorn, str]:
    """scim2-server under gunicorn: 1 worker (in-memory storage), `threads` gthread threads."""
    root = work / "scim2_server_app"
    root.mkdir(parents=True, exist_ok=True)
    (root / "scim2_app.py").write_text(SCIM2_SERVER_APP)
    env = {**_clean_env(), "PEER_TOKEN": token, "PEER_SECRET": hashlib.sha256(token.encode()).hexdigest()}
    kind = ["-k", "gthread", "--threads", str(threads)] if threads > 1 else ["-k", "sync"]
    argv = [str(python), "-m", "gunicorn", "-w", "1", *kind, "-b", f"127.0.0.1:{port}", "--timeout", "30"]
    server = Gunicorn(
        "scim2-server", [*argv, "scim2_app:application"], cwd=root, env=env, port=port, log_dir=work
    )
    server.wait_ready("/v2/ServiceProviderConfig", {"Authorization": f"Bearer {token}"})
    return server, f"http://127.0.0.1:{port}/v2"


# ------------------------------------------------------------------------------------ django-scim2

DJANGO_SCIM2_FILES = {
    "dsproj/__init__.py": "",
    "dsproj/settings.py": '''\
"""Generated by SecureLogin's bench/compare.py: the smallest project serving django-scim2's
default app. Nothing of SecureLogin is imported."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_scim", "peerapp"]
MIDDLEWARE = ["peerapp.auth.BearerSuperuserMiddleware"]
ROOT_URLCONF = "dsproj.urls"
WSGI_APPLICATION = "dsproj.wsgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"
        },
    }
}
AUTH_USER_MODEL = "peerapp.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
PEER_TOKEN = os.environ.get("PEER_TOKEN", "")
SCIM_SERVICE_PROVIDER = {
    "NETLOC": "127.0.0.1",
    "SCHEME": "http",
    "AUTHENTICATION_SCHEMES": [
        {"type": "oauthbearertoken", "name": "Bearer", "description": "A static bearer token"}
    ],
    "GROUP_MODEL": "peerapp.models.ScimGroup",
}
''',
    "dsproj/urls.py": """\
from django.urls import include, path

urlpatterns = [path("scim/v2/", include("django_scim.urls", namespace="scim"))]
""",
    "dsproj/wsgi.py": """\
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsproj.settings")
application = get_wsgi_application()
""",
    "peerapp/__init__.py": "",
    "peerapp/models.py": """\
from django.contrib.auth.models import AbstractUser
from django.db import models
from django_scim.models import AbstractSCIMGroupMixin, AbstractSCIMUserMixin


class ScimGroup(AbstractSCIMGroupMixin):
    name = models.CharField(max_length=150, unique=True)


class User(AbstractSCIMUserMixin, AbstractUser):
    scim_group_set = models.ManyToManyField(ScimGroup, related_name="user_set", blank=True)

    @property
    def scim_groups(self):
        return self.scim_group_set
""",
    "peerapp/auth.py": '''\
import hmac

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser


class BearerSuperuserMiddleware:
    """The one fixed bearer token is a superuser; anything else is anonymous (django_scim answers
    401). The superuser is read once per worker."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.expected = f"Bearer {settings.PEER_TOKEN}".encode()
        self.superuser = None

    def __call__(self, request):
        given = request.META.get("HTTP_AUTHORIZATION", "").encode()
        if settings.PEER_TOKEN and hmac.compare_digest(given, self.expected):
            if self.superuser is None:
                self.superuser = get_user_model().objects.get(username="bench-admin")
            request.user = self.superuser
        else:
            request.user = AnonymousUser()
        return self.get_response(request)
''',
    "manage.py": """\
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dsproj.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
""",
}


def start_django_scim2(
    python: Path, work: Path, port: int, token: str, *, workers: int = 2
) -> tuple[Gunicorn, str]:
    """django-scim2's default app on a new SQLite database, `workers` sync gunicorn workers."""
    root = work / "django_scim2_app"
    write_tree(root, DJANGO_SCIM2_FILES)
    (root / "db.sqlite3").unlink(missing_ok=True)
    env = {**_clean_env(), "PEER_TOKEN": token}
    for args in (
        ["makemigrations", "peerapp", "-v", "0"],
        ["migrate", "--no-input", "-v", "0"],
        [
            "shell",
            "-c",
            "from peerapp.models import User; User.objects.create_superuser('bench-admin', None, None)",
        ],
    ):
        subprocess.run(
            [str(python), "manage.py", *args],
            cwd=root,
            env=env,
            check=True,
            timeout=300,
            stdout=subprocess.DEVNULL,
        )
    argv = [str(python), "-m", "gunicorn", "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{port}"]
    argv += ["--timeout", "30", "dsproj.wsgi:application"]
    server = Gunicorn("django-scim2", argv, cwd=root, env=env, port=port, log_dir=work)
    server.wait_ready("/scim/v2/ServiceProviderConfig", {"Authorization": f"Bearer {token}"})
    return server, f"http://127.0.0.1:{port}/scim/v2"


# ------------------------------------------------------------------------------------------- floor

FLOOR_FILES = {
    "floorproj/__init__.py": "",
    "floorproj/settings.py": '''\
"""Generated by SecureLogin's bench/compare.py: the floor. Same database driver and pool as
SecureLogin (psycopg 3 pool in each worker), no middleware, no apps."""
import os

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = []
MIDDLEWARE = []
ROOT_URLCONF = "floorproj.urls"
WSGI_APPLICATION = "floorproj.wsgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["FLOOR_DB_NAME"],
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            "pool": {
                "min_size": int(os.environ.get("DB_POOL_MIN_SIZE", "1")),
                "max_size": int(os.environ.get("DB_POOL_MAX_SIZE", "8")),
                "timeout": 10,
            }
        },
    }
}
USE_TZ = True
''',
    "floorproj/urls.py": """\
from django.urls import path

from floorproj import views

urlpatterns = [path("bare", views.bare), path("twoquery", views.two_queries)]
""",
    "floorproj/views.py": '''\
import hashlib

from django.db import connection
from django.http import JsonResponse


def bare(request):
    return JsonResponse({"ok": True})


def two_queries(request):
    """What any authenticated lookup costs at least: the credential by its unique digest, then
    the user by the unique (tenant, lower(userName)) index."""
    token = request.META.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
    digest = hashlib.sha256(token.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT tenant_id FROM floor_token WHERE digest = %s AND NOT revoked", [digest])
        row = cursor.fetchone()
        if row is None:
            return JsonResponse({"detail": "invalid token"}, status=401)
        cursor.execute(
            "SELECT id, username, external_id, display_name, active FROM floor_user "
            "WHERE tenant_id = %s AND lower(username) = lower(%s)",
            [row[0], request.GET.get("userName", "")],
        )
        users = [
            {"id": str(r[0]), "userName": r[1], "externalId": r[2], "displayName": r[3], "active": r[4]}
            for r in cursor.fetchall()
        ]
    return JsonResponse({"totalResults": len(users), "Resources": users})
''',
    "floorproj/wsgi.py": """\
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "floorproj.settings")
application = get_wsgi_application()
""",
}


def seed_floor(database_url: str, token: str, usernames: list[str]) -> None:
    """The floor's two tables, with one token and the given users (no ANALYZE, like everything here)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE floor_token (id bigserial PRIMARY KEY, digest varchar(64) NOT NULL UNIQUE, "
            "tenant_id bigint NOT NULL, revoked boolean NOT NULL DEFAULT false)"
        )
        connection.execute(
            "CREATE TABLE floor_user (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL, "
            "username varchar(255) NOT NULL, external_id varchar(255) NOT NULL DEFAULT '', "
            "display_name varchar(255) NOT NULL DEFAULT '', active boolean NOT NULL DEFAULT true)"
        )
        connection.execute(
            "CREATE UNIQUE INDEX floor_user_tenant_lower ON floor_user (tenant_id, lower(username))"
        )
        connection.execute(
            "INSERT INTO floor_token (digest, tenant_id) VALUES (%s, 1), (%s, 2)",
            [hashlib.sha256(token.encode()).hexdigest(), hashlib.sha256(b"other").hexdigest()],
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO floor_user (tenant_id, username, external_id, display_name) "
                "VALUES (1, %s, %s, %s)",
                [(name, f"ext-{i}", f"User {i}") for i, name in enumerate(usernames)],
            )


def start_floor(
    python: Path, work: Path, port: int, database_name: str, gunicorn_env: dict[str, str], gunicorn_conf: Path
) -> Gunicorn:
    """The floor project, served with SecureLogin's gunicorn.conf.py and the same worker settings."""
    root = work / "floor_app"
    write_tree(root, FLOOR_FILES)
    env = {
        **gunicorn_env,
        "FLOOR_DB_NAME": database_name,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ACCESS_LOG": "0",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    argv = [str(python), "-m", "gunicorn", "-c", str(gunicorn_conf), "floorproj.wsgi:application"]
    server = Gunicorn("floor", argv, cwd=root, env=env, port=port, log_dir=work)
    server.wait_ready("/bare")
    return server


def _clean_env() -> dict[str, str]:
    """The environment without SecureLogin's settings, so a peer never picks them up."""
    drop = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SECRET_KEY", "PYTHONPATH", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
