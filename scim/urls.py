"""Routes of /scim/v2/. Every collection answers with and without a trailing slash, never with a
redirect (entra-scim.md R81): a redirected POST or PATCH would be lost."""

from django.urls import re_path

from scim import views

app_name = "scim"
ID = r"(?P<scim_id>[^/]+)"

urlpatterns = [
    re_path(r"^Users/?$", views.UsersView.as_view(), name="users"),
    re_path(r"^Users/\.search/?$", views.UserSearchView.as_view(), name="users-search"),
    re_path(rf"^Users/{ID}/?$", views.UsersView.as_view(), name="user"),
    re_path(r"^Groups/?$", views.GroupsView.as_view(), name="groups"),
    re_path(r"^Groups/\.search/?$", views.GroupSearchView.as_view(), name="groups-search"),
    re_path(rf"^Groups/{ID}/?$", views.GroupsView.as_view(), name="group"),
    re_path(r"^\.search/?$", views.SearchView.as_view(), name="search"),
    re_path(r"^Bulk/?$", views.BulkView.as_view(), name="bulk"),
    re_path(
        r"^ServiceProviderConfig/?$",
        views.ServiceProviderConfigView.as_view(),
        name="service-provider-config",
    ),
    re_path(r"^ResourceTypes/?$", views.ResourceTypesView.as_view(), name="resource-types"),
    re_path(r"^ResourceTypes/(?P<name>[^/]+)/?$", views.ResourceTypesView.as_view(), name="resource-type"),
    re_path(r"^Schemas/?$", views.SchemasView.as_view(), name="schemas"),
    re_path(r"^Schemas/(?P<uri>[^/]+)/?$", views.SchemasView.as_view(), name="schema"),
    re_path(r"^.*$", views.NotFoundView.as_view(), name="not-found"),
]
