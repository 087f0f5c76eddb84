"""The files that point newsmon at a loopback world: demo feeds, an SMTP server, a webhook."""

from __future__ import annotations

from pathlib import Path

from pipeline.demo import DemoServer
from tests.alert.servers import SlackApiServer, SmtpTestServer


def write_world_files(
    workdir: Path, feeds: DemoServer, smtp: SmtpTestServer, slack_api: SlackApiServer | None = None
) -> tuple[Path, Path]:
    """sources.yaml for the demo feeds and newsmon.yaml with Slack and email (STARTTLS + login)
    alerts; secrets go in the environment (NEWSMON_SLACK_WEBHOOK_URL, or NEWSMON_SLACK_BOT_TOKEN
    with `slack_api`, and NEWSMON_SMTP_PASSWORD). With `slack_api`, Slack is reached through the
    Web API stand-in (bot token + channel) instead of a webhook."""
    sources = workdir / "sources.yaml"
    sources.write_text(feeds.sources_yaml(), encoding="utf-8")
    slack = (
        f"{{channel: {slack_api.CHANNEL}, api_url: '{slack_api.api_url}'}}" if slack_api is not None else "{}"
    )
    settings = workdir / "newsmon.yaml"
    settings.write_text(
        f"""fetch:
  allow_private_addresses: true
  per_host_min_gap_seconds: 0
alerts:
  slack: {slack}
  email:
    host: {smtp.host}
    port: {smtp.port}
    username: {smtp.username}
    sender: newsmon@example.org
    recipients: [desk@example.org]
    ca_file: {smtp.cert_path}
""",
        encoding="utf-8",
    )
    return sources, settings
