"""Branding: typed values through tenant_update_branding, with a preview of the sign-in page."""

from __future__ import annotations

from django.urls import reverse

from directory.models import Tenant
from tests.admin.conftest import Directory, events_of
from tests.clients import Client

BRANDING = reverse("admin:branding")


def test_page_shows_the_current_branding_in_the_preview(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.get(BRANDING)
    assert response.status_code == 200
    assert response.context["preview"] == {"name": "Contoso", "logo_url": "", "color": "#2563eb"}
    body = response.content.decode()
    assert "Sign in to" in body and "Fabrikam" not in body
    assert "securelogin/branding.js" in body


def test_saving_goes_through_the_service_and_logs_the_change(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    data = {
        "display_name": "Contoso Ltd",
        "logo_url": "https://cdn.contoso.com/logo.png",
        "primary_color": "#0F766E",
    }
    response = manager_client.submit(BRANDING, data)
    assert response.status_code == 302
    tenant = Tenant.objects.get(pk=ours.tenant.pk)
    assert (tenant.display_name, tenant.logo_url, tenant.primary_color) == tuple(data.values())
    (event,) = events_of(ours.tenant, "tenant.branding_update")
    assert event.changes["primary_color"] == ["#2563eb", "#0F766E"]
    assert not events_of(theirs.tenant, "tenant.branding_update")


def test_invalid_values_are_refused_on_the_form(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    for data, message in (
        ({"display_name": "X", "logo_url": "", "primary_color": "red"}, "#RRGGBB"),
        (
            {"display_name": "X", "logo_url": "http://insecure.example/logo.png", "primary_color": "#000000"},
            "https://",
        ),
        (
            {"display_name": "X", "logo_url": "javascript:alert(1)", "primary_color": "#000000"},
            "Enter a valid URL",
        ),
    ):
        response = manager_client.submit(BRANDING, data)
        assert response.status_code == 200
        assert message in response.content.decode()
    assert not events_of(ours.tenant, "tenant.branding_update")


def test_display_name_is_escaped_in_the_console(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    saved = manager_client.submit(
        BRANDING, {"display_name": "<script>x</script>", "logo_url": "", "primary_color": "#000000"}
    )
    assert saved.status_code == 302
    body = manager_client.get(reverse("admin:index")).content.decode()
    assert "<script>x</script>" not in body
    assert "&lt;script&gt;x&lt;/script&gt;" in body
