"""Alert rendering and delivery, against real SMTP and HTTP servers on 127.0.0.1."""

from __future__ import annotations

import io
import logging
import ssl
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from pipeline.alert.message import AlertMessage, render_slack, render_subject, render_text
from pipeline.alert.notifiers import (
    ConsoleNotifier,
    EmailNotifier,
    Notifier,
    SlackApiNotifier,
    SlackWebhookNotifier,
)
from pipeline.alert.notifiers.email import message_id
from pipeline.alert.notifiers.slack import parse_retry_after
from pipeline.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from tests.alert.servers import SilentServer, SlackApiServer, SmtpTestServer, WebhookReceiver

ALERT = AlertMessage(
    alert_id="a1b2c3d4e5f60718",
    topic="sanctions",
    topic_description="New sanctions against Russia",
    story_id="s-42",
    title="EU agrees new sanctions package on Russia",
    url="https://news.example.org/world/eu-sanctions?id=1&src=rss",
    sitename="Example News",
    published=datetime(2024, 5, 1, 14, 3, tzinfo=UTC),
    score=0.873,
    evidence=("rule russia-sanctions in title: 'sanctions', 'Russia'", "similar to 3 earlier stories"),
    outlets=("Example News", "Daily Planet", "The Bugle"),
    created_at=datetime(2024, 5, 1, 14, 10, tzinfo=UTC),
)


# --------------------------------------------------------------------------- rendering


def test_render_subject_prefix_and_limit() -> None:
    assert render_subject(ALERT) == "[newsmon] sanctions: EU agrees new sanctions package on Russia"
    long = replace(ALERT, title="word " * 100 + "\nsecond line")
    subject = render_subject(long)
    assert len(subject) <= 150
    assert subject.startswith("[newsmon] sanctions: word")
    assert subject.endswith("…")
    assert "\n" not in subject


def test_render_text_contains_everything_a_reader_needs() -> None:
    text = render_text(ALERT)
    for expected in (
        ALERT.title,
        ALERT.url,
        "Example News",
        "2024-05-01 14:03 UTC",
        "0.87",
        "Daily Planet",
        *ALERT.evidence,
        ALERT.alert_id,
    ):
        assert expected in text


def test_render_text_tolerates_missing_fields() -> None:
    bare = replace(ALERT, sitename=None, published=None, evidence=(), outlets=(), topic_description="")
    text = render_text(bare)
    assert "Published: unknown" in text
    assert "Evidence" not in text


def test_render_slack_blocks_link_and_escaping() -> None:
    tricky = replace(ALERT, title="Fish & <chips> | more", url="https://x.example/a|b>c")
    payload = render_slack(tricky)
    assert "Fish & <chips>" in payload["text"]
    kinds = [b["type"] for b in payload["blocks"]]
    assert kinds == ["header", "section", "context", "section"]
    assert payload["blocks"][0]["text"]["text"] == "newsmon: sanctions"
    link = payload["blocks"][1]["text"]["text"]
    assert link.startswith("<https://x.example/a%7Cb%3Ec|Fish &amp; &lt;chips&gt; | more>")
    context = " ".join(e["text"] for e in payload["blocks"][2]["elements"])
    assert "Example News" in context and "2024-05-01 14:03 UTC" in context and "0.87" in context
    assert "• rule russia-sanctions in title" in payload["blocks"][3]["text"]["text"]


def test_render_slack_respects_block_limits() -> None:
    huge = replace(ALERT, topic="t" * 400, title="x" * 5000, evidence=tuple(f"e{i}" * 50 for i in range(40)))
    payload = render_slack(huge)
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    for block in payload["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert "… and 31 more" in payload["blocks"][3]["text"]["text"]


def test_render_naive_datetime_is_read_as_utc() -> None:
    naive = replace(ALERT, published=datetime(2024, 5, 1, 14, 3))
    assert "2024-05-01 14:03 UTC" in render_text(naive)


# --------------------------------------------------------------------------- email


def email_notifier(server: SmtpTestServer, **overrides: object) -> EmailNotifier:
    options: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "sender": "newsmon@example.org",
        "recipients": ("desk@example.org", "editor@example.org"),
        "username": SmtpTestServer.USERNAME,
        "password": SmtpTestServer.PASSWORD,
        "starttls": True,
        "ssl_context": server.client_ssl_context(),
        "timeout": 5.0,
        "local_hostname": "localhost",
    }
    options.update(overrides)
    return EmailNotifier(**options)  # type: ignore[arg-type]


