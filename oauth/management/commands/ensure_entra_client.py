from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from directory import services
from directory.models import Tenant
from oauth.models import Application
from oauth.services import application_create, application_redirect_uri_add, application_secret_reset

ENTRA_CLIENT_NAME = "Microsoft Entra ID"
ENTRA_REDIRECT_URI = "https://portal.azure.com/TokenAuthorize"


class Command(BaseCommand):
    help = (
        'Idempotently create the platform-wide "Microsoft Entra ID" OAuth client (redirect URI '
        f"{ENTRA_REDIRECT_URI}) and print its client id and a fresh secret (the previous own secret "
        "of the client stops working)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url", default="", help="Also print the Authorization and Token URLs under this base."
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        actor = services.Actor.system("manage.py ensure_entra_client")
        application = (
            Application.objects.filter(tenant__isnull=True, name=ENTRA_CLIENT_NAME).order_by("pk").first()
        )
        if application is None:
            application, secret = application_create(
                tenant=None, actor=actor, name=ENTRA_CLIENT_NAME, redirect_uris=[ENTRA_REDIRECT_URI]
            )
        else:
            platform = Tenant.objects.get(is_platform=True)
            application = application_redirect_uri_add(
                tenant=platform, actor=actor, application=application, uri=ENTRA_REDIRECT_URI
            )
            secret = application_secret_reset(tenant=platform, actor=actor, application=application)
        self.stdout.write(f"Entra client_id: {application.client_id}")
        self.stdout.write(f"Entra client_secret: {secret}")
        base = options["base_url"].rstrip("/")
        if base:
            self.stdout.write(f"Entra authorization URL: {base}/oauth/authorize/")
            self.stdout.write(f"Entra token URL: {base}/oauth/token/")
