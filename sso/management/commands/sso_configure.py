"""`manage.py sso_configure`: set up a tenant's single sign-on from the shell, the way the console's
Single sign-on page does (through sso.services, an Event each), and print the values to paste into
Entra. Run with no protocol option, it changes nothing and only prints them: Entra asks for the
Identifier and Reply URL before it offers the metadata URL.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory import selectors
from directory.exceptions import DirectoryError
from directory.models import Tenant, User
from directory.services import Actor
from sso import entra_values, services
from sso.metadata import METADATA_MAX_BYTES, METADATA_TOO_LARGE
from sso.models import SsoSettings

ACTOR_LABEL = "manage.py sso_configure"
OIDC_OPTIONS = ("oidc_tenant_id", "oidc_client_id", "oidc_client_secret")


class Command(BaseCommand):
    help = (
        "Configure a tenant's single sign-on with Microsoft Entra ID (SAML metadata from a file or "
        "Entra's App Federation Metadata URL, or an OpenID Connect client), optionally require it, "
        "and print the values to paste into Entra."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        saml = parser.add_argument_group("SAML")
        saml.add_argument(
            "--saml-metadata",
            metavar="FILE_OR_URL",
            help="Entra's Federation Metadata XML file, or its App Federation Metadata URL "
            "(fetched now, and again by sso_refresh_metadata). Turns SAML sign-in on.",
        )
        saml.add_argument(
            "--idp-initiated",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Allow (or with --no-idp-initiated refuse) sign-in from the My Apps tile.",
        )
        oidc = parser.add_argument_group("OpenID Connect")
        oidc.add_argument("--oidc-tenant-id", metavar="TID", help="Entra's Directory (tenant) ID.")
        oidc.add_argument("--oidc-client-id", metavar="ID", help="The app registration's client ID.")
        oidc.add_argument(
            "--oidc-client-secret",
            metavar="S",
            help="A client secret of the app registration; '-' reads it from the first line of stdin "
            "(keeps it out of the shell history). Stored encrypted, never printed.",
        )
        oidc.add_argument(
            "--oidc-issuer", metavar="URL", help="Default: https://login.microsoftonline.com/<TID>/v2.0."
        )
        parser.add_argument(
            "--enforce",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Require single sign-on (password sign-in for break-glass managers only); "
            "--no-enforce allows passwords again. Unchanged when omitted.",
        )
        parser.add_argument(
            "--break-glass",
            nargs="+",
            metavar="USERNAME",
            help="The managers who may still sign in with a password while SSO is required "
            "(replaces the list).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system(ACTOR_LABEL)
        try:
            tenant = selectors.tenant_get(slug=options["tenant"])
        except DirectoryError as exc:
            raise CommandError(exc.message) from exc
        if tenant.is_platform:
            raise CommandError(services.PLATFORM_HAS_NO_SSO)
        oidc_given = [name for name in (*OIDC_OPTIONS, "oidc_issuer") if options[name] is not None]
        if options["saml_metadata"] and oidc_given:
            raise CommandError("Give either --saml-metadata or the --oidc-… options, not both.")
        missing = [f"--{name.replace('_', '-')}" for name in OIDC_OPTIONS if options[name] is None]
        if oidc_given and missing:
            raise CommandError(f"OpenID Connect also needs {', '.join(missing)}.")
        glass = self.managers(tenant, options["break_glass"]) if options["break_glass"] is not None else None
        secret = options["oidc_client_secret"]
        if secret == "-":
            secret = (options.get("stdin") or sys.stdin).readline().strip()
        try:
            if options["saml_metadata"]:
                self.configure_saml(tenant, actor, options["saml_metadata"])
            changes: dict[str, Any] = {}
            if options["saml_metadata"]:
                changes["saml_enabled"] = True
            if oidc_given:
                changes.update(
                    oidc_enabled=True,
                    oidc_tenant_id=options["oidc_tenant_id"],
                    oidc_client_id=options["oidc_client_id"],
                    oidc_client_secret=secret,
                    oidc_issuer=options["oidc_issuer"] or "",
                )
            if options["idp_initiated"] is not None:
                changes["allow_idp_initiated"] = options["idp_initiated"]
            if glass is not None:
                changes["break_glass"] = glass
            if options["enforce"] is not None:
                changes["enforce_sso"] = options["enforce"]
            if changes:
                services.sso_settings_update(tenant=tenant, actor=actor, **changes)
        except DirectoryError as exc:
            raise CommandError(exc.message) from exc
        self.report(tenant, services.sso_settings_for(tenant))

    def configure_saml(self, tenant: Tenant, actor: Actor, source: str) -> None:
        if source.startswith(("https://", "http://")):
            services.saml_metadata_fetch(tenant=tenant, actor=actor, url=source)
            return
        path = Path(source)
        try:
            if path.stat().st_size > METADATA_MAX_BYTES:
                raise CommandError(METADATA_TOO_LARGE)
            xml = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {source}: {exc.strerror}.") from exc
        services.saml_metadata_set(tenant=tenant, actor=actor, xml=xml)

    def managers(self, tenant: Tenant, usernames: list[str]) -> list[User]:
        chosen = []
        for username in usernames:
            user = selectors.user_by_username(tenant=tenant, username=username)
            if user is None:
                raise CommandError(f"Tenant {tenant.slug} has no user {username!r}.")
            chosen.append(user)
        return chosen

    def report(self, tenant: Tenant, sso: SsoSettings) -> None:
        saml = entra_values.saml_values(tenant)
        out = self.stdout.write
        out(f"Single sign-on of {tenant.name} ({tenant.slug})")
        out("")
        out("SAML — Entra: Enterprise application → Single sign-on → SAML → Basic SAML Configuration")
        out(f"  Identifier (Entity ID):  {saml.entity_id}")
        out(f"  Reply URL (ACS):         {saml.reply_url}")
        out(f"  Sign on URL:             {saml.sign_on_url}")
        out(f"  Logout Url:              {saml.logout_url}")
        out(f"  SP metadata:             {saml.metadata_url}")
        out("OpenID Connect — Entra: App registration → Authentication → Web")
        out(f"  Redirect URI:            {entra_values.oidc_redirect_uri(tenant)}")
        out("")
        if sso.idp_entity_id:
            out(f"SAML sign-in:    {'on' if sso.saml_enabled else 'off'} — IdP {sso.idp_entity_id}")
            for entry in sso.idp_certificates:
                out(f"  signing certificate {entry['sha256'][:16]}… until {entry['not_after'][:10]}")
            out(f"  IdP-initiated sign-in: {'allowed' if sso.allow_idp_initiated else 'off'}")
        else:
            out("SAML sign-in:    off — no identity provider yet")
        if sso.oidc_tenant_id:
            secret = "set" if sso.oidc_client_secret_encrypted else "not set"
            out(
                f"OpenID Connect:  {'on' if sso.oidc_enabled else 'off'} — tenant {sso.oidc_tenant_id}, "
                f"client {sso.oidc_client_id}, secret {secret}, issuer {sso.oidc_issuer_effective}"
            )
        else:
            out("OpenID Connect:  off")
        glass = sorted(u.username for u in sso.break_glass.all()) if sso.pk else []
        if sso.enforce_sso:
            out(f"Password sign-in: break-glass managers only ({', '.join(glass) or 'none chosen'})")
            if not glass:
                self.stderr.write(
                    "Warning: SSO is required and no break-glass manager is chosen; if Entra cannot "
                    "sign anyone in, nobody can sign in with a password either."
                )
        else:
            out("Password sign-in: everyone")
