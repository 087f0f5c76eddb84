"""Configuration: validated once, at the edge, into a frozen `Config`.

Two files feed it:

* the settings file (`newsmon.yaml`, optional): data directory, fetch limits, pipeline runner,
  alert channels. Secrets are never written in it: it names environment variables
  (`webhook_url_env`, `password_env`) whose values are read by `load()`.
* the sources file (`sources.yaml`): the feeds to watch.

Every problem raises `ConfigError` naming the file, the line and the fix; the CLI turns that into
exit code 2. Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from pipeline.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FEED_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sources.yaml ------------------------------------------------------------------------------


class Source(_Strict):
    id: str = Field(description="stable feed id: lowercase letters, digits, '.', '_' or '-'")
    url: str
    interval_minutes: float = Field(default=15, ge=1, le=24 * 60)
    tags: tuple[str, ...] = ()
    name: str | None = None
    enabled: bool = True
    robots_txt: bool = True  # honour robots.txt for this source's article pages

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not FEED_ID_RE.match(v):
            raise ValueError("id must be 1-63 chars of lowercase letters, digits, '.', '_' or '-', e.g. 'bbc-world'")
        return v

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/?#]+[^\s]*$", v):
            raise ValueError("url must be an absolute http:// or https:// URL, e.g. 'https://example.org/rss.xml'")
        return v


class SourcesFile(_Strict):
    feeds: tuple[Source, ...]


# --- newsmon.yaml ------------------------------------------------------------------------------


class FetchConfig(_Strict):
    user_agent: str = "newsmon/0.1 (+https://github.com/newsmon/newsmon)"
    connect_timeout_seconds: float = Field(default=5, gt=0)
    total_timeout_seconds: float = Field(default=20, gt=0)
    max_feed_bytes: int = Field(default=5_000_000, gt=0)
    max_page_bytes: int = Field(default=5_000_000, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    allow_private_addresses: bool = False  # the demo and tests switch this on for loopback
    per_host_concurrency: int = Field(default=2, ge=1)
    per_host_min_gap_seconds: float = Field(default=1.0, ge=0)
    workers: int = Field(default=8, ge=1, le=128)
    # Polling politeness (pipeline/fetch/poll.py PollPolicy): the interval adapts between these
    # bounds; server hints (ttl, Cache-Control, Expires) may only slow a feed down.
    min_interval_minutes: float = Field(default=5, gt=0)
    max_interval_minutes: float = Field(default=360, gt=0)
    max_hint_interval_minutes: float = Field(default=1440, gt=0)
    interval_jitter: float = Field(default=0.15, ge=0, le=1)
    idle_grace_polls: int = Field(default=3, ge=0)
    idle_backoff_factor: float = Field(default=1.5, ge=1)
    validator_check_every: int = Field(default=10, ge=1)  # every K-th 304 is checked unconditionally
    validator_check_max_age_hours: float = Field(default=24, gt=0)
    disable_after_permanent_errors: int = Field(default=5, ge=1)
    disabled_retry_hours: float = Field(default=24, gt=0)
    max_retry_after_hours: float = Field(default=24, gt=0)
    robots_txt: bool = True  # honour robots.txt for article pages (per feed: robots_txt in sources.yaml)


class PipelineConfig(_Strict):
    runner: str = "FnApiRunner"  # any Beam runner name; FnApiRunner runs in process, offline
    beam_args: tuple[str, ...] = ()  # extra Beam pipeline options, e.g. ["--direct_num_workers=2"]
    batch_interval_seconds: float = Field(default=60, gt=0)
    poll_tick_seconds: float = Field(default=30, gt=0)
    max_batch_items: int = Field(default=2000, ge=1)
    min_text_chars: int = Field(default=200, ge=0)
    dedup_window_days: float = Field(default=3.0, gt=0)
    dedup_history_days: float = Field(default=14.0, gt=0)
    # Pages that fail for now (5xx, timeout, robots.txt unreachable) are retried across batches,
    # waiting base, 2x base, 4x base ... minutes; after max attempts the item is dead-lettered.
    page_retry_max_attempts: int = Field(default=6, ge=1)
    page_retry_base_minutes: float = Field(default=5, gt=0)


InDoubt = Literal["resend", "skip"]


class SlackConfig(_Strict):
    """Either an incoming webhook (the default) or, with `channel`, the Web API as a bot.

    The Web API mode is checkable: an alert in flight when the daemon died is looked up in the
    channel after a restart, so it is neither lost nor posted twice (`on_in_doubt` is not used).
    """

    webhook_url_env: str = "NEWSMON_SLACK_WEBHOOK_URL"
    channel: str | None = None  # channel id (C...) for the Web API mode; then token_env is read
    token_env: str = "NEWSMON_SLACK_BOT_TOKEN"
    api_url: str = "https://slack.com/api/"
    timeout_seconds: float = Field(default=10, gt=0)
    on_in_doubt: InDoubt = "resend"  # webhook mode only: after a crash mid-send, resend or skip


class EmailConfig(_Strict):
    host: str
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password_env: str = "NEWSMON_SMTP_PASSWORD"
    sender: str
    recipients: tuple[str, ...]
    timeout_seconds: float = 20
    ca_file: str | None = None  # extra CA to trust (a private relay's certificate)
    on_in_doubt: InDoubt = "resend"  # after a crash mid-send: resend (same Message-ID) or skip


class AlertsConfig(_Strict):
    interval_seconds: float = Field(default=30, gt=0)
    slack: SlackConfig | None = None
    email: EmailConfig | None = None
    console: bool = False  # print alerts; on by default when no other channel is configured
    max_attempts: int = Field(default=8, ge=1)


class MaintenanceConfig(_Strict):
    """Store upkeep the daemon runs by itself (pipeline/store/maintenance.py); `newsmon maintain`
    runs the same steps by hand. Each step is a short transaction of its own, so polls and batches
    run between them, and readers never wait: they keep reading the snapshot they started on."""

    enabled: bool = True
    interval_minutes: float = Field(default=60, gt=0)
    snapshot_retention_days: float = Field(default=2, ge=0)  # time travel this far back
    # A file no live snapshot needs is deleted only once it has been unneeded this long, so a
    # query that started on an older snapshot a moment ago still finds its files.
    file_grace_minutes: float = Field(default=60, ge=0)
    flush_inlined_data: bool = True  # small inserts kept in the catalog -> Parquet files
    merge_files: bool = True  # merge small adjacent files into larger ones
    merge_max_file_mb: float = Field(default=128, gt=0)  # files larger than this are not merged again
    rewrite_delete_threshold: float = Field(default=0.25, gt=0, le=1)  # rewrite files this much deleted
    compact_rollups: bool = True  # fold the per-batch rollup rows of a bucket into one row
    vacuum_catalog: bool = True  # give the catalog's free pages back to the file system
    vacuum_min_free_fraction: float = Field(default=0.2, ge=0, le=1)  # ... when this share is free


class Settings(_Strict):
    data_dir: str = "newsmon-data"
    sources: str = "sources.yaml"
    topics_dir: str = "seeds/topics"
    fetch: FetchConfig = FetchConfig()
    pipeline: PipelineConfig = PipelineConfig()
    alerts: AlertsConfig = AlertsConfig()
    maintenance: MaintenanceConfig = MaintenanceConfig()
    metrics_port: int | None = None  # serve /metrics and /healthz on 127.0.0.1:PORT


class Secrets(BaseModel):
    model_config = ConfigDict(frozen=True)
    slack_webhook_url: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    smtp_password: SecretStr | None = None


class Config(BaseModel):
    """Everything the daemon needs, resolved: absolute paths, feeds, secrets."""

    model_config = ConfigDict(frozen=True)
    settings: Settings
    feeds: tuple[Source, ...]
    data_dir: Path
    sources_path: Path
    topics_dir: Path
    secrets: Secrets

    def dump(self) -> dict[str, Any]:
        """A dict safe to print: secrets are masked by SecretStr."""
        return {
            "settings": self.settings.model_dump(mode="json"),
            "feeds": [f.model_dump(mode="json") for f in self.feeds],
            "data_dir": str(self.data_dir),
            "sources_path": str(self.sources_path),
            "topics_dir": str(self.topics_dir),
            "secrets": {k: ("**********" if v else None) for k, v in self.secrets},
        }


# --- YAML with line numbers --------------------------------------------------------------------


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file, returning (data, node tree) so errors can name lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found; pass the right path with --config/--sources", path=str(path)) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text ({e.reason}); save the file as UTF-8", path=str(path)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise ConfigError(f"YAML syntax error: {e.problem}; check indentation and quoting", path=str(path), line=line) from None
    _reject_duplicate_keys(node, path)
    return data, node


def _reject_duplicate_keys(node: yaml.Node | None, path: Path) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen:
                    raise ConfigError(
                        f"key '{k.value}' appears twice (first on line {seen[k.value]}); keep one",
                        path=str(path),
                        line=k.start_mark.line + 1,
                    )
                seen[k.value] = k.start_mark.line + 1
            _reject_duplicate_keys(v, path)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _reject_duplicate_keys(v, path)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Follow a pydantic error location through the YAML node tree to a line number."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == part:
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _fix_for(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key; remove it or check its spelling against the documented keys"
    if kind == "missing":
        return "required key is missing; add it"
    return str(err.get("msg", "invalid value")).removeprefix("Value error, ")


def _validate(model: type[BaseModel], data: Any, node: yaml.Node | None, path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        more = f" (and {len(e.errors()) - 1} more problem(s))" if len(e.errors()) > 1 else ""
        raise ConfigError(f"{dotted}: {_fix_for(err)}{more}", path=str(path), line=_line_of(node, loc)) from None


# --- public ------------------------------------------------------------------------------------


def load_sources(path: str | Path) -> tuple[Source, ...]:
    """Read and strictly validate a sources file."""
    p = Path(path)
    data, node = _read_yaml(p)
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with a 'feeds:' list at the top", path=str(p), line=1)
    parsed: SourcesFile = _validate(SourcesFile, data, node, p)
    seen: dict[str, int] = {}
    for i, feed in enumerate(parsed.feeds):
        line = _line_of(node, ("feeds", i, "id"))
        if feed.id in seen:
            raise ConfigError(
                f"duplicate feed id '{feed.id}' (first on line {seen[feed.id]}); give each feed a unique id",
                path=str(p),
                line=line,
            )
        seen[feed.id] = line or 0
    urls: dict[str, str] = {}
    for i, feed in enumerate(parsed.feeds):
        if feed.url in urls:
            raise ConfigError(
                f"feed '{feed.id}' has the same url as '{urls[feed.url]}'; remove one",
                path=str(p),
                line=_line_of(node, ("feeds", i, "url")),
            )
        urls[feed.url] = feed.id
    return parsed.feeds


def load(
    config_path: str | Path | None = None,
    *,
    sources_path: str | Path | None = None,
    data_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the frozen Config.

    Relative paths in the settings file are resolved against the file's folder; without a
    settings file, against the current directory (falling back to the project's own sources.yaml
    and seeds/topics when those are not there). Command-line options win over the file.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    node = None
    base = Path.cwd()
    if config_path is not None:
        cp = Path(config_path)
        data, node = _read_yaml(cp)
        if data is not None and not isinstance(data, dict):
            raise ConfigError("expected a mapping of settings at the top", path=str(cp), line=1)
        raw = dict(data or {})
        base = cp.resolve().parent
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        if name:
            raw[section] = {**raw.get(section, {}), name: value}
        else:
            raw[key] = value
    settings: Settings = _validate(Settings, raw, node, Path(config_path or "<defaults>"))

    def resolve(key: str, value: str, fallback: Path | None = None) -> Path:
        path = Path(value)
        if not path.is_absolute():
            path = base / path
        # A default that does not exist here falls back to the project's own file; a path the
        # user wrote is taken as written (and reported if missing).
        if fallback is not None and key not in raw and not path.exists():
            return fallback
        return path

    src = Path(sources_path).resolve() if sources_path else resolve("sources", settings.sources, PROJECT_ROOT / "sources.yaml")
    topics = resolve("topics_dir", settings.topics_dir, PROJECT_ROOT / "seeds" / "topics")
    ddir = Path(data_dir).resolve() if data_dir else resolve("data_dir", settings.data_dir)
    feeds = load_sources(src)

    def required_env(var: str, why: str, fix: str, at: tuple[str, ...]) -> str:
        value = env.get(var)
        if not value:
            raise ConfigError(
                f"{why} but the environment variable {var} is empty; {fix}",
                path=str(config_path),
                line=_line_of(node, at),
            )
        return value

    slack = settings.alerts.slack
    slack_url = slack_token = None
    if slack and slack.channel:
        slack_token = required_env(
            slack.token_env, "alerts.slack.channel is set",
            "export the bot token (xoxb-...) in it, or remove `channel` to use a webhook",
            ("alerts", "slack", "channel"),
        )
    elif slack:
        slack_url = required_env(
            slack.webhook_url_env, "alerts.slack is configured",
            "export the webhook URL in it (or set alerts.slack.channel and a bot token), or remove alerts.slack",
            ("alerts", "slack"),
        )
    smtp_password = None
    email = settings.alerts.email
    if email and email.username:
        smtp_password = required_env(
            email.password_env, "alerts.email.username is set", "export the SMTP password in it",
            ("alerts", "email", "username"),
        )
    secrets = Secrets(
        slack_webhook_url=SecretStr(slack_url) if slack_url else None,
        slack_bot_token=SecretStr(slack_token) if slack_token else None,
        smtp_password=SecretStr(smtp_password) if smtp_password else None,
    )
    return Config(
        settings=settings, feeds=feeds, data_dir=ddir, sources_path=src, topics_dir=topics, secrets=secrets
    )


