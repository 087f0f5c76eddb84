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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# In a wheel the project's data files (sources.yaml, seeds/) ship inside the package, copied
# there by setup.py at build time; in a checkout they are read where they are.
BUNDLED = Path(__file__).resolve().parent / "_bundled"


def bundled(*parts: str) -> Path:
    """A data file shipped with newsmon: the wheel's copy when installed, else the checkout's."""
    installed = BUNDLED.joinpath(*parts)
    return installed if installed.exists() else PROJECT_ROOT.joinpath(*parts)

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

    @field_validator("feeds")
    @classmethod
    def _not_empty(cls, v: tuple[Source, ...]) -> tuple[Source, ...]:
        if not v:
            raise ValueError("the list is empty; add at least one feed (- id: ..., url: ...), or the daemon watches nothing")
        return v


# --- newsmon.yaml ------------------------------------------------------------------------------


class FetchConfig(_Strict):
    user_agent: str = "newsmon/0.1 (+https://github.com/newsmon/newsmon)"
    connect_timeout_seconds: float = Field(default=5, gt=0)
    total_timeout_seconds: float = Field(default=20, gt=0)
    max_feed_bytes: int = Field(default=5_000_000, gt=0)
    max_page_bytes: int = Field(default=5_000_000, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    allow_private_addresses: bool = False  # the demo and tests switch this on for loopback
    # Networks exempt from the private-address guard, e.g. ["10.20.0.0/16"] for an intranet feed
    # server, without switching the guard off for everything else.
    allow_networks: tuple[str, ...] = ()
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


    @field_validator("allow_networks")
    @classmethod
    def _check_networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not a network; write an address or a CIDR, e.g. 10.20.0.0/16 or 192.0.2.7") from None
        return v


class PipelineConfig(_Strict):
    runner: str = "FnApiRunner"  # any Beam runner name; FnApiRunner runs in process, offline
    beam_args: tuple[str, ...] = ()  # extra Beam pipeline options, e.g. ["--direct_num_workers=2"]
    batch_interval_seconds: float = Field(default=60, gt=0)
    poll_tick_seconds: float = Field(default=30, gt=0)
    max_batch_items: int = Field(default=2000, ge=1)
    min_text_chars: int = Field(default=200, ge=0)
    # Extraction on this many worker processes kept for the daemon's life (FnApiRunner only): the
    # in-process runner's way onto more cores (bench/bench_extraction.py, README "Benchmarks").
    extract_processes: int = Field(default=1, ge=1, le=64)
    dedup_window_days: float = Field(default=3.0, gt=0)
    dedup_history_days: float = Field(default=14.0, gt=0)
    # Pages that fail for now (5xx, timeout, robots.txt unreachable) are retried across batches,
    # waiting base, 2x base, 4x base ... minutes; after max attempts the item is dead-lettered.
    page_retry_max_attempts: int = Field(default=6, ge=1)
    page_retry_base_minutes: float = Field(default=5, gt=0)

    @model_validator(mode="after")
    def _extract_processes_in_process(self) -> PipelineConfig:
        # The worker pool lives in the process that runs the stage, and the stage emits its last
        # pages when a bundle finishes, which only the in-process runner is known to honour.
        if self.extract_processes > 1 and (
            self.runner != "FnApiRunner" or any(a.startswith("--direct_running_mode") for a in self.beam_args)
        ):
            raise ValueError(
                "extract_processes > 1 needs runner: FnApiRunner without --direct_running_mode; "
                "on other runners set their own worker count instead (e.g. --direct_num_workers)"
            )
        return self


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


_CLOCK_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class QuietHoursConfig(_Strict):
    """A route's quiet hours: alerts raised between `start` and `end` (local to `timezone`) are
    held and go out when the quiet hours end; alerts scoring `override_score` or more go at once."""

    start: str = "22:00"  # HH:MM; a window may cross midnight (22:00-07:00)
    end: str = "07:00"
    timezone: str = "UTC"  # an IANA name, e.g. Europe/London
    override_score: float | None = Field(default=None, ge=0, le=1)

    @field_validator("start", "end")
    @classmethod
    def _check_clock(cls, v: str) -> str:
        if not _CLOCK_RE.match(v):
            raise ValueError(f"{v!r} is not a time of day; write HH:MM, e.g. 22:00")
        return v

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if v == "UTC":
            return v  # known without the time zone database
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as UTC or Europe/London") from None
        return v


class RouteMatchConfig(_Strict):
    """What a route takes: every listed condition must hold (an empty list matches anything)."""

    topics: tuple[str, ...] = ()  # topic ids
    min_score: float = Field(default=0.0, ge=0, le=1)  # the match's score
    outlets: tuple[str, ...] = ()  # an outlet (sitename or feed id) that carries the story
    feed_tags: tuple[str, ...] = ()  # a tag (sources.yaml) of the feed that raised the alert


class RouteConfig(_Strict):
    """One alert route (README "Alerts"). Routes are tried in order; the first that matches takes
    the alert (with `continue_matching`, later routes are tried too). An alert no route takes goes
    to the default route (alerts.slack.channel / alerts.email.recipients)."""

    name: str
    match: RouteMatchConfig = RouteMatchConfig()
    slack_channel: str | None = None  # channel id (C...), posted to with the bot token of alerts.slack
    email_recipients: tuple[str, ...] = ()  # sent through the SMTP server of alerts.email
    continue_matching: bool = False
    quiet_hours: QuietHoursConfig | None = None
    digest: Literal["hourly", "daily"] | None = None  # set: this route gets digests, not single alerts
    digest_hour: int = Field(default=8, ge=0, le=23)  # daily digests go out at this hour (quiet_hours tz or UTC)

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not FEED_ID_RE.match(v) or v == "default":
            raise ValueError(f"route name {v!r}: use lowercase letters, digits, '.', '_' or '-' (not 'default')")
        return v


class AlertTimingConfig(_Strict):
    """How an alert lives after its first message (README "Alerts": timings)."""

    group_wait_seconds: float = Field(default=120, ge=0)  # a new story waits this long, so copies fold first
    reply_interval_seconds: float = Field(default=300, ge=0)  # at most one thread reply per story this often
    update_window_hours: float = Field(default=48, gt=0)  # copies later than this after the alert are not told
    spread_outlets: int = Field(default=5, ge=1)  # this many new outlets ...
    spread_minutes: float = Field(default=30, gt=0)  # ... within this many minutes: broadcast the reply once
    email_followup_minutes: float = Field(default=60, gt=0)  # at most one email follow-up per story this often
    slack_posts_per_second: float = Field(default=1.0, gt=0)  # per channel (Slack's own limit)
    backlog_digest_after: int = Field(default=20, ge=1)  # more first alerts due on a channel: one digest instead
    digest_top: int = Field(default=5, ge=1)  # stories per topic in a digest


class HealthAlertsConfig(_Strict):
    """Pipeline-health alerts to the ops route; each fires once and resolves once."""

    enabled: bool = True
    feeds: bool = True  # a feed failing, auto-disabled or silent beyond its usual gap (newsmon status)
    volume_drop_fraction: float = Field(default=0.5, gt=0, le=1)  # new items in 6 h below this share of usual
    batch_failures: int = Field(default=3, ge=1)  # batches failing in a row
    dead_letters_growth: int = Field(default=20, ge=1)  # dead letters added in the last hour
    maintenance_overdue_hours: float = Field(default=24, gt=0)  # no store maintenance for this long


class AlertsConfig(_Strict):
    interval_seconds: float = Field(default=30, gt=0)
    slack: SlackConfig | None = None
    email: EmailConfig | None = None
    console: bool = False  # print alerts; on by default when no other channel is configured
    max_attempts: int = Field(default=8, ge=1)
    routes: tuple[RouteConfig, ...] = ()
    ops_route: str = "ops"  # the route that gets pipeline-health alerts (the default route if none is named so)
    timing: AlertTimingConfig = AlertTimingConfig()
    health: HealthAlertsConfig = HealthAlertsConfig()

    @field_validator("routes")
    @classmethod
    def _unique_routes(cls, v: tuple[RouteConfig, ...]) -> tuple[RouteConfig, ...]:
        names = [r.name for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"route names must be unique: {', '.join(dup)} appear more than once")
        return v


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


class DashboardConfig(_Strict):
    """`newsmon dashboard` (pipeline/dashboard/): a read-only web view of the store.

    It binds to loopback unless `host` says otherwise; bound anywhere else it refuses to start
    without an access token (read from the variable `token_env`, sent as `Authorization: Bearer`
    or `?token=`) or a basic-auth user (`basic_user`, password in `password_env`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=0, le=65535)
    token_env: str = "NEWSMON_DASHBOARD_TOKEN"
    basic_user: str | None = None
    password_env: str = "NEWSMON_DASHBOARD_PASSWORD"
    threads: int = Field(default=4, ge=1, le=64)  # requests served at once (one store reader each)
class StoreConfig(_Strict):
    """Where the store lives (pipeline/store/connection.py). Unset: the embedded store in data_dir
    (SQLite catalog, Parquet under data_dir/lake). Secrets never go here: PGPASSWORD (or ~/.pgpass)
    for the catalog, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL / AWS_REGION for
    the object store. NEWSMON_STORE_CATALOG and NEWSMON_STORE_DATA_PATH override the file."""

    catalog: str | None = None  # postgres://user@host:5432/dbname
    data_path: str | None = None  # s3://bucket/prefix/ or an absolute directory
    # Fetched pages (table `pages`, for `newsmon reprocess`) older than this many days are deleted
    # by the maintenance job; null keeps them all. About 33 GB per million news pages (README).
    keep_pages_days: float | None = Field(default=30, ge=0)

    @field_validator("catalog", "data_path")
    @classmethod
    def _location_ok(cls, v: str | None, info: Any) -> str | None:
        from pipeline.errors import StoreError
        from pipeline.store.connection import StoreLocation

        if v is None:
            return v
        try:
            problem = StoreLocation(**{info.field_name: v}).problem()
        except StoreError as e:
            problem = str(e)
        if problem:
            raise ValueError(problem)
        return v


class Settings(_Strict):
    data_dir: str = "newsmon-data"
    sources: str = "sources.yaml"
    topics_dir: str = "seeds/topics"
    fetch: FetchConfig = FetchConfig()
    pipeline: PipelineConfig = PipelineConfig()
    alerts: AlertsConfig = AlertsConfig()
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # serve /metrics and /healthz; null = off
    # The address the metrics server binds to: loopback by default; 0.0.0.0 in a container, where
    # the port is published to the host (compose.yaml) and loopback is unreachable from outside.
    metrics_host: str = "127.0.0.1"
    maintenance: MaintenanceConfig = MaintenanceConfig()
    dashboard: DashboardConfig = DashboardConfig()
    store: StoreConfig = StoreConfig()


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
    store_catalog: str | None = None  # resolved: the settings, or NEWSMON_STORE_CATALOG
    store_data_path: str | None = None  # resolved: the settings, or NEWSMON_STORE_DATA_PATH

    @property
    def store_location(self) -> Any:
        """The StoreLocation that Store.open takes (pipeline/store/connection.py)."""
        from pipeline.store.connection import StoreLocation

        return StoreLocation(self.store_catalog, self.store_data_path)

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
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            problems.append((_line_of(node, loc), f"{dotted}: {_fix_for(err)}"))
        raise _many(problems, str(path)) from None


def _many(problems: Sequence[tuple[int | None, str]], path: str) -> ConfigError:
    """One ConfigError for one problem; for several, one listing them all (each with its line)."""
    if len(problems) == 1:
        line, message = problems[0]
        return ConfigError(message, path=path, line=line)
    listed = "\n".join(f"  {path}:{line}: {m}" if line else f"  {path}: {m}" for line, m in problems)
    return ConfigError(f"{len(problems)} problems:\n{listed}", path=path)


# --- public ------------------------------------------------------------------------------------


def load_sources(path: str | Path) -> tuple[Source, ...]:
    """Read and strictly validate a sources file."""
    p = Path(path)
    data, node = _read_yaml(p)
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with a 'feeds:' list at the top", path=str(p), line=1)
    parsed: SourcesFile = _validate(SourcesFile, data, node, p)
    problems: list[tuple[int | None, str]] = []
    seen: dict[str, int] = {}
    urls: dict[str, str] = {}
    for i, feed in enumerate(parsed.feeds):
        line = _line_of(node, ("feeds", i, "id"))
        if feed.id in seen:
            problems.append((line, f"duplicate feed id '{feed.id}' (first on line {seen[feed.id]}); give each feed a unique id"))
        else:
            seen[feed.id] = line or 0
        if feed.url in urls:
            problems.append((_line_of(node, ("feeds", i, "url")), f"feed '{feed.id}' has the same url as '{urls[feed.url]}'; remove one"))
        else:
            urls[feed.url] = feed.id
    if problems:
        raise _many(problems, str(p))
    return parsed.feeds


def load(
    config_path: str | Path | None = None,
    *,
    sources_path: str | Path | None = None,
    data_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    feeds_required: bool = True,
) -> Config:
    """Build the frozen Config.

    Relative paths in the settings file are resolved against the file's folder; without a
    settings file, against the current directory. Command-line options win over the file.
    Without a sources file (none named, and no sources.yaml where the default points) that is an
    error naming the bundled defaults: the daemon never silently watches feeds nobody chose.
    With `feeds_required=False` (commands that read the store or texts) the feeds are not read.
    The topics fall back to the bundled seed topics when the default folder is not there.
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

    src = Path(sources_path).resolve() if sources_path else resolve("sources", settings.sources)
    topics = resolve("topics_dir", settings.topics_dir, bundled("seeds", "topics"))
    ddir = Path(data_dir).resolve() if data_dir else resolve("data_dir", settings.data_dir)
    problems: list[ConfigError] = []
    feeds: tuple[Source, ...] = ()
    if feeds_required:
        if not sources_path and "sources" not in raw and not src.exists():
            problems.append(ConfigError(
                f"no sources file: {src} does not exist; pass --sources FILE or set `sources:` in the settings "
                f"(the curated default feeds ship at {bundled('sources.yaml')}: copy them and edit)"
            ))
        else:
            try:
                feeds = load_sources(src)
            except ConfigError as e:
                problems.append(e)

    def required_env(var: str, why: str, fix: str, at: tuple[str, ...]) -> str:
        value = env.get(var)
        if not value:
            problems.append(ConfigError(
                f"{why} but the environment variable {var} is empty; {fix}",
                path=str(config_path),
                line=_line_of(node, at),
            ))
        return value or ""

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
    for i, route in enumerate(settings.alerts.routes):
        if route.slack_channel and not (slack and slack.channel):
            problems.append(ConfigError(
                f"route '{route.name}' has slack_channel but alerts.slack.channel is not set; routes post with the "
                "bot token of the Web API mode: set alerts.slack.channel (and export the token)",
                path=str(config_path), line=_line_of(node, ("alerts", "routes", i, "slack_channel")),
            ))
        if route.email_recipients and not email:
            problems.append(ConfigError(
                f"route '{route.name}' has email_recipients but alerts.email (the SMTP server) is not configured",
                path=str(config_path), line=_line_of(node, ("alerts", "routes", i, "email_recipients")),
            ))
        if not route.slack_channel and not route.email_recipients:
            problems.append(ConfigError(
                f"route '{route.name}' sends nowhere; give it slack_channel or email_recipients",
                path=str(config_path), line=_line_of(node, ("alerts", "routes", i, "name")),
            ))
    if len(problems) == 1:
        raise problems[0]
    if problems:  # every problem at once, not one per run
        raise ConfigError(f"{len(problems)} problems:\n" + "\n".join("  " + str(p).replace("\n", "\n  ") for p in problems))
    secrets = Secrets(
        slack_webhook_url=SecretStr(slack_url) if slack_url else None,
        slack_bot_token=SecretStr(slack_token) if slack_token else None,
        smtp_password=SecretStr(smtp_password) if smtp_password else None,
    )
    # The environment wins over the file, so one settings file serves a laptop and a cluster.
    store_catalog = env.get("NEWSMON_STORE_CATALOG") or settings.store.catalog
    store_data_path = env.get("NEWSMON_STORE_DATA_PATH") or settings.store.data_path
    return Config(
        settings=settings, feeds=feeds, data_dir=ddir, sources_path=src, topics_dir=topics, secrets=secrets,
        store_catalog=store_catalog, store_data_path=store_data_path,
    )


