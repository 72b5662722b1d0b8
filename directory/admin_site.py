"""The admin site: managers on their tenant host, operators on the root host.

The index is the manager's dashboard: who is in the directory, when Entra last called, how its
requests fared over the last day and week (bars drawn server-side as inline SVG: the console loads
nothing from outside), and one plain health line that links into the provisioning log.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

STALE_AFTER = timedelta(hours=1)
FAILURE_RATE_ALERT = 0.10
OPERATOR_TENANT_ROWS = 20
RECENT_EVENTS = 8
CHART_WIDTH = 480
CHART_HEIGHT = 120
ATTRIBUTE_RE = re.compile(
    r"\b(userName|externalId|displayName|emails|phoneNumbers|addresses|members|manager|active|roles|"
    r"name\.\w+|title|department|employeeNumber)\b"
)


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    success_y: float
    success_height: float
    failure_y: float
    failure_height: float
    label: str
    tick: str
    url: str
    success: int
    failure: int

    @property
    def center(self) -> float:
        return round(self.x + self.width / 2, 2)


@dataclass(frozen=True)
class Chart:
    title: str
    total: int
    failures: int
    peak: int
    bars: list[Bar]
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT

    @property
    def mid(self) -> int:
        return self.height // 2

    @property
    def half_peak(self) -> str:
        return f"{self.peak / 2:g}" if self.peak else ""


@dataclass(frozen=True)
class HealthLine:
    level: str
    text: str
    link_text: str = ""
    link_url: str = ""


def log_url(**params: str) -> str:
    query = {"actor_type__exact": "credential", **params}
    return f"{reverse('admin:directory_event_changelist')}?{urlencode(query)}"


def build_chart(buckets: list[Any], *, title: str, unit: str) -> Chart:
    """Stacked bars (successes below, failures on top) scaled to the busiest bucket; each bar links
    to the log for its hour or day."""
    peak = max((b.total for b in buckets), default=0)
    slot = CHART_WIDTH / max(len(buckets), 1)
    width = slot * 0.72
    bars = []
    for index, bucket in enumerate(buckets):
        scale = (CHART_HEIGHT / peak) if peak else 0
        success_height = bucket.success * scale
        failure_height = bucket.failure * scale
        start = timezone.localtime(bucket.start)
        if unit == "hour":
            period = start.strftime("%Y-%m-%dT%H")
            label = start.strftime("%H:00")
            tick = label if index % 4 == 0 else ""
        else:
            period = start.strftime("%Y-%m-%d")
            label = start.strftime("%a %d %b")
            tick = start.strftime("%a %d")
        bars.append(
            Bar(
                x=round(index * slot + (slot - width) / 2, 2),
                width=round(width, 2),
                success_y=round(CHART_HEIGHT - success_height, 2),
                success_height=round(success_height, 2),
                failure_y=round(CHART_HEIGHT - success_height - failure_height, 2),
                failure_height=round(failure_height, 2),
                label=label,
                tick=tick,
                url=log_url(period=period),
                success=bucket.success,
                failure=bucket.failure,
            )
        )
    return Chart(
        title=title,
        total=sum(b.total for b in buckets),
        failures=sum(b.failure for b in buckets),
        peak=peak,
        bars=bars,
    )


def failing_attribute(details: list[str]) -> str:
    """The SCIM attribute the failures' details name most often, e.g. userName for uniqueness."""
    counted: Counter[str] = Counter()
    for detail in details:
        names = set(ATTRIBUTE_RE.findall(detail))
        if "group named" in detail:
            names.add("displayName")
        counted.update(names)
    return counted.most_common(1)[0][0] if counted else ""


def ago(when: datetime, now: datetime) -> str:
    return timesince(when, now, depth=1).replace("\xa0", " ")


