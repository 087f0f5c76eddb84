"""DownloadPages: a feed item -> its article page (`Page`), through the shared hardened client.

Consumes `FeedItem`; emits `Page`. A failed download is still a `Page`, with `error` and
`error_kind` set, so the item gets a disposition instead of vanishing:

* "refused": the address guard or scheme check said no, or the site's robots.txt disallows the
  page (then `error` is "robots.txt"). Final.
* "download_failed": a permanent error (404, 410, too large, not HTML, ...). Final; the item also
  goes to the dead letters.
* "retry" (`RETRY`): a transient error (timeout, 5xx, 429, network) that outlasted the few quick
  retries inside the stage (with backoff, honouring Retry-After up to a cap), or a robots.txt that
  could not be read (5xx/timeout/network: RFC 9309 §2.3.1.4, disallow for now). Not final: the
  store keeps the item pending and retries it in a later batch with backoff, up to a cap of
  attempts, then gives it up as "download_failed" with a dead letter (`Store.load_batch`).

A page on a host that is held (it answered a feed request with 429/503 and Retry-After; see
`pipeline.fetch.hosts`) is not requested before the hold ends: it comes back as "retry" too, so the
whole host gets the quiet it asked for, not only its feeds.

robots.txt is honoured for every item except those whose `feed_id` is in `robots_opt_out` (the
sources with `robots_txt: false`); it is fetched through the same client and cached per host
(`pipeline.fetch.robots.RobotsCache`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime

import apache_beam as beam

from pipeline.errors import FetchError, PermanentFetchError, TransientFetchError
from pipeline.fetch.hosts import host_of
from pipeline.fetch.http import HttpClient, HttpSettings
from pipeline.fetch.robots import ALLOW, UNREACHABLE, RobotsCache
from pipeline.models import FeedItem, Page

HTML_TYPES = ("text/html", "application/xhtml+xml")
RETRY = "retry"  # Page.error_kind / ItemResult.disposition of a failure worth another batch
GROUP_WAIT = 2.0  # seconds a download group may take before its first pages go on to extraction


def download_page(
    item: FeedItem,
    client: HttpClient,
    *,
    attempts: int = 3,
    backoff: float = 1.0,
    max_wait: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    robots: RobotsCache | None = None,
    held_until: datetime | None = None,
) -> Page:
    """Pure except for the injected client: fetch the item's URL as HTML.

    With `held_until` (the page's host asked for quiet until then), nothing is requested: the
    Page comes back with error_kind RETRY.

    With `robots`, a page its site's robots.txt disallows is not requested: the Page comes back
    with error_kind "refused" and error "robots.txt"; when robots.txt is unreachable, with
    error_kind RETRY.
    """
    if held_until is not None:
        return Page(item, item.url, 0, "", error=f"host held until {held_until.isoformat()} (Retry-After)", error_kind=RETRY)
    if robots is not None:
        verdict = robots.verdict(item.url)
        if verdict == UNREACHABLE:
            why = robots.unreachable_reason(item.url) or "unreachable"
            return Page(item, item.url, 0, "", error=f"robots.txt unreachable: {why}", error_kind=RETRY)
        if verdict != ALLOW:
            return Page(item, item.url, 0, "", error="robots.txt", error_kind="refused")
    last: FetchError | None = None
    for attempt in range(attempts):
        try:
            resp = client.get(item.url, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.5", allowed_types=HTML_TYPES)
            return Page(item=item, final_url=resp.url, status=resp.status, html=resp.text())
        except PermanentFetchError as e:
            kind = "refused" if e.kind == "refused" else "download_failed"
            return Page(item, item.url, e.status or 0, "", error=f"{e.kind}: {e}", error_kind=kind)
        except TransientFetchError as e:
            last = e
            if attempt + 1 < attempts:
                sleep(min(max_wait, e.retry_after if e.retry_after is not None else backoff * 2**attempt))
    assert last is not None
    return Page(item, item.url, last.status or 0, "", error=f"{last.kind}: {last}", error_kind=RETRY)


def _group_of(item_id: str, groups: int) -> int:
    """A hash that is the same in every process (Python's str hash is salted per process)."""
    return int(hashlib.blake2b(item_id.encode("utf-8"), digest_size=4).hexdigest(), 16) % groups


class _DownloadFn(beam.DoFn):
    """Downloads a batch of items on a thread pool; the client enforces per-host limits."""

    def __init__(self, settings: HttpSettings, workers: int, robots_opt_out: frozenset[str] = frozenset(),
                 honour_robots: bool = True, held_hosts: Mapping[str, datetime] | None = None) -> None:
        self.settings = settings
        self.held_hosts = dict(held_hosts or {})
        self.workers = workers
        self.robots_opt_out = frozenset(robots_opt_out)
        self.honour_robots = honour_robots
        self.client: HttpClient | None = None
        self.robots: RobotsCache | None = None
        self.pool: ThreadPoolExecutor | None = None

    def setup(self) -> None:
        self.client = HttpClient(self.settings)
        self.robots = RobotsCache(self.client) if self.honour_robots else None
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="download")

    def process(self, batch: list[FeedItem]):
        assert self.client is not None and self.pool is not None
        client = self.client
        robots, opt_out = self.robots, self.robots_opt_out

        held = self.held_hosts

        def one(it: FeedItem) -> Page:
            until = held.get(host_of(it.url)) if held else None
            if until is not None and until <= datetime.now(UTC):
                until = None
            return download_page(it, client, robots=None if it.feed_id in opt_out else robots, held_until=until)

        futures = [self.pool.submit(one, it) for it in batch]
        # Let the group's downloads run before this thread goes on to extract their pages (up to
        # `GROUP_WAIT` seconds, then as they come): a download thread needs the interpreter lock
        # for every chunk it reads, and a thread busy extracting gives the lock up only every 5 ms,
        # so downloads that overlap extraction in this process crawl (on the benchmark's loopback
        # pages, 1.5 s of a batch's time was spent waiting for them; alone they take 0.2 s).
        wait(futures, timeout=GROUP_WAIT)
        for future in futures:
            yield future.result()

    def teardown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.client is not None:
            self.client.close()


class DownloadPages(beam.PTransform):
    """FeedItems -> Pages. The HTTP client (and its robots.txt cache) is created once per worker,
    in setup().

    `robots_opt_out`: feed ids whose pages are fetched without consulting robots.txt (sources
    with `robots_txt: false`). `honour_robots=False` skips robots.txt for every feed.
    """

    def __init__(
        self,
        settings: HttpSettings,
        workers: int = 8,
        *,
        robots_opt_out: frozenset[str] | set[str] = frozenset(),
        honour_robots: bool = True,
        held_hosts: Mapping[str, datetime] | None = None,
        groups: int = 4,
    ) -> None:
        super().__init__()
        self.groups = max(1, groups)  # how many parts the downloads are spread over (one per worker task)
        self.held_hosts = dict(held_hosts or {})  # host -> until: pages there wait (RETRY)
        self.settings = settings
        self.workers = workers
        self.robots_opt_out = frozenset(robots_opt_out)
        self.honour_robots = honour_robots

    def expand(self, items):
        # Grouping by a stable hash of the item spreads the downloads over workers on runners that
        # fuse stages (a GroupByKey is a reshuffle), and a group lets one worker keep several
        # requests (to different hosts) in flight. Not BatchElements: it emits its last batch from
        # finish_bundle, which Beam's DaskRunner drops (the batch's last items vanished there).
        groups = self.groups
        return (
            items
            | "Spread" >> beam.Map(lambda it: (_group_of(it.item_id, groups), it))
            | "Gather" >> beam.GroupByKey()
            | "Batch" >> beam.MapTuple(lambda _, its: sorted(its, key=lambda it: it.item_id))
            | "Download" >> beam.ParDo(
                _DownloadFn(self.settings, self.workers, self.robots_opt_out, self.honour_robots, self.held_hosts)
            )
        )
