"""Helpers shared by the SCIM endpoint tests: request bodies, SCIM error assertions, and the
witness that proves a second tenant's rows stay invisible and untouched."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from directory import services
from directory.models import (
    Event,
    Group,
    Membership,
    Tenant,
    User,
    UserAddress,
    UserEmail,
    UserEntitlement,
    UserIm,
    UserPhoneNumber,
    UserPhoto,
    UserX509Certificate,
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
ADSCIM_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
SCIM_JSON = "application/scim+json"
UNKNOWN_ID = "0b9a3c52-8f4e-4d6b-9c1a-2e7f5d8a9b10"

# The userName, externalId and group name the other tenant also uses, so creating them here proves
# uniqueness is per tenant and a 409 never reveals the other tenant's data.
SHARED_USERNAME = "shared.user@example.com"
SHARED_EXTERNAL_ID = "shared-external-id"
SHARED_GROUP = "Shared Group"
SHARED_IM = "shared.skype"
SHARED_ENTITLEMENT = "Shared Entitlement"
SHARED_PASSWORD = "fabrikam's own pa55word"


def user_body(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER], "userName": user_name, **attributes}


def group_body(display_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [GROUP], "displayName": display_name, **attributes}


def is_scim_json(response: Any) -> bool:
    return response["Content-Type"].split(";")[0].strip() == SCIM_JSON


def assert_scim_error(response: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """RFC 7644 §3.12 and entra-scim.md R76: the Error schema, `status` as a string, an actionable
    detail, the scimType the RFC defines for the case, and the SCIM media type."""
    assert response.status_code == status, response.content
    assert is_scim_json(response), response["Content-Type"]
    body = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert isinstance(body["detail"], str) and len(body["detail"]) > 5
    if scim_type is None:
        assert "scimType" not in body, body
    else:
        assert body.get("scimType") == scim_type, body
    return body


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.content
    assert is_scim_json(response)
    return response.json()


def create_user(scim: Any, user_name: str, **attributes: Any) -> dict[str, Any]:
    return created(scim.post("/Users", user_body(user_name, **attributes)))


def create_group(scim: Any, display_name: str, **attributes: Any) -> dict[str, Any]:
    return created(scim.post("/Groups", group_body(display_name, **attributes)))


def listed(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    assert is_scim_json(response)
    body = response.json()
    assert body["schemas"] == [LIST_RESPONSE]
    assert isinstance(body["totalResults"], int)
    assert isinstance(body["itemsPerPage"], int)
    assert isinstance(body["startIndex"], int)
    assert body["itemsPerPage"] == len(body["Resources"])
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [resource["id"] for resource in body["Resources"]]


def user_row(scim_id: str) -> User:
    return User.objects.get(scim_id=scim_id)


def enterprise(document: dict[str, Any]) -> dict[str, Any]:
    return document.get(ENTERPRISE, {})


def _rows(model: type, tenant: Tenant) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if k != "password"}
        for row in model.objects.filter(tenant=tenant).order_by("pk").values()
    ]


@dataclass
class OtherTenantWitness:
    """Rows of the second tenant (fabrikam), seeded with the same userName, externalId, email and
    group name the tests use in contoso. `assert_untouched` proves no request of the first tenant
    changed them; `assert_not_in` proves no response showed them."""

    tenant: Tenant
    user: User
    manager: User
    group: Group
    snapshot: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def seed(cls, tenant: Tenant) -> OtherTenantWitness:
        actor = services.Actor.system("other-tenant seed")
        manager = services.user_create(
            tenant=tenant,
            actor=actor,
            username="boss@fabrikam.com",
            fields={"external_id": "fabrikam-boss", "display_name": "Fabrikam Boss"},
        )
        user = services.user_create(
            tenant=tenant,
            actor=actor,
            username=SHARED_USERNAME,
            fields={"external_id": SHARED_EXTERNAL_ID, "display_name": "Shared User", "title": "Fabrikam"},
            emails=[{"type": "work", "value": SHARED_USERNAME, "primary": True}],
            ims=[{"type": "skype", "value": SHARED_IM}],
            entitlements=[{"value": SHARED_ENTITLEMENT}],
            manager=manager,
            password=SHARED_PASSWORD,
        )
        group = services.group_create(
            tenant=tenant, actor=actor, display_name=SHARED_GROUP, external_id="shared-group", members=[user]
        )
        witness = cls(tenant=tenant, user=user, manager=manager, group=group)
        witness.snapshot = witness.state()
        return witness

    def state(self) -> dict[str, Any]:
        return {
            "users": _rows(User, self.tenant),
            "emails": _rows(UserEmail, self.tenant),
            "phones": _rows(UserPhoneNumber, self.tenant),
            "addresses": _rows(UserAddress, self.tenant),
            "ims": _rows(UserIm, self.tenant),
            "photos": _rows(UserPhoto, self.tenant),
            "entitlements": _rows(UserEntitlement, self.tenant),
            "x509_certificates": _rows(UserX509Certificate, self.tenant),
            "groups": _rows(Group, self.tenant),
            "memberships": _rows(Membership, self.tenant),
            "events": Event.objects.filter(tenant=self.tenant).count(),
        }

    @property
    def ids(self) -> set[str]:
        return {str(self.user.scim_id), str(self.manager.scim_id), str(self.group.scim_id)}

    def assert_untouched(self) -> None:
        assert self.state() == self.snapshot

    def assert_rows_untouched(self) -> None:
        """For tests where the other tenant itself makes failing requests, which it logs."""
        assert {k: v for k, v in self.state().items() if k != "events"} == {
            k: v for k, v in self.snapshot.items() if k != "events"
        }

    def assert_not_in(self, response: Any) -> None:
        text = response.content.decode() if hasattr(response, "content") else json.dumps(response)
        for scim_id in self.ids:
            assert scim_id not in text
        assert "Fabrikam" not in text
