"""Secrets the service must read back in the clear (webhook signing secrets), encrypted at rest.

A password or token is hashed because it only has to be compared; a signing secret has to be used,
so it is encrypted (Fernet: AES-128-CBC with HMAC-SHA256) under a key derived from SECRET_KEY.
Rotating SECRET_KEY therefore makes stored signing secrets unreadable: rotate each endpoint's
secret after it (the console's "Rotate secret").
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

WEBHOOK_SECRET_PREFIX = "whsec_"


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"securelogin:webhook-secret:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(value: str) -> str | None:
    """None when the ciphertext was made under another SECRET_KEY or is damaged."""
    try:
        return _fernet().decrypt(value.encode()).decode()
    except InvalidToken:
        return None
