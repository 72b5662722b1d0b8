"""`manage.py sso_refresh_metadata`: fetch every tenant's IdP metadata again from its App Federation
Metadata URL (run daily, e.g. from cron), so a signing certificate Entra adds during a rollover is
trusted before Entra switches to it. A failure keeps the stored IdP and is written to the tenant's
provisioning log (sso.services.saml_metadata_fetch); the command exits 1 when any fetch failed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory.exceptions import DirectoryError
from directory.services import Actor
from sso import services
from sso.models import SsoSettings


class Command(BaseCommand):
    help = "Fetch the SAML IdP metadata of every tenant with an App Federation Metadata URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Only this tenant (slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("manage.py sso_refresh_metadata")
        rows = (
            SsoSettings.objects.select_related("tenant")
            .exclude(idp_metadata_url="")
            .filter(tenant__is_active=True, tenant__is_platform=False)
            .order_by("tenant__slug")
        )
        if options["tenant"]:
            rows = rows.filter(tenant__slug=options["tenant"].strip().lower())
        failed = 0
        for row in rows:
            try:
                sso = services.saml_metadata_fetch(tenant=row.tenant, actor=actor)
            except DirectoryError as exc:
                failed += 1
                self.stderr.write(f"{row.tenant.slug}: {exc.message}")
            else:
                until = min((e["not_after"][:10] for e in sso.idp_certificates), default="-")
                self.stdout.write(f"{row.tenant.slug}: {sso.idp_entity_id} (certificate until {until})")
        if failed:
            raise CommandError(f"{failed} tenant(s) kept their previous IdP metadata.")
