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
    """Person-like names (lowercase) -> times written, and the word position where each first appears."""
    ends_pair: Counter[str] = Counter()
    alone: Counter[str] = Counter()
    first: dict[str, int] = {}
    position = 0
    for line in (title, *lines) if title else lines:
        words = list(_WORD.finditer(line))
        if 2 * sum(1 for m in words if m.group().isupper() and len(m.group()) > 1) > len(words):
            continue   # a line in capitals says nothing about names
        run: list[str] = []
        previous_end = 0
        for match in (*words, None):
            word = match.group() if match is not None else ""
            is_name = False
            if match is not None:
                position += 1
                gap = line[previous_end : match.start()]
                opens = previous_end == 0 or not _SENTENCE_END.isdisjoint(gap)
                adjacent = previous_end > 0 and not gap.strip()
                previous_end = match.end()
                is_name = (
                    len(word) > 1 and word[0].isupper() and not word.isupper()
                    and not (opens and _zipf(word.lower()) >= _COMMON_OPENER_ZIPF)
                )
                if is_name and adjacent and run:
                    run.append(word.lower())
                    continue
            if len(run) == 2:
                ends_pair[run[1]] += 1
                first.setdefault(run[1], position)
            elif len(run) == 1:
                alone[run[0]] += 1
                first.setdefault(run[0], position)
            run = [word.lower()] if is_name else []
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
