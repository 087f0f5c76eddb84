"""MatchTopics keeps compiled topics in the process between batches, until a file they come from changes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.stages.match import cached_topics

ROOT = Path(__file__).resolve().parents[2]


def _bump(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_topics_are_loaded_once_and_again_when_a_topic_model_or_exemplar_changes(tmp_path: Path) -> None:
    seeds = ROOT / "seeds"
    topics_dir = tmp_path / "seeds" / "topics"
    shutil.copytree(seeds / "topics", topics_dir)
    for f in seeds.glob("*.txt"):  # the exemplars the topic files name (../NNN_*.txt)
        shutil.copy(f, tmp_path / "seeds" / f.name)

    first = cached_topics(topics_dir)
    assert cached_topics(topics_dir) is first  # nothing changed: the same compiled topics

    yaml_file = topics_dir / "sanctions.yaml"
    yaml_file.write_text(yaml_file.read_text(encoding="utf-8").replace("description:", "description: Edited.", 1),
                         encoding="utf-8")
    _bump(yaml_file)
    edited = cached_topics(topics_dir)
    assert edited is not first
    assert next(t for t in edited if t.id == "sanctions").description.startswith("Edited.")

    _bump(topics_dir / "ultimatum.model.json")
    after_model = cached_topics(topics_dir)
    assert after_model is not edited

    exemplar = next(p for p in (tmp_path / "seeds").glob("*.txt") if p.name in (topics_dir / "peace-talks.yaml").read_text())
    _bump(exemplar)
    assert cached_topics(topics_dir) is not after_model
