"""Measure topic matching (pipeline/stages/topics.py) on labelled text; the logic is pipeline/evaluate.py.

    .venv/bin/python bench/eval_topics.py [TOPICS_DIR]     # default seeds/topics

Per topic precision/recall on the seed labels and on the labelled extraction articles
(tests/fixtures/topic_labels.jsonl), plus the topics' own example failures; then the metrics below
their floor in quality/floors.json (exit 1 if any). The corpora folder is $NEWSMON_CORPORA, by
default ../shared/corpora; without it the labelled articles are skipped, unless CI=true.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.evaluate import FLOORS, check_floors, default_corpora, evaluate_topics, format_report  # noqa: E402


def main(argv: list[str]) -> int:
    topics_dir = Path(argv[0]) if argv else REPO / "seeds" / "topics"
    results = evaluate_topics(default_corpora(), topics_dir)
    print(format_report(results))
    failures = check_floors(results, FLOORS)
    print("\n".join(["below floor:", *failures]) if failures else "all floors met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
