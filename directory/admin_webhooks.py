"""Webhooks in the manager console: the tenant's endpoints and the log of their deliveries.

Endpoints are added, edited, rotated and deleted through directory.services (an Event each). The
signing secret is rendered once, in the response to the POST that created or rotated it, with
`Cache-Control: no-store`, like the credentials' secrets (oauth/admin.py). URLs are checked by the
same SSRF guard the services and every send use (directory.urlsafety), so a refused URL is an error
on the form's URL field, not a failed save.

The delivery log is the deliveries' changelist, filtered by endpoint and status, newest first, 100 a
page: one query for the page (with its endpoint and the event's resource label), one bounded count,
one for the endpoint choices, whatever the page holds. "Redeliver" puts a failed or delivered
delivery back in the outbox (services.delivery_redeliver).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString

from directory import services
from directory.admin import (
    FILTER_CHOICE_LIMIT,
    ReadOnlyTenantAdmin,
    ServiceRejected,
    TenantScopedAdmin,
    acting_tenant,
    is_operator,
    request_actor,
)
from directory.exceptions import DirectoryError
from directory.feed import EVENT_TYPES
from directory.models import Event, Tenant, WebhookDelivery, WebhookEndpoint
from directory.urlsafety import webhook_url_check

DELIVERIES_PER_PAGE = 100
URL_LABEL_LENGTH = 60
ERROR_LABEL_LENGTH = 80
Status = WebhookDelivery.Status


def short(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def stamp(value: Any) -> SafeString:
    if value is None:
        return format_html('<span class="sl-muted">{}</span>', "—")
    return format_html(
        '<span class="sl-nowrap">{}</span>', timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    )


def delivery_log_url(endpoint_id: int | None = None, **params: str) -> str:
    query = {"endpoint": str(endpoint_id)} if endpoint_id is not None else {}
    query.update(params)
    url = reverse("admin:directory_webhookdelivery_changelist")
    return f"{url}?{urlencode(query)}" if query else url


def delivery_badge(status: str | None, code: int | None = None) -> SafeString:
    if status is None:
        return format_html('<span class="sl-muted">{}</span>', "none yet")
    css = {Status.DELIVERED: "sl-badge-ok", Status.FAILED: "sl-badge-fail"}.get(status, "sl-badge-warn")
    label = f"{status} {code}" if code else status
    return format_html('<span class="sl-badge {}">{}</span>', css, label)


def signing_secret_page(
    request: HttpRequest, *, title: str, endpoint: WebhookEndpoint, secret: str
) -> HttpResponse:
    """The only page that ever shows a signing secret. Not cached, not framed, no Referer."""
    context = {
        **admin.site.each_context(request),
        "title": title,
        "endpoint": endpoint,
        "secret": secret,
        "back_url": reverse("admin:directory_webhookendpoint_change", args=[endpoint.pk]),
    }
    response = TemplateResponse(request, "admin/directory/webhookendpoint/secret_once.html", context)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Frame-Options"] = "DENY"
    return response


# ------------------------------------------------------------------------------------------ endpoints


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        label="URL",
        max_length=2048,
        assume_scheme="https",
        help_text="An https:// URL of your software. Private and local addresses are refused.",
    )
    event_types = forms.MultipleChoiceField(
        choices=[(t, t) for t in EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Event types",
        help_text="None ticked: every event type, including ones added later.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types", "is_active")

    def clean_url(self) -> str:
        """The services' own guard, so a refused URL is this field's error (the form keeps what the
        manager typed) rather than a message after a failed save."""
        url = self.cleaned_data["url"].strip()
        try:
            webhook_url_check(url, resolve_host=False)
        except DirectoryError as exc:
            raise forms.ValidationError(exc.message) from exc
        return url

    def clean_event_types(self) -> list[str]:
        chosen = set(self.cleaned_data["event_types"])
        return [t for t in EVENT_TYPES if t in chosen]


class WebhookEndpointAdmin(TenantScopedAdmin):
    form = WebhookEndpointForm
    changelist_title = "Webhook endpoints"
    list_display = ("endpoint_url", "description", "types", "is_active", "last_delivery", "pending", "failed")
    list_display_links = ("endpoint_url",)
    list_filter = ("is_active",)
    list_select_related = ("tenant",)
    search_fields = ("url", "description")
    ordering = ("tenant_id", "id")
    readonly_fields = ("signing_secret", "created", "delivery_counts")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            tenant = ("tenant",) if is_operator(request) else ()
            return ((None, {"fields": (*tenant, "url", "description", "event_types")}),)
        return (
            (None, {"fields": ("url", "description", "event_types", "is_active")}),
            ("Signing and deliveries", {"fields": ("signing_secret", "delivery_counts", "created")}),
        )

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "tenant" and is_operator(request):
            kwargs["queryset"] = Tenant.objects.filter(is_platform=False, is_active=True).order_by("slug")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """The newest delivery and the pending and failed counts as correlated subqueries on the
        (tenant, endpoint, id) index, evaluated for the page's rows only."""
        of_endpoint = WebhookDelivery.objects.filter(tenant=OuterRef("tenant"), endpoint=OuterRef("pk"))
        newest = of_endpoint.order_by("-id")

        def total(status: str) -> Coalesce:
            counted = (
                of_endpoint.filter(status=status)
                .order_by()
                .values("endpoint")
                .annotate(n=Count("id"))
                .values("n")
            )
            return Coalesce(Subquery(counted, output_field=IntegerField()), 0)

        return (
            super()
            .get_queryset(request)
            .annotate(
                newest_status=Subquery(newest.values("status")[:1]),
                newest_code=Subquery(newest.values("last_status_code")[:1]),
                pending_total=total(Status.PENDING),
                failed_total=total(Status.FAILED),
            )
        )

    def get_urls(self) -> list[Any]:
        rotate = path(
            "<path:object_id>/rotate-secret/",
            self.admin_site.admin_view(self.rotate_secret_view),
            name="directory_webhookendpoint_rotate_secret",
        )
        return [rotate, *super().get_urls()]

    @admin.display(description="URL", ordering="url")
    def endpoint_url(self, obj: WebhookEndpoint) -> str:
        return short(obj.url, URL_LABEL_LENGTH)

    @admin.display(description="event types")
    def types(self, obj: WebhookEndpoint) -> SafeString:
        if not obj.event_types:
            return format_html('<span class="sl-muted">{}</span>', "all")
        return format_html_join(" ", "<code>{}</code>", ((t,) for t in obj.event_types))

    @admin.display(description="last delivery")
    def last_delivery(self, obj: WebhookEndpoint) -> SafeString:
        return delivery_badge(getattr(obj, "newest_status", None), getattr(obj, "newest_code", None))

    @admin.display(description="pending", ordering="pending_total")
    def pending(self, obj: WebhookEndpoint) -> SafeString:
        return self._count_link(obj, Status.PENDING, getattr(obj, "pending_total", 0))

    @admin.display(description="failed", ordering="failed_total")
    def failed(self, obj: WebhookEndpoint) -> SafeString:
        return self._count_link(obj, Status.FAILED, getattr(obj, "failed_total", 0))

    def _count_link(self, obj: WebhookEndpoint, status: str, total: int) -> SafeString:
        css = "sl-fail-text" if status == Status.FAILED and total else ""
        return format_html(
            '<a href="{}" class="{}">{}</a>',
            delivery_log_url(obj.pk, status__exact=status),
            css,
            f"{total:,}",
        )

    @admin.display(description="signing secret")
    def signing_secret(self, obj: WebhookEndpoint) -> SafeString:
        return format_html(
            '<code>{}…</code> <span class="sl-muted">{}</span>',
            obj.secret_prefix,
            "Shown once when created or rotated; verify the SecureLogin-Signature header with it.",
        )

    @admin.display(description="deliveries")
    def delivery_counts(self, obj: WebhookEndpoint) -> SafeString:
        counts = dict(
            obj.deliveries.filter(tenant_id=obj.tenant_id)
            .order_by()
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        parts = format_html_join(
            " · ",
            '<a href="{}">{} {}</a>',
            (
                (delivery_log_url(obj.pk, status__exact=status), f"{counts.get(status, 0):,}", label.lower())
                for status, label in Status.choices
            ),
        )
        return format_html('{} · <a href="{}">delivery log →</a>', parts, delivery_log_url(obj.pk))

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        data = form.cleaned_data
        actor = request_actor(request)
        try:
            if change:
                services.webhook_endpoint_update(
                    tenant=acting_tenant(request, obj.tenant),
                    actor=actor,
                    endpoint=obj,
                    url=data["url"],
                    event_types=data["event_types"],
                    description=data["description"],
                    is_active=data["is_active"],
                )
                return
            tenant = data["tenant"] if is_operator(request) else request.tenant  # type: ignore[attr-defined]
            endpoint, secret = services.webhook_endpoint_create(
                tenant=tenant,
                actor=actor,
                url=data["url"],
                event_types=data["event_types"],
                description=data["description"],
            )
        except DirectoryError as exc:
            raise ServiceRejected(exc) from exc
        obj.pk = endpoint.pk
        obj.tenant = endpoint.tenant
        obj.secret_prefix = endpoint.secret_prefix
        obj.new_signing_secret = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: Any = None
    ) -> HttpResponse:
        return signing_secret_page(
            request,
            title="Webhook endpoint added",
            endpoint=obj,
            secret=obj.new_signing_secret,  # type: ignore[attr-defined]
        )

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        try:
            services.webhook_endpoint_delete(
                tenant=acting_tenant(request, obj.tenant), actor=request_actor(request), endpoint=obj
            )
        except DirectoryError as exc:
            self.report(request, exc)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset.select_related("tenant"):
            self.delete_model(request, obj)

    def rotate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        endpoint = self.get_object(request, object_id)
        try:
            endpoint, secret = services.webhook_endpoint_rotate_secret(
                tenant=acting_tenant(request, endpoint.tenant),
                actor=request_actor(request),
                endpoint=endpoint,
            )
        except DirectoryError as exc:
            self.report(request, exc)
            return HttpResponseRedirect(reverse("admin:directory_webhookendpoint_change", args=[endpoint.pk]))
        return signing_secret_page(request, title="Signing secret rotated", endpoint=endpoint, secret=secret)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra = {"delivery_log_url": delivery_log_url(int(object_id)) if object_id.isdigit() else ""}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


