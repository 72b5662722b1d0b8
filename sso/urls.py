"""SAML 2.0 on a tenant host (mounted at /saml2/). The paths are the ones Entra is given
(sso.entra_values)."""

from django.urls import path

from sso import views

app_name = "sso"

urlpatterns = [
    path("metadata/", views.metadata, name="saml-metadata"),
    path("login/", views.login_start, name="saml-login"),
    path("acs/", views.acs, name="saml-acs"),
    path("acs/complete/", views.acs_complete, name="saml-acs-complete"),
    path("logout/", views.logout_start, name="saml-logout"),
    path("ls/", views.logout_service, name="saml-ls"),
]
