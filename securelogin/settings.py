"""SecureLogin settings: one module, driven by environment variables.

Production must set SECRET_KEY (and normally DATABASE_URL, SECURELOGIN_BASE_DOMAIN, CACHE_URL).
`make run` and the test suite supply development values themselves, so this module never ships a
usable secret of its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from oauth.pkce import pkce_required

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}.") from exc


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is required. `make run` and the tests set a development key; production must set its own."
    )

DEBUG = env_bool("DEBUG", False)

# Tenants live on <slug>.<base domain>; the base domain itself is the platform (operators) host.
SECURELOGIN_BASE_DOMAIN = os.environ.get("SECURELOGIN_BASE_DOMAIN", "localhost").strip().lower().rstrip(".")

# Host validation happens in directory.tenancy.TenantMiddleware against stored tenant hosts, which is
# stricter than a static list: an unknown host gets 404 before any view runs. Django's own check is
# therefore opened up here, and the middleware is the gate.
ALLOWED_HOSTS = ["*"]
# Further names of the root (platform) host, e.g. "127.0.0.1" for local runs.
SECURELOGIN_EXTRA_ROOT_HOSTS = [
    h.strip().lower() for h in os.environ.get("SECURELOGIN_EXTRA_ROOT_HOSTS", "").split(",") if h.strip()
]

INSTALLED_APPS = [
    "directory.admin_site.SecureLoginAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "axes",
    "directory",
    "oauth",
    "scim",
    "api",
    "sso",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "directory.tenancy.TenantMiddleware",
    "securelogin.middleware.BearerOnlyPathMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "directory.tenancy.TenantSessionGuardMiddleware",
    "sso.middleware.EndedSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Paths whose clients authenticate each request with a bearer token and never with a session: they
# skip the browser middleware below BearerOnlyPathMiddleware (securelogin/middleware.py).
BEARER_ONLY_PATH_PREFIXES = ["/scim/v2/"]

ROOT_URLCONF = "securelogin.urls"
WSGI_APPLICATION = "securelogin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "directory.context_processors.tenant_branding",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg 3's pool inside each gunicorn worker; CONN_MAX_AGE must stay 0 with it.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 1),
        "max_size": env_int("DB_POOL_MAX_SIZE", 8),
        "timeout": 10,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions make SQLite take its write lock up front, so concurrent writers queue
    # instead of failing with "database is locked" half-way through a request.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = False

CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "directory.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "directory.backends.TenantModelBackend",
    # Loads SSO sessions (get_user); never authenticates, so axes never sees an SSO sign-in.
    "sso.backends.SsoBackend",
]
# userName is unique per tenant (a database constraint), not globally; TenantModelBackend resolves
# (tenant, username) itself, so Django's global-uniqueness warning does not apply.
SILENCED_SYSTEM_CHECKS = ["auth.W004", "axes.W006"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/account/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Browser hardening. Cookies are host-only: a session on contoso.example never reaches fabrikam.example.
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# django-axes: lock a (tenant host, username) pair after repeated failures at the tenant sign-in.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = 0.25  # hours
# Per (tenant, username), whatever the address: a password guesser rotating addresses is still
# stopped. (axes.W006 recommends adding the IP; that would let rotation bypass the limit.)
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_LOCKOUT_CALLABLE = "oauth.views.lockout_response"
AXES_USERNAME_CALLABLE = "directory.backends.axes_username"
# axes' own admin lists every tenant's sign-in attempts (usernames, addresses) to every manager;
# its rows carry no tenant to scope by, so it stays out of the admin.
AXES_ENABLE_ADMIN = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "oauth2_provider.contrib.rest_framework.OAuth2Authentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SecureLogin directory API",
    "DESCRIPTION": (
        "Read a tenant's users, groups and memberships, and follow every directory change. "
        "Authenticate with an OAuth 2.0 client-credentials token from /oauth/token/ "
        "(scopes directory:read, events:read)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
}
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)

# Single sign-on (sso/). djangosaml2 builds each tenant's SP config per request from its SsoSettings;
# its SamlSessionMiddleware is deliberately not installed (outstanding requests are kept server-side,
# sso.models.SamlRequest).
SAML_CONFIG_LOADER = "sso.saml.sso_config_loader"
# Every SAML page here sets its own CSP (oauth.security.secure_page); django-csp is not used.
SAML_CSP_HANDLER = ""
# Tests and local trials only: IdP metadata from http://127.0.0.1 and IdP URLs on loopback.
SSO_ALLOW_LOCAL_IDP = env_bool("SSO_ALLOW_LOCAL_IDP", False)
SSO_METADATA_FETCH_TIMEOUT = 10.0
# Scheme and port of the URLs given to Entra when no request says (console page, command).
SSO_PUBLIC_SCHEME = os.environ.get("SSO_PUBLIC_SCHEME", "https")
SSO_PUBLIC_PORT = os.environ.get("SSO_PUBLIC_PORT", "")

OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth.Application"
OAUTH2_PROVIDER = {
    # Entra's gallery validator requires 60–360 minutes; one hour unless configured.
    "ACCESS_TOKEN_EXPIRE_SECONDS": max(3600, min(21600, env_int("ACCESS_TOKEN_EXPIRE_SECONDS", 3600))),
    "REFRESH_TOKEN_EXPIRE_SECONDS": 90 * 24 * 3600,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    # Entra's Authorize button sends no PKCE: required for public clients only (oauth.validators).
    "PKCE_REQUIRED": pkce_required,
    "SCOPES": {
        "scim": "Provision users and groups over SCIM 2.0",
        "directory:read": "Read the directory's users, groups and memberships (/api/v1/)",
        "events:read": "Read the change feed of the directory (/api/v1/events/)",
    },
    "DEFAULT_SCOPES": ["scim"],
    "REQUEST_APPROVAL_PROMPT": "force",
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"] if not DEBUG else ["https", "http"],
    "ALLOW_URI_WILDCARDS": False,
    "OAUTH2_VALIDATOR_CLASS": "oauth.validators.TenantOAuth2Validator",
    # Only the authorization-code, refresh and client-credentials grants exist (RFC 9700 §2.1.2, §2.4).
    "OAUTH2_SERVER_CLASS": "oauth.server.SecureLoginServer",
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    # Bearer tokens only in the Authorization header, never in a URL (RFC 9700 §4.3.2).
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    # RFC 9207 `iss` in the authorization response (mix-up defence; RFC 9700 §4.4).
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    # `check --deploy` turns a regression of these into an error.
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": not DEBUG,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}
# Lifetime of a new client secret, clamped to Entra's 1–3 years (entra-scim.md §5.5).
OAUTH_CLIENT_SECRET_LIFETIME_DAYS = max(365, min(1095, env_int("OAUTH_CLIENT_SECRET_LIFETIME_DAYS", 730)))

# What /ServiceProviderConfig advertises about authentication, and the challenge a 401 carries.
SCIM_SERVICE_PROVIDER = {
    "AUTHENTICATION_SCHEMES": [
        {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a per-tenant bearer token (secret token or OAuth 2.0).",
            "primary": True,
        }
    ],
    "WWW_AUTHENTICATE_HEADER": 'Bearer realm="scim"',
}

# SCIM limits, advertised in /ServiceProviderConfig and enforced by scim.views.
SCIM_MAX_RESULTS = env_int("SCIM_MAX_RESULTS", 200)
SCIM_BULK_MAX_OPERATIONS = env_int("SCIM_BULK_MAX_OPERATIONS", 1000)
SCIM_BULK_MAX_PAYLOAD_SIZE = env_int("SCIM_BULK_MAX_PAYLOAD_SIZE", 1048576)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(SCIM_BULK_MAX_PAYLOAD_SIZE * 2, 2621440)
# Seconds a worker may keep a SCIM credential's answer and a Host → tenant answer (directory.cache):
# the delay before a revocation or tenant change made in another process is seen; 0 turns the
# caches off. At most 5, so a revoked token never works more than 5 s anywhere.
SCIM_CREDENTIAL_CACHE_SECONDS = max(0, min(5, env_int("SCIM_CREDENTIAL_CACHE_SECONDS", 5)))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "axes": {"level": "WARNING"},
        "saml2": {"level": "WARNING"},
        "djangosaml2": {"level": "WARNING"},
    },
}
