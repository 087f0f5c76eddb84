"""Slack channel: post an alert to an incoming webhook.

Contract of `SlackWebhookNotifier.send` (one HTTP POST, no retries inside):

    2xx                                   delivered
    429                                   TransientDeliveryError, retry_after from Retry-After
    408, 5xx                              TransientDeliveryError (retry_after when the server sent one)
    connection refused/reset, DNS, timeout TransientDeliveryError
    other 4xx (400 invalid_payload, 403 action_prohibited, 404 no_service, 410 channel_is_archived)
                                          PermanentDeliveryError
    malformed webhook URL                 PermanentDeliveryError

The webhook URL is a bearer secret: anyone holding it can post to the channel. It is never
logged, never put into an error message, and `repr` shows only scheme and host. Plain `http://`
is accepted only for loopback hosts (local relays, tests), so the secret does not cross a network
in clear text.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from slack_sdk.errors import SlackRequestError
from slack_sdk.webhook import WebhookClient

from pipeline.alert.message import AlertMessage, render_slack
from pipeline.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger(__name__)

# slack-sdk logs the full request URL (the secret) at DEBUG level, and decides whether to build
# those messages by looking at its logger's *own* level, which is NOTSET (0) by default. Give the
# client a private logger that is not attached to the logging tree and only passes CRITICAL, so
# neither the URL nor duplicate error lines reach the application's handlers whatever the global
# logging configuration is. This module reports outcomes itself.
_SDK_LOG = logging.Logger("newsmon.slack-sdk", level=logging.CRITICAL)
_SDK_LOG.addHandler(logging.NullHandler())

_TRANSIENT_STATUSES = {408, 429}  # 408: the server gave up waiting; a new attempt can succeed


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds)


class SlackWebhookNotifier:
    """Deliver alerts to one Slack incoming webhook."""

    channel = "slack"

    def __init__(self, webhook_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(webhook_url.strip())
        host = parts.hostname or ""
        # Error messages describe the problem without echoing the URL, which is a secret.
        if parts.scheme not in ("https", "http") or not host:
            raise ConfigError("slack webhook URL must be an absolute https:// URL")
        if parts.scheme == "http" and not _is_loopback(host):
            raise ConfigError("slack webhook URL must use https:// (plain http is allowed only for loopback)")
        if timeout <= 0:
            raise ConfigError("slack webhook timeout must be positive")
        self._webhook_url = webhook_url.strip()
        self._display = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/***"
        self.timeout = timeout
        # retry_handlers=[]: slack-sdk would otherwise retry connection errors (and, with the
        # optional handler, 429s) inside this call, sleeping in the caller's thread and hiding
        # attempts from the outbox. The outbox owns retries: it persists the attempt count,
        # spaces attempts with backoff and honours retry_after across restarts.
        self._client = WebhookClient(
            url=self._webhook_url,
            timeout=timeout,  # type: ignore[arg-type]  # annotated int, passed to urlopen as is
            logger=_SDK_LOG,
            retry_handlers=[],
        )

    def __repr__(self) -> str:
        return f"SlackWebhookNotifier(webhook_url={self._display!r}, timeout={self.timeout!r})"

    def _scrub(self, text: str) -> str:
        return text.replace(self._webhook_url, self._display)

    def send(self, msg: AlertMessage) -> None:
        payload = render_slack(msg)
        try:
            response = self._client.send(text=payload["text"], blocks=payload["blocks"])
        except (SlackRequestError, ValueError) as err:
            # Raised before any traffic for a URL urllib cannot use. Their messages may quote
            # the URL, so only the type is reported and the chain is cut (`from None`).
            raise PermanentDeliveryError(
                f"slack: webhook URL {self._display} is unusable ({type(err).__name__}); check the configuration"
            ) from None
        except (OSError, http.client.HTTPException) as err:
            # URLError (refused, DNS, TLS), TimeoutError and RemoteDisconnected all land here.
            reason = self._scrub(str(getattr(err, "reason", err)))
            raise TransientDeliveryError(
                f"slack: cannot reach {self._display}: {type(err).__name__}: {reason}"
            ) from None

        status = response.status_code
        if 200 <= status < 300:
            log.debug("slack: delivered alert %s", msg.alert_id)
            return
        body = self._scrub((response.body or "").strip())[:200]
        detail = f"slack: webhook answered HTTP {status}" + (f": {body}" if body else "")
        if status in _TRANSIENT_STATUSES or status >= 500:
            retry_after = parse_retry_after(_header(response.headers, "retry-after"))
            raise TransientDeliveryError(detail, retry_after=retry_after)
        raise PermanentDeliveryError(detail)
