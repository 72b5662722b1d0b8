"""Rules the suite keeps about itself, checked by reading its source.

Django's test client skips CSRF unless told, and that once hid a CSRF 403 on /oauth/token/ from
every test. So every test client comes from tests/clients.py (CSRF enforced), and turning the
check off is a visible, explained exception: `enforce_csrf_checks=False  # csrf-off: <reason>`.
RequestFactory stays allowed: it builds requests for calling a view or a function directly and
runs no middleware, so it cannot pretend the CSRF check passed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.test import RequestFactory

from tests.clients import Client

TESTS = Path(__file__).resolve().parent
CLIENTS = TESTS / "clients.py"
# Django's clients, which skip CSRF unless told; AsyncClient too.
DJANGO_CLIENTS = {"Client", "AsyncClient"}
DJANGO_TEST_MODULES = {"django.test", "django.test.client"}
# pytest-django fixtures built on Django's own client, not ours.
DJANGO_CLIENT_FIXTURES = {"admin_client", "async_client"}
CSRF_OFF_REASON = re.compile(r"#\s*csrf-off:\s*\S")


def django_client_uses(source: str) -> list[tuple[int, str]]:
    """Lines that import or name Django's own test client: `from django.test import Client`
    (also aliased or inside a parenthesised list), `django.test.Client`, `test.Client(...)` after
    `from django import test`, and tests asking for pytest-django's client fixtures."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in DJANGO_TEST_MODULES:
            for alias in node.names:
                if alias.name in DJANGO_CLIENTS | {"*"}:
                    found.append((node.lineno, f"from {node.module} import {alias.name}"))
        elif isinstance(node, ast.Attribute) and node.attr in DJANGO_CLIENTS:
            owner = ast.unparse(node.value)
            if owner in DJANGO_TEST_MODULES or owner == "test":
                found.append((node.lineno, f"{owner}.{node.attr}"))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for argument in node.args.args + node.args.kwonlyargs:
                if argument.arg in DJANGO_CLIENT_FIXTURES:
                    found.append((node.lineno, f"fixture {argument.arg} in {node.name}()"))
    return found


def unexplained_csrf_off(source: str) -> list[int]:
    """Lines passing `enforce_csrf_checks` anything but a literal True without a `# csrf-off:`
    reason on that same line."""
    lines = source.splitlines()
    found: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg != "enforce_csrf_checks":
                continue
            if isinstance(keyword.value, ast.Constant) and keyword.value.value is True:
                continue
            if not CSRF_OFF_REASON.search(lines[keyword.lineno - 1]):
                found.append(keyword.lineno)
    return found


def suite_files() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if path != CLIENTS)


def test_every_test_client_comes_from_tests_clients() -> None:
    """A Django client built anywhere else skips CSRF and would miss the next CSRF 403."""
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}: {what}"
        for path in suite_files()
        for line, what in django_client_uses(path.read_text())
    ]
    assert not offenders, "use `from tests.clients import Client` instead:\n" + "\n".join(offenders)


def test_csrf_is_turned_off_only_with_a_reason() -> None:
    """Turning the check off must say why on the same line, so a reviewer sees each exception."""
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in suite_files()
        for line in unexplained_csrf_off(path.read_text())
    ]
    assert not offenders, "add `# csrf-off: <reason>` on the line:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from django.test import Client\n", [1]),
        ("from django.test import RequestFactory, Client as C\n", [1]),
        ("from django.test import (\n    RequestFactory,\n    Client,\n)\n", [1]),
        ("from django.test.client import Client\n", [1]),
        ("from django.test import AsyncClient\n", [1]),
        ("import django.test\n\nhttp = django.test.Client()\n", [3]),
        ("from django import test\n\nhttp = test.Client(HTTP_HOST='x')\n", [3]),
        ("def test_x(admin_client):\n    pass\n", [1]),
        ("from django.test import RequestFactory, TestCase\n\nRequestFactory().post('/')\n", []),
        ("from tests.clients import Client\n\nhttp = Client()\n", []),
        ("text = 'from django.test import Client'\n", []),
    ],
)
def test_the_client_rule_finds_every_spelling(source: str, expected: list[int]) -> None:
    """The rule is only as good as its parsing: each spelling is caught, RequestFactory and our
    own client pass, and a mention in a string is not a use."""
    assert [line for line, _what in django_client_uses(source)] == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Client(enforce_csrf_checks=False)\n", [1]),
        ("Client(enforce_csrf_checks=False)  # csrf-off:\n", [1]),
        ("Client(enforce_csrf_checks=False)  # no CSRF here\n", [1]),
        ("Client(enforce_csrf_checks=flag)\n", [1]),
        ("Client(\n    enforce_csrf_checks=False,\n)  # csrf-off: reason on another line\n", [2]),
        ("Client(enforce_csrf_checks=False)  # csrf-off: the live server's own check\n", []),
        ("Client(enforce_csrf_checks=True)\n", []),
    ],
)
def test_the_csrf_off_rule_wants_a_reason_on_the_same_line(source: str, expected: list[int]) -> None:
    assert unexplained_csrf_off(source) == expected


def test_request_factory_stays_allowed_because_it_runs_no_middleware() -> None:
    """RequestFactory is not a client: it builds a request object and sends it nowhere, so no
    CSRF check is skipped by using it."""
    request = RequestFactory().post("/oauth/token/", {"grant_type": "client_credentials"})
    assert request.method == "POST" and not hasattr(request, "csrf_processing_done")


def test_the_client_fixture_and_the_suites_client_enforce_csrf(client: Client) -> None:
    """pytest-django's `client` is overridden in tests/conftest.py with ours."""
    assert isinstance(client, Client)
    assert client.handler.enforce_csrf_checks
    assert Client().handler.enforce_csrf_checks
