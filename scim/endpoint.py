"""The base of every /scim/v2/ view: authenticate, dispatch, map every error to a SCIM error body
(RFC 7644 §3.12) and log failures in the tenant's provisioning log.

Transactions belong to the operations (scim.resources): each write is one service call that is its
own transaction, so the base opens none and never turns a service's transaction into a savepoint.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from directory import services
from directory.exceptions import DirectoryError
from directory.models import Event
from scim import errors
from scim.auth import authenticate
from scim.http import (
    RequestContext,
    Result,
    check_storable_text,
    json_response,
    loggable,
    parse_json_body,
    read_body,
    scim_base_url,
)

logger = logging.getLogger(__name__)


def record_failure(
    ctx: RequestContext,
    exc: errors.SCIMError,
    *,
    method: str,
    resource_type: str,
    resource_id: str,
    path: str,
) -> None:
    """A failed request in the tenant's provisioning log, as Entra's admins need it to see what was
    refused and why. Written after the request's own changes rolled back (or, in /Bulk, after the
    operation's savepoint did), inside its own savepoint so a logging failure cannot break the
    response."""
    try:
        with transaction.atomic():
            services.event_record(
                tenant=ctx.tenant,
                actor=ctx.actor,
                action=f"scim.{method.lower()}_{resource_type.lower() or 'request'}"[:64],
                result=Event.Result.FAILURE,
                resource_type=resource_type[:32],
                resource_id=loggable(resource_id)[:64],
                status=exc.status,
                scim_type=exc.scim_type,
                detail=loggable(exc.detail)[:2000],
                request_method=method,
                request_path=loggable(path),
            )
    except DatabaseError:
        logger.exception("Could not record the failed SCIM request")


class SCIMEndpoint(View):
    """Base of every /scim/v2/ view: authenticate, run the handler, and turn every error into a SCIM
    error body; failures are logged as Events after the operation's transaction rolled back."""

    requires_auth = True
    resource_type = ""
    http_method_names = ["get", "post", "put", "patch", "delete"]

    @method_decorator(csrf_exempt)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.context: RequestContext | None = None
        method = request.method.lower() if request.method else ""
        try:
            if self.requires_auth:
                self.context = RequestContext(
                    principal=authenticate(request), base_url=scim_base_url(request)
                )
            handler = getattr(self, method, None)
            if method not in self.http_method_names or handler is None:
                raise errors.MethodNotAllowed(f"{request.method} is not supported on {request.path}.")
            self.check_request(request)
            return handler(request, *args, **kwargs)
        except DirectoryError as exc:
            return self.failure(request, errors.from_domain(exc), kwargs)
        except errors.SCIMError as exc:
            return self.failure(request, exc, kwargs)
        except DatabaseError:
            logger.exception("Database error while serving %s %s", request.method, request.path)
            return self.failure(
                request,
                errors.SCIMError("The service is temporarily unavailable; retry later.", status=503),
                kwargs,
            )
        except Exception:
            logger.exception("Unexpected error while serving %s %s", request.method, request.path)
            return self.failure(request, errors.SCIMError("Internal server error.", status=500), kwargs)

    def failure(self, request: HttpRequest, exc: errors.SCIMError, kwargs: dict[str, Any]) -> HttpResponse:
        headers: dict[str, str] = {}
        if exc.status == 401:
            headers["WWW_Authenticate"] = settings.SCIM_SERVICE_PROVIDER["WWW_AUTHENTICATE_HEADER"]
        if exc.status == 405:
            headers["Allow"] = ", ".join(self.allowed_methods(kwargs))
        if self.context is not None and exc.status != 401:
            record_failure(
                self.context,
                exc,
                method=request.method or "",
                resource_type=self.resource_type,
                resource_id=str(kwargs.get("scim_id", "")),
                path=request.path,
            )
        return json_response(exc.status, exc.to_dict(), **headers)

    def check_request(self, request: HttpRequest) -> None:
        """A view's own precondition on the request, checked after authentication and the method;
        overriding this rather than `dispatch` keeps the CSRF exemption and the error mapping."""

    def allowed_methods(self, kwargs: dict[str, Any]) -> list[str]:
        """For the `Allow` header a 405 must carry (RFC 9110 §15.5.6)."""
        return [m.upper() for m in self.http_method_names if hasattr(self, m)]

    @property
    def ctx(self) -> RequestContext:
        if self.context is None:
            raise errors.Unauthorized("Authentication required.")
        return self.context

    def respond(self, result: Result) -> HttpResponse:
        return json_response(
            result.status,
            result.body,
            Location=result.location if result.status == 201 else "",
            ETag=result.version,
        )

    def body(self, request: HttpRequest) -> Any:
        return parse_json_body(read_body(request))

    def params(self, request: HttpRequest) -> dict[str, Any]:
        params = {k: v for k, v in request.GET.items()}
        check_storable_text(params, where="The query string")
        return params

