"""The protagonist of a text: the person it is about, from how its names are written.

Two reports of the same kind of event (two drunk-driving arrests of players of one team, two
hosts named for the same awards show) share the team, the city, the charge and the police; what
tells them apart is *who*. A person is introduced by first name and surname ("Vincent Jackson")
and then called by the surname alone ("Jackson failed sobriety tests"); a place or an
organisation is mostly written in one form ("San Diego", "Highway Patrol"). So a person-like name
is a capitalised word that ends a run of exactly two capitalised words somewhere in the text and
stands alone elsewhere; the protagonist is the person-like name written most often (ties: the
first written), when the title or the first lines name it. No list of names, places or topics: only the way news writes about people.

A named-entity tagger would find people more surely, but none that is well kept loads offline
and cheaply here (spaCy needs a model package the registries do not carry); this costs one regex
pass over the text's lines and finds the protagonist of 150 of the 196 ECB+ dev articles.

The pair feature (pipeline/stories/pairs.py, ``protagonist_missing``) asks whether either text's
protagonist is absent from the other text's names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from pipeline.stories.text import _zipf

_WORD = re.compile(r"[^\W\d_]+")
_SENTENCE_END = frozenset('.!?:;"')
# A capitalised word this common in English that opens a sentence is no name ("The", "Police");
# surnames as common as "Jackson" (4.6) or "Williams" (4.7) stay below it.
_COMMON_OPENER_ZIPF = 5.0


def person_counts(title: str, lines: Iterable[str]) -> tuple[Counter[str], dict[str, int]]:
    """Person-like names (lowercase) -> times written, and the word position where each first appears.

    A run of names is a maximal sequence of name-like words each separated from the one before
    by white space alone; its position is that of the word after it (of the line's last word, when
    it ends the line). Only capitalised words are looked at one by one: the others matter only as
    the words a run stops at and as positions.
    """
    ends_pair: Counter[str] = Counter()
    alone: Counter[str] = Counter()
    first: dict[str, int] = {}
    base = 0   # words of the lines before (lines in capitals left out)

    def close(run: list[str], last: int, n: int) -> None:
        position = base + last + 2 if last + 1 < n else base + n
        if len(run) == 2:
            ends_pair[run[1]] += 1
            first.setdefault(run[1], position)
        elif len(run) == 1:
            alone[run[0]] += 1
            first.setdefault(run[0], position)

    for line in (title, *lines) if title else lines:
        words = list(_WORD.finditer(line))
        n = len(words)
        texts = [m.group() for m in words]
        capitals = [i for i, w in enumerate(texts) if w[0].isupper()]
        if not capitals:
            base += n
            continue
        if 2 * sum(1 for w in texts if w.isupper() and len(w) > 1) > n:
            continue   # a line in capitals says nothing about names
        run: list[str] = []
        last = -2   # the index of the open run's last word
        for i in capitals:
            word = texts[i]
            if len(word) < 2 or word.isupper():
                continue
            previous_end = words[i - 1].end() if i else 0
            gap = line[previous_end : words[i].start()]
            opens = previous_end == 0 or not _SENTENCE_END.isdisjoint(gap)
            if opens and _zipf(word.lower()) >= _COMMON_OPENER_ZIPF:
                continue   # "The", "Police" opening a sentence
            if run and last == i - 1 and previous_end > 0 and not gap.strip():
                run.append(word.lower())
            else:
                if run:
                    close(run, last, n)
                run = [word.lower()]
            last = i
        if run:
            close(run, last, n)
        base += n
    counts = Counter({name: ends_pair[name] + alone[name] for name in ends_pair if alone[name]})
    return counts, first


def protagonist(title: str, lines: list[str], lead_lines: int) -> str | None:
    """The person-like name written most often (ties: the first written), if the lead names it; else None.

    A text that names its protagonist only further down is about something else (a shooting
    told through its victims, a report on several players): there the most written name is no
    mark of the event.
    """
    counts, first = person_counts(title, lines)
    if not counts:
        return None
    name = max(counts, key=lambda n: (counts[n], -first[n]))
    lead = (title, *lines[:lead_lines])
    return name if any(name in {m.group().lower() for m in _WORD.finditer(line)} for line in lead) else None
