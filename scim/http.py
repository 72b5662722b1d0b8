"""The HTTP edge of /scim/v2/: the request context, JSON in and out, query parameters, paging,
ETag preconditions and list responses (RFC 7644 §3.4.2, §3.14). No database access here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from directory import services
from directory.models import Tenant
from scim import errors
from scim.auth import SCIMPrincipal
from scim.representation import etag, parse_attribute_list
from scim.schemas import LIST_RESPONSE, SEARCH_REQUEST

SCIM_CONTENT_TYPE = "application/scim+json"



@dataclass
class RequestContext:
    principal: SCIMPrincipal
    base_url: str

    @property
    def tenant(self) -> Tenant:
        return self.principal.tenant

    @property
    def actor(self) -> services.Actor:
        return self.principal.actor


@dataclass
class Result:
    status: int
    body: dict[str, Any] | None = None
    location: str = ""
    version: str = ""


def scim_base_url(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}/scim/v2"


def json_response(status: int, body: dict[str, Any] | None = None, **headers: str) -> HttpResponse:
    content = json.dumps(body, ensure_ascii=False) if body is not None else ""
    response = HttpResponse(
        content, status=status, content_type=SCIM_CONTENT_TYPE if body is not None else None
    )
    if body is None:
        del response["Content-Type"]
    response["Content-Length"] = str(len(response.content))
    for name, value in headers.items():
        if value:
            response[name.replace("_", "-")] = value
    return response


def _refuse_non_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


MAX_JSON_DEPTH = 32


def check_storable_text(value: Any, *, where: str) -> None:
    """Refuse input the server cannot handle safely, once, at the edge, so it is a 400 on every
    route and database and never a 5xx from deep inside a write (R77):

    - strings the database cannot store: PostgreSQL text holds no NUL character, and a lone
      surrogate (`"\\ud800"` in JSON) cannot be encoded at all;
    - nesting deeper than any SCIM document (a Bulk operation's PATCH value is about six levels),
      which would otherwise exhaust the recursion of whatever walks it later.

    Iterative, so no input can exhaust the stack here."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise errors.InvalidValue(
                    f"{where} contains a NUL character (\\u0000), which cannot be stored."
                )
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise errors.InvalidValue(f"{where} contains text that is not valid Unicode.") from None
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise errors.InvalidSyntax(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep.")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


def parse_json_body(raw: bytes) -> Any:
    """Lenient about a UTF-8 byte-order mark, strict about JSON itself: NaN and Infinity are not
    JSON, and nesting deep enough to exhaust the parser is a syntax error, not a crash."""
    if not raw.strip():
        raise errors.InvalidSyntax("The request body is empty; send a JSON object.")
    try:
        body = json.loads(raw.decode("utf-8-sig"), parse_constant=_refuse_non_json_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidSyntax(f"The request body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise errors.InvalidSyntax("The request body is nested too deeply to be a SCIM document.") from None
    check_storable_text(body, where="The request body")
    return body


def loggable(text: str) -> str:
    """Request-supplied text as the failure log can store it (see check_storable_text)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def read_body(request: HttpRequest) -> bytes:
    """Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE are refused by Django before they are read; that is
    a 413 like the Bulk limits, not the 500 Django's exception would become here."""
    try:
        return request.body
    except RequestDataTooBig:
        raise errors.PayloadTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        ) from None


def _text_param(params: dict[str, Any], name: str) -> str:
    raw = params.get(name)
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise errors.InvalidValue(f"{name} must be a string.")
    return raw.strip()


def _attribute_list_param(params: dict[str, Any], name: str) -> list[str]:
    """A comma-separated string (query parameter) or an array of strings (SearchRequest body)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return parse_attribute_list(raw)
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return [item.strip() for item in raw if item.strip()]
    raise errors.InvalidValue(f"{name} must be a comma-separated string or an array of attribute names.")


def parse_paging(params: dict[str, Any]) -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: startIndex < 1 means 1, count < 0 means 0; count is capped at maxResults."""

    def number(name: str, default: int) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise errors.InvalidValue(f"{name} must be an integer.")
        try:
            return int(str(raw).strip())
        except ValueError:
            raise errors.InvalidValue(f"{name} must be an integer, got {str(raw)[:40]!r}.") from None

    start = max(1, number("startIndex", 1))
    count = min(max(0, number("count", settings.SCIM_MAX_RESULTS)), settings.SCIM_MAX_RESULTS)
    return start, count


def check_if_match(header: str | None, version: int) -> None:
    """RFC 7644 §3.14: a stale If-Match is 412; no If-Match is fine (Entra never sends one, R66)."""
    if not header:
        return
    candidates = [c.strip() for c in header.split(",")]
    if "*" in candidates:
        return
    wanted = {c.removeprefix("W/") for c in candidates}
    if f'"{version}"' not in wanted:
        raise errors.PreconditionFailed(
            f"The resource has changed: its version is {etag(version)}, not {header}.", scim_type=""
        )




@dataclass(frozen=True)
class ListQuery:
    filter: str
    start: int
    count: int
    sort_by: str
    descending: bool
    attributes: list[str]
    excluded: list[str]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ListQuery:
        start, count = parse_paging(params)
        sort_order = _text_param(params, "sortOrder").lower() or "ascending"
        if sort_order not in ("ascending", "descending"):
            raise errors.InvalidValue("sortOrder must be 'ascending' or 'descending'.")
        return cls(
            filter=_text_param(params, "filter"),
            start=start,
            count=count,
            sort_by=_text_param(params, "sortBy"),
            descending=sort_order == "descending",
            attributes=_attribute_list_param(params, "attributes"),
            excluded=_attribute_list_param(params, "excludedAttributes"),
        )



def list_response(total: int, start: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


SEARCH_PARAMETERS = {
    name.lower(): name
    for name in ("filter", "startIndex", "count", "sortBy", "sortOrder", "attributes", "excludedAttributes")
}


def search_request(body: Any) -> ListQuery:
    """RFC 7644 §3.4.3. Member names are matched case-insensitively like every SCIM attribute name;
    `schemas` may be left out, but if sent it must name SearchRequest."""
    if not isinstance(body, dict):
        raise errors.InvalidSyntax("A SearchRequest is a JSON object.")
    schemas = next((v for k, v in body.items() if k.lower() == "schemas"), None)
    if schemas is not None and (not isinstance(schemas, list) or SEARCH_REQUEST not in schemas):
        raise errors.InvalidSyntax(f"A SearchRequest's schemas must be [{SEARCH_REQUEST!r}].")
    return ListQuery.from_params(
        {SEARCH_PARAMETERS[k.lower()]: v for k, v in body.items() if k.lower() in SEARCH_PARAMETERS}
    )


def if_none_match(header: str | None, version: str) -> bool:
    if not header:
        return False
    candidates = {c.strip() for c in header.split(",")}
    return "*" in candidates or version in candidates or version.removeprefix("W/") in candidates

