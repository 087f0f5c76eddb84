"""The daemon: builds dependencies once, owns the scheduler, stops gracefully.

Three jobs, each a method that can also be called directly (`run --once`, tests):

* `poll()`: due feeds -> conditional GET -> parse -> new items committed to the spool.
* `batch()`: spool -> Beam pipeline -> results loaded in one transaction -> outbox rows.
* `alert()`: outbox -> notifiers -> delivery log.

APScheduler owns time (UTC, coalesce, one instance of each job at a time). The store serialises
transactions, so the jobs may overlap: a slow batch does not delay polling. On SIGTERM or Ctrl-C
the scheduler stops taking new runs; a job in flight gets `stop_timeout` seconds to finish.
Abandoning a batch is safe: its items stay 'pending' in the spool and the next run takes them.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from pipeline import __version__
from pipeline.alert.lifecycle import AlertEngine, LifecycleSummary
from pipeline.alert.notifiers import Notifier
from pipeline.alert.notifiers.console import ConsoleNotifier
from pipeline.alert.notifiers.email import EmailNotifier
from pipeline.alert.notifiers.slack import SlackApiNotifier, SlackWebhookNotifier
from pipeline.alert.routes import DEFAULT, Route
from pipeline.config import Config, Source
from pipeline.errors import NewsmonError
from pipeline.fetch.hosts import HostBackoff
from pipeline.fetch.http import HttpClient, HttpSettings
from pipeline.fetch.poll import PollPolicy, PollResult, is_due, poll_feed
from pipeline.flow import BatchOptions, run_batch
from pipeline.health import write_health
from pipeline.metrics import Metrics, MetricsServer
from pipeline.models import FeedItem, FeedState, ItemResult
from pipeline.stages.dedup import DedupSettings
from pipeline.stages.stories import StoryHistory, WarmHistories
from pipeline.stages.topics import load_topics
from pipeline.store import BatchSummary, PollRecord, RetryPolicy, Store
from pipeline.store.maintenance import MaintenanceReport, MaintenanceSettings, maintain, store_health
from pipeline.stories.persist import load_index, read_header, save_index_report

log = logging.getLogger("newsmon.daemon")
# The saved story index (pipeline/stories/persist.py) is written after every committed batch, and
# incrementally: a save writes about what the batch added, so its cost follows the batch, not the
# index (a whole rewrite, when its log has grown past half of it, is the exception).
lifecycle = logging.getLogger("newsmon.lifecycle")  # start/stop: shown without -v (cli._setup_logging)

T = TypeVar("T")

# Polls are committed in chunks as they complete: a chunk once COMMIT_CHUNK polls have waited
# COMMIT_SECONDS since the last commit, or at COMMIT_CHUNK_MAX, and the rest at the end of the
# cycle. A DuckLake commit has a fixed cost (catalog writes, fsyncs) far above a poll's rows: a
# 2,000-poll commit costs ~1.3x a 1,000-poll one (0.45 s against 0.35 s), so a cycle of 2,000
# unchanged feeds that fetches in ~5 s commits once, at its end (bench_poll.py). A crash loses at
# most the uncommitted polls, and those feeds are simply polled again (their items with them).
COMMIT_CHUNK = 100
COMMIT_CHUNK_MAX = 2000
COMMIT_SECONDS = 10.0


def one_line_error(e: BaseException) -> str:
    """`Type: first line of the message`, at most 300 characters (Beam wraps errors in pages)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"[:300]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _logged_progress(rows: Sequence[T], what: str, every: int = 10_000) -> Iterator[T]:
    """`rows`, logging how many have been taken every `every` (long loads show progress)."""
    for n, row in enumerate(rows, 1):
        if n % every == 0:
            log.info("%s done=%d of=%d", what, n, len(rows))
        yield row


@dataclass
class PollSummary:
    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    unchanged: int = 0
    host_backoff: int = 0  # skipped: their host asked us to wait (429/503 with Retry-After)
    disabled_skipped: int = 0  # forced poll only: auto-disabled feeds left to their retry schedule
    errors: int = 0
    new_items: int = 0
    errors_by_feed: dict[str, str] = field(default_factory=dict)


