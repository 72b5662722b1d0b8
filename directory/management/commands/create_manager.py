from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from directory import selectors, services
from directory.exceptions import DirectoryError
from directory.models import User


class Command(BaseCommand):
    help = (
        "Create a manager of a tenant (or make an existing user one and set the password). With "
        "--tenant platform --operator, a platform operator who administers every tenant from the root host."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", help="Generated and printed when omitted.")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--operator", action="store_true", help="Platform operator (only with the platform tenant)."
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        actor = services.Actor.system("manage.py create_manager")
        password = options["password"] or secrets.token_urlsafe(12)
        try:
            tenant = selectors.tenant_get(slug=options["tenant"])
            existing = selectors.user_by_username(tenant=tenant, username=options["username"])
            if existing is None:
                user = services.user_create(
                    tenant=tenant,
                    actor=actor,
                    username=options["username"],
                    emails=[{"value": options["email"], "type": "work", "primary": True}]
                    if options["email"]
                    else [],
                    role=User.Role.MANAGER,
                    password=password,
                )
                verb = "Created"
            else:
                user = services.user_update(tenant=tenant, actor=actor, user=existing, role=User.Role.MANAGER)
                user = services.user_set_password(tenant=tenant, actor=actor, user=user, password=password)
                verb = "Updated"
            if options["operator"]:
                user = services.user_set_operator(tenant=tenant, actor=actor, user=user, is_operator=True)
        except DirectoryError as exc:
            raise CommandError(exc.message) from exc
        kind = "platform operator" if user.is_superuser else "manager"
        self.stdout.write(f"{verb} {kind} {user.username} of tenant {tenant.slug}")
        if not options["password"]:
            self.stdout.write(f"Password: {password}")
