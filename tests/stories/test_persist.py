"""The saved story index: a directory written incrementally, tied to the store's last batch.

What is checked: a saved index loads and folds as the one saved; after later batches a save
writes a log record and new small files, not the index again, and what loads from base + log is
the index as it is in memory (same counts, same decisions); a torn, truncated, stale or foreign
index is refused with its reason; a save that died half-way leaves the previous index whole.
"""

from __future__ import annotations

import json
import pickle
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from wordfreq import top_n_list

from pipeline.models import DedupDoc
from pipeline.stages.dedup import DedupSettings, StoryIndex
from pipeline.stories import persist
from pipeline.stories.persist import load_index, read_header, save_index, save_index_report

ROOT = Path(__file__).resolve().parents[2]
# A short history window (~290 of the articles below), so that later batches evict as a daemon's do.
SETTINGS = DedupSettings(retention_days=0.2)


def _seeded() -> StoryIndex:
    index = StoryIndex(DedupSettings())
    for p in sorted((ROOT / "seeds").glob("*.txt")):
        index.add(DedupDoc(doc_id=p.name, text=p.read_text(encoding="utf-8")))
    return index


class _News:
    """Synthetic articles: common words around a story's own names and numbers; some rewrites."""

    def __init__(self) -> None:
        self.rng = random.Random(11)
        self.words = [w for w in top_n_list("en", 4000)[200:] if w.isalpha()]
        self.stories: list[list[str]] = []
        self.when = datetime(2025, 3, 1, tzinfo=UTC)
        self.n = 0

    def _name(self) -> str:
        return "".join(self.rng.choice(["ka", "lo", "vin", "dra", "mor", "sel", "tu", "rez"]) for _ in range(3)).capitalize()

    def batch(self, size: int) -> list[DedupDoc]:
        out = []
        for _ in range(size):
            rng = self.rng
            if self.stories and rng.random() < 0.3:
                facts = rng.choice(self.stories[-20:])
            else:
                facts = [self._name() for _ in range(4)] + [str(rng.randint(10, 9999)) for _ in range(2)]
                self.stories.append(facts)
            paras = []
            for _ in range(5):
                words = [rng.choice(facts) if rng.random() < 0.2 else rng.choice(self.words) for _ in range(40)]
                paras.append(" ".join(words).capitalize() + ".")
            self.when += timedelta(minutes=1)
            self.n += 1
            out.append(DedupDoc(f"d{self.n:05d}", "\n\n".join(paras), f"{facts[0]} {facts[1]}", f"https://x{self.n % 7}.example/{self.n}", self.when))
        return out


def _fold(index: StoryIndex, docs: list[DedupDoc]) -> list:
    index.observe(docs)
    return [index.add(d) for d in docs]


def _tables(index: StoryIndex) -> dict[str, np.ndarray]:
    out = {}
    for name in ("_terms", "_pairs", "_lines"):
        for k, a in getattr(index, name).main_arrays().items():
            out[f"{name}.{k}"] = a
    return out


def test_a_saved_index_loads_whole_and_folds_as_the_original(tmp_path: Path) -> None:
    index = _seeded()
    path = tmp_path / "story_index"
    save_index(index, path, "b2", index.settings)
    got = load_index(path, "b2", DedupSettings())
    assert got.reason == "ok" and isinstance(got.value, StoryIndex)
    assert len(got.value) == len(index)
    probe = DedupDoc(doc_id="probe", text=(ROOT / "seeds" / "001_a542e3d4023228b8.txt").read_text(encoding="utf-8") + "\nMore.")
    assert got.value.add(probe) == index.add(probe)
    assert not (path / "manifest.json.tmp").exists()


def test_later_saves_append_what_the_batch_changed_and_load_as_the_index_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(persist, "COMPACT_LOG_RATIO", 100.0)   # no compaction here (tested below)
    news = _News()
    index = StoryIndex(SETTINGS)
    _fold(index, news.batch(300))
    path = tmp_path / "story_index"
    first = save_index_report(index, path, "b0", SETTINGS)
    assert first.whole
    base = {p.name for p in path.iterdir() if p.name.startswith("base-")}
    for b in range(1, 9):
        _fold(index, news.batch(40))
        report = save_index_report(index, path, f"b{b}", SETTINGS)
        assert not report.whole
        # The rows' term ids (the bulk of the index) are not written again: only their new tails.
        manifest = read_header(path)
        assert manifest is not None and manifest["log"]["bytes"] > 0
        assert report.bytes_written < first.bytes_written
    # Evictions happened, and the bases of the first save are still in use: the saves after it
    # were incremental.
    assert len(index) < 300 + 8 * 40 - 40 and base & {p.name for p in path.iterdir()}
    got = load_index(path, "b8", SETTINGS)
    assert got.reason == "ok"
    loaded = got.value
    assert loaded.live_keys() == index.live_keys()
    live, saved = _tables(index), _tables(loaded)
    assert live.keys() == saved.keys() and all(np.array_equal(live[k], saved[k]) for k in live)
    twin = pickle.loads(pickle.dumps(index))   # folding must not change the index compared below
    probes = news.batch(30)
    assert _fold(loaded, probes) == _fold(twin, probes)
    # The loaded index saves on incrementally too, and loads again as it is.
    assert not save_index_report(loaded, path, "b9", SETTINGS).whole
    again = load_index(path, "b9", SETTINGS).value
    assert again is not None and again.live_keys() == loaded.live_keys()


