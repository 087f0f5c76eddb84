"""The files that point newsmon at a loopback world: demo feeds, an SMTP server, a webhook."""

from __future__ import annotations

from pathlib import Path

from pipeline.demo import DemoServer
from tests.alert.servers import SmtpTestServer


def write_world_files(workdir: Path, feeds: DemoServer, smtp: SmtpTestServer) -> tuple[Path, Path]:
    """sources.yaml for the demo feeds and newsmon.yaml with Slack and email (STARTTLS + login)
    alerts; secrets go in the environment (NEWSMON_SLACK_WEBHOOK_URL, NEWSMON_SMTP_PASSWORD)."""
    sources = workdir / "sources.yaml"
    sources.write_text(feeds.sources_yaml(), encoding="utf-8")
    settings = workdir / "newsmon.yaml"
    settings.write_text(
        f"""fetch:
  allow_private_addresses: true
  per_host_min_gap_seconds: 0
alerts:
  slack: {{}}
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
