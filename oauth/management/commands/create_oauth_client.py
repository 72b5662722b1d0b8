from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory import selectors, services
from directory.exceptions import DirectoryError
from oauth.models import Application
from oauth.services import application_create

GRANTS = {
    "authorization-code": Application.GRANT_AUTHORIZATION_CODE,
    "client-credentials": Application.GRANT_CLIENT_CREDENTIALS,
}


class Command(BaseCommand):
    help = (
        "Register an OAuth client for SCIM provisioning and print its client_id and client_secret. "
        "The secret is shown once; only its hash is stored. Without --tenant the client is "
        "platform-wide (authorization code only): any tenant's manager may authorize it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--redirect-uri",
            action="append",
            default=[],
            dest="redirect_uris",
            help="Exact redirect URI; repeat for several. Required for authorization-code clients.",
        )
        parser.add_argument("--tenant", help="Tenant slug; the client then serves that tenant only.")
        parser.add_argument("--grant", choices=sorted(GRANTS), default="authorization-code")
        parser.add_argument(
            "--secret-days", type=int, default=None, help="Secret lifetime (default 2 years)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = selectors.tenant_get(slug=options["tenant"]) if options["tenant"] else None
            application, secret = application_create(
                tenant=tenant,
                actor=services.Actor.system("manage.py create_oauth_client"),
                name=options["name"],
                grant_type=GRANTS[options["grant"]],
                redirect_uris=options["redirect_uris"],
                secret_expires_days=options["secret_days"],
            )
        except DirectoryError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"client_id: {application.client_id}")
        self.stdout.write(f"client_secret: {secret}")
