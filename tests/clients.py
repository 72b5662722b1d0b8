"""The suite's one Django test client: CSRF checks on, as every browser and HTTP client meets them.

Django's own test client skips CSRF unless told, which once let `/oauth/token/` answer every real
client with Django's CSRF 403 page while the suite stayed green. Every test imports `Client` from
here (tests/test_suite_rules.py keeps it so); a test that must turn the check off passes
`enforce_csrf_checks=False` with a `# csrf-off:` comment giving the reason.

A browser posts a form with the token the page gave it, so tests do the same:

- `client.submit(page, data)`: load `page` and post its form (or the one whose button's
  `formaction` is `action=`) as a browser does: the form's hidden inputs as rendered (the CSRF
  token, formset management forms, ids) overridden by `data`, which stands for what the person
  typed, ticked and chose;
- `client.csrf_post(path, data, form_path=page)`: a hand-made POST that no form offers (a forged
  consent, another tenant's object id) with the token this session holds after loading `page`.

A request Django refuses for CSRF raises here instead of answering 403: otherwise a test that
forgot the token and asserts "nothing changed" passes without ever reaching the view. Tests about
the refusal itself send the request inside `with client.allow_csrf_refusal():` and check
`csrf_refused(response)`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from django.test import Client as DjangoClient

CSRF_FIELD = "csrfmiddlewaretoken"
# CsrfViewMiddleware logs every refusal here, whatever CSRF_FAILURE_VIEW renders.
CSRF_LOGGER = "django.security.csrf"
# The default failure view's text, for a response that did not come through this client.
CSRF_FAILURE_TEXT = b"CSRF verification failed"


@dataclass
class _Form:
    id: str | None
    method: str
    action: str
    hidden: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Target:
    """Where a browser on the page can POST (path and query), and the hidden fields it sends."""

    path: str
    hidden: dict[str, list[str]]

    @property
    def token(self) -> str | None:
        return (self.hidden.get(CSRF_FIELD) or [None])[0]

    def payload(self, data: dict[str, Any] | None) -> dict[str, Any]:
        fields: dict[str, Any] = {name: v[0] if len(v) == 1 else v for name, v in self.hidden.items()}
        return {**fields, **(data or {})}


class _FormParser(HTMLParser):
    """Forms as a browser builds them: a `<form>` opened inside another form is dropped with its
    attributes (HTML's form element pointer), and a control belongs to its enclosing form unless
    its `form` attribute names another one by id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.controls: list[tuple[_Form | None, dict[str, str]]] = []
        self._open: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form" and self._open is None:
            method = (attributes.get("method") or "get").lower()
            self._open = _Form(attributes.get("id"), method, attributes.get("action", ""))
            self.forms.append(self._open)
        elif tag in ("input", "button", "select", "textarea"):
            self.controls.append((self._open, attributes))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None

    def owner(self, enclosing: _Form | None, attributes: dict[str, str]) -> _Form | None:
        if "form" in attributes:
            return next((form for form in self.forms if form.id == attributes["form"]), None)
        return enclosing


def _resolve(page: str, action: str) -> str:
    """`action` as the path and query a browser on `page` would post to."""
    parts = urlsplit(urljoin("http://page.invalid" + page, action))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def post_targets(html: str, page: str) -> list[Target]:
    """Where the POST forms of `page` send the browser: the forms' own actions, then the
    `formaction` of their submit buttons, each with the hidden inputs of its form."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    submitters: list[tuple[_Form, dict[str, str]]] = []
    for enclosing, attributes in parser.controls:
        form = parser.owner(enclosing, attributes)
        if form is None:
            continue
        if attributes.get("type") == "hidden" and attributes.get("name"):
            form.hidden.setdefault(attributes["name"], []).append(attributes.get("value", ""))
        elif "formaction" in attributes:
            submitters.append((form, attributes))
    targets = [
        Target(_resolve(page, form.action), form.hidden) for form in parser.forms if form.method == "post"
    ]
    for form, attributes in submitters:
        if (attributes.get("formmethod") or form.method).lower() == "post":
            targets.append(Target(_resolve(page, attributes["formaction"]), form.hidden))
    return targets


def csrf_refused(response: Any) -> bool:
    """Whether Django's CSRF check answered instead of the view."""
    if getattr(response, "csrf_refusal", None):
        return True
    return (
        response.status_code == 403
        and not getattr(response, "streaming", False)
        and CSRF_FAILURE_TEXT in response.content
    )


class _Refusals(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.reasons.append(record.getMessage())


class Client(DjangoClient):
    def __init__(self, *args: Any, enforce_csrf_checks: bool = True, **defaults: Any) -> None:
        super().__init__(*args, enforce_csrf_checks=enforce_csrf_checks, **defaults)
        self._csrf_refusal_allowed = False

    def request(self, **request: Any) -> Any:
        refusals = _Refusals()
        logger = logging.getLogger(CSRF_LOGGER)
        logger.addHandler(refusals)
        try:
            response = super().request(**request)
        finally:
            logger.removeHandler(refusals)
        response.csrf_refusal = refusals.reasons[0] if refusals.reasons else None
        if csrf_refused(response) and not self._csrf_refusal_allowed:
            method, path = request.get("REQUEST_METHOD", "?"), request.get("PATH_INFO", "?")
            raise AssertionError(
                f"Django refused {method} {path} for CSRF ({response.csrf_refusal or 'no reason logged'}). "
                "Send the token as a browser does (client.submit, client.csrf_post); a test about the "
                "refusal itself sends the request inside `with client.allow_csrf_refusal():`."
            )
        return response

    @contextmanager
    def allow_csrf_refusal(self) -> Iterator[None]:
        """Let a CSRF refusal through as the 403 response, for tests that assert it happens."""
        previous, self._csrf_refusal_allowed = self._csrf_refusal_allowed, True
        try:
            yield
        finally:
            self._csrf_refusal_allowed = previous

    def submit(
        self, page: str, data: dict[str, Any] | None = None, *, action: str | None = None, **extra: Any
    ) -> Any:
        """POST a form of `page` the way a browser does: load the page, find the POST form (or the
        submit button's `formaction`) that targets `action` (default: the page itself) and send
        its hidden inputs, the CSRF token among them, overridden by `data`. Fails when the page
        has no such form or the form sends no token, so a template that lost `{% csrf_token %}`,
        or a button whose form the browser never builds, breaks the test instead of the
        manager's browser."""
        response = self.get(page, **extra)
        assert response.status_code == 200, (page, response.status_code)
        where = _resolve(page, action if action is not None else page)
        targets = post_targets(response.content.decode(), page)
        matching = [target for target in targets if target.path == where]
        assert matching, f"{page} has no form that posts to {where}; its forms post to {targets}"
        assert matching[0].token, f"the form of {page} that posts to {where} sends no CSRF token"
        return self.post(action or page, matching[0].payload(data), **extra)

    def csrf_post(
        self, path: str, data: dict[str, Any] | None = None, *, form_path: str | None = None, **extra: Any
    ) -> Any:
        """POST `data` to `path` with the token a browser holds after loading `form_path`
        (default: `path`), for posts no form on that page makes: a tampered or forged submission,
        another tenant's object id, rows the list does not show. Django's token belongs to the
        session, not to one form, so any form of the page provides it."""
        page = form_path or path
        response = self.get(page, **extra)
        tokens = [target.token for target in post_targets(response.content.decode(), page) if target.token]
        assert tokens, f"{page} renders no CSRF token"
        return self.post(path, {**(data or {}), CSRF_FIELD: tokens[0]}, **extra)
