"""The manager console's baseline: every model registered, every queryset scoped to the tenant of
the request host, every write through directory.services.

On a tenant host a manager sees that tenant only; on the root host platform operators (superusers of
the platform tenant) see every tenant. Rows of another tenant are not in the queryset, so their
change pages answer 404 like rows that do not exist.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from directory import services
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
    UserPhoneNumber,
)


def is_operator(request: HttpRequest) -> bool:
    tenant = getattr(request, "tenant", None)
    return bool(request.user.is_authenticated and request.user.is_superuser and tenant and tenant.is_platform)


def request_actor(request: HttpRequest) -> services.Actor:
    return services.Actor.manager(request.user)  # type: ignore[arg-type]


class TenantScopedAdmin(admin.ModelAdmin):
    """Scopes querysets and foreign-key choices to the request's tenant (all tenants for operators)."""

    tenant_field = "tenant"

    def scope(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if is_operator(request):
            return queryset
        return queryset.filter(**{self.tenant_field: request.tenant})  # type: ignore[attr-defined]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(request, super().get_queryset(request))

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

    def report(self, request: HttpRequest, exc: DirectoryError) -> None:
        self.message_user(request, exc.message, messages.ERROR)


class ReadOnlyTenantAdmin(TenantScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class UserEmailInline(admin.TabularInline):
    model = UserEmail
    fields = ("type", "value", "primary")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class UserPhoneNumberInline(UserEmailInline):
    model = UserPhoneNumber


class UserAddressInline(UserEmailInline):
    model = UserAddress
    fields = (
        "type",
        "formatted",
        "street_address",
        "locality",
        "region",
        "postal_code",
        "country",
        "primary",
    )


@admin.action(description="Deactivate selected users")
def deactivate_users(modeladmin: UserAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done = 0
    for user in queryset.exclude(role=User.Role.SERVICE):
        try:
            services.user_deactivate(tenant=user.tenant, actor=request_actor(request), user=user)
            done += 1
        except DirectoryError as exc:
            modeladmin.report(request, exc)
    modeladmin.message_user(request, f"Deactivated {done} user(s).", messages.SUCCESS)


@admin.action(description="Reactivate selected users")
def reactivate_users(modeladmin: UserAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    done = 0
    for user in queryset.exclude(role=User.Role.SERVICE):
        try:
            services.user_reactivate(tenant=user.tenant, actor=request_actor(request), user=user)
            done += 1
        except DirectoryError as exc:
            modeladmin.report(request, exc)
    modeladmin.message_user(request, f"Reactivated {done} user(s).", messages.SUCCESS)


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
    "employee_number",
    "manager",
)


class UserAdmin(TenantScopedAdmin):
    list_display = ("username", "display_name", "is_active", "role", "department", "created")
    list_filter = ("is_active", "role")
    search_fields = ("username", "display_name", "given_name", "family_name", "external_id")
    list_select_related = ("tenant",)
    readonly_fields = ("scim_id", "created", "last_modified", "version")
    fields = ("scim_id", *USER_FORM_FIELDS, "created", "last_modified", "version")
    raw_id_fields = ("manager",)
    inlines = (UserEmailInline, UserPhoneNumberInline, UserAddressInline)
    actions = (deactivate_users, reactivate_users)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).exclude(role=User.Role.SERVICE)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        data = {k: v for k, v in form.cleaned_data.items() if k in USER_FORM_FIELDS}
        manager = data.pop("manager", None)
        role = data.pop("role", User.Role.MEMBER)
        try:
            if change:
                services.user_update(
                    tenant=obj.tenant,
                    actor=request_actor(request),
                    user=obj,
                    fields=data,
                    manager=manager,
                    role=role,
                )
            else:
                created = services.user_create(
                    tenant=request.tenant,  # type: ignore[attr-defined]
                    actor=request_actor(request),
                    username=data.pop("username"),
                    fields=data,
                    manager=manager,
                    role=role,
                )
                obj.pk = created.pk
        except DirectoryError as exc:
            self.report(request, exc)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Inlines are read-only; multi-valued attributes change through SCIM or services."""

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        try:
            services.user_delete(tenant=obj.tenant, actor=request_actor(request), user=obj)
        except DirectoryError as exc:
            self.report(request, exc)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ("user", "created")
    readonly_fields = ("user", "created")
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GroupAdmin(TenantScopedAdmin):
    list_display = ("display_name", "external_id", "created", "last_modified")
    search_fields = ("display_name", "external_id")
    list_select_related = ("tenant",)
    fields = ("scim_id", "display_name", "external_id", "created", "last_modified", "version")
    readonly_fields = ("scim_id", "created", "last_modified", "version")
    inlines = (MembershipInline,)

    def save_model(self, request: HttpRequest, obj: Group, form: Any, change: bool) -> None:
        data = form.cleaned_data
        try:
            if change:
                services.group_update(
                    tenant=obj.tenant,
                    actor=request_actor(request),
                    group=obj,
                    display_name=data["display_name"],
                    external_id=data.get("external_id", ""),
                )
            else:
                created = services.group_create(
                    tenant=request.tenant,  # type: ignore[attr-defined]
                    actor=request_actor(request),
                    display_name=data["display_name"],
                    external_id=data.get("external_id", ""),
                )
                obj.pk = created.pk
        except DirectoryError as exc:
            self.report(request, exc)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Membership changes go through services (see the manager console)."""

    def delete_model(self, request: HttpRequest, obj: Group) -> None:
        services.group_delete(tenant=obj.tenant, actor=request_actor(request), group=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


class MembershipAdmin(ReadOnlyTenantAdmin):
    list_display = ("group", "user", "created")
    list_select_related = ("group", "user")
    search_fields = ("group__display_name", "user__username")


class EventAdmin(ReadOnlyTenantAdmin):
    list_display = ("created", "action", "result", "resource_type", "resource_label", "actor_label", "status")
    list_filter = ("result", "action", "resource_type")
    search_fields = ("resource_id", "resource_label")
    list_select_related = ("tenant",)
    date_hierarchy = "created"
    show_full_result_count = False


class TenantHostInline(admin.TabularInline):
    model = TenantHost
    extra = 0


class TenantEmailDomainInline(admin.TabularInline):
    model = TenantEmailDomain
    extra = 0


class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "is_active", "created")
    search_fields = ("slug", "name")
    fields = ("slug", "name", "is_active", "display_name", "logo_url", "primary_color")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        return queryset if is_operator(request) else queryset.filter(pk=request.tenant.pk)  # type: ignore[attr-defined]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if is_operator(request) and obj is None else ("slug", "name", "is_active")

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
            self.report(request, exc)


admin.site.register(Tenant, TenantAdmin)
admin.site.register(User, UserAdmin)
admin.site.register(Group, GroupAdmin)
admin.site.register(Membership, MembershipAdmin)
admin.site.register(Event, EventAdmin)
