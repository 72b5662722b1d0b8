"""/oauth/: django-oauth-toolkit's base endpoints only (libraries.md §4.8). Its management,
device, OIDC and registration views are not mounted: managers use the tenant-scoped admin."""

from django.urls import path

from oauth import views

app_name = "oauth"
urlpatterns = [
    path("authorize/", views.TenantAuthorizationView.as_view(), name="authorize"),
    path("token/", views.TenantTokenView.as_view(), name="token"),
    path("revoke_token/", views.TenantRevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", views.ClientIntrospectTokenView.as_view(), name="introspect"),
]
