"""The OAuth and cookie settings as production gets them (tests/settings.py relaxes cookies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, securelogin.settings as s; print(json.dumps({"
    "'session_secure': s.SESSION_COOKIE_SECURE, 'csrf_secure': s.CSRF_COOKIE_SECURE,"
    "'httponly': s.SESSION_COOKIE_HTTPONLY, 'frame': s.X_FRAME_OPTIONS,"
    "'access': s.OAUTH2_PROVIDER['ACCESS_TOKEN_EXPIRE_SECONDS'],"
    "'schemes': s.OAUTH2_PROVIDER['ALLOWED_REDIRECT_URI_SCHEMES'],"
    "'secret_days': s.OAUTH_CLIENT_SECRET_LIFETIME_DAYS,"
    "'storage': s.OAUTH2_PROVIDER['COMPLIANT_BCP_RFC9700_TOKEN_STORAGE'],"
    "'reuse': s.OAUTH2_PROVIDER['REFRESH_TOKEN_REUSE_PROTECTION']}))"
)


def production_settings(**env: str) -> dict:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECURE_COOKIES", "DJANGO_SETTINGS_MODULE"}
    }
    clean.update({"SECRET_KEY": "probe", **env})
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_production_defaults_are_secure() -> None:
    values = production_settings()
    assert values["session_secure"] is True and values["csrf_secure"] is True and values["httponly"] is True
    assert values["frame"] == "DENY"
    assert values["access"] == 3600
    assert values["schemes"] == ["https"]
    assert values["secret_days"] == 730
    assert values["storage"] is True and values["reuse"] is True


def test_debug_relaxes_cookies_and_redirect_schemes() -> None:
    values = production_settings(DEBUG="1")
    assert values["session_secure"] is False
    assert values["schemes"] == ["https", "http"]


@pytest.mark.parametrize(("configured", "effective"), [("60", 3600), ("7200", 7200), ("99999", 21600)])
def test_access_token_lifetime_is_clamped_to_one_to_six_hours(configured: str, effective: int) -> None:
    assert production_settings(ACCESS_TOKEN_EXPIRE_SECONDS=configured)["access"] == effective


@pytest.mark.parametrize(("configured", "effective"), [("30", 365), ("500", 500), ("5000", 1095)])
def test_client_secret_lifetime_is_clamped_to_one_to_three_years(configured: str, effective: int) -> None:
    assert production_settings(OAUTH_CLIENT_SECRET_LIFETIME_DAYS=configured)["secret_days"] == effective
