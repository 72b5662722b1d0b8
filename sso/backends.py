"""The session backend of SSO sign-ins.

SSO users are signed in with `login(request, user, backend=SSO_BACKEND)` by the SAML and OIDC
views after their own checks, never through `django.contrib.auth.authenticate`: that path runs
django-axes, which would count every refused assertion as a failed password on one key and lock
the whole tenant out of SSO after five (security.md §1.6). So `authenticate` here never signs
anyone in, and `get_user` is the tenant backend's: a user SCIM deactivated or deleted, a service
principal or a user of a deactivated tenant loads as anonymous on the next request, which ends
every SSO session of that user at once.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from directory.backends import TenantModelBackend

SSO_BACKEND = "sso.backends.SsoBackend"


class SsoBackend(TenantModelBackend):
    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        return None
