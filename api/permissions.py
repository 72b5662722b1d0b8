"""Scope checks for /api/v1/: `directory:read` for users and groups, `events:read` for the feed."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api.authentication import ApiCredential


class HasApiScope(BasePermission):
    """The view names its scope in `required_scope`. A valid token without it is 403 with
    `insufficient_scope` in the message (RFC 6750 §3.1); no token at all is 401."""

    message = "insufficient_scope: this token lacks the scope the endpoint requires."

    def has_permission(self, request: Request, view: Any) -> bool:
        credential = request.auth
        if not isinstance(credential, ApiCredential):
            return False
        return getattr(view, "required_scope", None) in credential.scopes
