"""The manager console: a tenant-scoped Django admin over directory.services.

On a tenant host a manager sees that tenant only; on the root host platform operators (superusers of
the platform tenant) see every tenant, with a tenant filter. Rows of another tenant are not in any
queryset the console builds, so change pages, autocompletes, actions and exports behave as if they
did not exist (404, never a redirect that confirms the id). Every write goes through a service, which
leaves an `Event`; Django's own `LogEntry` is not written, because it is not tenant-scoped and the
provisioning log already says who changed what.

Changelists stay fast at 100,000 users: querysets order on the tenant-leading indexes, related rows
are selected or prefetched per page, counts are bounded (BoundedCountPaginator), and search tries
indexed exact matches before falling back to prefix matches.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.contrib.auth.models import Group as AuthGroup
from django.core.cache import cache
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Lower
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from directory import selectors, services
from directory.exceptions import DirectoryError
from directory.models import (
    Event,
    Group,
    Membership,
    Tenant,
    TenantEmailDomain,
    TenantHost,
    User,
    UserAddress,
    UserEmail,
    UserEntitlement,
    UserIm,
    UserPhoneNumber,
    UserPhoto,
    UserX509Certificate,
)

EXACT_COUNT_LIMIT = 10_000
USER_HISTORY_LIMIT = 20
GROUP_MEMBER_PREVIEW = 100
FILTER_CHOICE_LIMIT = 100
DEPARTMENT_CHOICES_SECONDS = 300
SEARCH_EMAIL_HITS = 1000
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# ------------------------------------------------------------------------------------------ plumbing


def is_operator(request: HttpRequest) -> bool:
    tenant = getattr(request, "tenant", None)
    return bool(request.user.is_authenticated and request.user.is_superuser and tenant and tenant.is_platform)


def request_actor(request: HttpRequest) -> services.Actor:
    return services.Actor.manager(request.user)  # type: ignore[arg-type]


def acting_tenant(request: HttpRequest, obj_tenant: Tenant) -> Tenant:
    """The tenant a write is made in. A manager always writes in the tenant of the host, so a row of
    another tenant that slipped through would be refused by the service (TenantMismatch); an
    operator writes in the tenant the row belongs to."""
    return obj_tenant if is_operator(request) else request.tenant  # type: ignore[attr-defined]


class ServiceRejected(Exception):
    """A service refused a write after the form validated (e.g. a concurrent rename took the
    userName). Raised out of the admin's atomic block so nothing half-done is kept."""

    def __init__(self, error: DirectoryError) -> None:
        super().__init__(error.message)
        self.message = error.message


def planner_row_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's own estimate of the rows a query returns (EXPLAIN, no execution), or None on
    databases without one."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().values("pk").explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


class BoundedCountPaginator(Paginator):
    """Counts at most EXACT_COUNT_LIMIT + 1 rows (`SELECT COUNT(*) FROM (SELECT id … LIMIT n)`, without
    the page's annotations), so a page of a 100,000-user tenant never counts the whole table. Past the
    limit, PostgreSQL's planner estimate stands in for the count and the page says "about"; other
    databases count exactly."""

    is_estimate = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        bounded = queryset.order_by().values("pk")[: EXACT_COUNT_LIMIT + 1].count()
        if bounded <= EXACT_COUNT_LIMIT:
            return bounded
        estimate = planner_row_estimate(queryset)
        if estimate is None:
            return queryset.count()
        self.is_estimate = True
        return max(estimate, bounded)


class ServiceBackedAdmin(admin.ModelAdmin):
    """Writes go through services; a service's refusal comes back as an error message on the same
    page, and the provisioning log (`Event`) is the only history."""

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[list[str], dict, set, list]:
        """Django would list every cascaded row (a 100,000-member group's memberships); the services
        delete those rows anyway, so the confirmation names just the objects."""
        names = [str(obj) for obj in objs]
        return names, {str(self.opts.verbose_name_plural): len(names)}, set(), []

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRejected as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def construct_change_message(self, *args: Any, **kwargs: Any) -> list:
        return []

    def log_addition(self, *args: Any, **kwargs: Any) -> None:
        """The provisioning log (`Event`, written by the services) is the console's history."""

    def log_change(self, *args: Any, **kwargs: Any) -> None:
        """See log_addition."""

    def log_deletions(self, *args: Any, **kwargs: Any) -> None:
        """See log_addition."""


