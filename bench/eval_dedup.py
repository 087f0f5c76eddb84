"""Measure story folding (pipeline/stages/dedup.py) on real text; the logic is pipeline/evaluate.py.

    .venv/bin/python bench/eval_dedup.py          # seeds, reprints, and ECB+ when the corpora exist
    .venv/bin/python bench/eval_dedup.py --fast   # seeds and their reprints only

Prints the report and the metrics below their floor in quality/floors.json; exits 1 if any is.
The corpora folder is $NEWSMON_CORPORA, by default ../shared/corpora beside the repository; when
it is missing the corpus sections are skipped, unless CI=true, where that is an error.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.evaluate import FLOORS, check_floors, default_corpora, evaluate_dedup, format_report  # noqa: E402


def main(argv: list[str]) -> int:
    results = evaluate_dedup(default_corpora(), fast="--fast" in argv)
    print(format_report(results))
    failures = check_floors(results, FLOORS)
    print("\n".join(["below floor:", *failures]) if failures else "all floors met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
