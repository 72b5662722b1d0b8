from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, close_old_connections, connection

from api.webhooks import PassReport, deliver_due
from directory.services import Actor
from sso.services import saml_metadata_refresh_stale

logger = logging.getLogger("api.webhooks")

SLEEP_STEP = 0.1
"""How often a sleeping worker looks at the stop flag and the clock."""


def worker_name() -> str:
    """host:pid:random, unique across machines and restarts; it is what a lease records."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:128]


class Command(BaseCommand):
    help = (
        "Send due webhook deliveries: claim a batch, send each signed, record the outcome, repeat; "
        "sleep when nothing is due. Several workers may run at once, on any machine. SIGTERM or "
        "SIGINT finishes the delivery being sent and exits 0; claimed but unsent ones are taken "
        "again when their lease runs out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Deliver what is due now, then exit (tests, cron)."
        )
        parser.add_argument("--batch", type=int, default=10, help="Deliveries claimed at a time (10).")
        parser.add_argument("--poll-seconds", type=float, default=1.0, help="Sleep when nothing is due (1).")
        parser.add_argument(
            "--max-seconds", type=float, default=None, help="Stop after this long (default: run on)."
        )
        parser.add_argument(
            "--housekeeping-seconds",
            type=float,
            default=3600.0,
            help="How often to refresh stale SAML IdP metadata (3600; 0 turns it off; never with --once).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch: int = options["batch"]
        poll: float = options["poll_seconds"]
        max_seconds: float | None = options["max_seconds"]
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        if poll <= 0:
            raise CommandError("--poll-seconds must be positive.")
        if max_seconds is not None and max_seconds < 0:
            raise CommandError("--max-seconds must not be negative.")

        self._stop_signal: str = ""
        worker = worker_name()
        started = time.monotonic()
        ends = None if max_seconds is None else started + max_seconds
        # Signal handlers belong to the main thread; run from another one (call_command in a
        # thread), the worker stops by --max-seconds or --once only.
        in_main_thread = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGTERM, signal.SIGINT) if in_main_thread else ()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        total = PassReport()
        self._say(
            f"webhook worker {worker}: batch {batch}, poll {poll:g} s"
            + (", once" if options["once"] else "")
            + (f", for at most {max_seconds:g} s" if max_seconds is not None else "")
        )

        def should_stop() -> bool:
            return bool(self._stop_signal) or (ends is not None and time.monotonic() >= ends)

        housekeeping: float = options["housekeeping_seconds"]
        next_housekeeping = started if housekeeping > 0 and not options["once"] else None
        try:
            while not should_stop():
                if next_housekeeping is not None and time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + housekeeping
                    self._housekeeping()
                # A long-running process gets no request boundaries to retire broken or old
                # connections at; do it once per pass. Not inside a caller's transaction (a test,
                # call_command under atomic): that would close the connection under it.
                if not connection.in_atomic_block:
                    close_old_connections()
                try:
                    report = deliver_due(worker=worker, limit=batch, should_stop=should_stop)
                except DatabaseError as exc:
                    if options["once"]:
                        raise CommandError(f"database error: {exc}") from exc
                    logger.warning("webhook worker: database error, retrying in %s s: %s", poll, exc)
                    self.stderr.write(f"database error, retrying in {poll:g} s: {exc}")
                    self._sleep(poll, should_stop)
                    continue
                if report.claimed:
                    total.add(report)
                    self._say(f"batch: {report.summary()}")
                    for error in report.errors:
                        self._say(f"  {error}")
                    continue
                if options["once"]:
                    break
                self._sleep(poll, should_stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        reason = f"{self._stop_signal} received" if self._stop_signal else "done"
        if not self._stop_signal and ends is not None and time.monotonic() >= ends:
            reason = "time limit reached"
        self._say(f"webhook worker stopped ({reason}): {total.summary()}")

    def _housekeeping(self) -> None:
        """Background chores of the one process `make run` and deployments keep running: today,
        the daily refresh of each tenant's SAML IdP metadata (sso.services). A failure is logged
        and never stops deliveries."""
        try:
            refreshed, failed = saml_metadata_refresh_stale(actor=Actor.system("background worker"))
        except DatabaseError as exc:
            logger.warning("webhook worker: metadata refresh skipped: %s", exc)
            return
        if refreshed or failed:
            self._say(f"SAML metadata refreshed for {refreshed} tenant(s), {failed} failed")

    def _say(self, line: str) -> None:
        """Flushed at once: beside gunicorn in `make run`, or under a process manager, stdout is a
        pipe, and a worker's progress is no use an hour late."""
        self.stdout.write(line)
        self.stdout.flush()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Only sets the flag: a send in progress runs to its end (it is bounded by its timeout),
        its outcome is recorded, and the loop then exits."""
        self._stop_signal = signal.Signals(signum).name

    @staticmethod
    def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
        until = time.monotonic() + seconds
        while not should_stop():
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(SLEEP_STEP, left))
