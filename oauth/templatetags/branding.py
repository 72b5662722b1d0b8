"""Branding values as the templates may use them: a colour only as #RRGGBB, a logo only as an
http(s) URL. Anything else falls back to the default, so a bad row can never reach CSS or a URL
attribute as something other than data."""

from __future__ import annotations

import re

from django import template

register = template.Library()

DEFAULT_BRAND_COLOUR = "#2563eb"
HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


@register.filter
def brand_colour(value: object) -> str:
    return value if isinstance(value, str) and HEX_COLOUR.fullmatch(value) else DEFAULT_BRAND_COLOUR


@register.filter
def logo_url(value: object) -> str:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= 2048:
        return value
    return ""
