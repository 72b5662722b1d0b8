"""Forms of the browser-facing OAuth pages."""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth.forms import AuthenticationForm

GENERIC_DOMAIN_ERROR = (
    "We couldn't find an organization for that. Check the domain or email address and try again."
)
DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
LOCAL_PART = re.compile(r"[^\s/\\:?#@%\[\]<>\"'`]{1,64}")


def _ascii_domain(value: str) -> str | None:
    """IDNA-encode and check a host name label by label; a look-alike Unicode name becomes a
    punycode name that matches nothing stored, and anything carrying URL syntax is refused."""
    try:
        encoded = value.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = encoded.split(".")
    if len(encoded) > 253 or not all(DOMAIN_LABEL.fullmatch(label) for label in labels):
        return None
    return encoded


class GoToDomainForm(forms.Form):
    """One field: the organization's SecureLogin domain (slug or host) or a work email address.

    Only names are accepted, never URLs: schemes, `//`, paths, ports, userinfo and whitespace are
    refused before any lookup (security.md §2.1), with the same message as an unknown name.
    """

    domain = forms.CharField(
        max_length=320,
        strip=True,
        label="Your organization's domain or work email",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "email",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )
    next = forms.CharField(required=False, widget=forms.HiddenInput())

    def clean_domain(self) -> str:
        value = self.cleaned_data["domain"].strip().lower().rstrip(".")
        local, at, host = value.rpartition("@")
        if at and not LOCAL_PART.fullmatch(local):
            raise forms.ValidationError(GENERIC_DOMAIN_ERROR)
        ascii_host = _ascii_domain(host) if host else None
        if ascii_host is None:
            raise forms.ValidationError(GENERIC_DOMAIN_ERROR)
        return f"{local}@{ascii_host}" if at else ascii_host


class SignInForm(AuthenticationForm):
    """Django's sign-in form (CSRF, generic error, inactive users refused) with our labels; the
    backend resolves the user inside the tenant of the request host."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "The username or password is not correct.",
    }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["username"].label = "Username"
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autocapitalize": "none"})
        self.fields["password"].label = "Password"