class TenantScopedAdmin(ServiceBackedAdmin):
    """Scopes querysets, foreign-key choices, searches and object lookups to the request's tenant
    (all tenants for operators)."""

    tenant_field = "tenant"
    paginator = BoundedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    changelist_title = ""

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        title = {"title": self.changelist_title} if self.changelist_title else {}
        return super().changelist_view(request, {**title, **(extra_context or {})})

    def scope(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if is_operator(request):
            return queryset
        return queryset.filter(**{self.tenant_field: request.tenant})  # type: ignore[attr-defined]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(request, super().get_queryset(request))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """Another tenant's id answers 404 exactly like an id that never existed."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with that id.")
        return obj

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        related = db_field.related_model
        if not is_operator(request):
            if related is Tenant:
                kwargs["queryset"] = Tenant.objects.filter(pk=request.tenant.pk)  # type: ignore[attr-defined]
            elif related is not None and any(f.name == "tenant" for f in related._meta.fields):
                kwargs["queryset"] = related._default_manager.filter(tenant=request.tenant)  # type: ignore[attr-defined]
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        return super().get_search_results(request, self.scope(request, queryset), search_term)

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = list(super().get_list_filter(request))
        if is_operator(request) and self.tenant_field == "tenant":
            filters.insert(0, "tenant")
        return filters

    operator_hidden_columns: tuple[str, ...] = ()

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = list(super().get_list_display(request))
        if is_operator(request) and self.tenant_field == "tenant":
            columns = [c for c in columns if c not in self.operator_hidden_columns]
            columns.insert(1, "tenant")
        return columns

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        scim_id = getattr(obj, "scim_id", None) or obj.pk
        return HttpResponseRedirect(f"{reverse('admin:directory_event_changelist')}?q={scim_id}")

    def report(self, request: HttpRequest, exc: DirectoryError) -> None:
        self.message_user(request, exc.message, messages.ERROR)


class ReadOnlyTenantAdmin(TenantScopedAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def console_url(model: type, action: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{action}", args=args)


# ------------------------------------------------------------------------------------------- filters


class RoleFilter(admin.SimpleListFilter):
    title = "role"
    parameter_name = "role"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [(User.Role.MEMBER, "Member"), (User.Role.MANAGER, "Manager")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(role=self.value()) if self.value() else queryset


class DepartmentFilter(admin.SimpleListFilter):
    """The tenant's departments. Reading them is a DISTINCT over the (tenant, department) index,
    about 0.1 s at 100,000 users, so the choices are cached briefly per tenant. Operators, who see
    every tenant, filter by tenant instead."""

    title = "department"
    parameter_name = "department"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        if is_operator(request):
            return []
        tenant = request.tenant  # type: ignore[attr-defined]
        values = cache.get_or_set(
            f"securelogin:console:departments:{tenant.pk}",
            lambda: selectors.user_department_values(tenant=tenant, limit=FILTER_CHOICE_LIMIT),
            DEPARTMENT_CHOICES_SECONDS,
        )
        return [(v, v) for v in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(department=self.value()) if self.value() else queryset


class GroupFilter(admin.SimpleListFilter):
    """Members of one group. Choices are the tenant's groups only: Django's related-field filter
    would list every tenant's groups."""

    title = "group"
    parameter_name = "group"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        if is_operator(request):
            return []
        groups = selectors.group_list(tenant=request.tenant).order_by(Lower("display_name"))  # type: ignore[attr-defined]
        return [
            (str(pk), name) for pk, name in groups.values_list("pk", "display_name")[:FILTER_CHOICE_LIMIT]
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(pk__in=Membership.objects.filter(group_id=int(value)).values("user_id"))


# --------------------------------------------------------------------------------------------- users


class MultiValueFormSet(BaseInlineFormSet):
    """An inline of emails, phone numbers or addresses. It is never saved itself: `service_rows()`
    hands the whole list to services.user_update, which replaces it in one change and one event."""

    kind = ""

    def clean(self) -> None:
        super().clean()
        primaries = 0
        for row in self.service_rows() or []:
            primaries += bool(row.get("primary"))
        if primaries > 1:
            raise forms.ValidationError("Only one can be primary.")

    def service_rows(self) -> list[dict[str, Any]] | None:
        """The list as the service takes it, or None when nothing in the inline changed."""
        if not self.is_bound or not self.has_changed():
            return None
        rows = []
        all_fields = services.MULTI_VALUE_FIELDS[self.kind]
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or self._should_delete_form(form):
                continue
            existing = form.instance.pk is not None
            if not existing and not form.has_changed():
                continue
            row = {}
            for name in all_fields:
                if name in form.cleaned_data:
                    row[name] = form.cleaned_data[name]
                elif existing:
                    row[name] = getattr(form.instance, name)
            rows.append(row)
        return rows


class MultiValueInline(admin.TabularInline):
    formset = MultiValueFormSet
    kind = ""
    extra = 0

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.kind = self.kind
        return formset


class UserEmailInline(MultiValueInline):
    model = UserEmail
    kind = "emails"
    verbose_name = "email"
    verbose_name_plural = "emails"
    fields = ("type", "value", "primary")


class UserPhoneNumberInline(MultiValueInline):
    model = UserPhoneNumber
    kind = "phone_numbers"
    verbose_name = "phone number"
    verbose_name_plural = "phone numbers"
    fields = ("type", "value", "primary")


class UserImInline(MultiValueInline):
    model = UserIm
    kind = "ims"
    verbose_name = "instant messaging address"
    verbose_name_plural = "instant messaging"
    fields = ("type", "value", "primary")


class UserPhotoInline(MultiValueInline):
    model = UserPhoto
    kind = "photos"
    verbose_name = "photo URL"
    verbose_name_plural = "photos"
    fields = ("type", "value", "primary")


class UserEntitlementInline(MultiValueInline):
    model = UserEntitlement
    kind = "entitlements"
    fields = ("type", "value", "primary")


class UserX509CertificateInline(MultiValueInline):
    model = UserX509Certificate
    kind = "x509_certificates"
    verbose_name = "X.509 certificate"
    verbose_name_plural = "X.509 certificates (base64 DER)"
    fields = ("value", "primary")


class UserAddressInline(MultiValueInline):
    model = UserAddress
    kind = "addresses"
    verbose_name = "address"
    verbose_name_plural = "addresses"
    fields = ("type", "street_address", "locality", "region", "postal_code", "country", "primary")


USER_FORM_FIELDS = (
    "username",
    "external_id",
    "is_active",
    "role",
    "given_name",
    "family_name",
    "display_name",
    "title",
    "department",
    "division",
    "organization",
    "cost_center",
    "employee_number",
    "manager",
)
USER_SERVICE_FIELDS = tuple(f for f in USER_FORM_FIELDS if f not in ("manager", "role"))


class UserForm(forms.ModelForm):
    """Checks what the service would refuse, so the manager sees the error on the field; the
    database constraint still decides races (the service maps them to the same message)."""

    console_tenant: Tenant | None = None

    class Meta:
        model = User
        fields = USER_FORM_FIELDS
        labels = {
            "username": "userName",
            "external_id": "externalId",
            "is_active": "Active",
            "given_name": "Given name",
            "family_name": "Family name",
            "display_name": "Display name",
            "title": "Title",
            "department": "Department",
            "division": "Division",
            "organization": "Organization",
            "cost_center": "Cost center",
            "employee_number": "Employee number",
        }
        help_texts = {
            "username": "Unique in this tenant, case-insensitively. Entra matches users on it.",
            "external_id": "Entra's objectId for this user, when Entra set one.",
            "is_active": "Entra deactivates instead of deleting; inactive users cannot sign in.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        tenant = self.console_tenant or data.get("tenant")
        if tenant is None:
            return data
        others = selectors.user_list(tenant=tenant)
        if self.instance.pk is not None:
            others = others.exclude(pk=self.instance.pk)
        username = data.get("username")
        if username and others.filter(username__lower=username.lower()).exists():
            self.add_error("username", services.USERNAME_TAKEN.format(value=username))
        external_id = data.get("external_id")
        if external_id and others.filter(external_id=external_id).exists():
            self.add_error("external_id", services.EXTERNAL_ID_TAKEN.format(value=external_id))
        manager = data.get("manager")
        if manager is not None and (manager.tenant_id != tenant.pk or manager.pk == self.instance.pk):
            self.add_error("manager", "Choose another user of this tenant.")
        return data


def csv_cell(value: object) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas; a leading apostrophe keeps
    a userName like `=HYPERLINK(…)` inert (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_FORMULA_PREFIXES) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


USER_CSV_HEADER = (
    "id",
    "userName",
    "externalId",
    "active",
    "givenName",
    "familyName",
    "displayName",
    "email",
    "title",
    "department",
    "employeeNumber",
    "manager",
    "role",
    "created",
    "lastModified",
)


def user_csv_rows(queryset: QuerySet, *, with_tenant: bool) -> Iterator[list[str]]:
    yield [*USER_CSV_HEADER, *(["tenant"] if with_tenant else [])]
    emails = Prefetch("emails", queryset=UserEmail.objects.order_by("-primary", "id"))
    rows = (
        queryset.select_related("manager", "tenant")
        .prefetch_related(None)
        .prefetch_related(emails)
        .order_by("pk")
    )
    for user in rows.iterator(chunk_size=2000):
        row = [
            user.scim_id,
            user.username,
            user.external_id,
            "true" if user.is_active else "false",
            user.given_name,
            user.family_name,
            user.display_name,
            user.email,
            user.title,
            user.department,
            user.employee_number,
            user.manager.username if user.manager_id else user.manager_value,
            user.role,
            user.created.isoformat(),
            user.last_modified.isoformat(),
        ]
        if with_tenant:
            row.append(user.tenant.slug)
        yield [csv_cell(v) for v in row]


def _set_active(
    modeladmin: UserAdmin, request: HttpRequest, queryset: QuerySet, *, active: bool
) -> tuple[int, int]:
    done = skipped = 0
    change = services.user_reactivate if active else services.user_deactivate
    for user in queryset.exclude(role=User.Role.SERVICE).select_related("tenant"):
        if user.is_active == active:
            skipped += 1
            continue
        if not active and user.pk == request.user.pk:
            modeladmin.message_user(request, "You cannot deactivate yourself.", messages.WARNING)
            skipped += 1
            continue
        try:
            change(tenant=acting_tenant(request, user.tenant), actor=request_actor(request), user=user)
            done += 1
        except DirectoryError as exc:
            modeladmin.report(request, exc)
    return done, skipped


@admin.action(description="Deactivate selected users")
def deactivate_users(modeladmin: UserAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done, skipped = _set_active(modeladmin, request, queryset, active=False)
    note = f" ({skipped} already inactive or skipped)" if skipped else ""
    modeladmin.message_user(request, f"Deactivated {done} user(s){note}.", messages.SUCCESS)


@admin.action(description="Reactivate selected users")
def reactivate_users(modeladmin: UserAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done, skipped = _set_active(modeladmin, request, queryset, active=True)
    note = f" ({skipped} already active)" if skipped else ""
    modeladmin.message_user(request, f"Reactivated {done} user(s){note}.", messages.SUCCESS)


@admin.action(description="Export selected users as CSV")
def export_users_csv(modeladmin: UserAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
    """Streams, so exporting every user of a large tenant holds one chunk in memory. The export is
    itself logged: a bulk read of personal data is something a tenant's auditors ask about."""
    operator = is_operator(request)
    count = queryset.count()
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    services.event_record(
        tenant=tenant,
        actor=request_actor(request),
        action="user.export",
        resource_type="User",
        detail=f"Exported {count} user(s) as CSV.",
    )
    writer = csv.writer(_Echo())
    stream = (writer.writerow(row) for row in user_csv_rows(queryset, with_tenant=operator))
    response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-users-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


class UserAdmin(TenantScopedAdmin):
    form = UserForm
    changelist_title = "Users"
    list_display = (
        "username",
        "full_name",
        "primary_email",
        "department",
        "title",
        "is_active",
        "role_badge",
        "modified",
    )
    list_display_links = ("username", "full_name")
    operator_hidden_columns = ("title", "primary_email")
    list_filter = ("is_active", RoleFilter, DepartmentFilter, GroupFilter)
    search_fields = ("username", "emails__value", "given_name", "family_name", "display_name", "external_id")
    search_help_text = (
        "Exact userName, email or externalId first; otherwise the start of a userName, email or name."
    )
    list_select_related = ("tenant",)
    ordering = (Lower("username"),)
    readonly_fields = ("scim_id", "created", "last_modified", "version", "manager_reference")
    autocomplete_fields = ("manager",)
    inlines = (
        UserEmailInline,
        UserPhoneNumberInline,
        UserAddressInline,
        UserImInline,
        UserPhotoInline,
        UserEntitlementInline,
        UserX509CertificateInline,
    )
    actions = (deactivate_users, reactivate_users, export_users_csv)
    fieldsets = (
        (None, {"fields": ("username", "external_id", "is_active", "role", "scim_id")}),
        ("Name", {"fields": (("given_name", "family_name"), "display_name", "title")}),
        (
            "Organisation",
            {
                "fields": (
                    ("department", "division"),
                    ("organization", "cost_center"),
                    "employee_number",
                    "manager",
                    "manager_reference",
                )
            },
        ),
        ("Record", {"fields": (("created", "last_modified", "version"),), "classes": ("collapse",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        emails = Prefetch("emails", queryset=UserEmail.objects.order_by("-primary", "id"))
        return super().get_queryset(request).exclude(role=User.Role.SERVICE).prefetch_related(emails)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None and is_operator(request):
            first = fieldsets[0][1]
            return ((None, {**first, "fields": ("tenant", *first["fields"])}), *fieldsets[1:])
        return fieldsets

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        tenant = obj.tenant if obj is not None else (None if is_operator(request) else request.tenant)  # type: ignore[attr-defined]
        return type(form.__name__, (form,), {"console_tenant": tenant})

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "role":
            kwargs["choices"] = [(User.Role.MEMBER, "Member"), (User.Role.MANAGER, "Manager")]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Exact matches on indexed columns first: LOWER(userName) and LOWER(email) per tenant, and
        externalId. Email hits are resolved to user ids by their own index lookup, so the user query
        stays an OR of index scans (BitmapOr) instead of a scan with a subquery, and rows are never
        duplicated. Only when nothing matches exactly: prefixes of userName and email (LIKE 'x%' on
        the same LOWER indexes) and of the names, which have no index and scan the tenant's rows."""
        queryset = self.scope(request, queryset)
        term = search_term.strip()
        if not term:
            return queryset, False
        lowered = term.lower()
        emails = (
            UserEmail.objects.all()
            if is_operator(request)
            else UserEmail.objects.filter(tenant=request.tenant)
        )  # type: ignore[attr-defined]
        email_hits = list(
            emails.filter(value__lower=lowered).values_list("user_id", flat=True)[:SEARCH_EMAIL_HITS]
        )
        exact = queryset.filter(Q(username__lower=lowered) | Q(external_id=term) | Q(pk__in=email_hits))
        if exact.exists():
            return exact, False
        prefix = (
            Q(username__lower__startswith=lowered)
            | Q(pk__in=emails.filter(value__lower__startswith=lowered).values("user_id"))
            | Q(given_name__lower__startswith=lowered)
            | Q(family_name__lower__startswith=lowered)
            | Q(display_name__lower__startswith=lowered)
        )
        words = lowered.split()
        if len(words) == 2:
            prefix |= Q(given_name__lower__startswith=words[0], family_name__lower__startswith=words[1])
        return queryset.filter(prefix), False

    @admin.display(description="manager as provisioned")
    def manager_reference(self, obj: User) -> SafeString | str:
        """The `manager.value` the identity provider sent. Unresolved when it names no user of this
        tenant (yet): SCIM keeps it as sent and links it once that user is provisioned."""
        if not obj.manager_value:
            return "—"
        if obj.manager_id is None:
            return format_html(
                '<span class="sl-badge sl-badge-warn" title="{}">unresolved</span> <code>{}</code>',
                "No user of this tenant has this id or externalId yet; it links when one arrives.",
                obj.manager_value,
            )
        return format_html("<code>{}</code>", obj.manager_value)

    @admin.display(description="name", ordering=Lower("family_name"))
    def full_name(self, obj: User) -> str:
        return obj.display_name or " ".join(p for p in (obj.given_name, obj.family_name) if p)

    @admin.display(description="email")
    def primary_email(self, obj: User) -> str:
        return obj.email

    @admin.display(description="role", ordering="role")
    def role_badge(self, obj: User) -> SafeString:
        if obj.role == User.Role.MANAGER:
            return format_html('<span class="sl-badge sl-badge-role">{}</span>', "manager")
        return format_html('<span class="sl-muted">{}</span>', "member")

    @admin.display(description="last modified", ordering="last_modified")
    def modified(self, obj: User) -> SafeString:
        stamp = timezone.localtime(obj.last_modified)
        return format_html(
            '<span class="sl-nowrap" title="{}">{}</span>', stamp.strftime("%Y-%m-%d %H:%M:%S"), stamp.date()
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        user = self.get_object(request, object_id)
        tenant = user.tenant
        extra = {
            "console_groups": list(
                selectors.user_groups(tenant=tenant, user=user).order_by(Lower("display_name"))[:50]
            ),
            "console_events": event_rows(
                selectors.resource_events(tenant=tenant, resource_id=str(user.scim_id))[:USER_HISTORY_LIMIT]
            ),
            "console_events_url": f"{console_url(Event, 'changelist')}?q={user.scim_id}",
            "console_scim": scim_representation(request, user),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        """Deferred to save_related, so scalar fields and the inlines become one service call and one
        event."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        data = form.cleaned_data
        fields = {k: data[k] for k in USER_SERVICE_FIELDS if k in data}
        multi = {}
        for formset in formsets:
            rows = formset.service_rows() if isinstance(formset, MultiValueFormSet) else None
            if rows is not None:
                multi[formset.kind] = rows
        actor = request_actor(request)
        try:
            if change:
                # An untouched manager field must not clear a reference the console cannot show
                # as a choice (an unresolved `manager.value` from SCIM).
                manager = data.get("manager") if "manager" in form.changed_data else services.UNSET
                services.user_update(
                    tenant=acting_tenant(request, form.instance.tenant),
                    actor=actor,
                    user=form.instance,
                    fields=fields,
                    manager=manager,
                    role=data.get("role"),
                    **multi,
                )
            else:
                tenant = data["tenant"] if is_operator(request) else request.tenant  # type: ignore[attr-defined]
                created = services.user_create(
                    tenant=tenant,
                    actor=actor,
                    username=fields.pop("username"),
                    fields=fields,
                    manager=data.get("manager"),
                    role=data.get("role") or User.Role.MEMBER,
                    **multi,
                )
                form.instance.pk = created.pk
                form.instance.scim_id = created.scim_id
        except DirectoryError as exc:
            raise ServiceRejected(exc) from exc

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        try:
            services.user_delete(
                tenant=acting_tenant(request, obj.tenant), actor=request_actor(request), user=obj
            )
        except DirectoryError as exc:
            self.report(request, exc)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset.select_related("tenant"):
            self.delete_model(request, obj)


def scim_representation(request: HttpRequest, user: User) -> str:
    """The user as Entra's GET /Users/{id} returns it, produced by the SCIM layer itself so the
    console can never disagree with what Entra sees."""
    try:
        from scim.representation import user_to_scim
    except ImportError:
        return ""
    user = User.objects.select_related("manager").get(pk=user.pk)
    groups = selectors.groups_of_users(tenant=user.tenant, user_ids=[user.pk])[user.pk]
    base_url = request.build_absolute_uri("/scim/v2").rstrip("/")
    return json.dumps(user_to_scim(user, base_url=base_url, groups=groups), indent=2, ensure_ascii=False)


# -------------------------------------------------------------------------------------------- groups


class FirstMembersFormSet(BaseInlineFormSet):
    """Shows the first members only: a group of 100,000 members must not render 100,000 rows. The
    full list is the user changelist filtered by group."""

    def get_queryset(self) -> QuerySet:
        if not hasattr(self, "_first_members"):
            self._first_members = super().get_queryset()[:GROUP_MEMBER_PREVIEW]
        return self._first_members

    def removed_users(self, group: Group) -> list[User]:
        return [
            form.instance.user
            for form in self.deleted_forms
            if form.instance.pk is not None and form.instance.group_id == group.pk
        ]


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = FirstMembersFormSet
    fields = ("member", "member_name", "created")
    readonly_fields = ("member", "member_name", "created")
    verbose_name = "member"
    verbose_name_plural = f"members (first {GROUP_MEMBER_PREVIEW}; tick to remove)"
    extra = 0
    can_delete = True

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = (
            super().get_queryset(request).select_related("user", "group").order_by(Lower("user__username"))
        )
        return queryset if is_operator(request) else queryset.filter(tenant=request.tenant)  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="userName")
    def member(self, obj: Membership) -> SafeString:
        return format_html('<a href="{}">{}</a>', console_url(User, "change", obj.user_id), obj.user.username)

    @admin.display(description="name")
    def member_name(self, obj: Membership) -> str:
        return obj.user.get_full_name()


class GroupForm(forms.ModelForm):
    add_members = forms.ModelMultipleChoiceField(queryset=User.objects.none(), required=False)
    remove_members = forms.ModelMultipleChoiceField(queryset=User.objects.none(), required=False)

    class Meta:
        model = Group
        fields = ("display_name", "external_id")

    console_tenant: Tenant | None = None

    def clean_display_name(self) -> str:
        name = self.cleaned_data["display_name"]
        tenant = self.console_tenant or self.cleaned_data.get("tenant")
        if tenant is not None:
            others = selectors.group_list(tenant=tenant).filter(display_name__lower=name.lower())
            if self.instance.pk is not None:
                others = others.exclude(pk=self.instance.pk)
            if others.exists():
                raise forms.ValidationError(services.DISPLAY_NAME_TAKEN.format(value=name))
        return name


class GroupAdmin(TenantScopedAdmin):
    form = GroupForm
    changelist_title = "Groups"
    list_display = ("display_name", "member_count", "external_id", "last_modified")
    search_fields = ("display_name", "external_id")
    search_help_text = "The start of a displayName, or an exact externalId."
    list_select_related = ("tenant",)
    ordering = (Lower("display_name"),)
    readonly_fields = ("scim_id", "member_count", "created", "last_modified", "version")
    inlines = (MembershipInline,)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            tenant_field = ("tenant",) if is_operator(request) else ()
            return ((None, {"fields": (*tenant_field, "display_name", "external_id", "add_members")}),)
        return (
            (None, {"fields": ("display_name", "external_id", "scim_id", "member_count")}),
            ("Members", {"fields": ("add_members", "remove_members")}),
            ("Record", {"fields": (("created", "last_modified", "version"),), "classes": ("collapse",)}),
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """Member counts as a correlated subquery: evaluated for the page's rows only, each an
        index-only count on (group, user)."""
        members = (
            Membership.objects.filter(group=OuterRef("pk"))
            .order_by()
            .values("group")
            .annotate(n=Count("id"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(members_total=Coalesce(Subquery(members, output_field=IntegerField()), 0))
        )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if obj is not None:
            tenant = obj.tenant
        else:
            tenant = None if is_operator(request) else request.tenant  # type: ignore[attr-defined]
        users = User.objects.exclude(role=User.Role.SERVICE)
        users = users.filter(tenant=tenant) if tenant is not None else users
        members_field = Group._meta.get_field("members")

        def picker(label: str, help_text: str) -> forms.ModelMultipleChoiceField:
            return forms.ModelMultipleChoiceField(
                queryset=users,
                required=False,
                label=label,
                help_text=help_text,
                widget=AutocompleteSelectMultiple(members_field, self.admin_site),
            )

        return type(
            form.__name__,
            (form,),
            {
                "console_tenant": tenant,
                "add_members": picker("Add members", "Search by userName, email or name."),
                "remove_members": picker("Remove members", "Users who are not members are ignored."),
            },
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        queryset = self.scope(request, queryset)
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(display_name__lower__startswith=term.lower()) | Q(external_id=term)), False

    @admin.display(description="members", ordering="members_total")
    def member_count(self, obj: Group) -> SafeString:
        total = getattr(obj, "members_total", None)
        if total is None:
            total = obj.memberships.count()
        url = f"{console_url(User, 'changelist')}?group={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, f"{total:,}")

    def save_model(self, request: HttpRequest, obj: Group, form: Any, change: bool) -> None:
        data = form.cleaned_data
        try:
            if change:
                services.group_update(
                    tenant=acting_tenant(request, obj.tenant),
                    actor=request_actor(request),
                    group=obj,
                    display_name=data["display_name"],
                    external_id=data.get("external_id", ""),
                )
            else:
                tenant = data["tenant"] if is_operator(request) else request.tenant  # type: ignore[attr-defined]
                created = services.group_create(
                    tenant=tenant,
                    actor=request_actor(request),
                    display_name=data["display_name"],
                    external_id=data.get("external_id", ""),
                    members=list(data.get("add_members") or []),
                )
                obj.pk = created.pk
        except DirectoryError as exc:
            raise ServiceRejected(exc) from exc

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Membership changes go to membership_add / membership_remove: one event each, a constant
        number of queries whatever the group's size."""
        if not change:
            return
        group = form.instance
        tenant = acting_tenant(request, group.tenant)
        actor = request_actor(request)
        to_add = list(form.cleaned_data.get("add_members") or [])
        to_remove = list(form.cleaned_data.get("remove_members") or [])
        for formset in formsets:
            if isinstance(formset, FirstMembersFormSet):
                to_remove.extend(formset.removed_users(group))
        try:
            if to_add:
                services.membership_add(tenant=tenant, actor=actor, group=group, users=to_add)
            if to_remove:
                services.membership_remove(tenant=tenant, actor=actor, group=group, users=to_remove)
        except DirectoryError as exc:
            raise ServiceRejected(exc) from exc

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        group = self.get_object(request, object_id)
        extra = {
            "console_events": event_rows(
                selectors.resource_events(tenant=group.tenant, resource_id=str(group.scim_id))[
                    :USER_HISTORY_LIMIT
                ]
            ),
            "console_events_url": f"{console_url(Event, 'changelist')}?q={group.scim_id}",
            "console_members_url": f"{console_url(User, 'changelist')}?group={group.pk}",
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def delete_model(self, request: HttpRequest, obj: Group) -> None:
        try:
            services.group_delete(
                tenant=acting_tenant(request, obj.tenant), actor=request_actor(request), group=obj
            )
        except DirectoryError as exc:
            self.report(request, exc)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset.select_related("tenant"):
            self.delete_model(request, obj)


class MembershipAdmin(ReadOnlyTenantAdmin):
    """Registered for lookups and operators; managers work with members on the group page."""

    list_display = ("group", "user", "created")
    list_select_related = ("group", "user", "tenant")
    search_fields = ("group__display_name", "user__username")

    def get_model_perms(self, request: HttpRequest) -> dict[str, bool]:
        return {}


# --------------------------------------------------------------------------------- provisioning log


EVENT_ACTIONS = (
    ("user.create", "User created"),
    ("user.update", "User updated"),
    ("user.deactivate", "User deactivated"),
    ("user.reactivate", "User reactivated"),
    ("user.delete", "User deleted"),
    ("group.create", "Group created"),
    ("group.update", "Group renamed"),
    ("group.delete", "Group deleted"),
    ("group.members_add", "Members added"),
    ("group.members_remove", "Members removed"),
    ("group.members_set", "Members replaced"),
    ("tenant.*", "Tenant and branding"),
    ("credential.*", "Credentials"),
    ("scim.*", "SCIM requests"),
    ("user.export", "CSV exports"),
)
EVENT_RESOURCE_TYPES = ("User", "Group", "Tenant", "SecretToken", "OAuthApplication", "OAuthConsent")
PERIODS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
PERIOD_LABELS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
HOUR_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}$")


def period_bounds(value: str) -> tuple[datetime, datetime] | None:
    """`24h`-style presets, or one day (`2026-05-01`) or hour (`2026-05-01T13`) in UTC, as the
    dashboard's chart bars link them."""
    now = timezone.now()
    if value in PERIODS:
        return now - PERIODS[value], now + timedelta(minutes=1)
    try:
        if DAY_RE.match(value):
            start = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            return start, start + timedelta(days=1)
        if HOUR_RE.match(value):
            start = datetime.strptime(value, "%Y-%m-%dT%H").replace(tzinfo=UTC)
            return start, start + timedelta(hours=1)
    except ValueError:
        return None
    return None


class PeriodFilter(admin.SimpleListFilter):
    title = "date"
    parameter_name = "period"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        choices = list(PERIOD_LABELS.items())
        value = self.value()
        if value and value not in PERIOD_LABELS and period_bounds(value):
            choices.append((value, value.replace("T", " ") + (":00 UTC" if "T" in value else "")))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        bounds = period_bounds(value)
        if bounds is None:
            return queryset.none()
        return queryset.filter(created__gte=bounds[0], created__lt=bounds[1])


class ActionFilter(admin.SimpleListFilter):
    """A fixed list: Django's distinct-values filter would scan the whole log for its choices."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return EVENT_ACTIONS

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if value.endswith(".*"):
            return queryset.filter(action__startswith=value[:-1])
        return queryset.filter(action=value)


class ResourceTypeFilter(admin.SimpleListFilter):
    title = "resource type"
    parameter_name = "resource_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [(t, t) for t in EVENT_RESOURCE_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(resource_type=self.value()) if self.value() else queryset


def scim_attribute(key: str) -> str:
    """Services log model field names; managers read SCIM names (given_name → name.givenName)."""
    special = {
        "phone_numbers": "phoneNumbers",
        "x509_certificates": "x509Certificates",
        "is_active": "active",
        "manager": "manager",
        "role": "role",
    }
    if key in special:
        return special[key]
    try:
        field = User._meta.get_field(key)
    except FieldDoesNotExist:
        return key
    return str(getattr(field, "verbose_name", key))


def event_summary(event: Event, *, limit: int = 4) -> str:
    """One line for lists: the failure's scimType and detail, or the attributes that changed."""
    if event.result == Event.Result.FAILURE:
        head = " ".join(p for p in (event.request_method, event.scim_type) if p)
        detail = event.detail if len(event.detail) <= 90 else event.detail[:89] + "…"
        return f"{head}: {detail}" if head else detail
    changes = event.changes or {}
    members = changes.get("members")
    parts = []
    if isinstance(members, dict):
        added, removed = len(members.get("added", [])), len(members.get("removed", []))
        counts = [f"+{added}" if added else "", f"−{removed}" if removed else ""]
        parts.append(" ".join(c for c in counts if c) + " members")
    parts.extend(scim_attribute(k) for k in changes if k != "members")
    if len(parts) > limit:
        parts = [*parts[:limit], f"+{len(parts) - limit} more"]
    return ", ".join(parts) or event.detail


def actor_html(event: Event) -> SafeString:
    if event.actor_type == Event.ActorType.CREDENTIAL:
        return format_html('<span class="sl-actor" title="{}">Entra</span>', event.actor_label)
    kind = "manager" if event.actor_type == Event.ActorType.MANAGER else "system"
    return format_html('{} <span class="sl-muted">{}</span>', event.actor_label or "—", kind)


def event_rows(events: Sequence[Event]) -> list[dict[str, Any]]:
    """Events as the dashboard and history panels list them."""
    return [{"event": e, "actor": actor_html(e), "summary": event_summary(e)} for e in events]


def describe_value(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return "; ".join(
            ", ".join(f"{k}={v}" for k, v in item.items() if v not in ("", None, False)) for item in value
        )
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class EventAdmin(ReadOnlyTenantAdmin):
    changelist_title = "Provisioning log"
    list_display = ("when", "outcome", "action", "resource", "actor", "summary")
    list_display_links = ("when", "action")
    list_filter = ("result", ActionFilter, ResourceTypeFilter, "actor_type", PeriodFilter)
    search_fields = ("resource_id", "resource_label")
    search_help_text = "A resource id, an exact userName or displayName, or the start of one."
    list_select_related = ("tenant",)
    list_per_page = 100
    ordering = ("-created", "-id")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets: list[Any] = [
            (None, {"fields": ("created", "action", "result", "resource_link", "actor_display")}),
            ("Changes", {"fields": ("changes_table",)}),
        ]
        if obj is not None and obj.result == Event.Result.FAILURE:
            fieldsets.append(
                ("Failure", {"fields": ("status", "scim_type", "detail", "request_method", "request_path")})
            )
        elif obj is not None and obj.detail:
            fieldsets.append(("Detail", {"fields": ("detail",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (
            "created",
            "action",
            "result",
            "resource_link",
            "actor_display",
            "changes_table",
            "status",
            "scim_type",
            "detail",
            "request_method",
            "request_path",
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """A resource id is an indexed equality; a userName is first resolved to the user's SCIM id
        on the LOWER(userName) index, so renamed users are found under their current name too."""
        queryset = self.scope(request, queryset)
        term = search_term.strip()
        if not term:
            return queryset, False
        lowered = term.lower()
        users = User.objects.filter(username__lower=lowered)
        if not is_operator(request):
            users = users.filter(tenant=request.tenant)  # type: ignore[attr-defined]
        ids = [str(scim_id) for scim_id in users.values_list("scim_id", flat=True)[:20]]
        matches = Q(resource_id=term) | Q(resource_id__in=ids) | Q(resource_label__lower__startswith=lowered)
        return queryset.filter(matches), False

    @admin.display(description="when", ordering="created")
    def when(self, obj: Event) -> SafeString:
        stamp = timezone.localtime(obj.created).strftime("%Y-%m-%d %H:%M:%S")
        return format_html('<span class="sl-nowrap">{}</span>', stamp)

    @admin.display(description="result", ordering="result")
    def outcome(self, obj: Event) -> SafeString:
        if obj.result == Event.Result.FAILURE:
            return format_html('<span class="sl-badge sl-badge-fail">{}</span>', obj.status or "failed")
        return format_html('<span class="sl-badge sl-badge-ok">{}</span>', "ok")

    @admin.display(description="resource")
    def resource(self, obj: Event) -> SafeString:
        label = obj.resource_label or obj.resource_id or "—"
        if not obj.resource_id:
            return format_html('{} <span class="sl-muted">{}</span>', label, obj.resource_type)
        url = f"{console_url(Event, 'changelist')}?q={obj.resource_id}"
        return format_html(
            '<a href="{}" title="All events of this resource">{}</a> <span class="sl-muted">{}</span>',
            url,
            label,
            obj.resource_type,
        )

    @admin.display(description="by")
    def actor(self, obj: Event) -> SafeString:
        return actor_html(obj)

    @admin.display(description="what changed")
    def summary(self, obj: Event) -> str:
        return event_summary(obj)

    @admin.display(description="resource")
    def resource_link(self, obj: Event) -> SafeString:
        label = obj.resource_label or obj.resource_id or "—"
        target = None
        if obj.resource_type in ("User", "Group") and obj.resource_id:
            getter = selectors.user_get if obj.resource_type == "User" else selectors.group_get
            try:
                target = getter(tenant=obj.tenant, scim_id=obj.resource_id)
            except DirectoryError:
                target = None
        head = format_html(
            '{} <span class="sl-muted">{} {}</span>', label, obj.resource_type, obj.resource_id
        )
        open_link = (
            format_html(' · <a href="{}">open</a>', console_url(type(target), "change", target.pk))
            if target is not None
            else ""
        )
        history = (
            format_html(
                ' · <a href="{}?q={}">all events</a>', console_url(Event, "changelist"), obj.resource_id
            )
            if obj.resource_id
            else ""
        )
        return format_html("{}{}{}", head, open_link, history)

    @admin.display(description="by")
    def actor_display(self, obj: Event) -> str:
        kind = dict(Event.ActorType.choices).get(obj.actor_type, obj.actor_type)
        credential = f" · {obj.credential}" if obj.credential else ""
        return f"{obj.actor_label or '—'} ({kind}{credential})"

    @admin.display(description="attributes")
    def changes_table(self, obj: Event) -> SafeString:
        changes = obj.changes or {}
        if not changes:
            return format_html('<span class="sl-muted">{}</span>', "No attribute changes recorded.")
        rows: list[tuple[str, str, str]] = []
        for attribute, change in changes.items():
            if attribute == "members" and isinstance(change, dict):
                names = member_names(obj.tenant, [*change.get("added", []), *change.get("removed", [])])
                added = ", ".join(names.get(i, i) for i in change.get("added", []))
                removed = ", ".join(names.get(i, i) for i in change.get("removed", []))
                rows.append(("members", removed or "—", added or "—"))
            elif isinstance(change, list) and len(change) == 2:
                rows.append((scim_attribute(attribute), describe_value(change[0]), describe_value(change[1])))
            else:
                rows.append((scim_attribute(attribute), "", describe_value(change)))
        body = format_html_join(
            "",
            '<tr><th scope="row"><code>{}</code></th><td class="sl-old">{}</td>'
            '<td class="sl-arrow">→</td><td class="sl-new">{}</td></tr>',
            rows,
        )
        return format_html(
            '<table class="sl-changes"><thead><tr><th>attribute</th><th>old</th><th></th><th>new</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            body,
        )


def member_names(tenant: Tenant, scim_ids: Sequence[str]) -> dict[str, str]:
    parsed = [p for p in (selectors.parse_scim_id(i) for i in scim_ids) if p is not None]
    if not parsed:
        return {}
    rows = selectors.user_list(tenant=tenant).filter(scim_id__in=parsed).values_list("scim_id", "username")
    return {str(scim_id): username for scim_id, username in rows}


# ------------------------------------------------------------------------------------------- tenants


class TenantHostInline(admin.TabularInline):
    model = TenantHost
    extra = 0


class TenantEmailDomainInline(admin.TabularInline):
    model = TenantEmailDomain
    extra = 0


class TenantAdmin(ServiceBackedAdmin):
    """Operators only. Managers edit their own tenant's branding on the console's Branding page."""

    list_display = ("slug", "name", "is_active", "created")
    search_fields = ("slug", "name")
    fields = ("slug", "name", "is_active", "display_name", "logo_url", "primary_color")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        return queryset if is_operator(request) else queryset.filter(pk=request.tenant.pk)  # type: ignore[attr-defined]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_operator(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else ("slug", "name", "is_active")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_operator(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        data = form.cleaned_data
        try:
            if not change:
                created = services.tenant_create(
                    actor=request_actor(request), slug=data["slug"], name=data["name"]
                )
                obj.pk = created.pk
                return
            services.tenant_update_branding(
                tenant=obj,
                actor=request_actor(request),
                display_name=data.get("display_name", ""),
                logo_url=data.get("logo_url", ""),
                primary_color=data.get("primary_color", ""),
            )
        except DirectoryError as exc:
            raise ServiceRejected(exc) from exc


# Django's permission groups are one table for every tenant and mean nothing here: directory groups
# are tenant rows (Group above), and the console's permissions come from roles.
if admin.site.is_registered(AuthGroup):
    admin.site.unregister(AuthGroup)
admin.site.register(Tenant, TenantAdmin)
admin.site.register(User, UserAdmin)
admin.site.register(Group, GroupAdmin)
admin.site.register(Membership, MembershipAdmin)
admin.site.register(Event, EventAdmin)

# Webhook endpoints and their delivery log live in their own module, registered on import.
from directory import admin_webhooks  # noqa: E402, F401
