"""`newsmon demo`: an offline end-to-end replay through the real daemon code.

A loopback HTTP server serves five small RSS feeds and their article pages, built from the seed
documents and a few articles bundled in `demo_data/`. The demo writes a sources file pointing at
it, runs one full cycle (poll, Beam batch, alerts) with the ordinary `Daemon`, and prints what
happened and how to query it. No request leaves the machine.
"""

from __future__ import annotations

import html
import shutil
import sys
import threading
from dataclasses import dataclass
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import bundled

DEMO_DATA = Path(__file__).parent / "demo_data"


@dataclass(frozen=True)
class DemoArticle:
    slug: str
    outlet: str
    outlet_name: str
    title: str
    author: str
    published: str
    text: str


def load_demo(data_dir: Path = DEMO_DATA, seeds_dir: Path | None = None) -> tuple[dict[str, Any], dict[str, DemoArticle]]:
    seeds_dir = seeds_dir or bundled("seeds")  # the checkout's seeds, or the wheel's copy
    spec = yaml.safe_load((data_dir / "articles.yaml").read_text(encoding="utf-8"))
    arts = {}
    for a in spec["articles"]:
        path = seeds_dir / a["seed"] if "seed" in a else data_dir / "texts" / a["text"]
        arts[a["slug"]] = DemoArticle(
            slug=a["slug"],
            outlet=a["outlet"],
            outlet_name=spec["outlets"][a["outlet"]]["name"],
            title=a["title"],
            author=a["author"],
            published=a["published"],
            text=path.read_text(encoding="utf-8"),
        )
    return spec, arts


def render_page(a: DemoArticle, base: str) -> str:
    """An ordinary news page: navigation and footer chrome around the article body."""
    paras = "\n".join(f"      <p>{html.escape(line)}</p>" for line in a.text.splitlines() if line.strip())
    url = f"{base}/{a.outlet}/{a.slug}.html"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(a.title)} | {html.escape(a.outlet_name)}</title>
<link rel="canonical" href="{url}">
<meta property="og:site_name" content="{html.escape(a.outlet_name)}">
<meta property="og:title" content="{html.escape(a.title)}">
<meta name="author" content="{html.escape(a.author)}">
<meta property="article:published_time" content="{a.published}">
</head><body>
  <header><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/business">Business</a> <a href="/sport">Sport</a></nav></header>
  <main><article>
    <h1>{html.escape(a.title)}</h1>
    <p class="byline">By {html.escape(a.author)}, {a.published[:10]}</p>
{paras}
  </article></main>
  <footer><p>© {html.escape(a.outlet_name)}. All rights reserved.</p><a href="/privacy">Privacy</a></footer>
</body></html>"""


def render_feed(feed: dict[str, Any], arts: dict[str, DemoArticle], base: str) -> str:
    from datetime import datetime

    items = []
    for entry in feed["items"]:
        slug, query = (entry, "") if isinstance(entry, str) else (entry["slug"], entry.get("query", ""))
        a = arts[slug]
        link = f"{base}/{a.outlet}/{a.slug}.html" + (f"?{query}" if query else "")
        date = format_datetime(datetime.fromisoformat(a.published))
        items.append(
            f"""    <item><title>{html.escape(a.title)}</title><link>{html.escape(link)}</link>
      <guid isPermaLink="false">{feed['id']}:{slug}{':' + query if query else ''}</guid><pubDate>{date}</pubDate>
      <description>{html.escape(a.text.splitlines()[0][:200])}</description></item>"""
        )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{html.escape(feed['title'])}</title><link>{base}/</link>
  <description>newsmon demo feed</description><ttl>15</ttl>
{chr(10).join(items)}
</channel></rss>"""


