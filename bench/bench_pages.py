"""Benchmark: what keeping the fetched pages (table `pages`, migration 008) costs.

On the 181 pages of the article-extraction corpus, in one run and as ratios to the extraction
itself (`extract_article`, the pipeline's own call), per stored article:

  pack        compressing the page (pipeline.pages.pack_page, zstd level 3)
  encode      the extra cost of the page in the result's JSON shard line (to_json), and of
              reading it back (from_dict), against the same ItemResult without a page
  store       Store.load_batch of the 181 results with their pages against without (two fresh
              stores, one transaction each, then the maintenance flush so the rows are in Parquet)

and the bytes: page HTML, compressed, the shard line's growth, and the lake's growth on disk,
scaled to a million articles. Read the ratios: the machine is shared. Usage:

  .venv/bin/python bench/bench_pages.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_extraction import load_pages  # noqa: E402

from pipeline.models import ItemResult, StoryAssignment, from_dict, to_json  # noqa: E402
from pipeline.pages import pack_page  # noqa: E402
from pipeline.stages.extract import Rejected, extract_article  # noqa: E402
from pipeline.store import Store  # noqa: E402
from pipeline.store.maintenance import MaintenanceSettings, maintain  # noqa: E402


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    pages = load_pages()
    now = datetime.now(UTC)
    best: dict[str, float] = {}

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
        return out

    for _ in range(args.repeat):
        arts = timed("extract", lambda: [extract_article(p, min_chars=200, now=now) for p in pages])
        kept = [(p, a) for p, a in zip(pages, arts, strict=True) if not isinstance(a, Rejected)]
        packed = timed("pack", lambda kept=kept: [pack_page(p.html) for p, _ in kept])
        plain = [ItemResult(p.item, "stored", article=a, assignment=StoryAssignment(a.article_id, a.article_id,
                                                                                      "original", None, 1.0))
                 for p, a in kept]
        withp = [replace(r, article=replace(r.article, page=b)) for r, b in zip(plain, packed, strict=True)]
        lines0 = timed("encode_plain", lambda plain=plain: [to_json(r) for r in plain])
        lines1 = timed("encode_page", lambda withp=withp: [to_json(r) for r in withp])
        timed("decode_plain", lambda lines0=lines0: [from_dict(ItemResult, json.loads(s)) for s in lines0])
        timed("decode_page", lambda lines1=lines1: [from_dict(ItemResult, json.loads(s)) for s in lines1])
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        for name, results in (("store_plain", plain), ("store_page", withp)):
            d = Path(tmp) / name
            with Store.open(d) as s:
                s.sync_feeds([], now)
                # the items must be pending for load_batch to take them
                from pipeline.store import _insert

                with s.transaction() as con:
                    _insert(con, "items", [{"item_id": r.item.item_id, "feed_id": r.item.feed_id, "guid": r.item.guid,
                                            "url": r.item.url, "title": "", "summary": "", "published": None,
                                            "seen_at": r.item.seen_at, "disposition": "pending"} for r in results])
                before = _dir_bytes(d)
                timed(name, lambda s=s, results=results: s.load_batch("b1", results, now=now, runner="bench",
                                                                       started_at=now))
                maintain(s, MaintenanceSettings(keep_pages=None), now)
                sizes[name] = _dir_bytes(d) - before
    n = len(kept)
    ext = best["extract"] / len(pages)
    print(f"{len(pages)} pages, {n} stored articles; extraction {ext * 1000:.1f} ms a page (best of {args.repeat})")
    rows = [
        ("pack (zstd 3)", best["pack"] / n),
        ("encode: shard line growth", (best["encode_page"] - best["encode_plain"]) / n),
        ("decode: shard line growth", (best["decode_page"] - best["decode_plain"]) / n),
        ("load_batch growth", (best["store_page"] - best["store_plain"]) / n),
    ]
    print(f"{'cost per stored article':<28} {'ms':>7} {'ratio to extraction':>20}")
    for name, sec in rows:
        print(f"{name:<28} {sec * 1000:7.2f} {sec / ext:20.3f}")
    total = sum(sec for _, sec in rows)
    print(f"{'all of it':<28} {total * 1000:7.2f} {total / ext:20.3f}")
    html = sum(len(p.html.encode()) for p, _ in kept) / n
    comp = sum(len(b) for b in packed) / n
    line = (sum(map(len, lines1)) - sum(map(len, lines0))) / n
    lake = (sizes["store_page"] - sizes["store_plain"]) / n
    print(f"bytes per article: HTML {html / 1024:.0f} KB, compressed {comp / 1024:.1f} KB ({html / comp:.1f}x), "
          f"shard line +{line / 1024:.1f} KB, store on disk +{lake / 1024:.1f} KB")
    print(f"per million articles: store +{lake * 1e6 / 1e9:.1f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
