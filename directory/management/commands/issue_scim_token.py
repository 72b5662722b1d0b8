from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory import selectors, services
from directory.exceptions import DirectoryError
from oauth.services import secret_token_issue


class Command(BaseCommand):
    help = (
        "Mint a long-lived SCIM bearer token for a tenant's provisioning service principal. "
        "Prints the token alone on stdout; only its SHA-256 digest is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--expires-days", type=int, default=None, help="Default: never expires.")
        parser.add_argument("--name", default="Secret token (manage.py)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = selectors.tenant_get(slug=options["tenant"])
            if not tenant.is_active:
                raise CommandError(f"Tenant {tenant.slug} is inactive; its tokens would not work.")
            _token, raw = secret_token_issue(
                tenant=tenant,
                actor=services.Actor.system("manage.py issue_scim_token"),
                name=options["name"],
                expires_days=options["expires_days"],
            )
        except DirectoryError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(raw)
