"""What a retrained topic model would change, and what it must not break, before it is written.

Contract
--------
consumes  a topic as loaded (with the model it has now, or none), the same topic with a newly
          fitted model, and the labelled texts it was fitted on;
emits     `Review`: the must-pass failures of the new model (the topic's own must_match /
          must_not_match examples, and the seed articles among the texts: an `about` seed must
          alert, a `mentions` or `no` one must not, with its headline as the title and again with
          the headline repeated atop its text), the in-sample alert counts by label with the
          old and the new model, and the labelled texts whose decision changes;
rejects   nothing: `newsmon topics train` refuses to write a model that fails (unless --force).

A model fitted on more labels can still turn an alert the topic's author pinned down: a seed that
only mentions sanctions in passing scored 0.88 with one retrained sanctions model. An analyst sees
that here, named, instead of in the channel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pipeline.topics.labelled import SEED_SOURCE
from pipeline.topics.score import _clip, check_examples, match_article
from pipeline.topics.topic import Topic
from pipeline.topics.train import LABELS, Labelled


def alerts(topic: Topic, item: Labelled) -> bool:
    return any(m.level == "alert" for m in match_article(item.id, item.title, item.text, [topic]))


@dataclass
class Review:
    failures: list[str]
    before: Counter = field(default_factory=Counter)  # label -> alerts with the current model
    after: Counter = field(default_factory=Counter)   # label -> alerts with the new model
    labelled: Counter = field(default_factory=Counter)  # label -> texts
    changes: list[tuple[bool, Labelled]] = field(default_factory=list)  # (alerts now, text)

    def summary(self) -> str:
        def counts(c: Counter) -> str:
            return ", ".join(f"{label} {c[label]}" for label in LABELS)

        return (f"alerts on its {sum(self.labelled.values())} labelled texts (in sample): "
                f"{counts(self.before)} -> {counts(self.after)} "
                f"(of {counts(self.labelled)}); {len(self.changes)} decisions change")

    def change_lines(self, limit: int = 12) -> list[str]:
        """The texts whose decision changes, one line each, at most `limit` and a count of the rest."""
        lines = [f"{'+ alerts' if now else '- silent'} on {it.label:8s} {it.id}: {_clip(it.title or it.text, 70)}"
                 for now, it in self.changes[:limit]]
        if len(self.changes) > limit:
            lines.append(f"... and {len(self.changes) - limit} more")
        return lines


def review(old: Topic, new: Topic, items: Sequence[Labelled]) -> Review:
    """`old` as it decides today, `new` with the fitted model, over `items` (examples excluded)."""
    out = Review(check_examples(new))
    for it in items:
        if it.kind == "example":
            continue
        was, now = alerts(old, it), alerts(new, it)
        out.labelled[it.label] += 1
        out.before[it.label] += was
        out.after[it.label] += now
        if was != now:
            out.changes.append((now, it))
        if it.source == SEED_SOURCE:
            # A seed is decided as labelled however it comes: with its headline as the title, and
            # with the headline repeated atop the text, as extracted pages often carry it.
            want, how = it.label == "about", ""
            if now == want and it.title:
                now, how = alerts(new, replace(it, text=f"{it.title}\n{it.text}")), " with its headline atop the text"
            if now != want:
                out.failures.append(f"{new.id}: seed {it.id} ({it.label}) would {'alert' if now else 'not alert'}{how}")
    return out
