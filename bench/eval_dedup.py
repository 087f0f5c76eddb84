"""Measure story folding on the seeds, reprint variants and ECB+; same as `newsmon eval dedup`.

    .venv/bin/python bench/eval_dedup.py          # everything (about 15-30 s)
    .venv/bin/python bench/eval_dedup.py --fast   # seeds and their reprints only

Exits 1 when a metric is below its floor in quality/floors.json (the logic: pipeline/evaluate.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["eval", "dedup", *sys.argv[1:]]))
