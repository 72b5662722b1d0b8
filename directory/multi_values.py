"""The user's multi-valued attributes: which child table holds each kind, which fields a row has,
and the copy of those rows kept on `User.multi_values` (see the model's docstring).

Kept apart from the services so a migration can rebuild the copy with its historical models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models

VALUE_ROW_FIELDS = ("value", "type", "primary", "display")
MULTI_VALUE_TABLES: dict[str, str] = {
    "emails": "UserEmail",
    "phone_numbers": "UserPhoneNumber",
    "ims": "UserIm",
    "photos": "UserPhoto",
    "entitlements": "UserEntitlement",
    "x509_certificates": "UserX509Certificate",
    "addresses": "UserAddress",
}
MULTI_VALUE_FIELDS: dict[str, tuple[str, ...]] = {
    "emails": VALUE_ROW_FIELDS,
    "phone_numbers": VALUE_ROW_FIELDS,
    "ims": VALUE_ROW_FIELDS,
    "photos": VALUE_ROW_FIELDS,
    "entitlements": VALUE_ROW_FIELDS,
    "x509_certificates": VALUE_ROW_FIELDS,
    "addresses": (
        "formatted",
        "street_address",
        "locality",
        "region",
        "postal_code",
        "country",
        "type",
        "primary",
    ),
}
REBUILD_BATCH = 1000


def copy_from_rows(rows_by_kind: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The stored form: kinds without values are left out, so an empty copy is `{}`."""
    return {kind: rows for kind, rows in rows_by_kind.items() if rows}


def rebuild_copies(
    users: models.QuerySet, get_model: Callable[[str], type[models.Model]], *, progress: Any = None
) -> int:
    """Recompute `multi_values` of `users` from the child tables, a batch at a time: for rows that
    were written around the services (a data migration, a bulk import). Returns how many users."""
    done = 0
    ids = list(users.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), REBUILD_BATCH):
        batch = ids[start : start + REBUILD_BATCH]
        copies: dict[int, dict[str, list[dict[str, Any]]]] = {pk: {} for pk in batch}
        for kind, table in MULTI_VALUE_TABLES.items():
            fields = MULTI_VALUE_FIELDS[kind]
            model = get_model(table)
            for row in model.objects.filter(user_id__in=batch).order_by("id").values("user_id", *fields):
                user_id = row.pop("user_id")
                copies[user_id].setdefault(kind, []).append(row)
        model = users.model
        changed = [model(pk=pk, multi_values=copy) for pk, copy in copies.items()]
        model.objects.bulk_update(changed, ["multi_values"])
        done += len(batch)
        if progress is not None:
            progress(done, len(ids))
    return done
