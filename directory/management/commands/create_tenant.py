from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory import services
from directory.exceptions import DirectoryError


class Command(BaseCommand):
    help = "Create a tenant with its host <slug>.<base domain> and its provisioning service principal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--host", action="append", default=[], help="A custom host (repeatable).")
        parser.add_argument(
            "--email-domain", action="append", default=[], help="A verified email domain (repeatable)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = services.tenant_create(
                actor=services.Actor.system("manage.py create_tenant"),
                slug=options["slug"],
                name=options["name"],
                hosts=options["host"],
                email_domains=options["email_domain"],
            )
        except DirectoryError as exc:
            raise CommandError(exc.message) from exc
        hosts = ", ".join(tenant.hosts.values_list("host", flat=True))
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.name}) on {hosts}")