def test_a_save_that_died_half_way_leaves_the_previous_index_whole(tmp_path: Path) -> None:
    news = _News()
    index = StoryIndex(SETTINGS)
    _fold(index, news.batch(200))
    path = tmp_path / "story_index"
    save_index(index, path, "b0", SETTINGS)
    _fold(index, news.batch(40))
    save_index(index, path, "b1", SETTINGS)
    manifest = read_header(path)
    assert manifest is not None
    # A crash mid-save: part of a record appended past the manifest's length, an orphan base.
    with open(path / manifest["log"]["file"], "ab") as fh:
        fh.write(b"NMLR half a record")
    (path / "base-999999-orphan.bin").write_bytes(b"\0" * 100)
    assert load_index(path, "b1", SETTINGS).reason == "ok"
    _fold(index, news.batch(40))
    assert not save_index_report(index, path, "b2", SETTINGS).whole
    got = load_index(path, "b2", SETTINGS)
    assert got.reason == "ok" and got.value.live_keys() == index.live_keys()
    assert not (path / "base-999999-orphan.bin").exists()


def test_a_torn_stale_or_foreign_index_is_refused_with_its_reason(tmp_path: Path) -> None:
    news = _News()
    index = StoryIndex(SETTINGS)
    _fold(index, news.batch(120))
    path = tmp_path / "story_index"
    save_index(index, path, "b1", SETTINGS)
    _fold(index, news.batch(30))
    save_index(index, path, "b2", SETTINGS)
    manifest = read_header(path)
    assert manifest is not None and manifest["batch_id"] == "b2"
    assert load_index(path, "b2", SETTINGS).reason == "ok"
    assert load_index(path, "b3", SETTINGS).reason.startswith("stale")
    assert load_index(path, "b2", DedupSettings(window_days=1.0)).reason == "saved with other settings or code"
    biggest = max((p for p in path.iterdir() if p.name.startswith("base-")), key=lambda p: p.stat().st_size)
    log = path / manifest["log"]["file"]
    for damaged, how in ((biggest, "cut"), (biggest, "flip"), (log, "cut"), (log, "flip"), (path / manifest["meta"]["file"], "flip")):
        whole = damaged.read_bytes()
        damaged.write_bytes(whole[: len(whole) // 2] if how == "cut" else whole[:-1] + bytes([whole[-1] ^ 1]))
        assert load_index(path, "b2", SETTINGS).reason.startswith("torn"), (damaged.name, how)
        damaged.write_bytes(whole)
    assert load_index(path, "b2", SETTINGS).reason == "ok"
    biggest.unlink()
    assert load_index(path, "b2", SETTINGS).reason.startswith("torn")
    (path / "manifest.json").write_text("not json", encoding="utf-8")
    assert load_index(path, "b2", SETTINGS).reason == "unreadable manifest"
    assert load_index(tmp_path / "missing", "b2", SETTINGS).reason == "no saved index"
    # A save over a damaged index starts again whole, and loads.
    report = save_index_report(index, path, "b3", SETTINGS)
    assert report.whole and load_index(path, "b3", SETTINGS).reason == "ok"


def test_the_log_is_compacted_into_new_bases_and_old_files_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(persist, "COMPACT_LOG_RATIO", 0.01)
    news = _News()
    index = StoryIndex(SETTINGS)
    _fold(index, news.batch(150))
    path = tmp_path / "story_index"
    save_index(index, path, "b0", SETTINGS)
    first_log = read_header(path)["log"]["file"]
    _fold(index, news.batch(40))
    assert not save_index_report(index, path, "b1", SETTINGS).whole   # the log was empty
    _fold(index, news.batch(40))
    assert save_index_report(index, path, "b2", SETTINGS).whole       # now past 1% of the bases
    manifest = read_header(path)
    assert manifest["log"]["file"] != first_log and not (path / first_log).exists()
    named = {manifest["meta"]["file"], manifest["log"]["file"], "manifest.json"}
    for entry in manifest["blobs"].values():
        named.update(i["file"] for i in ([entry["base"]] if "base" in entry else entry["bases"].values()))
    assert {p.name for p in path.iterdir()} == named
    assert load_index(path, "b2", SETTINGS).value.live_keys() == index.live_keys()
    assert json.loads((path / "manifest.json").read_text())["seq"] == 3


def test_an_array_replaced_since_the_last_save_is_written_whole_again(tmp_path: Path) -> None:
    from pipeline.stories.columns import Grow

    g = Grow(np.int64)
    g.extend(np.arange(1000))
    path = tmp_path / "story_index"
    save_index({"g": g}, path, "b0", SETTINGS)
    g.extend(np.arange(1000, 1500))
    save_index({"g": g}, path, "b1", SETTINGS)
    assert read_header(path)["blobs"][g.pid]["base"]["bytes"] == 8000   # the tail went to the log
    assert np.array_equal(load_index(path, "b1", SETTINGS).value["g"].view(), np.arange(1500))
    g.replace(g.view()[700:])   # what RowStore does when evicted rows pile up at the front
    g.extend(np.arange(1500, 1600))
    save_index({"g": g}, path, "b2", SETTINGS)
    assert np.array_equal(load_index(path, "b2", SETTINGS).value["g"].view(), np.arange(700, 1600))
