"""Labelled texts for training and measuring topic models.

Consumes  a labelled set on disk, in one of three layouts:
          * a folder with `docs.jsonl` (id, source, published, title, text) and `labels.jsonl`
            (id, then one key per topic: about | mentions | no), plus any `headlines-*.jsonl`
            whose records carry both (feed entries: title and description);
          * a single `.jsonl` file whose records carry both;
          * the seeds folder: `*.txt` articles (first line the title) and `labels.json`;
          the topic's own examples; analysts' labels kept in the store.
Emits     `LabelledDoc`s (one text, its labels for every topic) and, per topic, `Labelled` items.
Rejects   a missing file, a record without an id or text, or a label outside about/mentions/no,
          with `ConfigError` naming the file and the line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.topics.topic import Topic
from pipeline.topics.train import LABELS, Labelled

SHORT_KIND_WORDS = 40
# The source of the texts of a seeds folder: reference articles a retrained model must still decide
# as labelled (pipeline/topics/review.py).
SEED_SOURCE = "seeds"


@dataclass(frozen=True)
class LabelledDoc:
    id: str
    title: str
    text: str
    labels: dict[str, str] = field(hash=False)
    kind: str = "article"  # article | headline
    source: str = ""
    time: str = ""


def source_group(source: str) -> str:
    """One outlet (or one publisher's sections) per group, so a fold never splits an outlet."""
    s = (source or "").strip().lower()
    m = re.search(r"country=(\w+)", s)
    if m:
        return f"gdelt-{m.group(1)}"
    m = re.match(r"(?:https?://)?(?:www\.)?([^/\s(]+)", s)
    return m.group(1) if m else s


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read labelled texts: {e.strerror or e}", path=str(path)) from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            raise ConfigError(f"not a JSON record: {e.msg}", path=str(path), line=n) from None
    return out


def _labels_of(rec: dict, path: Path, line: int) -> dict[str, str]:
    skip = {"id", "source", "feed", "published", "url", "title", "text", "story_id", "why", "note", "title_hint"}
    labels = {}
    for k, v in rec.items():
        if k in skip:
            continue
        if v not in LABELS:
            raise ConfigError(f"label {k}={v!r} is not one of {', '.join(LABELS)}", path=str(path), line=line)
        labels[k] = v
    return labels


def _doc(rec: dict, labels: dict[str, str], path: Path, line: int, kind: str | None) -> LabelledDoc:
    if not rec.get("id"):
        raise ConfigError("a labelled record needs an 'id'", path=str(path), line=line)
    title, text = rec.get("title") or "", rec.get("text") or ""
    if not (title or text).strip():
        raise ConfigError(f"record {rec['id']} has neither title nor text", path=str(path), line=line)
    if kind is None:
        kind = "headline" if len(text.split()) < SHORT_KIND_WORDS else "article"
    return LabelledDoc(
        str(rec["id"]), title, text, labels, kind, source_group(rec.get("source", "")), str(rec.get("published") or "")
    )


def _time_group(doc: LabelledDoc) -> LabelledDoc:
    # Articles are folded by year, feed entries (a few days of 2025) by day.
    t = doc.time[:10] if doc.kind == "headline" else doc.time[:4]
    return LabelledDoc(doc.id, doc.title, doc.text, doc.labels, doc.kind, doc.source, t)


def load_labelled(path: str | Path) -> list[LabelledDoc]:
    path = Path(path)
    docs: list[LabelledDoc] = []
    if path.is_dir() and (path / "labels.json").exists():
        return _load_seeds(path)
    if path.is_dir():
        if (path / "docs.jsonl").exists():
            labels = {}
            for n, rec in _read_jsonl(path / "labels.jsonl"):
                labels[rec.get("id")] = _labels_of(rec, path / "labels.jsonl", n)
            for n, rec in _read_jsonl(path / "docs.jsonl"):
                if rec.get("id") not in labels:
                    raise ConfigError(f"document {rec.get('id')} has no labels in labels.jsonl", path=str(path / "docs.jsonl"), line=n)
                docs.append(_doc(rec, labels[rec["id"]], path / "docs.jsonl", n, "article"))
        for f in sorted(path.glob("headlines*.jsonl")):
            docs += [_doc(rec, _labels_of(rec, f, n), f, n, "headline") for n, rec in _read_jsonl(f)]
        if not docs:
            raise ConfigError("no labelled texts here (docs.jsonl + labels.jsonl, or headlines*.jsonl)", path=str(path))
    elif path.exists():
        docs = [_doc(rec, _labels_of(rec, path, n), path, n, None) for n, rec in _read_jsonl(path)]
    else:
        raise ConfigError("no such file or folder of labelled texts", path=str(path))
    return [_time_group(d) for d in docs]


def _load_seeds(folder: Path) -> list[LabelledDoc]:
    spec = json.loads((folder / "labels.json").read_text(encoding="utf-8"))["topics"]
    out = []
    for p in sorted(folder.glob("*.txt")):
        lines = p.read_text(encoding="utf-8").splitlines()
        title, text = (lines[0] if lines else ""), "\n".join(lines[1:])
        labels = {}
        for topic, v in spec.items():
            labels[topic] = "about" if p.name in v.get("about", []) else (
                "mentions" if p.name in v.get("mentions_only", []) else "no")
        out.append(LabelledDoc(p.name, title, text, labels, "article", SEED_SOURCE, "seeds"))
    return out


def for_topic(docs: list[LabelledDoc], topic_id: str, kind: str | None = None) -> list[Labelled]:
    """The texts labelled for this topic, as training items (`kind` overrides, e.g. "example")."""
    return [
        Labelled(d.id, d.title, d.text, d.labels[topic_id], kind or d.kind, d.source, d.time)
        for d in docs
        if topic_id in d.labels
    ]


def examples_of(topic: Topic) -> list[Labelled]:
    """The topic's own examples: must_match as `about`, must_not_match as `no`, and the training-only
    `about` / `mentions` / `no` lists as labelled; trained on, never scored."""
    return [
        Labelled(f"{topic.id}:must_match:{n}", e.title, e.text, "about", "example")
        for n, e in enumerate(topic.must_match, 1)
    ] + [
        Labelled(f"{topic.id}:must_not_match:{n}", e.title, e.text, "no", "example")
        for n, e in enumerate(topic.must_not_match, 1)
    ] + [
        Labelled(f"{topic.id}:{label}:{n}", e.title, e.text, label, "example")
        for n, (label, e) in enumerate(topic.training, 1)
    ]
