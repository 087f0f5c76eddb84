"""The saved story index: a whole file tied to the store's last batch loads; anything else is refused."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.models import DedupDoc
from pipeline.stages.dedup import DedupSettings, StoryIndex
from pipeline.stories.persist import load_index, read_header, save_index

ROOT = Path(__file__).resolve().parents[2]


def _index() -> StoryIndex:
    index = StoryIndex(DedupSettings())
    for p in sorted((ROOT / "seeds").glob("*.txt")):
        index.add(DedupDoc(doc_id=p.name, text=p.read_text(encoding="utf-8")))
    return index


def test_a_saved_index_loads_whole_and_folds_as_the_original(tmp_path: Path) -> None:
    index = _index()
    path = tmp_path / "story_index.pkl"
    save_index(index, path, "b2", index.settings)
    got = load_index(path, "b2", DedupSettings())
    assert got.reason == "ok" and isinstance(got.value, StoryIndex)
    assert len(got.value) == len(index)
    probe = DedupDoc(doc_id="probe", text=(ROOT / "seeds" / "001_a542e3d4023228b8.txt").read_text(encoding="utf-8") + "\nMore.")
    assert got.value.add(probe) == index.add(probe)
    assert not path.with_name(path.name + ".tmp").exists()


def test_a_torn_stale_or_foreign_file_is_refused_with_its_reason(tmp_path: Path) -> None:
    index = _index()
    path = tmp_path / "story_index.pkl"
    save_index(index, path, "b2", index.settings)
    whole = path.read_bytes()
    assert load_index(path, "b3", DedupSettings()).reason.startswith("stale")
    assert load_index(path, "b2", DedupSettings(window_days=1.0)).reason == "saved with other settings or code"
    path.write_bytes(whole[: len(whole) // 2])
    assert load_index(path, "b2", DedupSettings()).reason.startswith("torn")
    path.write_bytes(b"not json\n" + whole)
    assert load_index(path, "b2", DedupSettings()).reason.startswith("unreadable header")
    head, payload = whole.split(b"\n", 1)
    header = json.loads(head)
    path.write_bytes(head + b"\n" + payload[:-1] + bytes([payload[-1] ^ 1]))  # one flipped bit
    assert load_index(path, "b2", DedupSettings()).reason.startswith("torn")
    assert header["batch_id"] == "b2" and read_header(path) == header
    assert load_index(tmp_path / "missing.pkl", "b2", DedupSettings()).reason == "no saved index"