def health_lines(
    *, last: Any, requests_24h: int, failures: Any, now: datetime, credentials_url: str
) -> list[HealthLine]:
    lines = []
    if last is None:
        lines.append(
            HealthLine(
                "warning",
                "No provisioning request has reached this directory yet. Create a secret token and "
                "paste it into Entra's provisioning settings.",
                "Create a secret token",
                credentials_url,
            )
        )
    elif now - last.when > STALE_AFTER:
        level = "error" if now - last.when > timedelta(hours=24) else "warning"
        lines.append(
            HealthLine(
                level,
                f"No provisioning request for {ago(last.when, now)} (Entra normally calls every 40 "
                f"minutes); the last one came from {last.via}.",
                "Open the log",
                log_url(),
            )
        )
    if failures.total:
        rate = failures.total / max(requests_24h, failures.total)
        scim_type, _ = failures.by_scim_type[0]
        attribute = failing_attribute(failures.top_details)
        cause = format_html("<code>{}</code>", scim_type) if scim_type else "errors without a scimType"
        if attribute:
            cause = format_html("{} on {}", cause, attribute)
        lines.append(
            HealthLine(
                "error" if rate >= FAILURE_RATE_ALERT else "warning",
                format_html(
                    "{} of the last 24 hours' provisioning requests failed ({} of {}), mostly {}.",
                    f"{rate:.0%}",
                    failures.total,
                    requests_24h,
                    cause,
                ),
                "Show the failures",
                log_url(result__exact="failure", period="24h"),
            )
        )
    if not lines:
        lines.append(
            HealthLine(
                "ok",
                f"Provisioning is healthy: {requests_24h} request(s) in the last 24 hours, none failed; "
                f"the last one {ago(last.when, now)} ago.",
                "Open the log",
                log_url(),
            )
        )
    return lines


def tenant_dashboard(tenant: Any, *, now: datetime) -> dict[str, Any]:
    from directory import selectors
    from directory.admin import event_rows
    from sso.selectors import sign_in_count

    hour_start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)
    hourly = build_chart(
        selectors.provisioning_activity(tenant=tenant, since=hour_start, unit="hour"),
        title="Last 24 hours",
        unit="hour",
    )
    daily = build_chart(
        selectors.provisioning_activity(tenant=tenant, since=day_start, unit="day"),
        title="Last 7 days",
        unit="day",
    )
    last = selectors.last_provisioning_request(tenant=tenant)
    failures = selectors.provisioning_failures(tenant=tenant, since=now - timedelta(hours=24))
    credentials_url = reverse("admin:oauth_secrettoken_add")
    return {
        "counts": selectors.directory_counts(tenant=tenant),
        "sign_ins_7d": sign_in_count(tenant=tenant, since=now - timedelta(days=7)),
        "recent": event_rows(selectors.event_list(tenant=tenant).order_by("-created", "-id")[:RECENT_EVENTS]),
        "last_request": last,
        "last_request_ago": ago(last.when, now) if last else "",
        "charts": [hourly, daily],
        "health": health_lines(
            last=last,
            requests_24h=hourly.total,
            failures=failures,
            now=now,
            credentials_url=credentials_url,
        ),
        "links": {
            "users": reverse("admin:directory_user_changelist"),
            "users_inactive": reverse("admin:directory_user_changelist") + "?is_active__exact=0",
            "groups": reverse("admin:directory_group_changelist"),
            "log": reverse("admin:directory_event_changelist"),
            "log_entra": log_url(),
            "failures_24h": log_url(result__exact="failure", period="24h"),
            "failures_7d": log_url(result__exact="failure", period="7d"),
            "credentials": reverse("admin:oauth_secrettoken_changelist"),
            "branding": reverse("admin:branding"),
            "sign_ins": f"{reverse('admin:directory_event_changelist')}?action=user.sign_in&period=7d",
        },
    }


def operator_overview(*, now: datetime) -> list[dict[str, Any]]:
    """The operators' view of the newest tenants, each row read through the tenant-scoped selectors."""
    from directory import selectors
    from directory.models import Tenant

    rows = []
    for tenant in Tenant.objects.filter(is_platform=False).order_by("-created")[:OPERATOR_TENANT_ROWS]:
        last = selectors.last_provisioning_request(tenant=tenant)
        failures = selectors.provisioning_failures(tenant=tenant, since=now - timedelta(hours=24), sample=0)
        rows.append(
            {
                "tenant": tenant,
                "counts": selectors.directory_counts(tenant=tenant),
                "recent": list(
                    selectors.event_list(tenant=tenant).order_by("-created", "-id")[:RECENT_EVENTS]
                ),
                "last_request_ago": ago(last.when, now) if last else "",
                "failures_24h": failures.total,
                "users_url": reverse("admin:directory_user_changelist") + f"?tenant__id__exact={tenant.pk}",
                "log_url": reverse("admin:directory_event_changelist") + f"?tenant__id__exact={tenant.pk}",
            }
        )
    return rows