def http_settings(config: Config, *, pages: bool) -> HttpSettings:
    f = config.settings.fetch
    return HttpSettings(
        user_agent=f.user_agent,
        connect_timeout=f.connect_timeout_seconds,
        total_timeout=f.total_timeout_seconds,
        max_body_bytes=f.max_page_bytes if pages else f.max_feed_bytes,
        max_redirects=f.max_redirects,
        allow_private_addresses=f.allow_private_addresses,
        per_host_concurrency=f.per_host_concurrency,
        per_host_min_gap=f.per_host_min_gap_seconds,
        allow_networks=tuple(f.allow_networks),
    )


def poll_policy(config: Config) -> PollPolicy:
    f = config.settings.fetch
    return PollPolicy(
        min_interval=timedelta(minutes=f.min_interval_minutes),
        max_interval=timedelta(minutes=f.max_interval_minutes),
        max_hint_interval=timedelta(minutes=f.max_hint_interval_minutes),
        jitter=f.interval_jitter,
        idle_grace=f.idle_grace_polls,
        idle_factor=f.idle_backoff_factor,
        self_check_every=f.validator_check_every,
        self_check_max_age=timedelta(hours=f.validator_check_max_age_hours),
        disable_after=f.disable_after_permanent_errors,
        disabled_retry=timedelta(hours=f.disabled_retry_hours),
        max_retry_after=timedelta(hours=f.max_retry_after_hours),
    )


def build_notifiers(config: Config) -> list[Notifier]:
    a = config.settings.alerts
    out: list[Notifier] = []
    if a.slack and a.slack.channel and config.secrets.slack_bot_token:
        out.append(
            SlackApiNotifier(
                config.secrets.slack_bot_token.get_secret_value(),
                a.slack.channel,
                api_url=a.slack.api_url,
                timeout=a.slack.timeout_seconds,
            )
        )
    elif a.slack and config.secrets.slack_webhook_url:
        out.append(SlackWebhookNotifier(config.secrets.slack_webhook_url.get_secret_value(), a.slack.timeout_seconds))
    if a.email:
        ctx = ssl.create_default_context(cafile=a.email.ca_file) if a.email.ca_file else None
        pw = config.secrets.smtp_password.get_secret_value() if config.secrets.smtp_password else None
        out.append(
            EmailNotifier(
                a.email.host,
                a.email.port,
                a.email.sender,
                tuple(a.email.recipients),
                username=a.email.username,
                password=pw,
                starttls=a.email.starttls,
                ssl_context=ctx,
                timeout=a.email.timeout_seconds,
            )
        )
    if a.console or not out:
        out.append(ConsoleNotifier())
    return out


