"""POST /Bulk (RFC 7644 §3.7): operations in dependency order, each in its own transaction, with
bulkId references resolved to the ids earlier operations created."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from directory.exceptions import DirectoryError
from scim import errors
from scim.endpoint import SCIMEndpoint, record_failure
from scim.http import RequestContext, Result, json_response, parse_json_body, read_body
from scim.resources import (
    groups_create,
    groups_delete,
    groups_patch,
    groups_replace,
    users_create,
    users_delete,
    users_patch,
    users_replace,
)
from scim.schemas import BULK_REQUEST, BULK_RESPONSE

BULK_ROUTES: dict[tuple[str, str], Callable[..., Result]] = {
    ("POST", "Users"): users_create,
    ("PUT", "Users"): users_replace,
    ("PATCH", "Users"): users_patch,
    ("DELETE", "Users"): users_delete,
    ("POST", "Groups"): groups_create,
    ("PUT", "Groups"): groups_replace,
    ("PATCH", "Groups"): groups_patch,
    ("DELETE", "Groups"): groups_delete,
}


BULK_ID_PREFIX = "bulkId:"


def substitute_bulk_ids(value: Any, bulk_ids: dict[str, str]) -> Any:
    """Replace `bulkId:<id>` references with the ids created by other operations of the same
    request (RFC 7644 §3.7.2). An unknown or failed reference is an error, not a dangling member."""
    if isinstance(value, str) and value.startswith(BULK_ID_PREFIX):
        key = value.removeprefix(BULK_ID_PREFIX)
        if key not in bulk_ids:
            raise errors.InvalidValue(
                f"bulkId {key!r} names no resource created by this request: unknown, or its operation failed."
            )
        return bulk_ids[key]
    if isinstance(value, list):
        return [substitute_bulk_ids(v, bulk_ids) for v in value]
    if isinstance(value, dict):
        return {k: substitute_bulk_ids(v, bulk_ids) for k, v in value.items()}
    return value


def bulk_references(operation: Any) -> set[str]:
    """The bulkIds an operation refers to, in its path or anywhere in its data."""
    if not isinstance(operation, dict):
        return set()
    found: set[str] = set()
    pending: list[Any] = [operation.get("path"), operation.get("data")]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            for part in item.split("/"):
                if part.startswith(BULK_ID_PREFIX):
                    found.add(part.removeprefix(BULK_ID_PREFIX))
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def bulk_order(operations: list[Any]) -> tuple[list[int], list[int]]:
    """The order to run operations in, and those caught in a reference cycle.

    RFC 7644 §3.7.2 lets an operation refer to a resource that a later POST creates, so an
    operation waits until every bulkId it names has been created; otherwise request order holds.
    References to bulkIds no POST defines are left to fail when the operation runs. What can never
    become ready (a cycle, or a reference to itself) is answered with 409, as the RFC allows."""
    defined = {
        str(op["bulkId"]): index
        for index, op in enumerate(operations)
        if isinstance(op, dict) and op.get("bulkId") and str(op.get("method", "")).upper() == "POST"
    }
    waits_for = [{defined[ref] for ref in bulk_references(op) if ref in defined} for op in operations]
    order: list[int] = []
    scheduled: set[int] = set()
    remaining = list(range(len(operations)))
    while True:
        ready = next((i for i in remaining if i not in waits_for[i] and waits_for[i] <= scheduled), None)
        if ready is None:
            return order, remaining
        order.append(ready)
        scheduled.add(ready)
        remaining.remove(ready)


def run_bulk_operation(ctx: RequestContext, operation: Any, bulk_ids: dict[str, str]) -> dict[str, Any]:
    if not isinstance(operation, dict):
        raise errors.InvalidSyntax("Each bulk operation is a JSON object.")
    method = str(operation.get("method", "")).upper()
    path = str(operation.get("path", "")).strip()
    bulk_id = operation.get("bulkId")
    parts = [p for p in path.split("/") if p]
    if method not in ("POST", "PUT", "PATCH", "DELETE") or not parts:
        raise errors.InvalidValue("A bulk operation needs a method (POST, PUT, PATCH, DELETE) and a path.")
    resource = parts[0]
    route = BULK_ROUTES.get((method, resource.capitalize()))
    if route is None:
        raise errors.InvalidPath(f"{method} {path} is not a bulk operation this server supports.")
    if method == "POST":
        if len(parts) != 1:
            raise errors.InvalidPath("POST operations target a collection such as /Users.")
        if not bulk_id:
            raise errors.InvalidValue("A bulk POST needs a bulkId.")
        result = route(ctx, substitute_bulk_ids(operation.get("data"), bulk_ids))
        if result.body is not None:
            bulk_ids[str(bulk_id)] = result.body["id"]
    else:
        if len(parts) != 2:
            raise errors.InvalidPath(f"{method} operations target a resource such as /{resource}/{{id}}.")
        target = substitute_bulk_ids(parts[1], bulk_ids)
        version = operation.get("version")
        if version is not None and not isinstance(version, str):
            raise errors.InvalidValue('A bulk operation\'s version must be an ETag string such as W/"3".')
        if method == "DELETE":
            result = route(ctx, target, version)
        else:
            result = route(ctx, target, substitute_bulk_ids(operation.get("data"), bulk_ids), version)
    response: dict[str, Any] = {"method": method, "status": str(result.status)}
    if bulk_id:
        response["bulkId"] = str(bulk_id)
    canonical = resource.capitalize()
    location = result.location or (f"{ctx.base_url}/{canonical}/{target}" if method != "POST" else "")
    if location:
        response["location"] = location
    if result.version:
        response["version"] = result.version
    return response


class BulkView(SCIMEndpoint):
    """POST /Bulk (RFC 7644 §3.7). Each operation runs in its own transaction: a failed operation
    leaves nothing behind and the others still apply, up to `failOnErrors` failures."""

    http_method_names = ["post"]
    resource_type = "Bulk"

    def post(self, request: HttpRequest) -> HttpResponse:
        max_size, max_operations = settings.SCIM_BULK_MAX_PAYLOAD_SIZE, settings.SCIM_BULK_MAX_OPERATIONS
        raw = read_body(request)
        if len(raw) > max_size:
            raise errors.PayloadTooLarge(
                f"The bulk request is {len(raw)} bytes; maxPayloadSize is {max_size}."
            )
        body = parse_json_body(raw)
        schemas = body.get("schemas") if isinstance(body, dict) else None
        if not isinstance(schemas, list) or BULK_REQUEST not in schemas:
            raise errors.InvalidSyntax(f"A bulk request is a JSON object with the schema {BULK_REQUEST}.")
        operations = body.get("Operations")
        if not isinstance(operations, list) or not operations:
            raise errors.InvalidValue("A bulk request needs a non-empty Operations array.")
        if len(operations) > max_operations:
            raise errors.PayloadTooLarge(
                f"The bulk request has {len(operations)} operations; maxOperations is {max_operations}."
            )
        fail_on_errors = body.get("failOnErrors")
        if fail_on_errors is not None and (
            isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int) or fail_on_errors < 1
        ):
            raise errors.InvalidValue("failOnErrors must be a positive integer.")
        order, cycle = bulk_order(operations)
        cyclic = set(cycle)
        bulk_ids: dict[str, str] = {}
        results: dict[int, dict[str, Any]] = {}
        failures = 0
        for index in [*order, *cycle]:
            operation = operations[index]
            try:
                if index in cyclic:
                    raise errors.SCIMError(
                        "This operation's bulkId references form a cycle, so none of them can be created.",
                        status=409,
                        scim_type="invalidValue",
                    )
                with transaction.atomic():
                    results[index] = run_bulk_operation(self.ctx, operation, bulk_ids)
            except (errors.SCIMError, DirectoryError) as exc:
                error = errors.from_domain(exc) if isinstance(exc, DirectoryError) else exc
                failures += 1
                results[index] = self.bulk_failure(request, operation, error)
                if fail_on_errors is not None and failures >= fail_on_errors:
                    break
        return json_response(
            200, {"schemas": [BULK_RESPONSE], "Operations": [results[i] for i in sorted(results)]}
        )

    def bulk_failure(self, request: HttpRequest, operation: Any, error: errors.SCIMError) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": str(error.status), "response": error.to_dict()}
        path = ""
        if isinstance(operation, dict):
            entry["method"] = str(operation.get("method", "")).upper()
            if operation.get("bulkId"):
                entry["bulkId"] = str(operation["bulkId"])
            path = str(operation.get("path", ""))
        parts = [p for p in path.split("/") if p]
        record_failure(
            self.ctx,
            error,
            method=entry.get("method", "")[:8],
            resource_type={"Users": "User", "Groups": "Group"}.get(parts[0] if parts else "", "Bulk"),
            resource_id=parts[1] if len(parts) > 1 else "",
            path=f"{request.path} {path}"[:512],
        )
        return entry
