"""Test settings: the production module with development secrets and fast hashing."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")
os.environ.setdefault("SECURELOGIN_BASE_DOMAIN", "testserver")

from securelogin.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURELOGIN_EXTRA_ROOT_HOSTS = ["localhost", "127.0.0.1"]
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
WHITENOISE_AUTOREFRESH = True

# Live-server and threaded tests open their own connections; a psycopg pool would keep them open
# past teardown and block dropping the test database.
DATABASES["default"].get("OPTIONS", {}).pop("pool", None)  # noqa: F405