def build_routes(config: Config, default: Sequence[Notifier]) -> list[Route]:
    """The default route (the channels of alerts.slack/email/console) and the configured routes,
    each with its own notifiers (same bot token and SMTP server, its own channel and recipients)."""
    a = config.settings.alerts
    routes = [Route(DEFAULT, list(default))]
    for rc in a.routes:
        notifiers: list[Notifier] = []
        if rc.slack_channel and a.slack and config.secrets.slack_bot_token:
            notifiers.append(SlackApiNotifier(
                config.secrets.slack_bot_token.get_secret_value(), rc.slack_channel, api_url=a.slack.api_url,
                timeout=a.slack.timeout_seconds, route=rc.name,
            ))
        if rc.email_recipients and a.email:
            ctx = ssl.create_default_context(cafile=a.email.ca_file) if a.email.ca_file else None
            pw = config.secrets.smtp_password.get_secret_value() if config.secrets.smtp_password else None
            notifiers.append(EmailNotifier(
                a.email.host, a.email.port, a.email.sender, tuple(rc.email_recipients), username=a.email.username,
                password=pw, starttls=a.email.starttls, ssl_context=ctx, timeout=a.email.timeout_seconds,
            ))
        routes.append(Route(
            rc.name, notifiers, match=rc.match, continue_matching=rc.continue_matching, quiet_hours=rc.quiet_hours,
            digest=rc.digest, digest_hour=rc.digest_hour, ops=rc.name == a.ops_route,
        ))
    return routes


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        store: Store | None = None,
        notifiers: Sequence[Notifier] | None = None,
        clock: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.store = store or Store.open(config.data_dir, location=config.store_location)  # takes the writer lock: one daemon per store
        try:
            self._start(config, notifiers)
        except BaseException:
            if store is None:
                self.store.close()  # release the lock: a failed start must not keep the store
            raise

    def _start(self, config: Config, notifiers: Sequence[Notifier] | None) -> None:
        self.notifiers = list(notifiers) if notifiers is not None else build_notifiers(config)
        self.routes = build_routes(config, self.notifiers)
        self._engine: AlertEngine | None = None  # built at the first alert run (it reads the store)
        self._started_at = self.clock()
        self.feed_client = HttpClient(http_settings(config, pages=False))
        self.poll_policy: PollPolicy = poll_policy(config)  # intervals, self-check, disabling
        p = config.settings.pipeline
        # page downloads retried across batches, then dead-lettered
        self.item_retry = RetryPolicy(
            max_attempts=p.page_retry_max_attempts, base_delay=timedelta(minutes=p.page_retry_base_minutes)
        )
        self.hosts = HostBackoff()  # hosts that answered 429/503 with Retry-After, until when
        self._saved_holds: dict[str, datetime] = {}  # the holds last written to the store
        self._load_host_holds()
        self.topics = load_topics(config.topics_dir)  # fail at start, not in the first batch
        self.rng = random.Random()
        self._stop = threading.Event()
        self._suspects: list[str] = []  # items of a crashed batch, being bisected (see batch())
        self._bisect_ok = False  # a batch succeeded since the bisection began
        self._running: set[str] = set()  # names of jobs in flight, for the graceful stop
        # The story index kept between batches when the fold runs in this process (see
        # _story_history): history is indexed once, not once per batch.
        self._stories_name = f"daemon-{uuid.uuid4().hex[:12]}"
        self._stories: StoryHistory | None = None
        self.store.sync_feeds(config.feeds, self.clock())
        self._clear_abandoned_batches()

    def _load_host_holds(self) -> None:
        """Holds set before a restart still bind: no request to a held host before its time."""
        now = self.clock()
        for host, until in self.store.host_holds(now).items():
            self.hosts.block(host, until, now=now)  # the cap again guards against a bad row
        self._saved_holds = self.hosts.held(now)
        if self._saved_holds:
            log.info(
                "host_holds_loaded hosts=%s",
                ",".join(f"{h}@{t.isoformat()}" for h, t in sorted(self._saved_holds.items())),
            )

    def _save_host_holds(self, now: datetime) -> None:
        """Write the holds in force when they changed (a new hold, a longer one, one expired)."""
        held = self.hosts.held(now)
        if held != self._saved_holds:
            self.store.save_host_holds(held, now)
            self._saved_holds = held

    def _clear_abandoned_batches(self) -> None:
        """Shards of a batch that was killed before its load are garbage: its items are still
        pending and the next batch processes them again. Only the one writer runs this, at start."""
        batches = self.config.data_dir / "batches"
        if batches.is_dir():
            for d in batches.iterdir():
                shutil.rmtree(d, ignore_errors=True)
                log.info("abandoned_batch_removed batch_id=%s", d.name)

    def close(self) -> None:
        # The kept index was saved after the last committed batch; nothing changed it since.
        self._drop_stories()
        self.feed_client.close()
        self.store.close()

    # -- jobs -----------------------------------------------------------------------------------

    def poll(self, *, force: bool = False) -> PollSummary:
        """Poll the feeds that are due (with `force`, every enabled feed that is not auto-disabled).

        Feeds on a host held by a 429/503 Retry-After are not fetched, forced or not: their next
        poll moves to the host's not-before time (outcome "host_backoff", counted in `feeds` but
        in none of ok/not_modified/unchanged/errors). Auto-disabled feeds (a streak of permanent
        errors) are polled only when their rare retry is due, forced or not; a forced poll counts
        the others in `disabled_skipped`.
        """
        now = self.clock()
        states = self.store.feed_states()
        due: list[Source] = []
        skipped: list[str] = []
        for f in self.config.feeds:
            if not f.enabled:
                continue
            st = states.get(f.id)
            if is_due(st, now):
                due.append(f)
            elif force and st is not None and st.disabled:
                skipped.append(f.id)
            elif force:
                due.append(f)
        summary = PollSummary(feeds=len(due), disabled_skipped=len(skipped))
        if skipped:
            log.info("disabled_feeds_skipped count=%d feeds=%s", len(skipped), ",".join(skipped))
        if not due:
            return summary
        workers = min(self.config.settings.fetch.workers, len(due))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
            futures = {
                pool.submit(
                    poll_feed,
                    f,
                    states.get(f.id),
                    self.feed_client,
                    now=now,
                    rng=self.rng,
                    policy=self.poll_policy,
                    hosts=self.hosts,
                    known=self._known_items,
                ): f
                for f in due
            }
            pending: list[tuple[Source, PollResult]] = []
            last_commit = time.monotonic()
            for fut in as_completed(futures):
                pending.append((futures[fut], fut.result()))
                # Few DuckLake transactions per cycle, and what was fetched is durable soon
                # after (a crash re-polls the rest).
                waited = time.monotonic() - last_commit
                if len(pending) >= COMMIT_CHUNK_MAX or (len(pending) >= COMMIT_CHUNK and waited >= COMMIT_SECONDS):
                    self._commit_polls(pending, now, states, summary)
                    pending = []
                    last_commit = time.monotonic()
            self._commit_polls(pending, now, states, summary)
        self._update_queue_depth()
        return summary

    def _commit_polls(
        self, done: list[tuple[Source, PollResult]], now: datetime, states: dict[str, FeedState], summary: PollSummary
    ) -> None:
        if not done:
            return
        new_by_feed = self.store.record_polls(
            [
                PollRecord(res.state, now, res.outcome, res.status, res.error_kind, res.error, res.duration_ms, tuple(res.items))
                for _, res in done
            ]
        )
        self._save_host_holds(now)
        for source, res in done:
            n_new = len(new_by_feed.get(source.id, ()))
            summary.new_items += n_new
            self.metrics.fetches.labels(res.outcome).inc()
            self.metrics.new_items.inc(n_new)
            if res.error_kind:
                self.metrics.fetch_errors.labels(res.error_kind).inc()
            if res.outcome == "error":
                summary.errors += 1
                summary.errors_by_feed[source.id] = f"{res.error_kind}: {res.error}"
            else:
                setattr(summary, res.outcome, getattr(summary, res.outcome) + 1)
            if res.state.disabled and not (states.get(source.id) and states[source.id].disabled):
                log.warning("feed_disabled feed_id=%s error_kind=%s", source.id, res.error_kind)
            log.info(
                "feed_polled feed_id=%s outcome=%s status=%s new_items=%d error_kind=%s next_due=%s",
                source.id, res.outcome, res.status, n_new, res.error_kind,
                res.state.next_due_at.isoformat() if res.state.next_due_at else None,
            )

    def _known_items(self, item_ids: Sequence[str]) -> set[str]:
        """Which of `item_ids` the spool already holds (the poller's new-item count)."""
        return self.store.known_item_ids(item_ids)

    def _update_queue_depth(self) -> None:
        self.metrics.queue_depth.set(
            self.store.scalar("SELECT count(*) FROM items WHERE disposition = 'pending'") or 0
        )

    def batch(self) -> BatchSummary | None:
        """Run one Beam batch over the spool; None when nothing is pending."""
        p = self.config.settings.pipeline
        started = self.clock()
        items = self.store.pending_items(p.max_batch_items, now=started)  # not those waiting for a retry
        if not items:
            return None
        items = self._bisect_pick(items)
        batch_id = started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        log.info("batch_started batch_id=%s items=%d", batch_id, len(items))
        # The index keeps what the history window loads and evicts beyond it, so its memory
        # stays bounded by dedup_history_days however long the daemon runs.
        dedup = DedupSettings(window_days=p.dedup_window_days, retention_days=p.dedup_history_days)
        since = started - timedelta(days=p.dedup_history_days)
        warm = self._story_history(dedup, since) if self._fold_in_process() else None
        history = [] if warm is not None else self.store.dedup_history(since)
        opts = BatchOptions(
            topics_dir=str(self.config.topics_dir),
            now=started,
            http=http_settings(self.config, pages=True),
            download_workers=self.config.settings.fetch.workers,
            min_text_chars=p.min_text_chars,
            extract_processes=p.extract_processes,
            dedup=dedup,
            runner=p.runner,
            beam_args=tuple(p.beam_args),
            honour_robots=self.config.settings.fetch.robots_txt,
            robots_opt_out=frozenset(f.id for f in self.config.feeds if not f.robots_txt),
            held_hosts=tuple(sorted(self.hosts.held(started).items())),
            warm_stories=warm,
        )
        out_dir = self.config.data_dir / "batches" / batch_id
        t0 = time.monotonic()
        try:
            results = run_batch(items, history, opts, out_dir)
        except Exception as e:
            # It may hold articles of this batch, which are not stored: the next batch loads the
            # index saved after the last committed batch instead (no rebuild from the store).
            self._drop_stories()
            shutil.rmtree(out_dir, ignore_errors=True)
            given_up = self._batch_crashed(batch_id, items, e, started)
            if given_up is not None:
                return given_up
            raise
        if self._suspects:
            done = {it.item_id for it in items}
            self._suspects = [i for i in self._suspects if i not in done]
            self._bisect_ok = True
        try:
            summary = self.store.load_batch(
                batch_id,
                results,
                now=self.clock(),
                runner=p.runner,
                started_at=started,
                topic_descriptions={t.id: t.description for t in self.topics},
                retry=self.item_retry,
            )
        except BaseException:
            self._drop_stories()
            raise
        shutil.rmtree(out_dir, ignore_errors=True)  # loaded: the shards are no longer needed
        self._import_labels()
        self._save_stories(self._store_mark(batch_id))
        for disposition, n in summary.dispositions.items():
            self.metrics.items.labels(disposition).inc(n)
        self.metrics.alerts.inc(summary.alerts_new)
        self.metrics.batch_seconds.observe(time.monotonic() - t0)
        self._update_queue_depth()
        self.metrics.story_index_articles.set(len(self._stories) if self._stories is not None else 0)
        log.info(
            "batch_loaded batch_id=%s items=%d dispositions=%s alerts_new=%d dead_letters=%d seconds=%.2f",
            batch_id, summary.items, summary.dispositions, summary.alerts_new, summary.dead_letters,
            time.monotonic() - t0,
        )
        if summary.dead_letters:
            log.warning("items_dead_lettered batch_id=%s count=%d (newsmon status --dead-letters)",
                        batch_id, summary.dead_letters)
        return summary

    # -- the story index kept between batches --------------------------------------------------------
    #
    # Folding compares each article with the stored history. Rebuilding that index for every batch
    # costs time in proportion to the history (about 6 ms per stored article), which a store of
    # 100,000 articles turns into minutes per batch. When the fold runs in this process, the index
    # is built once from the store and kept: each batch adds its own articles, and the index's
    # retention evicts those older than dedup_history_days. The store stays the truth: the index
    # is dropped whenever a batch fails after folding (it may hold articles that were never
    # committed) and rebuilt from the store by the next batch, as after a restart.

    def _fold_in_process(self) -> bool:
        """Whether the runner folds in this process (FnApiRunner, not in multi_processing mode)."""
        p = self.config.settings.pipeline
        if p.runner != "FnApiRunner":
            return False
        from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

        return PipelineOptions(list(p.beam_args)).view_as(DirectOptions).direct_running_mode == "in_memory"

    def _story_index_path(self) -> Path:
        """The directory of the saved story index (a manifest, base arrays, an append-only log)."""
        return self.config.data_dir / "story_index"

    def _store_mark(self, batch_id: str | None = None) -> str | None:
        """What ties a saved index to the store: a committed batch's id and how many batches the
        store holds. A later commit changes the count, so a file saved before it is stale (batch
        times alone cannot order batches: a clock may give two the same second)."""
        n = self.store.scalar("SELECT count(*) FROM batches") or 0
        if batch_id is None:
            batch_id = self.store.scalar("SELECT max(batch_id) FROM batches")
        elif not self.store.scalar("SELECT count(*) FROM batches WHERE batch_id = ?", [batch_id]):
            return None
        return None if batch_id is None else f"{batch_id}#{n}"

    def _save_stories(self, batch_id: str | None) -> None:
        """Persist the kept index, tied to the batch just committed (a restart then loads it)."""
        if self._stories is None or batch_id is None:
            return
        t0 = time.monotonic()
        legacy = self.config.data_dir / "story_index.pkl"   # the whole-file index of earlier versions
        try:
            legacy.unlink(missing_ok=True)
            report = save_index_report(self._stories, self._story_index_path(), batch_id, self._stories.settings)
        except OSError as e:  # a full disk costs the next start a rebuild, never the batch
            log.warning("story_index_save_failed batch_id=%s error=%s", batch_id, e)
            return
        log.info("story_index_saved batch_id=%s articles=%d bytes=%d whole=%s seconds=%.2f",
                 batch_id, len(self._stories), report.bytes_written, report.whole, time.monotonic() - t0)

    def _load_saved_stories(self, settings: DedupSettings) -> StoryHistory | None:
        """The index saved after the store's last committed batch, if whole and current."""
        t0 = time.monotonic()
        path = self._story_index_path()
        header = read_header(path)
        saved = str(header.get("batch_id") or "") if isinstance(header, dict) else ""
        got = load_index(path, self._store_mark(saved.split("#")[0]) if saved else None, settings)
        if got.value is None or not isinstance(got.value, StoryHistory):
            if got.reason != "no saved index":
                log.warning("story_index_not_loaded reason=%s; rebuilding from the store", got.reason)
            return None
        stories: StoryHistory = got.value
        stories.index.refresh_model()
        seconds = time.monotonic() - t0
        self.metrics.story_index_load_seconds.set(seconds)
        log.info("story_index_loaded_saved articles=%d seconds=%.1f", len(stories), seconds)
        return stories

    def _story_history(self, settings: DedupSettings, since: datetime) -> str:
        """The name of the kept story index: the one held, else the saved one, else rebuilt from the store."""
        if self._stories is None or self._stories.settings != settings:
            self._drop_stories()
            saved = self._load_saved_stories(settings)
            if saved is not None:
                self._stories = saved
                WarmHistories.put(self._stories_name, saved)
                saved.forget_before(since)
                return self._stories_name
            t0 = time.monotonic()
            log.info("story_index_loading since=%s", since.isoformat())
            stories = StoryHistory(settings)
            # Undated articles count as indexed now: they stay one window from the load.
            stories.load(_logged_progress(self.store.dedup_history(since), "story_index_loading"), now=self.clock())
            self._stories = stories
            WarmHistories.put(self._stories_name, stories)
            seconds = time.monotonic() - t0
            self.metrics.story_index_load_seconds.set(seconds)
            log.info("story_index_loaded articles=%d seconds=%.1f", len(stories), seconds)
            self._save_stories(self._store_mark())  # what the store holds now: a restart reuses it
        else:
            self._stories.forget_before(since)  # as a history read from the store now would
        return self._stories_name

    def _import_labels(self) -> None:
        """Analysts' topic labels queued while this daemon held the store (store/labels.py)."""
        from pipeline.store.labels import import_pending_labels

        try:
            n = import_pending_labels(self.store)
        except Exception as e:  # a label file problem must never fail a batch that has committed
            log.warning("topic_labels_import_failed", extra={"error": str(e)})
            return
        if n:
            log.info("topic_labels_imported", extra={"labels": n})

    def _drop_stories(self) -> None:
        if self._stories is not None:
            log.info("story_index_dropped articles=%d; the next batch loads the saved one (or rebuilds from the store)", len(self._stories))
        self._stories = None
        WarmHistories.discard(self._stories_name)
        self.metrics.story_index_articles.set(0)

    def maintain(self) -> MaintenanceReport:
        """Store upkeep (pipeline/store/maintenance.py): short steps between polls and batches."""
        st = self.config.settings
        report = maintain(self.store, MaintenanceSettings.from_config(st.maintenance, st.store.keep_pages_days), self.clock())
        failed = [s for s in report.steps if s[3].startswith("failed")]
        self.metrics.maintenance_runs.labels("step_failed" if failed else "ok").inc()
        self.metrics.maintenance_seconds.set(report.seconds)
        if report.after is not None:
            self.metrics.observe_store(report.after)
        return report

    def engine(self) -> AlertEngine:
        if self._engine is None:
            from pipeline.alert.health import pipeline_checks

            a = self.config.settings.alerts
            policies = {"slack": a.slack.on_in_doubt if a.slack else "resend",
                        "email": a.email.on_in_doubt if a.email else "resend"}
            last_ok = self.metrics.last_ok

            def maintained() -> datetime | None:
                t = last_ok("maintain")
                return datetime.fromtimestamp(t, UTC) if t else None

            health = pipeline_checks(
                self.store, a.health, self.config.data_dir,
                last_maintained=maintained if self.config.settings.maintenance.enabled else None,
                started_at=self._started_at,
            )
            self._engine = AlertEngine(
                self.store, self.routes, a.timing, max_attempts=a.max_attempts, now=self.clock, on_in_doubt=policies,
                observe=lambda channel, outcome: self.metrics.deliveries.labels(channel, outcome).inc(),
                health=health if a.health.enabled else None,
            )
        return self._engine

    def alert(self, *, flush: bool = False) -> LifecycleSummary:
        """The alert job (pipeline/alert/lifecycle.py): first alerts after the group wait, thread
        updates, digests, health alerts. `flush` (run --once) does not wait for the group wait."""
        return self.engine().run(flush=flush)

    # -- a batch that crashes the pipeline ----------------------------------------------------------
    #
    # Stages turn a bad item into a disposition, so a whole batch should never fail. If one does
    # (a bug met by one odd page), retrying the same batch forever would block the spool. Instead
    # the failed batch's items become suspects, and the next batches take half of them at a time
    # (bisection): about log2(n) batches find the item that still crashes alone. It is given up
    # (extract_failed + a dead letter) only when some other batch has succeeded meanwhile, which
    # tells an item that breaks the pipeline from a pipeline that is broken (disk full, a bad
    # deploy); in that case nothing is dead-lettered and the batch is simply retried later.

    def _bisect_pick(self, items: list[FeedItem]) -> list[FeedItem]:
        if not self._suspects:
            return items
        wanted = set(self._suspects)
        pick = [it for it in items if it.item_id in wanted]
        if not pick:  # processed meanwhile (another run), or no longer pending
            self._suspects = []
            return items
        return pick[: max(1, len(pick) // 2)]

    def _batch_crashed(
        self, batch_id: str, items: list[FeedItem], error: Exception, started: datetime
    ) -> BatchSummary | None:
        """Record a crashed batch; returns the summary when a lone crashing item was given up."""
        why = f"{type(error).__name__}: {error}"[:500]
        if len(items) > 1:
            if not self._suspects:  # a fresh bisection, not a step of one under way
                self._bisect_ok = False
            self._suspects = [it.item_id for it in items]
            log.error(
                "batch_crashed batch_id=%s items=%d error=%s; bisecting: the next batch takes %d of them",
                batch_id, len(items), why, max(1, len(items) // 2),
            )
            return None
        if not self._bisect_ok:
            self._suspects = []
            log.error(
                "batch_crashed batch_id=%s items=1 error=%s; no other batch succeeded meanwhile, so the "
                "pipeline itself may be broken: not giving the item up, retrying later", batch_id, why,
            )
            return None
        (item,) = items
        self._suspects, self._bisect_ok = [], False
        log.error("item_crashes_pipeline item_id=%s url=%s error=%s; given up (dead letter)", item.item_id, item.url, why)
        detail = f"the pipeline crashed on this item alone: {why}"
        return self.store.load_batch(
            batch_id, [ItemResult(item, "extract_failed", detail=detail)], now=self.clock(),
            runner=self.config.settings.pipeline.runner, started_at=started, retry=self.item_retry,
        )

    def run_once(self) -> tuple[PollSummary, list[BatchSummary], LifecycleSummary]:
        """One full cycle: poll every enabled feed (auto-disabled ones only when their retry is
        due), drain the spool (items waiting for a download retry stay), deliver alerts."""
        polled = self.poll(force=True)
        batches = []
        while True:
            try:
                b = self.batch()
            except Exception:
                if self._suspects:  # bisecting a crashed batch: go on with half of it
                    continue
                raise
            if b is None:
                break
            batches.append(b)
            if b.items == 0:
                break
        return polled, batches, self.alert(flush=True)

    # -- the scheduler --------------------------------------------------------------------------

    def run_forever(self, *, stop_timeout: float = 30.0) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor as JobExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        s = self.config.settings
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": JobExecutor(4)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        )
        now = self.clock()
        scheduler.add_job(self._guard(self.poll), "interval", seconds=s.pipeline.poll_tick_seconds, id="poll", next_run_time=now)
        scheduler.add_job(self._guard(self.batch), "interval", seconds=s.pipeline.batch_interval_seconds, id="batch",
                          next_run_time=now + timedelta(seconds=5))
        scheduler.add_job(self._guard(self.alert), "interval", seconds=s.alerts.interval_seconds, id="alert",
                          next_run_time=now + timedelta(seconds=10))
        if s.maintenance.enabled:
            scheduler.add_job(self._guard(self.maintain), "interval", minutes=s.maintenance.interval_minutes,
                              id="maintain", next_run_time=now + timedelta(minutes=min(5.0, s.maintenance.interval_minutes)))
        self.metrics.observe_store(store_health(self.store))

        def on_signal(signum: int, _frame: object) -> None:
            lifecycle.info("stop_requested signal=%s", signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        server = None
        if s.metrics_port is not None:
            stale_after = max(600.0, 10 * s.pipeline.poll_tick_seconds, 10 * s.pipeline.batch_interval_seconds)
            try:
                server = MetricsServer(self.metrics, s.metrics_port, host=s.metrics_host, stale_after=stale_after).start()
            except OSError as e:
                raise NewsmonError(
                    f"cannot serve metrics on {s.metrics_host}:{s.metrics_port}: {e.strerror}; "
                    "set `metrics_port` (or `metrics_host`) in the settings to a free one, or null to switch it off"
                ) from None
            lifecycle.info("metrics_listening address=%s:%d", s.metrics_host, server.port)
        scheduler.start()
        lifecycle.info(
            "daemon_started version=%s pid=%d feeds=%d topics=%d data_dir=%s sources=%s topics_dir=%s runner=%s",
            __version__, os.getpid(), len(self.config.feeds), len(self.topics), self.config.data_dir,
            self.config.sources_path, self.config.topics_dir, s.pipeline.runner,
        )
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            scheduler.shutdown(wait=False)
            self._wait_for_jobs(stop_timeout)
            if server is not None:
                server.stop()
            lifecycle.info("daemon_stopped")

    def stop(self) -> None:
        self._stop.set()

    def _guard(self, job: Callable[[], object]) -> Callable[[], None]:
        """Jobs log their failures and keep the daemon alive; the next run tries again."""
        name = getattr(job, "__name__", "job")

        def run() -> None:
            if self._stop.is_set():
                return
            self._running.add(name)
            try:
                job()
                self.metrics.job_done(name)
                if name == "batch":
                    self._write_health(None)
            except Exception as e:
                error = one_line_error(e)
                streak = self.metrics.job_failed(name, error)
                # The traceback once per streak: a broken pipeline fails every batch, and a page of
                # Beam traceback a minute buries the log without saying anything new.
                if streak <= 1:
                    log.exception("job_failed job=%s error=%s", name, error)
                else:
                    log.error("job_failed job=%s failures_in_row=%d error=%s (traceback logged at the first)",
                              name, streak, error)
                if name == "batch":
                    self._write_health(error)
            finally:
                self._running.discard(name)

        return run

    def _write_health(self, error: str | None) -> None:
        """What `newsmon status` reports about batches (see pipeline/health.py)."""
        failures, _ = self.metrics.batch_failures()
        last_ok = self.metrics.last_ok("batch")
        write_health(self.config.data_dir, {
            "pid": os.getpid(),
            "updated_at": self.clock().isoformat(timespec="seconds"),
            "last_batch_ok_at": datetime.fromtimestamp(last_ok, UTC).isoformat(timespec="seconds") if last_ok else None,
            "batch_failures_in_row": failures,
            "last_batch_error": error,
        })

    def _wait_for_jobs(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._running:
            log.warning("stop_timeout_abandoning jobs=%s (pending items stay in the spool)", sorted(self._running))
