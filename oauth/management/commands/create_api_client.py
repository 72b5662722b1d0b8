from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory import selectors, services
from directory.exceptions import DirectoryError
from directory.tenancy import tenant_primary_host
from oauth.models import API_SCOPES
from oauth.services import api_client_create


class Command(BaseCommand):
    help = (
        "Create a client of the read-only directory API (/api/v1/) for a tenant and print its "
        "client_id and client_secret. The secret is shown once; only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--name", default="Directory API client")
        parser.add_argument(
            "--scope",
            action="append",
            choices=API_SCOPES,
            dest="scopes",
            help="Repeat for several. Default: all of " + ", ".join(API_SCOPES) + ".",
        )
        parser.add_argument(
            "--base-url", default="", help="Where the token request goes (default: https://<tenant host>)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = selectors.tenant_get(slug=options["tenant"])
            if not tenant.is_active:
                raise CommandError(f"Tenant {tenant.slug} is inactive; its API clients would not work.")
            application, secret = api_client_create(
                tenant=tenant,
                actor=services.Actor.system("manage.py create_api_client"),
                name=options["name"],
                scopes=options["scopes"] or API_SCOPES,
            )
        except DirectoryError as exc:
            raise CommandError(exc.message) from exc
        base = options["base_url"].rstrip("/") or f"https://{tenant_primary_host(tenant.slug)}"
        token_url = f"{base}/oauth/token/"
        self.stdout.write(f"client_id: {application.client_id}")
        self.stdout.write(f"client_secret: {secret}")
        self.stdout.write(
            f"token request: curl -u '{application.client_id}:<client_secret>' "
            f"-d grant_type=client_credentials {token_url}"
        )