class DemoServer:
    """Serves the demo feeds and pages on 127.0.0.1 (a free port) from a background thread."""

    def __init__(self) -> None:
        self.spec, self.articles = load_demo()
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.hits.append(self.path)
                body, ctype = outer.route(self.path.split("?", 1)[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # quiet: the demo prints its own summary
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def route(self, path: str) -> tuple[str | None, str]:
        for feed in self.spec["feeds"]:
            if path == f"/feeds/{feed['id']}.xml":
                return render_feed(feed, self.articles, self.base), "application/rss+xml; charset=utf-8"
        for a in self.articles.values():
            if path == f"/{a.outlet}/{a.slug}.html":
                return render_page(a, self.base), "text/html; charset=utf-8"
        return None, ""

    def sources_yaml(self) -> str:
        lines = ["# written by `newsmon demo`: feeds served from loopback", "feeds:"]
        for feed in self.spec["feeds"]:
            lines += [
                f"  - id: {feed['id']}",
                f"    name: {self.spec['outlets'][feed['id']]['name']}",
                f"    url: {self.base}/feeds/{feed['id']}.xml",
                "    interval_minutes: 15",
                "    tags: [demo]",
            ]
        return "\n".join(lines) + "\n"

    def __enter__(self) -> DemoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_demo(data_dir: str | None = None, keep: bool = False, out=None, config_path: str | None = None) -> int:
    from pipeline import config as config_mod
    from pipeline.daemon import Daemon

    out = out or sys.stdout
    ddir = Path(data_dir or "newsmon-demo").resolve()
    if ddir.exists() and not keep:
        if not (ddir / "catalog.sqlite").exists() and any(ddir.iterdir()):
            print(f"newsmon demo: {ddir} exists and is not a newsmon store; choose another --data-dir", file=sys.stderr)
            return 2
        shutil.rmtree(ddir)
    ddir.mkdir(parents=True, exist_ok=True)
    with DemoServer() as server:
        sources = ddir / "demo-sources.yaml"
        sources.write_text(server.sources_yaml(), encoding="utf-8")
        cfg = config_mod.load(
            config_path,
            sources_path=sources,
            data_dir=ddir,
            overrides={
                "fetch.allow_private_addresses": True,  # the demo's feeds live on loopback
                "fetch.per_host_min_gap_seconds": 0.0,
                "alerts.console": True,
            },
        )
        print(f"Serving {len(cfg.feeds)} demo feeds from {server.base} (loopback only)\n", file=out)
        daemon = Daemon(cfg)
        try:
            polled, batches, sent = daemon.run_once()
            print_summary(daemon, polled, batches, sent, ddir, out)
        finally:
            daemon.close()
    return 0


def print_summary(daemon, polled, batches, sent, ddir: Path, out) -> None:
    store = daemon.store
    disp: dict[str, int] = {}
    for b in batches:
        for k, v in b.dispositions.items():
            disp[k] = disp.get(k, 0) + v
    c = store.counts()
    p = lambda s="": print(s, file=out)  # noqa: E731
    p("=" * 78)
    p("newsmon demo: one cycle")
    p(f"  feeds polled        {polled.feeds} ({polled.errors} errors)")
    p(f"  items seen          {polled.new_items}")
    p("  dispositions        " + ", ".join(f"{k} {v}" for k, v in sorted(disp.items())))
    p(f"  articles stored     {c['articles']}")
    p(f"  stories             {c['stories']}")
    _, rows = store.query(
        """SELECT s.story_id, s.title, count(*) AS copies, string_agg(DISTINCT coalesce(m.sitename, m.feed_id), ', ') AS outlets,
                  string_agg(DISTINCT m.link, ', ') AS links
           FROM stories s JOIN story_members m USING (story_id)
           GROUP BY ALL ORDER BY copies DESC, s.title"""
    )
    for sid, title, copies, outlets, links in rows:
        p(f"    {sid}  {copies} cop{'y' if copies == 1 else 'ies'} [{links}]  {title[:48]}")
        p(f"        outlets: {outlets}")
    _, rows = store.query(
        """SELECT t.topic, a.title, round(t.score, 2), t.level FROM topic_matches t JOIN articles a USING (article_id)
           ORDER BY t.topic, t.score DESC"""
    )
    p(f"  topic matches       {len(rows)}")
    for topic, title, score, level in rows:
        p(f"    {topic:<12} {level:<7} {score:<5} {title[:52]}")
    p(f"  alerts              {c['alert_outbox']} (one per topic and story), deliveries sent: {sent.sent}")
    p("=" * 78)
    p("Query the results (works while a daemon is running, too):")
    p(f'  newsmon query --data-dir {ddir} "SELECT topic, story_id, score FROM topic_matches ORDER BY score DESC"')
    p(f'  newsmon query --data-dir {ddir} "SELECT disposition, count(*) FROM items GROUP BY ALL"')