def test_email_delivered_over_starttls_with_auth(smtp_server: SmtpTestServer) -> None:
    notifier = email_notifier(smtp_server)
    assert isinstance(notifier, Notifier)
    assert notifier.channel == "email"
    notifier.send(ALERT)

    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert mail.tls and mail.authenticated
    assert [a.success for a in smtp_server.auth_attempts] == [True]
    assert mail.mail_from == "newsmon@example.org"
    assert mail.rcpt_tos == ["desk@example.org", "editor@example.org"]
    message = mail.message
    assert message["Subject"] == "[newsmon] sanctions: EU agrees new sanctions package on Russia"
    assert message["Message-ID"] == "<a1b2c3d4e5f60718@newsmon>"
    assert message["Date"] == "Wed, 01 May 2024 14:10:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert ALERT.title in body
    assert ALERT.url in body
    assert "rule russia-sanctions in title: 'sanctions', 'Russia'" in body


def test_email_resend_keeps_the_message_id(smtp_server: SmtpTestServer) -> None:
    notifier = email_notifier(smtp_server)
    notifier.send(ALERT)
    notifier.send(ALERT)
    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    assert ids == ["<a1b2c3d4e5f60718@newsmon>"] * 2


def test_email_non_ascii_content(smtp_server: SmtpTestServer) -> None:
    email_notifier(smtp_server).send(replace(ALERT, title="Sanktionen gegen Rußland – ÄÖÜ"))
    message = smtp_server.messages[0].message
    assert "Rußland – ÄÖÜ" in message["Subject"]
    assert "Rußland – ÄÖÜ" in message.get_content()


def test_email_wrong_password_is_permanent(smtp_server: SmtpTestServer) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        email_notifier(smtp_server, password="wrong").send(ALERT)
    assert "wrong" not in str(info.value)
    assert smtp_server.messages == []
    # smtplib falls back from one mechanism to the next (PLAIN, then LOGIN); none may succeed.
    assert smtp_server.auth_attempts
    assert not any(a.success for a in smtp_server.auth_attempts)


def test_email_server_down_is_transient(closed_port: int, smtp_server: SmtpTestServer) -> None:
    notifier = email_notifier(smtp_server, port=closed_port)
    with pytest.raises(TransientDeliveryError):
        notifier.send(ALERT)


def test_email_server_silent_is_transient(silent_server: SilentServer, smtp_server: SmtpTestServer) -> None:
    notifier = email_notifier(smtp_server, port=silent_server.port, timeout=0.5)
    with pytest.raises(TransientDeliveryError):
        notifier.send(ALERT)


def test_email_credentials_without_starttls_are_refused_before_connecting(
    smtp_server: SmtpTestServer,
) -> None:
    notifier = email_notifier(smtp_server, starttls=False)
    with pytest.raises(PermanentDeliveryError, match="starttls"):
        notifier.send(ALERT)
    assert smtp_server.auth_attempts == []
    assert smtp_server.messages == []


def test_email_without_starttls_is_refused_by_a_server_requiring_it(smtp_server: SmtpTestServer) -> None:
    # No credentials, so the notifier goes ahead; the server demands STARTTLS (530), which a
    # retry cannot change.
    notifier = email_notifier(smtp_server, starttls=False, username=None, password=None)
    with pytest.raises(PermanentDeliveryError, match="530"):
        notifier.send(ALERT)


def test_email_untrusted_certificate_is_permanent(smtp_server: SmtpTestServer) -> None:
    notifier = email_notifier(smtp_server, ssl_context=ssl.create_default_context())
    with pytest.raises(PermanentDeliveryError, match="not trusted"):
        notifier.send(ALERT)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("451 4.3.0 Try again later", TransientDeliveryError),
        ("554 5.7.1 Message rejected", PermanentDeliveryError),
    ],
)
def test_email_data_reply_code_decides(
    smtp_server: SmtpTestServer, reply: str, expected: type[Exception]
) -> None:
    smtp_server.data_reply = reply
    with pytest.raises(expected, match=reply[:3]):
        email_notifier(smtp_server).send(ALERT)


