"""The oauthlib server behind DOT's views, with only the grants SecureLogin offers."""

from __future__ import annotations

from typing import Any

from oauthlib.oauth2 import Server


class SecureLoginServer(Server):
    """Authorization code (with refresh) and client credentials, nothing else.

    RFC 9700 §2.1.2 and §2.4: the implicit and password grants must not be used. DOT's RFC 9700
    gates already refuse them per request; removing them from the server as well means
    `response_type=token` answers `unsupported_response_type` and `grant_type=password`
    `unsupported_grant_type`, whatever an application row says. The device flow is not mounted.
    """

    def __init__(self, request_validator: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(request_validator, *args, **kwargs)
        self._response_types = {"code": self.auth_grant, "none": self.auth_grant}
        self._grant_types = {
            "authorization_code": self.auth_grant,
            "client_credentials": self.credentials_grant,
            "refresh_token": self.refresh_grant,
        }
