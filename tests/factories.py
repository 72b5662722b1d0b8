"""factory_boy factories. Every object graph stays inside one tenant: SubFactories take the
tenant of their parent."""

from __future__ import annotations

import factory

from directory import services
from directory.models import Group, Membership, Tenant, TenantHost, User, UserEmail


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())

    @factory.post_generation
    def with_host(obj: Tenant, create: bool, extracted: object, **kwargs: object) -> None:
        from directory.tenancy import tenant_primary_host

        if create:
            TenantHost.objects.get_or_create(tenant=obj, host=tenant_primary_host(obj.slug), is_primary=True)
            if not User.objects.filter(tenant=obj, role=User.Role.SERVICE).exists():
                sp = User(tenant=obj, username=f"sp-{obj.slug}", role=User.Role.SERVICE)
                sp.set_unusable_password()
                sp.save()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    tenant = factory.SubFactory(TenantFactory)
    username = factory.Sequence(lambda n: f"user{n}@example.com")
    given_name = factory.Faker("first_name")
    family_name = factory.Faker("last_name")
    display_name = factory.LazyAttribute(lambda u: f"{u.given_name} {u.family_name}")
    password = factory.django.Password("correct horse battery staple")


class ManagerFactory(UserFactory):
    role = User.Role.MANAGER


class UserEmailFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UserEmail
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    tenant = factory.LazyAttribute(lambda e: e.user.tenant)
    type = "work"
    value = factory.LazyAttribute(lambda e: e.user.username)
    primary = True

    @factory.post_generation
    def refresh_copy(obj: UserEmail, create: bool, extracted: object, **kwargs: object) -> None:
        """A row written around the services: bring the user's `multi_values` copy up to date."""
        if create:
            services.user_multi_values_rebuild(tenant=obj.tenant, users=[obj.user])
            obj.user.refresh_from_db(fields=["multi_values"])


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    tenant = factory.SubFactory(TenantFactory)
    display_name = factory.Sequence(lambda n: f"Group {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    group = factory.SubFactory(GroupFactory)
    tenant = factory.LazyAttribute(lambda m: m.group.tenant)
    user = factory.SubFactory(UserFactory, tenant=factory.SelfAttribute("..tenant"))
