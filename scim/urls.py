"""Routes of /scim/v2/. Every collection answers with and without a trailing slash, never with a
redirect (a redirected POST or PATCH would be lost), and endpoint names match in any case
(`/users`, `/GROUPS`): RFC 7644 §3.2 names resources without promising a case, and clients differ.
Path parameters (ids, schema URNs) keep the case they were sent in."""

import re

from django.urls import re_path

from scim import views

app_name = "scim"
ID = r"(?P<scim_id>[^/]+)"


def any_case(name: str) -> str:
    """`Users` → `[Uu][sS][eE][rR][sS]`: matches in any case yet stays reversible, which an inline
    `(?i)` flag is not for Django's `reverse()` (it reverses to the first letter of each class, so
    to the name as written here)."""
    return "".join(f"[{c}{c.swapcase()}]" if c.isalpha() else re.escape(c) for c in name)


USERS = any_case("Users")
GROUPS = any_case("Groups")
SEARCH = any_case(".search")
BULK = any_case("Bulk")
SERVICEPROVIDERCONFIG = any_case("ServiceProviderConfig")
RESOURCETYPES = any_case("ResourceTypes")
SCHEMAS = any_case("Schemas")

urlpatterns = [
    re_path(rf"^{USERS}/?$", views.UsersView.as_view(), name="users"),
    re_path(rf"^{USERS}/{SEARCH}/?$", views.UserSearchView.as_view(), name="users-search"),
    re_path(rf"^{USERS}/{ID}/?$", views.UsersView.as_view(), name="user"),
    re_path(rf"^{GROUPS}/?$", views.GroupsView.as_view(), name="groups"),
    re_path(rf"^{GROUPS}/{SEARCH}/?$", views.GroupSearchView.as_view(), name="groups-search"),
    re_path(rf"^{GROUPS}/{ID}/?$", views.GroupsView.as_view(), name="group"),
    re_path(rf"^{SEARCH}/?$", views.SearchView.as_view(), name="search"),
    re_path(rf"^{BULK}/?$", views.BulkView.as_view(), name="bulk"),
    re_path(
        rf"^{SERVICEPROVIDERCONFIG}/?$",
        views.ServiceProviderConfigView.as_view(),
        name="service-provider-config",
    ),
    re_path(rf"^{RESOURCETYPES}/?$", views.ResourceTypesView.as_view(), name="resource-types"),
    re_path(rf"^{RESOURCETYPES}/(?P<name>[^/]+)/?$", views.ResourceTypesView.as_view(), name="resource-type"),
    re_path(rf"^{SCHEMAS}/?$", views.SchemasView.as_view(), name="schemas"),
    re_path(rf"^{SCHEMAS}/(?P<uri>[^/]+)/?$", views.SchemasView.as_view(), name="schema"),
    re_path(r"^.*$", views.NotFoundView.as_view(), name="not-found"),
]
