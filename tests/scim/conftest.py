"""SCIM fixtures: a client that speaks to /scim/v2/ with a tenant's bearer token."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.clients import Client

SCIM = "application/scim+json; charset=utf-8"


class SCIMClient:
    """Django's test client with a bearer token and SCIM JSON bodies; `base` is /scim/v2."""

    def __init__(self, token: str | None, host: str = "testserver") -> None:
        self.client = Client(HTTP_HOST=host)
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}
        for name, value in (extra or {}).items():
            headers["HTTP_" + name.upper().replace("-", "_")] = value
        return headers

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(f"/scim/v2{path}", params, **self._headers(headers))

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = SCIM,
        headers: dict | None = None,
    ) -> Any:
        data = body if isinstance(body, str | bytes) else json.dumps(body) if body is not None else ""
        return getattr(self.client, method.lower())(
            f"/scim/v2{path}", data=data, content_type=content_type, **self._headers(headers)
        )

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.send("POST", path, body, **kwargs)

    def put(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.send("PUT", path, body, **kwargs)

    def patch(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.send("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.send("DELETE", path, None, **kwargs)


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)}


@pytest.fixture
def scim(scim_token: str) -> SCIMClient:
    return SCIMClient(scim_token)


@pytest.fixture
def other_scim(other_scim_token: str) -> SCIMClient:
    return SCIMClient(other_scim_token)
