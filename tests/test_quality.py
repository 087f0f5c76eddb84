"""Quality gate: story folding and topic matching measured against labelled data, held to the
floors pinned in quality/floors.json (see quality/README.md to change one deliberately)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.evaluate import (
    FLOORS,
    TOPIC_LABELS,
    check_floors,
    evaluate_dedup,
    evaluate_topics,
    format_report,
)

ROOT = Path(__file__).resolve().parent.parent
TOPICS_DIR = ROOT / "seeds" / "topics"


@pytest.fixture(scope="module")
def results() -> dict:
    from tests.conftest import corpora_dir

    corpora = corpora_dir()  # skips without the corpora, fails under CI
    return {**evaluate_dedup(corpora, fast=False), **evaluate_topics(corpora, TOPICS_DIR)}


@pytest.mark.corpus
def test_quality_floors(results: dict) -> None:
    # The full run holds every part the floors name: none may be skipped silently.
    for part in ("ecb_oof", "headlines_oof", "headlines", "ecb", "ecb_streamed", "ecb_mixed", "reprints_ecb"):
        assert part in results["dedup"], part
    assert "labelled" in results["topics"]
    assert "dev" in results["topics"], "topics-dev missing from the corpora: the out-of-fold topic floors need it"
    failures = check_floors(results, FLOORS)
    assert failures == [], "\n".join([*failures, "", format_report(results)])


def test_fast_dedup_meets_its_floors() -> None:
    results = evaluate_dedup(None, fast=True)
    assert results["dedup"]["seeds"]["exact"], format_report(results)
    assert check_floors(results, FLOORS) == [], format_report(results)


def test_check_floors_reports_both_directions(tmp_path: Path) -> None:
    floors = tmp_path / "floors.json"
    floors.write_text(json.dumps({
        "fast": {"a.b.score": {"min": 0.9}, "a.b.errors": {"max": 0}, "a.b.gone": {"min": 1}},
        "full": {"a.c.score": {"min": 0.5}, "a.b.undefined": {"min": 0.5}},
    }))
    got = check_floors({"a": {"b": {"score": 0.8, "errors": 2, "undefined": None}}}, floors)
    assert len(got) == 4  # a.c was not run: skipped
    assert any("a.b.score" in f and "below" in f for f in got)
    assert any("a.b.errors" in f and "above" in f for f in got)
    assert any("a.b.gone" in f and "missing" in f for f in got)
    assert any("a.b.undefined" in f and "undefined" in f for f in got)
    assert check_floors({"a": {"b": {"score": 0.9, "errors": 0, "gone": 1, "undefined": 1}}}, floors) == []


def test_labels_hold_ids_and_labels_only() -> None:
    rows = [json.loads(line) for line in TOPIC_LABELS.read_text(encoding="utf-8").splitlines()]
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert set(row) == {"id", "title_hint", "ultimatum", "sanctions", "peace-talks", "note"}, row["id"]
        assert len(row["title_hint"].split()) <= 8, row["id"]
    unrelated = [r for r in rows if all(r[t] == "no" for t in ("ultimatum", "sanctions", "peace-talks"))]
    assert len(unrelated) >= 40
