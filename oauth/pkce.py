"""PKCE policy, importable from settings (it touches models only when called)."""

from __future__ import annotations


def pkce_required(client_id: str) -> bool:
    """PKCE is mandatory for public clients and optional for confidential ones.

    Entra's "Authorize" button is a confidential client that sends no code_challenge
    (entra-scim.md §5.4), so requiring PKCE for every client would break the product's main flow;
    a `code_verifier` without a stored challenge is still refused by the validator.
    """
    from oauth2_provider.models import get_application_model

    application = get_application_model().objects.filter(client_id=client_id).only("client_type").first()
    return application is None or application.client_type == "public"