class BrandingForm(forms.Form):
    display_name = forms.CharField(
        max_length=200, required=False, help_text="Shown on sign-in pages; the tenant name when empty."
    )
    logo_url = forms.URLField(
        label="Logo URL",
        required=False,
        assume_scheme="https",
        help_text="An https:// image URL, shown above the sign-in form.",
    )
    primary_color = forms.RegexField(
        regex=r"^#[0-9a-fA-F]{6}$",
        label="Colour",
        error_messages={"invalid": "Enter the colour as #RRGGBB."},
        widget=forms.TextInput(attrs={"type": "color"}),
    )

    def clean_logo_url(self) -> str:
        url = self.cleaned_data["logo_url"]
        if url and not url.startswith("https://"):
            raise forms.ValidationError("The logo URL must start with https://.")
        return url


class SecureLoginAdminSite(admin.AdminSite):
    site_header = "SecureLogin"
    site_title = "SecureLogin"
    index_title = "Dashboard"
    index_template = "admin/securelogin/dashboard.html"
    enable_nav_sidebar = False

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        tenant = getattr(request, "tenant", None)
        if not (user.is_authenticated and user.is_active and user.is_staff and tenant is not None):
            return False
        return user.tenant_id == tenant.id and (tenant.is_active or tenant.is_platform)

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None and not tenant.is_platform:
            context["site_header"] = tenant.brand_name
            context["site_title"] = f"{tenant.brand_name} · SecureLogin"
        context["console_operator"] = bool(
            tenant is not None and tenant.is_platform and getattr(request.user, "is_superuser", False)
        )
        if context.get("has_permission"):
            context["console_nav"] = self.console_nav(request)
        return context

    def console_nav(self, request: HttpRequest) -> list[dict[str, Any]]:
        items = [
            ("Dashboard", reverse("admin:index"), None),
            ("Users", reverse("admin:directory_user_changelist"), "/directory/user/"),
            ("Groups", reverse("admin:directory_group_changelist"), "/directory/group/"),
            ("Provisioning log", reverse("admin:directory_event_changelist"), "/directory/event/"),
            ("Credentials", reverse("admin:oauth_secrettoken_changelist"), "/oauth/"),
            ("Webhooks", reverse("admin:directory_webhookendpoint_changelist"), "/directory/webhook"),
            ("Single sign-on", reverse("admin:sso_ssosettings_changelist"), "/sso/"),
            ("Branding", reverse("admin:branding"), "/branding/"),
        ]
        tenant = getattr(request, "tenant", None)
        if tenant is not None and tenant.is_platform:
            items.insert(1, ("Tenants", reverse("admin:directory_tenant_changelist"), "/directory/tenant/"))
        index = reverse("admin:index")
        return [
            {
                "label": label,
                "url": url,
                "active": (request.path == index) if marker is None else marker in request.path,
            }
            for label, url, marker in items
        ]

    def get_urls(self) -> list[Any]:
        return [path("branding/", self.admin_view(self.branding_view), name="branding"), *super().get_urls()]

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        tenant = request.tenant  # type: ignore[attr-defined]
        now = timezone.now()
        if tenant.is_platform:
            extra = {"operator_tenants": operator_overview(now=now)}
        else:
            extra = {"dashboard": tenant_dashboard(tenant, now=now)}
        return super().index(request, {**extra, **(extra_context or {})})

    def branding_view(self, request: HttpRequest) -> HttpResponse:
        """The tenant's display name, logo and colour (typed values, never HTML), with a preview of
        the sign-in page that follows the form as the manager types."""
        from directory import services
        from directory.exceptions import DirectoryError

        tenant = request.tenant  # type: ignore[attr-defined]
        initial = {
            "display_name": tenant.display_name,
            "logo_url": tenant.logo_url,
            "primary_color": tenant.primary_color,
        }
        form = BrandingForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                services.tenant_update_branding(
                    tenant=tenant,
                    actor=services.Actor.manager(request.user),
                    **form.cleaned_data,  # type: ignore[arg-type]
                )
            except DirectoryError as exc:
                form.add_error(exc.field or None, exc.message)
            else:
                messages.success(request, "Branding saved. Sign-in pages show it from now on.")
                return HttpResponseRedirect(reverse("admin:branding"))
        preview = {**initial, **(form.cleaned_data if form.is_bound and form.is_valid() else {})}
        context = {
            **self.each_context(request),
            "title": "Branding",
            "form": form,
            "preview": {
                "name": preview["display_name"] or tenant.name,
                "logo_url": preview["logo_url"],
                "color": preview["primary_color"],
            },
            "media": forms.Media(js=["securelogin/branding.js"]),
        }
        return TemplateResponse(request, "admin/securelogin/branding.html", context)


class SecureLoginAdminConfig(AdminConfig):
    default_site = "directory.admin_site.SecureLoginAdminSite"
