from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from directory import selectors, services
from directory.models import Tenant, User
from directory.tenancy import tenant_primary_host
from oauth.models import SecretToken
from oauth.services import secret_token_issue, secret_token_revoke

DEMO_TOKEN_NAME = "Demo token (make run)"


class Command(BaseCommand):
    help = (
        "Idempotently seed the demo tenant `contoso` with a manager, and print how to sign in and a "
        "fresh SCIM token (earlier demo tokens are revoked)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", default="contoso")
        parser.add_argument("--name", default="Contoso")
        parser.add_argument("--username", default="manager")
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        actor = services.Actor.system("manage.py seed_demo")
        slug = options["slug"]
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            tenant = services.tenant_create(
                actor=actor, slug=slug, name=options["name"], email_domains=[f"{slug}.example"]
            )
        else:
            tenant = services.tenant_reactivate(tenant=tenant, actor=actor)
        password = os.environ.get("DEMO_MANAGER_PASSWORD") or secrets.token_urlsafe(12)
        manager = selectors.user_by_username(tenant=tenant, username=options["username"])
        if manager is None:
            manager = services.user_create(
                tenant=tenant,
                actor=actor,
                username=options["username"],
                fields={"display_name": "Demo Manager", "given_name": "Demo", "family_name": "Manager"},
                emails=[{"value": f"manager@{slug}.example", "type": "work", "primary": True}],
                role=User.Role.MANAGER,
                password=password,
            )
        else:
            # Printed credentials must work: undo a deactivation or demotion since the last run.
            manager = services.user_update(
                tenant=tenant, actor=actor, user=manager, fields={"is_active": True}, role=User.Role.MANAGER
            )
            manager = services.user_set_password(tenant=tenant, actor=actor, user=manager, password=password)
        for old in SecretToken.objects.filter(tenant=tenant, name=DEMO_TOKEN_NAME, revoked__isnull=True):
            secret_token_revoke(tenant=tenant, actor=actor, token=old)
        _token, raw = secret_token_issue(tenant=tenant, actor=actor, name=DEMO_TOKEN_NAME)

        host = tenant_primary_host(tenant.slug)
        base = f"http://{host}:{options['port']}"
        self.stdout.write("")
        self.stdout.write(f"Demo tenant {tenant.slug} is ready.")
        self.stdout.write(f"Sign in:     {base}/admin/login/")
        self.stdout.write(f"Username:    {manager.username}")
        self.stdout.write(f"Password:    {password}")
        self.stdout.write(f"SCIM base:   {base}/scim/v2/")
        self.stdout.write(f"SCIM token: {raw}")
        self.stdout.write("")
