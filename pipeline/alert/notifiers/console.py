"""Console channel: prints the plain-text rendering of each alert.

Used when no other channel is configured, so a fresh install shows its alerts somewhere. Writing
to a stream cannot meaningfully fail transiently; an error from the stream (closed pipe, full
disk) is reported as a permanent delivery error.
"""

from __future__ import annotations

import sys
from typing import TextIO

from pipeline.alert.message import AlertMessage, render_text
from pipeline.errors import PermanentDeliveryError


class ConsoleNotifier:
    """Print alerts to `stream` (default: whatever `sys.stdout` is at the time of sending)."""

    channel = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        # None is resolved at send time rather than bound at import time, so redirecting
        # sys.stdout later (a daemon wrapper, a test's capture) is respected.
        self._stream = stream

    def send(self, msg: AlertMessage) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(render_text(msg))
            stream.write("\n")
            stream.flush()
        except (OSError, ValueError) as err:  # ValueError: write to a closed file
            raise PermanentDeliveryError(f"console: cannot write alert {msg.alert_id}: {err}") from err

    def __repr__(self) -> str:
        name = getattr(self._stream, "name", None) if self._stream is not None else "<stdout>"
        return f"ConsoleNotifier(stream={name!r})"
