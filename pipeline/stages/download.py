"""DownloadPages: a feed item -> its article page (`Page`), through the shared hardened client.

Consumes `FeedItem`; emits `Page`. A failed download is still a `Page`, with `error` and
`error_kind` set ("refused" when the address guard or scheme check said no, or when the site's
robots.txt disallows the page — then `error` is "robots.txt" — else "download_failed"), so the
item gets a disposition instead of vanishing. Transient failures are retried a few times with
backoff inside the stage (honouring Retry-After up to a cap).

robots.txt is honoured for every item except those whose `feed_id` is in `robots_opt_out` (the
sources with `robots_txt: false`); it is fetched through the same client and cached per host
(`pipeline.fetch.robots.RobotsCache`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam

from pipeline.errors import FetchError, PermanentFetchError, TransientFetchError
from pipeline.fetch.http import HttpClient, HttpSettings
from pipeline.fetch.robots import RobotsCache
from pipeline.models import FeedItem, Page

HTML_TYPES = ("text/html", "application/xhtml+xml")


def download_page(
    item: FeedItem,
    client: HttpClient,
    *,
    attempts: int = 3,
    backoff: float = 1.0,
    max_wait: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    robots: RobotsCache | None = None,
) -> Page:
    """Pure except for the injected client: fetch the item's URL as HTML.

    With `robots`, a page its site's robots.txt disallows is not requested: the Page comes back
    with error_kind "refused" and error "robots.txt".
    """
    if robots is not None and not robots.allowed(item.url):
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
    return Page(item, item.url, last.status or 0, "", error=f"{last.kind}: {last}", error_kind="download_failed")


class _DownloadFn(beam.DoFn):
    """Downloads a batch of items on a thread pool; the client enforces per-host limits."""

    def __init__(self, settings: HttpSettings, workers: int, robots_opt_out: frozenset[str] = frozenset(),
                 honour_robots: bool = True) -> None:
        self.settings = settings
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

        def one(it: FeedItem) -> Page:
            return download_page(it, client, robots=None if it.feed_id in opt_out else robots)

        yield from self.pool.map(one, batch)

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
    ) -> None:
        super().__init__()
        self.settings = settings
        self.workers = workers
        self.robots_opt_out = frozenset(robots_opt_out)
        self.honour_robots = honour_robots

    def expand(self, items):
        # Reshuffle spreads the downloads over workers on runners that fuse stages; batches let
        # one worker keep several requests (to different hosts) in flight.
        return (
            items
            | "Spread" >> beam.Reshuffle()
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=4 * self.workers)
            | "Download" >> beam.ParDo(
                _DownloadFn(self.settings, self.workers, self.robots_opt_out, self.honour_robots)
            )
        )
