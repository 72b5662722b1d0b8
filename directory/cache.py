"""Bounded per-process caches for the two lookups every request makes: Host → tenant
(directory.tenancy.TenantMiddleware) and SCIM bearer token → principal (scim.auth).

Why: Entra sends SCIM requests back to back, and each one used to cost three queries before its
view ran (host, credential, service principal). With these caches a warm request costs none.

Why it stays safe:

- **Bounded in time.** An entry lives at most `SCIM_CREDENTIAL_CACHE_SECONDS` (default 5, at most 5,
  0 turns the caches off), and a credential's entry never outlives the credential's own expiry. So a
  change made in *another* process (another gunicorn worker, another node, `manage.py`, a direct
  database update) is seen everywhere within that many seconds.
- **Invalidated at once in the process that made the change.** Saving or deleting a tenant, a host
  or the service principal clears every cache here (the receivers below), and scim.auth does the
  same for secret tokens, OAuth applications and access tokens; that covers the services, the
  admin and django-oauth-toolkit's own revocation endpoint alike. The clear happens when the row
  is written and again when the transaction commits, and a lookup that started before a clear
  never stores its (possibly stale) answer (`generation`), so no thread can re-cache the old state.
- **Bounded in size.** An LRU of `MAX_ENTRIES` per cache, behind a lock (gunicorn runs gthread
  workers). Failed lookups are never cached, so unknown hosts and garbage tokens cannot flush out
  the entries of real tenants, and a token issued a moment ago is never refused from the cache.

Only successes are cached, and every entry is rebuilt into fresh model instances per request, so
no request can see another request's mutations of `request.tenant`.

Domain rule: this module imports no sibling app. Other apps register their caches here and connect
their own models with `invalidate_on_change`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

from directory.models import Tenant, TenantHost, User

MAX_ENTRIES = 1024
DEFAULT_TTL_SECONDS = 5.0

V = TypeVar("V")

monotonic: Callable[[], float] = time.monotonic
"""The caches' clock. Tests replace it (monkeypatch `directory.cache.monotonic`) to let entries age
without sleeping."""


def ttl_seconds() -> float:
    """Read per use, so `override_settings` and a changed environment apply without a restart."""
    return max(0.0, float(getattr(settings, "SCIM_CREDENTIAL_CACHE_SECONDS", DEFAULT_TTL_SECONDS)))


class ProcessCache(Generic[V]):
    """An LRU of at most `max_entries` values, each with its own deadline on the `monotonic` clock.

    `generation` moves on at every `clear()`; `put()` takes the generation read *before* the lookup
    that produced the value and drops the value if a clear happened meanwhile."""

    def __init__(self, name: str, *, max_entries: int = MAX_ENTRIES) -> None:
        self.name = name
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        _registry.append(self)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, key: Hashable) -> V | None:
        now = monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            deadline, value = entry
            if deadline <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V, *, generation: int, max_age: float | None = None) -> None:
        """Store `value` for at most the configured TTL, or `max_age` seconds if that is shorter
        (a credential about to expire)."""
        ttl = ttl_seconds()
        if max_age is not None:
            ttl = min(ttl, max_age)
        if ttl <= 0:
            return
        deadline = monotonic() + ttl
        with self._lock:
            if generation != self._generation:
                return
            self._entries[key] = (deadline, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def replace(self, key: Hashable, value: V) -> None:
        """Swap the value of a live entry, keeping its deadline; a no-op once it is gone (a clear
        must not be undone by bookkeeping such as a new `last_used`)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries[key] = (entry[0], value)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1


_registry: list[ProcessCache[Any]] = []


def clear_all() -> None:
    """Forget every cached host and credential of this process. Cheap; tests call it before each
    test (the database is rolled back, and ids are reused)."""
    for cache in _registry:
        cache.clear()


def invalidate_now_and_on_commit() -> None:
    """Clear now, so this thread's next request sees the change, and again after the commit, so
    another thread that read the old rows before it cannot keep them (its `put` is refused by the
    generation anyway; this also covers a read that finished between the two)."""
    clear_all()
    transaction.on_commit(clear_all)


def invalidate_on_change(
    model: type[models.Model],
    *,
    when: Callable[[Any], bool] | None = None,
    ignore_created: bool = True,
) -> None:
    """Clear the caches whenever a `model` row is saved or deleted (and `when(instance)` holds).

    A created row is ignored by default: failures are never cached, so a new row cannot contradict
    an entry. Queryset `.update()` sends no signal; a writer that revokes or deactivates with one
    must call `invalidate_now_and_on_commit()` itself, or accept the TTL."""
    label = f"{model._meta.label}"

    def on_save(sender: type[models.Model], instance: Any, created: bool = False, **kwargs: Any) -> None:
        if created and ignore_created:
            return
        if when is None or when(instance):
            invalidate_now_and_on_commit()

    def on_delete(sender: type[models.Model], instance: Any, **kwargs: Any) -> None:
        if when is None or when(instance):
            invalidate_now_and_on_commit()

    post_save.connect(on_save, sender=model, weak=False, dispatch_uid=f"directory.cache.save.{label}")
    post_delete.connect(on_delete, sender=model, weak=False, dispatch_uid=f"directory.cache.delete.{label}")


# Tenant rows carry is_active and the branding request.tenant shows; hosts map to tenants; every
# SCIM credential acts as the tenant's one service principal.
invalidate_on_change(Tenant)
invalidate_on_change(TenantHost)
invalidate_on_change(User, when=lambda user: user.role == User.Role.SERVICE)


def field_paths(model: type[models.Model], prefix: str = "") -> list[str]:
    """Every concrete column of `model` as a `values_list` path (under `prefix`, for a joined
    model), so one query brings back whole rows and a cache keeps plain tuples, never a shared
    mutable instance."""
    return [f"{prefix}{field.attname}" for field in model._meta.concrete_fields]


def model_from_row(model: type[models.Model], values: tuple[Any, ...] | list[Any]) -> Any:
    """A fresh instance from the tuple `field_paths` selected, as the database would give it (pk
    set, `_state.adding` false); each request gets its own."""
    names = [field.attname for field in model._meta.concrete_fields]
    return model.from_db("default", names, list(values))
