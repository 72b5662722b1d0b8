"""SCIM errors (RFC 7644 §3.12): every 4xx/5xx from /scim/v2/ is one of these, rendered as
`{"schemas": [Error], "status": "<string>", "scimType": …, "detail": …}` with
`Content-Type: application/scim+json` (entra-scim.md R76)."""

from __future__ import annotations

from typing import Any

from directory import exceptions as domain

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class SCIMError(Exception):
    status = 400
    scim_type = ""

    def __init__(self, detail: str, *, scim_type: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if scim_type is not None:
            self.scim_type = scim_type
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


class BadRequest(SCIMError):
    status = 400


class InvalidFilter(SCIMError):
    status = 400
    scim_type = "invalidFilter"


class InvalidSyntax(SCIMError):
    status = 400
    scim_type = "invalidSyntax"


class InvalidPath(SCIMError):
    status = 400
    scim_type = "invalidPath"


class InvalidValue(SCIMError):
    status = 400
    scim_type = "invalidValue"


class NoTarget(SCIMError):
    status = 400
    scim_type = "noTarget"


class Mutability(SCIMError):
    status = 400
    scim_type = "mutability"


class TooMany(SCIMError):
    status = 400
    scim_type = "tooMany"


class Unauthorized(SCIMError):
    status = 401


class Forbidden(SCIMError):
    status = 403


class NotFound(SCIMError):
    status = 404


class MethodNotAllowed(SCIMError):
    status = 405


class Conflict(SCIMError):
    status = 409
    scim_type = "uniqueness"


class PreconditionFailed(SCIMError):
    status = 412


class PayloadTooLarge(SCIMError):
    status = 413


class NotImplementedByServer(SCIMError):
    status = 501


def from_domain(exc: domain.DirectoryError) -> SCIMError:
    """The one place where directory errors become SCIM errors."""
    if isinstance(exc, domain.UniquenessConflict):
        return Conflict(exc.message)
    if isinstance(exc, domain.NotFound):
        return NotFound(exc.message)
    if isinstance(exc, domain.ProtectedResource):
        return Mutability(exc.message)
    return InvalidValue(exc.message)
