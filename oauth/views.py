from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    return HttpResponse(
        "Too many failed sign-in attempts. Try again in 15 minutes.", status=429, content_type="text/plain"
    )
