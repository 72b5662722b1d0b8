"""The /scim/v2/ endpoints (RFC 7644): the resource collections and their members, searches,
Bulk and the discovery documents. The operations themselves are in scim.resources; the base view,
authentication and error mapping in scim.endpoint.

django-scim2 is not used: its views and adapters read and write a resource through several model
round trips per request, which is what this package replaces (README, "Why not django-scim2").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt

from scim import errors
from scim.bulk import BulkView
from scim.endpoint import SCIMEndpoint
from scim.http import (
    ListQuery,
    RequestContext,
    Result,
    if_none_match,
    json_response,
    list_response,
    loggable,
    scim_base_url,
    search_request,
)
from scim.representation import project
from scim.resources import (
    groups_create,
    groups_delete,
    groups_get_one,
    groups_list,
    groups_patch,
    groups_replace,
    search_all,
    users_create,
    users_delete,
    users_get_one,
    users_list,
    users_patch,
    users_replace,
)
from scim.schemas import (
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    SCHEMAS,
    SERVICE_PROVIDER_CONFIG_SCHEMA,
    USER_SCHEMA,
    resource_type_documents,
    schema_document,
)

__all__ = ["BulkView"]


class ResourceView(SCIMEndpoint):
    """/Users and /Groups: the collection and its members, with and without a trailing slash."""

    schema = USER_SCHEMA
    get_one: Callable[[RequestContext, str], Result]
    list_all: Callable[[RequestContext, ListQuery], Result]
    create: Callable[[RequestContext, Any], Result]
    replace: Callable[[RequestContext, str, Any, str | None], Result]
    modify: Callable[..., Result]
    remove: Callable[[RequestContext, str, str | None], Result]

    def allowed_methods(self, kwargs: dict[str, Any]) -> list[str]:
        return ["GET", "POST"] if kwargs.get("scim_id") is None else ["GET", "PUT", "PATCH", "DELETE"]

    def get(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        query = ListQuery.from_params(self.params(request))
        if scim_id is None:
            return self.respond(type(self).list_all(self.ctx, query))
        result = type(self).get_one(self.ctx, scim_id, query)
        if if_none_match(request.headers.get("If-None-Match"), result.version):
            return json_response(304, None, ETag=result.version)
        if result.body is not None:
            result.body = project(
                result.body, schema=self.schema, attributes=query.attributes, excluded=query.excluded
            )
        return self.respond(result)

    def post(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        if scim_id is not None:
            raise errors.MethodNotAllowed(f"POST a new {self.resource_type} to the collection, not to an id.")
        return self.respond(type(self).create(self.ctx, self.body(request)))

    def put(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        if scim_id is None:
            raise errors.MethodNotAllowed(f"PUT needs an id: /{self.resource_type}s/{{id}}.")
        return self.respond(
            type(self).replace(self.ctx, scim_id, self.body(request), request.headers.get("If-Match"))
        )

    def patch(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        """204 No Content, or 200 with the projected resource when the request names `attributes`
        or `excludedAttributes` (RFC 7644 §3.5.2)."""
        if scim_id is None:
            raise errors.MethodNotAllowed(f"PATCH needs an id: /{self.resource_type}s/{{id}}.")
        query = ListQuery.from_params(self.params(request))
        answer = bool(query.attributes or query.excluded)
        result = type(self).modify(
            self.ctx, scim_id, self.body(request), request.headers.get("If-Match"), answer=answer
        )
        if answer and result.body is not None:
            result.body = project(
                result.body, schema=self.schema, attributes=query.attributes, excluded=query.excluded
            )
        return self.respond(result)

    def delete(self, request: HttpRequest, scim_id: str | None = None) -> HttpResponse:
        if scim_id is None:
            raise errors.MethodNotAllowed(f"DELETE needs an id: /{self.resource_type}s/{{id}}.")
        return self.respond(type(self).remove(self.ctx, scim_id, request.headers.get("If-Match")))


class UsersView(ResourceView):
    resource_type = "User"
    schema = USER_SCHEMA
    get_one = staticmethod(users_get_one)
    list_all = staticmethod(users_list)
    create = staticmethod(users_create)
    replace = staticmethod(users_replace)
    modify = staticmethod(users_patch)
    remove = staticmethod(users_delete)


class GroupsView(ResourceView):
    resource_type = "Group"
    schema = GROUP_SCHEMA
    get_one = staticmethod(groups_get_one)
    list_all = staticmethod(groups_list)
    create = staticmethod(groups_create)
    replace = staticmethod(groups_replace)
    modify = staticmethod(groups_patch)
    remove = staticmethod(groups_delete)


class SearchView(SCIMEndpoint):
    """POST /.search, /Users/.search, /Groups/.search (RFC 7644 §3.4.3)."""

    http_method_names = ["post"]
    search: Callable[[RequestContext, ListQuery], Result] = staticmethod(search_all)

    def post(self, request: HttpRequest) -> HttpResponse:
        return self.respond(type(self).search(self.ctx, search_request(self.body(request))))


class UserSearchView(SearchView):
    resource_type = "User"
    search = staticmethod(users_list)


class GroupSearchView(SearchView):
    resource_type = "Group"
    search = staticmethod(groups_list)


# ------------------------------------------------------------------------------------------ discovery


class DiscoveryView(SCIMEndpoint):
    """Discovery documents carry no tenant data, so they need no credential (RFC 7644 §4).

    RFC 7644 §4: query parameters are ignored here, except that a `filter` SHOULD get a 403, so no
    client believes the documents it receives matched its filter."""

    requires_auth = False
    http_method_names = ["get"]

    def check_request(self, request: HttpRequest) -> None:
        if request.GET.get("filter", "").strip():
            raise errors.Forbidden("Discovery endpoints cannot be filtered (RFC 7644 §4).")


class ServiceProviderConfigView(DiscoveryView):
    def get(self, request: HttpRequest) -> HttpResponse:
        base_url = scim_base_url(request)
        body = {
            "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
            "documentationUri": f"{request.scheme}://{request.get_host()}/",
            "patch": {"supported": True},
            "bulk": {
                "supported": True,
                "maxOperations": settings.SCIM_BULK_MAX_OPERATIONS,
                "maxPayloadSize": settings.SCIM_BULK_MAX_PAYLOAD_SIZE,
            },
            "filter": {"supported": True, "maxResults": settings.SCIM_MAX_RESULTS},
            "changePassword": {"supported": False},
            "sort": {"supported": True},
            "etag": {"supported": True},
            "authenticationSchemes": settings.SCIM_SERVICE_PROVIDER["AUTHENTICATION_SCHEMES"],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": f"{base_url}/ServiceProviderConfig",
            },
        }
        return json_response(200, body)


class ResourceTypesView(DiscoveryView):
    def get(self, request: HttpRequest, name: str | None = None) -> HttpResponse:
        documents = resource_type_documents(base_url=scim_base_url(request))
        if name is not None:
            if name not in documents:
                raise errors.NotFound(f"No resource type {name!r}.")
            return json_response(200, documents[name])
        resources = list(documents.values())
        return json_response(200, list_response(len(resources), 1, resources))


class SchemasView(DiscoveryView):
    def get(self, request: HttpRequest, uri: str | None = None) -> HttpResponse:
        base_url = scim_base_url(request)
        if uri is not None:
            if uri not in SCHEMAS:
                raise errors.NotFound(f"No schema {uri!r}.")
            return json_response(200, schema_document(uri, base_url=base_url))
        resources = [
            schema_document(u, base_url=base_url) for u in (USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_SCHEMA)
        ]
        return json_response(200, list_response(len(resources), 1, resources))


class NotFoundView(SCIMEndpoint):
    """Any other path under /scim/v2/, whatever the method: a SCIM 404, never Django's HTML page
    (R76). Exempt from CSRF like every SCIM route, or a POST would get Django's CSRF 403 instead."""

    requires_auth = False

    @method_decorator(csrf_exempt)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return json_response(404, errors.NotFound(f"No SCIM endpoint at {loggable(request.path)}.").to_dict())
