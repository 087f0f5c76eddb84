"""Slack channel: post an alert to an incoming webhook, or with the Web API as a bot.

Two ways to reach Slack:

* `SlackWebhookNotifier`: an incoming webhook URL. Simple to set up, but Slack answers only "ok":
  there is no message id and no way to read the channel back, so a delivery in flight when the
  daemon dies cannot be checked (see `alerts.slack.on_in_doubt`).
* `SlackApiNotifier`: a bot token and a channel id. Every alert carries its id in message metadata
  and the returned `ts` is kept, so an in-flight delivery is checked after a restart and never
  posted twice, and later copies can become thread replies.

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

import hashlib
import http.client
import ipaddress
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
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

    @property
    def limit_key(self) -> str:
        """The webhook's name in rate limits and the store's channel holds: the same in every
        process (a hash, not the URL, which is a secret)."""
        return "hook:" + hashlib.sha256(self._webhook_url.encode()).hexdigest()[:16]

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


# --------------------------------------------------------------------------- Web API

# Slack Web API error codes after which the same request cannot succeed until someone changes the
# configuration (token, scopes, channel membership) or the message. Anything else that Slack
# reports with ok=false (internal_error, fatal_error, service_unavailable, request_timeout, ...)
# is treated as transient.
_PERMANENT_API_ERRORS = frozenset({
    "access_denied", "account_inactive", "channel_not_found", "ekm_access_denied", "enterprise_is_restricted",
    "invalid_arguments", "invalid_auth", "invalid_blocks", "invalid_blocks_format", "invalid_metadata_format",
    "invalid_metadata_schema", "is_archived", "metadata_too_large", "missing_scope", "msg_too_long",
    "no_permission", "no_text", "not_allowed_token_type", "not_authed", "not_in_channel",
    "org_login_required", "restricted_action", "team_access_not_granted", "token_expired", "token_revoked",
    "too_many_attachments",
})

# Message metadata that marks a message as a newsmon alert, so a restarted daemon can find out
# whether an alert it was sending when it died reached the channel.
METADATA_EVENT = "newsmon_alert"


class SlackApiNotifier:
    """Deliver alerts with the Slack Web API (`chat.postMessage`) as a bot, to one channel.

    Unlike an incoming webhook, the Web API answers with the message's `ts` (kept as the delivery
    receipt, the anchor for later thread replies) and lets newsmon read the channel back: every
    alert carries message metadata `{"event_type": "newsmon_alert", "event_payload": {"alert_id": ...}}`
    and `confirm()` looks for it in `conversations.history`. That is what makes a delivery that was
    in flight when the daemon died checkable instead of a guess, so the alert is neither lost nor
    posted twice. The bot needs the scopes `chat:write` and `channels:history` (or
    `groups:history` for a private channel) and must be a member of the channel.

    Outcomes of `send` (one request, no retries inside; the outbox owns retries):

        ok                                             delivered, returns the message ts
        HTTP 429 / error ratelimited                   TransientDeliveryError with Retry-After
        HTTP 5xx, other ok=false errors                TransientDeliveryError
        connection refused/reset, DNS, timeout         TransientDeliveryError
        invalid_auth, not_in_channel, channel_not_found, missing_scope, invalid_blocks, ...
                                                       PermanentDeliveryError

    The token is a secret: it is never logged, never put into error messages, and `repr` hides it.
    """

    channel = "slack"

    def __init__(
        self,
        token: str,
        channel_id: str,
        *,
        api_url: str = "https://slack.com/api/",
        timeout: float = 10.0,
        history_pages: int = 10,
        route: str = "default",
    ) -> None:
        parts = urlsplit(api_url.strip())
        host = parts.hostname or ""
        if parts.scheme not in ("https", "http") or not host:
            raise ConfigError("slack api_url must be an absolute https:// URL")
        if parts.scheme == "http" and not _is_loopback(host):
            raise ConfigError("slack api_url must use https:// (plain http is allowed only for loopback)")
        if not token.strip():
            raise ConfigError("slack bot token is empty")
        if not channel_id.strip():
            raise ConfigError("slack channel is empty; give the channel id (C...) the bot posts to")
        if timeout <= 0:
            raise ConfigError("slack timeout must be positive")
        self._token = token.strip()
        self.channel_id = channel_id.strip()
        self.api_url = api_url.strip().rstrip("/") + "/"
        self.timeout = timeout
        self.history_pages = history_pages
        self.route = route  # in the metadata: two routes may share a Slack channel
        # retry_handlers=[]: the outbox owns retries (see SlackWebhookNotifier).
        self._client = WebClient(
            token=self._token,
            base_url=self.api_url,
            timeout=int(max(1, round(timeout))),
            logger=_SDK_LOG,
            retry_handlers=[],
        )

    def __repr__(self) -> str:
        return f"SlackApiNotifier(channel={self.channel_id!r}, api_url={self.api_url!r}, token='***')"

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***")

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """Run one Web API call; map every failure to Transient/PermanentDeliveryError."""
        try:
            return fn(**kwargs)
        except SlackApiError as err:
            response = err.response
            status = getattr(response, "status_code", 0) or 0
            code = ""
            try:
                code = str((response.data or {}).get("error") or "")
            except AttributeError:
                code = ""
            detail = f"slack: {what} failed: HTTP {status}" + (f" {code}" if code else "")
            if status == 429 or code == "ratelimited":
                retry_after = parse_retry_after(_header(getattr(response, "headers", None), "retry-after"))
                raise TransientDeliveryError(detail, retry_after=retry_after) from None
            if code in _PERMANENT_API_ERRORS or (400 <= status < 500 and status not in _TRANSIENT_STATUSES):
                raise PermanentDeliveryError(detail) from None
            raise TransientDeliveryError(detail) from None
        except (SlackRequestError, ValueError) as err:
            raise PermanentDeliveryError(
                f"slack: {what}: request could not be built ({type(err).__name__}); check the configuration"
            ) from None
        except (OSError, http.client.HTTPException) as err:
            reason = self._scrub(str(getattr(err, "reason", err)))
            raise TransientDeliveryError(
                f"slack: cannot reach {self.api_url}: {type(err).__name__}: {reason}"
            ) from None

    def send(self, msg: AlertMessage) -> str | None:
        return self.post(
            render_slack(msg),
            {"event_type": METADATA_EVENT,
             "event_payload": {"alert_id": msg.alert_id, "topic": msg.topic, "story_id": msg.story_id,
                               **({"route": self.route} if self.route != "default" else {})}},
        )

    def post(
        self, payload: dict[str, Any], metadata: dict[str, Any], *, thread_ts: str | None = None, broadcast: bool = False
    ) -> str | None:
        """One `chat.postMessage` (a thread reply with `thread_ts`, also shown in the channel with
        `broadcast`); returns the message ts."""
        extra: dict[str, Any] = {}
        if thread_ts:
            extra["thread_ts"] = thread_ts
            if broadcast:
                extra["reply_broadcast"] = True
        response = self._call(
            "chat.postMessage",
            self._client.chat_postMessage,
            channel=self.channel_id,
            text=payload["text"],
            blocks=payload.get("blocks"),
            unfurl_links=False,
            unfurl_media=False,
            metadata=metadata,
            **extra,
        )
        ts = response.get("ts") if hasattr(response, "get") else None
        log.debug("slack: posted %s ts=%s thread=%s", metadata.get("event_type"), ts, thread_ts)
        return str(ts) if ts else None

    def update(self, ts: str, payload: dict[str, Any]) -> None:
        """`chat.update` of a message this bot posted (the parent's outlet count). Idempotent."""
        self._call(
            "chat.update", self._client.chat_update,
            channel=self.channel_id, ts=ts, text=payload["text"], blocks=payload.get("blocks"),
        )

    def find(
        self, key: str, value: str, since: datetime, *, thread_ts: str | None = None, event_type: str = METADATA_EVENT
    ) -> str | None:
        """The ts of a message of `event_type` whose metadata payload has `key` = `value` (and this notifier's
        route), posted since `since` less a minute, in the channel or in the thread `thread_ts`;
        None if there is none. Raises TransientDeliveryError when the channel cannot be read now."""
        oldest = f"{max(0.0, since.timestamp() - 60):.6f}"
        cursor: str | None = None
        for _ in range(self.history_pages):
            if thread_ts:
                response = self._call(
                    "conversations.replies", self._client.conversations_replies, channel=self.channel_id,
                    ts=thread_ts, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor,
                )
            else:
                response = self._call(
                    "conversations.history", self._client.conversations_history, channel=self.channel_id,
                    oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor,
                )
            for m in response.get("messages") or ():
                if (m.get("metadata") or {}).get("event_type") != event_type:
                    continue
                meta = (m.get("metadata") or {}).get("event_payload") or {}
                if meta.get(key) == value and (meta.get("route") or "default") == self.route:
                    return str(m.get("ts") or "") or "found"
            cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
            if not cursor:
                return None
        raise TransientDeliveryError(
            f"slack: more than {self.history_pages} pages of channel history since the claim; cannot confirm"
        )

    def confirm(self, msg: AlertMessage, since: datetime) -> str | None:
        """The ts of this alert's message if the channel has it (posted at or after `since`,
        less a minute of clock skew), else None. Raises TransientDeliveryError when the channel
        cannot be read now, so the caller decides later rather than guessing."""
        return self.find("alert_id", msg.alert_id, since)
