"""Delivery channels for alerts.

Every notifier has a `channel` name ("slack", "email", "console") and a `send(msg)` method that
either returns (the channel accepted the alert) or raises:

* `TransientDeliveryError`: network trouble, timeouts, 5xx, HTTP 429, SMTP 4xx. The outbox tries
  again later, no sooner than `retry_after` seconds when the error carries one.
* `PermanentDeliveryError`: bad credentials, a revoked webhook, a rejected payload or address,
  SMTP 5xx. Retrying the same alert will not help until the configuration is fixed.

`send` may return a receipt (the Slack Web API returns the message's `ts`), which the delivery log
keeps. A notifier that can read its channel back also has `confirm(msg, since)`: after a crash
left a delivery in doubt (claimed, no outcome recorded), it tells whether the alert arrived.

`send` makes exactly one attempt; retries belong to the outbox so that their count and spacing are
in one place and survive restarts. Notifiers hold secrets (webhook URLs, passwords); their `repr`
masks them and their error messages never include them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from pipeline.alert.message import AlertMessage


@runtime_checkable
class Notifier(Protocol):
    channel: str

    def send(self, msg: AlertMessage) -> str | None:
        """Deliver one alert (returning a receipt, if the channel gives one) or raise
        Transient/PermanentDeliveryError."""
        ...


@runtime_checkable
class Confirming(Protocol):
    """A channel that can tell whether an alert already reached it."""

    def confirm(self, msg: AlertMessage, since: datetime) -> str | None:
        """The receipt of `msg` if the channel has it (posted since `since`), else None; raises
        TransientDeliveryError when it cannot tell now."""
        ...


# Imported after the protocol so that the channel modules may refer to it without a cycle.
from pipeline.alert.notifiers.console import ConsoleNotifier  # noqa: E402
from pipeline.alert.notifiers.email import EmailNotifier  # noqa: E402
from pipeline.alert.notifiers.slack import SlackApiNotifier, SlackWebhookNotifier  # noqa: E402

__all__ = ["Confirming", "ConsoleNotifier", "EmailNotifier", "Notifier", "SlackApiNotifier", "SlackWebhookNotifier"]
