"""Alerts: the message a topic match produces, and the channels that deliver it.

    message.AlertMessage             the frozen alert record (alert_id is the idempotency key)
    message.render_text/_slack/_subject
    notifiers.Notifier               protocol: `channel` name + `send(msg)`
    notifiers.SlackWebhookNotifier   Slack incoming webhook
    notifiers.EmailNotifier          SMTP with STARTTLS and AUTH
    notifiers.ConsoleNotifier        prints to a stream; used when no channel is configured

`send` either returns (delivered) or raises `TransientDeliveryError` (try again later, honouring
`retry_after`) or `PermanentDeliveryError` (retrying will not help). Notifiers never retry by
themselves: the alert outbox owns retries and their schedule.
"""

from pipeline.alert.message import AlertMessage, render_slack, render_subject, render_text

__all__ = ["AlertMessage", "render_slack", "render_subject", "render_text"]
