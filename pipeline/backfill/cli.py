"""Commands: `newsmon rematch` (topics over history after a change) and `newsmon reprocess`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from pipeline.errors import ConfigError


def register(sub, common) -> None:
    p = sub.add_parser("rematch", help="match changed topics over stored history; results marked backfill, never alerted")
    common(p)
    p.add_argument("--topic", action="append", required=True, metavar="ID", help="the topic (repeatable)")
    p.add_argument("--since", default="30d", help="articles stored since: 30d, 12h or an ISO date (default 30d)")
    _shared(p)
    p.set_defaults(func=cmd_rematch)

    p = sub.add_parser("reprocess", help="extract the stored pages since a time again (after an extractor "
                       "upgrade), update the articles and re-run every topic over them; backfill, never alerted")
    common(p)
    p.add_argument("--since", required=True, help="articles stored since: 30d, 12h or an ISO date")
    _shared(p)
    p.set_defaults(func=cmd_reprocess)


def _shared(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topics", metavar="DIR", help="topics directory (default: the settings' topics_dir)")
    p.add_argument("--chunk", type=int, default=500, metavar="N", help="articles per transaction and checkpoint")
    p.add_argument("--restart", action="store_true", help="ignore the checkpoint of an earlier run and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (a line at the end only)")


def _run(args: argparse.Namespace, topic_ids: list[str] | None, job: str) -> int:
    from pipeline import config
    from pipeline.backfill import Reextract, rematch
    from pipeline.cli import _parse_since
    from pipeline.stages.topics import load_topics
    from pipeline.store import Store

    if args.chunk < 1:
        raise ConfigError("--chunk must be at least 1")
    cfg = config.load(args.config, sources_path=args.sources, data_dir=args.data_dir, feeds_required=False)
    where = args.topics or cfg.topics_dir
    known = {t.id: t for t in load_topics(where)}
    if topic_ids is None:
        topics = list(known.values())
    else:
        missing = [t for t in topic_ids if t not in known]
        if missing:
            raise ConfigError(f"no topic {', '.join(missing)}; known topics: {', '.join(sorted(known))}", path=str(where))
        topics = [known[t] for t in dict.fromkeys(topic_ids)]
    since = _parse_since(args.since)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(unit="article", file=sys.stderr, dynamic_ncols=True, desc=job)

    def progress(p) -> None:
        if bar is None:
            return
        if bar.total != p.total:
            bar.reset(total=p.total)
            bar.update(p.done)
        else:
            bar.update(p.done - bar.n)
        extra = {"reextracted": p.reextracted, "no_page": p.no_page} if topic_ids is None else {}
        bar.set_postfix(matches=p.matches, new=p.written, **extra, refresh=False)

    with Store.open(cfg.data_dir) as store:
        try:
            # reprocess: the pipeline's own extractor, with the settings the daemon runs it with
            rx = Reextract(min_chars=cfg.settings.pipeline.min_text_chars) if topic_ids is None else None
            p = rematch(store, topics, since, job=job, now=datetime.now(UTC), chunk=args.chunk,
                        restart=args.restart, on_progress=progress, reextract=rx)
        finally:
            if bar is not None:
                bar.close()
    resumed = f" (resumed after {p.resumed_from})" if p.resumed_from else ""
    print(f"{job}: {p.done}/{p.total} articles since {since:%Y-%m-%d %H:%M} UTC{resumed}; {p.matches} matches found "
          f"this run, {p.written} new, recorded as backfill (never alerted). The dashboard's Topics page shows them.")
    if topic_ids is None:
        keep = cfg.settings.store.keep_pages_days
        kept = "all pages are kept" if keep is None else f"pages are kept for {keep:g} days, store.keep_pages_days"
        print(f"{job}: re-extracted from the stored pages: {p.reextracted} articles changed and were updated "
              f"(marked reextracted_at), {p.unchanged} unchanged, {p.rejected} now without usable text (kept as "
              f"they were).")
        if p.no_page:
            print(f"{job}: {p.no_page} articles have no stored page any more ({kept}; articles stored before "
                  "pages were kept have none): their text was not re-extracted, only matched again as stored.")
    return 0


def cmd_rematch(args: argparse.Namespace) -> int:
    ids = list(dict.fromkeys(args.topic))
    return _run(args, ids, "rematch-" + "+".join(sorted(ids)))


def cmd_reprocess(args: argparse.Namespace) -> int:
    return _run(args, None, "reprocess")