# ----------------------------------------------------------------------------------------- deliveries


class EndpointFilter(admin.SimpleListFilter):
    """The tenant's endpoints only: Django's related-field filter would list every tenant's."""

    title = "endpoint"
    parameter_name = "endpoint"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        endpoints = WebhookEndpoint.objects.order_by("tenant_id", "id")
        if not is_operator(request):
            endpoints = endpoints.filter(tenant=request.tenant)  # type: ignore[attr-defined]
        return [
            (str(pk), short(url, URL_LABEL_LENGTH))
            for pk, url in endpoints.values_list("pk", "url")[:FILTER_CHOICE_LIMIT]
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(endpoint_id=int(value))


@admin.action(description="Redeliver selected deliveries")
def redeliver_deliveries(modeladmin: WebhookDeliveryAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done = 0
    for delivery in queryset.exclude(status=Status.PENDING).select_related("tenant"):
        try:
            services.delivery_redeliver(
                tenant=acting_tenant(request, delivery.tenant),
                actor=request_actor(request),
                delivery=delivery,
            )
            done += 1
        except DirectoryError as exc:
            modeladmin.report(request, exc)
    modeladmin.message_user(request, f"Queued {done} delivery(ies) again.", messages.SUCCESS)


class WebhookDeliveryAdmin(ReadOnlyTenantAdmin):
    changelist_title = "Webhook deliveries"
    list_display = (
        "when",
        "event_type",
        "resource",
        "state",
        "attempts",
        "status_code",
        "latency",
        "error",
        "next_attempt",
        "delivered",
    )
    list_display_links = ("when",)
    list_filter = ("status", EndpointFilter)
    list_select_related = ("tenant", "endpoint")
    list_per_page = DELIVERIES_PER_PAGE
    ordering = ("-id",)
    actions = (redeliver_deliveries,)
    fields = (
        "endpoint_link",
        "event_type",
        "resource",
        "state",
        "attempts",
        "status_code",
        "latency",
        "last_attempt",
        "next_attempt",
        "retries_until",
        "delivered",
        "last_error",
        "created",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """The event's resource label as one column of the page's rows (a primary-key lookup
        each): the event row itself, with its change set, is not loaded, and the bounded count
        does not join the events."""
        label = Event.objects.filter(pk=OuterRef("event_id")).values("resource_label")[:1]
        return super().get_queryset(request).annotate(resource_label=Subquery(label))

    def get_model_perms(self, request: HttpRequest) -> dict[str, bool]:
        """Reached from the endpoints page, not listed on its own."""
        return {}

    def get_urls(self) -> list[Any]:
        redeliver = path(
            "<path:object_id>/redeliver/",
            self.admin_site.admin_view(self.redeliver_view),
            name="directory_webhookdelivery_redeliver",
        )
        return [redeliver, *super().get_urls()]

    def get_list_display(self, request: HttpRequest) -> Any:
        """The endpoint column when the log is not one endpoint's, and a Redeliver button that
        brings the manager back to the same page of the log."""
        columns = list(super().get_list_display(request))
        if not request.GET.get(EndpointFilter.parameter_name):
            columns.insert(columns.index("when") + 1, "endpoint_link")
        back = request.get_full_path()

        @admin.display(description="")
        def redeliver(obj: WebhookDelivery) -> SafeString:
            if obj.status == Status.PENDING:
                return format_html('<span class="sl-muted">{}</span>', "queued")
            url = reverse("admin:directory_webhookdelivery_redeliver", args=[obj.pk])
            return format_html(
                '<button type="submit" formaction="{}?{}" class="button">Redeliver</button>',
                url,
                urlencode({"next": back}),
            )

        columns.append(redeliver)
        return columns

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        value = request.GET.get(EndpointFilter.parameter_name, "")
        extra: dict[str, Any] = {}
        if value.isdigit():
            endpoint = self.scope(request, WebhookEndpoint.objects.filter(pk=int(value))).first()
            if endpoint is not None:
                extra = {
                    "title": f"Deliveries to {short(endpoint.url, URL_LABEL_LENGTH)}",
                    "console_endpoint": endpoint,
                }
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    @admin.display(description="when", ordering="id")
    def when(self, obj: WebhookDelivery) -> SafeString:
        return stamp(obj.created)

    @admin.display(description="endpoint")
    def endpoint_link(self, obj: WebhookDelivery) -> SafeString:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:directory_webhookendpoint_change", args=[obj.endpoint_id]),
            short(obj.endpoint.url, URL_LABEL_LENGTH),
        )

    @admin.display(description="resource")
    def resource(self, obj: WebhookDelivery) -> SafeString:
        label = getattr(obj, "resource_label", "") or obj.resource_key
        kind = obj.resource_key.split(":", 1)[0]
        return format_html('{} <span class="sl-muted" title="{}">{}</span>', label, obj.resource_key, kind)

    @admin.display(description="status", ordering="status")
    def state(self, obj: WebhookDelivery) -> SafeString:
        return delivery_badge(obj.status)

    @admin.display(description="HTTP")
    def status_code(self, obj: WebhookDelivery) -> str:
        return str(obj.last_status_code) if obj.last_status_code is not None else "—"

    @admin.display(description="latency")
    def latency(self, obj: WebhookDelivery) -> str:
        return f"{obj.last_latency_ms:,} ms" if obj.last_latency_ms is not None else "—"

    @admin.display(description="last error")
    def error(self, obj: WebhookDelivery) -> SafeString:
        if not obj.last_error:
            return format_html('<span class="sl-muted">{}</span>', "—")
        return format_html(
            '<span title="{}">{}</span>', obj.last_error, short(obj.last_error, ERROR_LABEL_LENGTH)
        )

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, obj: WebhookDelivery) -> SafeString:
        return stamp(obj.next_attempt_at if obj.status == Status.PENDING else None)

    @admin.display(description="delivered", ordering="delivered_at")
    def delivered(self, obj: WebhookDelivery) -> SafeString:
        return stamp(obj.delivered_at)

    @admin.display(description="last attempt")
    def last_attempt(self, obj: WebhookDelivery) -> SafeString:
        return stamp(obj.last_attempt_at)

    @admin.display(description="retried until")
    def retries_until(self, obj: WebhookDelivery) -> SafeString:
        return stamp(obj.retry_until)

    def redeliver_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        delivery = self.get_object(request, object_id)
        try:
            services.delivery_redeliver(
                tenant=acting_tenant(request, delivery.tenant),
                actor=request_actor(request),
                delivery=delivery,
            )
        except DirectoryError as exc:
            self.report(request, exc)
        else:
            self.message_user(
                request,
                f"Delivery #{delivery.pk} ({delivery.event_type}) is queued again and will be sent shortly.",
                messages.SUCCESS,
            )
        back = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = delivery_log_url(delivery.endpoint_id)
        return HttpResponseRedirect(back)


admin.site.register(WebhookEndpoint, WebhookEndpointAdmin)
admin.site.register(WebhookDelivery, WebhookDeliveryAdmin)
