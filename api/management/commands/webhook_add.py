from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory import selectors, services
from directory.exceptions import DirectoryError
from directory.feed import EVENT_TYPES


class Command(BaseCommand):
    help = (
        "Register a webhook endpoint for a tenant. Prints a summary, then the signing secret alone on "
        "the last line (shown once; only an encrypted copy is stored)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument("--url", required=True, help="https:// URL of the receiver.")
        parser.add_argument(
            "--event",
            action="append",
            default=[],
            metavar="TYPE",
            help=f"An event type to deliver (repeatable; default: all). Known: {', '.join(EVENT_TYPES)}.",
        )
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = selectors.tenant_get(slug=options["tenant"])
            endpoint, secret = services.webhook_endpoint_create(
                tenant=tenant,
                actor=services.Actor.system("manage.py webhook_add"),
                url=options["url"],
                event_types=options["event"],
                description=options["description"],
            )
        except DirectoryError as exc:
            raise CommandError(exc.message) from exc
        events = ", ".join(endpoint.event_types) if endpoint.event_types else "all event types"
        self.stdout.write(f"Registered webhook endpoint {endpoint.pk} for tenant {tenant.slug}")
        self.stdout.write(f"URL:    {endpoint.url}")
        self.stdout.write(f"Events: {events}")
        self.stdout.write("Signing secret (shown once; verify the SecureLogin-Signature header with it):")
        self.stdout.write(secret)
