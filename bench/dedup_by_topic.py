"""Where story folding goes wrong on ECB+ dev, topic by topic (a diagnostic, not a gate).

For each topic: the pair model fitted without it (pipeline/stories/train.py), all of ECB+ dev
folded with the shipped long threshold, and the topic's B-cubed F1, its same-topic false merges
and its predicted stories (gold story: count). Cheaper than the full cross-validation (one fold
per topic, no threshold search), so its figures are near, not equal, to the out-of-fold ones.

    NEWSMON_CORPORA=../shared/corpora .venv/bin/python bench/dedup_by_topic.py
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.evaluate import default_corpora  # noqa: E402
from pipeline.stories import train as T  # noqa: E402
from pipeline.stories.index import fold_stories  # noqa: E402
from pipeline.stories.pairs import load_model  # noqa: E402
from pipeline.stories.settings import DedupSettings  # noqa: E402


def main() -> int:
    corpora = default_corpora()
    if corpora is None:
        print("corpora folder not found: set NEWSMON_CORPORA", file=sys.stderr)
        return 2
    settings = DedupSettings()
    ecb = T.ecb_datasets(corpora)
    rows = T.feature_rows([*ecb, T.headline_dataset(corpora)], settings)
    full, is_head = ecb[0], rows.dataset == "headlines"
    threshold = load_model().long.threshold
    for topic in sorted(set(full.group.values())):
        train = is_head | ((rows.group_a != topic) & (rows.group_b != topic))
        model = T.with_thresholds(T.fit_models(rows, train), long=threshold)
        folded = {a.doc_id: a.story_id for a in fold_stories(full.docs, settings, pair_model=model)}
        items = [d.doc_id for d in full.docs if full.group[d.doc_id] == topic]
        hard = [(a, b) for a, b, y in full.pairs if not y and full.group[a] == topic == full.group[b]]
        merged = sum(folded[a] == folded[b] for a, b in hard)
        stories: dict[str, list[str]] = {}
        for (story, gold), n in Counter((folded[i], full.gold[i]) for i in items).items():
            stories.setdefault(story, []).append(f"{gold}:{n}")
        print(f"topic {topic}: {len(items)} docs, B-cubed F1 {T.bcubed_f1(folded, full.gold, items):.3f}, "
              f"false merges {merged}/{len(hard)}; stories {sorted(stories.values(), key=len, reverse=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
