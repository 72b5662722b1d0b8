"""Which provisioned user an SSO identity is: the one rule, shared by SAML and OpenID Connect.

It is *crucial* for security that the lookup is scoped to the tenant of the request host and that
it never creates anyone (security.md §1.4): an identity signs in only the user that SCIM
provisioned in this tenant, matched

- by Entra's object id (`oid`, the SAML `objectidentifier` claim) against `externalId`, when the
  tenant maps objectId to externalId in its provisioning (or sends the object id as NameID); or
- by the UPN against `userName`, case-insensitively, otherwise.

Never by email: an email claim is not proof of anything (the nOAuth pattern).
"""

from __future__ import annotations

from dataclasses import dataclass

from directory.models import Tenant, User
from directory.selectors import lowered
from sso.models import SsoSettings

NOT_PROVISIONED = "not_provisioned"
INACTIVE = "inactive"
AMBIGUOUS = "ambiguous"
NO_IDENTIFIER = "no_identifier"

REASONS = {
    NOT_PROVISIONED: "No user with this identity has been provisioned in this tenant.",
    INACTIVE: "The user is deactivated.",
    AMBIGUOUS: "More than one user of this tenant has this externalId.",
    NO_IDENTIFIER: "The sign-in carried no usable user identifier.",
}


@dataclass(frozen=True)
class Link:
    """The outcome of linking: the user, or why nobody may sign in (one of REASONS)."""

    user: User | None
    refusal: str = ""
    matched_by: str = ""

    @property
    def allowed(self) -> bool:
        return self.user is not None and not self.refusal


def matches_object_id(sso: SsoSettings | None) -> bool:
    return sso is not None and (
        sso.match_object_id_to_external_id or sso.name_id_policy == SsoSettings.NameIdPolicy.OBJECT_ID
    )


def user_may_sign_in(user: User, tenant: Tenant) -> bool:
    """SCIM's `active=false` blocks sign-in; service principals never sign in anywhere."""
    return bool(
        user.tenant_id == tenant.id
        and user.is_active
        and user.role != User.Role.SERVICE
        and tenant.is_active
        and not tenant.is_platform
    )


def sso_link(tenant: Tenant, *, upn: str, object_id: str, sso: SsoSettings | None = None) -> Link:
    """Resolve an asserted identity to a user of `tenant`, with the reason when it is refused."""
    if sso is None:
        sso = SsoSettings.objects.filter(tenant=tenant).first()
    users = User.objects.select_related("tenant").filter(tenant=tenant).exclude(role=User.Role.SERVICE)
    if matches_object_id(sso):
        object_id = (object_id or "").strip()
        if not object_id:
            return Link(None, NO_IDENTIFIER)
        found = list(users.filter(external_id=object_id)[:2])
        matched_by = "externalId"
    else:
        upn = (upn or "").strip()
        if not upn:
            return Link(None, NO_IDENTIFIER)
        found = list(users.filter(username__lower=lowered(upn))[:2])
        matched_by = "userName"
    if not found:
        return Link(None, NOT_PROVISIONED, matched_by)
    if len(found) > 1:
        return Link(None, AMBIGUOUS, matched_by)
    user = found[0]
    if not user_may_sign_in(user, tenant):
        return Link(user, INACTIVE, matched_by)
    return Link(user, "", matched_by)


def sso_user_for(tenant: Tenant, *, upn: str, object_id: str) -> User | None:
    """The user this identity signs in as, or None: unknown, ambiguous, deactivated, or another
    tenant's. Callers that need to say why use `sso_link`."""
    link = sso_link(tenant, upn=upn, object_id=object_id)
    return link.user if link.allowed else None
