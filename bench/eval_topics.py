"""Measure topic matching on the seeds' labels and the labelled real-article set; same as
`newsmon eval topics` (`--topics DIR` picks another topics folder).

Exits 1 when a metric is below its floor in quality/floors.json (the logic: pipeline/evaluate.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["eval", "topics", *sys.argv[1:]]))