def test_email_repr_masks_password(smtp_server: SmtpTestServer) -> None:
    text = repr(email_notifier(smtp_server))
    assert SmtpTestServer.PASSWORD not in text
    assert "***" in text


def test_email_config_is_checked() -> None:
    with pytest.raises(ConfigError):
        EmailNotifier("smtp.example.org", 587, "a@example.org", (), None, None)


def test_message_id_is_deterministic_and_safe() -> None:
    assert message_id("abc123") == "<abc123@newsmon>"
    assert message_id("topic:story 1") == message_id("topic:story 1") == "<topic-story-1@newsmon>"


# --------------------------------------------------------------------------- Slack


def test_slack_delivers_blocks(webhook_receiver: WebhookReceiver) -> None:
    notifier = SlackWebhookNotifier(webhook_receiver.url, timeout=5.0)
    assert isinstance(notifier, Notifier)
    assert notifier.channel == "slack"
    notifier.send(ALERT)

    assert len(webhook_receiver.bodies) == 1
    body = webhook_receiver.bodies[0]
    assert ALERT.title in body["text"]
    assert body["blocks"] == render_slack(ALERT)["blocks"]
    section = body["blocks"][1]["text"]["text"]
    assert ALERT.title in section
    assert ALERT.url in section
    assert webhook_receiver.posts[0].headers["Content-Type"].startswith("application/json")


