"""Domain errors raised by directory.services and mapped once at each edge (SCIM error JSON,
OAuth error, admin message). `code` matches RFC 7644 §3.12 scimType values where one exists."""

from __future__ import annotations


class DirectoryError(Exception):
    code = "invalidValue"

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidValue(DirectoryError):
    code = "invalidValue"


class UniquenessConflict(DirectoryError):
    code = "uniqueness"


class NotFound(DirectoryError):
    code = "noTarget"


class ReferenceNotFound(DirectoryError):
    """A reference (group member, manager) names no resource of this tenant. Deliberately the same
    error whether the id is unknown or belongs to another tenant, so nothing leaks across tenants."""

    code = "invalidValue"


class TenantMismatch(DirectoryError):
    code = "invalidValue"


class ProtectedResource(DirectoryError):
    code = "mutability"