def test_slack_rate_limit_is_transient_with_retry_after(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.answer_rate_limited(retry_after=7)
    with pytest.raises(TransientDeliveryError) as info:
        SlackWebhookNotifier(webhook_receiver.url, timeout=5.0).send(ALERT)
    assert info.value.retry_after == 7
    # One attempt only: retries are the outbox's business.
    assert len(webhook_receiver.posts) == 1


def test_slack_server_error_is_transient(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.answer_server_error()
    with pytest.raises(TransientDeliveryError) as info:
        SlackWebhookNotifier(webhook_receiver.url, timeout=5.0).send(ALERT)
    assert info.value.retry_after is None
    assert len(webhook_receiver.posts) == 1


def test_slack_invalid_payload_is_permanent(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.answer_invalid_payload()
    with pytest.raises(PermanentDeliveryError, match="invalid_payload"):
        SlackWebhookNotifier(webhook_receiver.url, timeout=5.0).send(ALERT)


def test_slack_unknown_webhook_is_permanent(webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.url_for("/services/T00NEWSMON/B00NEWSMON/revoked")
    with pytest.raises(PermanentDeliveryError, match="404"):
        SlackWebhookNotifier(url, timeout=5.0).send(ALERT)


def test_slack_receiver_down_is_transient(closed_port: int) -> None:
    notifier = SlackWebhookNotifier(f"http://127.0.0.1:{closed_port}{WebhookReceiver.PATH}", timeout=5.0)
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send(ALERT)
    assert WebhookReceiver.SECRET not in str(info.value)


def test_slack_timeout_is_transient(silent_server: SilentServer) -> None:
    notifier = SlackWebhookNotifier(f"http://127.0.0.1:{silent_server.port}{WebhookReceiver.PATH}", timeout=0.5)
    with pytest.raises(TransientDeliveryError):
        notifier.send(ALERT)


def test_slack_never_logs_or_shows_the_webhook_url(
    webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = SlackWebhookNotifier(webhook_receiver.url, timeout=5.0)
    assert WebhookReceiver.SECRET not in repr(notifier)
    assert "127.0.0.1" in repr(notifier)
    notifier.send(ALERT)
    webhook_receiver.answer_server_error()
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send(ALERT)
    assert WebhookReceiver.SECRET not in str(info.value)
    # The test server's own access log (werkzeug) naturally shows the path; only the client side
    # is under test here.
    client_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")]
    assert client_lines
    assert not any(WebhookReceiver.SECRET in line for line in client_lines)


@pytest.mark.parametrize(
    "url",
    ["http://hooks.slack.example/services/x", "ftp://127.0.0.1/x", "not a url", "https:///nohost"],
)
def test_slack_rejects_unsafe_or_malformed_urls(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        SlackWebhookNotifier(url)
    assert url not in str(info.value)


def test_parse_retry_after_forms() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


# --------------------------------------------------------------------------- console


def test_console_prints_the_alert() -> None:
    stream = io.StringIO()
    notifier = ConsoleNotifier(stream)
    assert isinstance(notifier, Notifier)
    assert notifier.channel == "console"
    notifier.send(ALERT)
    assert ALERT.title in stream.getvalue()
    assert ALERT.url in stream.getvalue()


def test_console_defaults_to_current_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleNotifier().send(ALERT)
    assert ALERT.title in capsys.readouterr().out


def test_console_closed_stream_is_permanent() -> None:
    stream = io.StringIO()
    stream.close()
    with pytest.raises(PermanentDeliveryError):
        ConsoleNotifier(stream).send(ALERT)


# --------------------------------------------------------------------------- Slack Web API


def _slack_api(server: SlackApiServer, token: str | None = None) -> SlackApiNotifier:
    return SlackApiNotifier(token or server.TOKEN, server.CHANNEL, api_url=server.api_url, timeout=5)


def test_slack_api_posts_with_alert_metadata_and_returns_the_ts() -> None:
    with SlackApiServer() as server:
        ts = _slack_api(server).send(ALERT)
        (posted,) = server.messages
        assert ts == posted["ts"]
        assert posted["metadata"] == {
            "event_type": "newsmon_alert",
            "event_payload": {"alert_id": ALERT.alert_id, "topic": ALERT.topic, "story_id": ALERT.story_id},
        }
        assert posted["blocks"] == render_slack(ALERT)["blocks"]


def test_slack_api_confirm_finds_only_this_alert() -> None:
    since = datetime.now(UTC)
    with SlackApiServer() as server:
        notifier = _slack_api(server)
        assert notifier.confirm(ALERT, since) is None
        notifier.send(replace(ALERT, alert_id="another-alert"))
        assert notifier.confirm(ALERT, since) is None
        ts = notifier.send(ALERT)
        for n in range(250):  # the answer is on a later page of history
            notifier.send(replace(ALERT, alert_id=f"later-{n}"))
        assert notifier.confirm(ALERT, since) == ts


@pytest.mark.parametrize(
    ("status", "error", "headers", "kind", "retry_after"),
    [
        (429, "ratelimited", {"Retry-After": "7"}, TransientDeliveryError, 7.0),
        (500, "internal_error", {}, TransientDeliveryError, None),
        (200, "fatal_error", {}, TransientDeliveryError, None),
        (200, "not_in_channel", {}, PermanentDeliveryError, None),
        (200, "is_archived", {}, PermanentDeliveryError, None),
        (200, "missing_scope", {}, PermanentDeliveryError, None),
    ],
)
def test_slack_api_errors_are_classified(status, error, headers, kind, retry_after) -> None:  # type: ignore[no-untyped-def]
    with SlackApiServer() as server:
        server.answer_post(status, error, headers)
        with pytest.raises(kind) as info:
            _slack_api(server).send(ALERT)
        assert error in str(info.value)
        assert getattr(info.value, "retry_after", None) == retry_after


def test_slack_api_wrong_token_is_permanent_and_never_shown() -> None:
    with SlackApiServer() as server:
        wrong = "xoxb-wrong-secret-token"
        notifier = _slack_api(server, token=wrong)
        with pytest.raises(PermanentDeliveryError) as info:
            notifier.send(ALERT)
        assert "invalid_auth" in str(info.value)
        assert wrong not in str(info.value) and wrong not in repr(notifier)


def test_slack_api_unreachable_is_transient(closed_port: int) -> None:
    notifier = SlackApiNotifier("xoxb-t", "C1", api_url=f"http://127.0.0.1:{closed_port}/api/", timeout=2)
    with pytest.raises(TransientDeliveryError):
        notifier.send(ALERT)
    with pytest.raises(TransientDeliveryError):
        notifier.confirm(ALERT, datetime.now(UTC))


@pytest.mark.parametrize("url", ["http://slack.example.org/api/", "ftp://127.0.0.1/api/", "not a url"])
def test_slack_api_rejects_unsafe_api_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        SlackApiNotifier("xoxb-t", "C1", api_url=url)
