"""Topic definitions and topic matching.

Contract
--------
consumes  a directory of topic files (``*.yaml``, one topic each, format in seeds/TOPICS.md) and,
          per article, its doc id, title and main text;
emits     one ``TopicMatch`` per topic whose score reaches the topic's ``mention_threshold``:
          level "alert" when the score reaches ``alert_threshold`` (the article is about the topic),
          else "mention". Each match carries one ``Evidence`` per rule clause and zone that fired
          and one for the closest exemplar;
rejects   a bad topic file with ``ConfigError`` naming the file, the line and the fix: unknown keys,
          a query that does not parse, a missing exemplar file, thresholds out of order, duplicate
          ids or rule names.

Scoring (the same arithmetic `explain` prints)
-------
rules     every clause that fires adds ``weight x prominence x repetition``:
          prominence 1.5 when the title alone satisfies the clause, 1.25 when the title and lead
          do, else 1.0; repetition 1 + 0.5*log2(hits), at most 2, where hits are counted per
          ~500 words so a long article's passing remarks do not add up to being about the topic.
exemplars ``exemplar_weight x cosine`` of the article against its closest exemplar (TF-IDF with
          wordfreq's Zipf frequencies as background IDF, so a handful of exemplars suffice).
score     min(1, rules + exemplars), but 0 when no clause fired: exemplars refine what the rules
          found; alone they would flag every article about the same people and places.

Site chrome ("Related: ...", "Share this", cookie notices, navigation lists) is removed by
`strip_chrome` before anything is matched, so boilerplate can never trigger a match.

Everything compiled here is a frozen dataclass of plain values, so a `Topic` pickles (Beam ships
the list to its workers).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from wordfreq import zipf_frequency

from pipeline.errors import ConfigError
from pipeline.models import Evidence, TopicMatch

__all__ = [
    "Topic",
    "Rule",
    "Exemplar",
    "Example",
    "QueryError",
    "parse_query",
    "strip_chrome",
    "load_topic",
    "load_topics",
    "match_article",
    "explain",
    "should_alert",
    "check_examples",
]

ZONES = ("title", "lead", "body", "any")
# What each zone name lets a query see. "body" is the whole article text, its lead included.
_ZONE_SETS: dict[str, frozenset[str]] = {
    "title": frozenset({"title"}),
    "lead": frozenset({"lead"}),
    "body": frozenset({"lead", "body"}),
    "any": frozenset({"title", "lead", "body"}),
}
_ZONE_RANK = {"body": 0, "lead": 1, "title": 2}

LEAD_MAX_CHARS = 300
LEAD_SENTENCES = 2
PROMINENCE = {"title": 1.5, "lead": 1.25, "body": 1.0}
REPETITION_CAP = 2.0
# Hits are counted per this many words: five passing mentions in a 1,500-word analysis weigh
# what two do in a 600-word report.
HITS_PER_WORDS = 500
# Words at least this frequent on the Zipf scale (the, of, and) carry no weight in similarity.
_IDF_CEILING = 7.0
# Title and text get positions this far apart so no phrase or NEAR window spans the two.
_ZONE_GAP = 10_000


# ---------------------------------------------------------------------------------------------
# Text: chrome removal, words, lead.

_SHORT_LINE_WORDS = 12
_CHROME_LINE = re.compile(
    r"""^(?:
        connect\ with\ us | follow\ us\b.* | post\ a\ comment | leave\ a\ (?:reply|comment)
      | click\ to\ comment | comments? | continue\ reading | read\ (?:more|next|also)\b.*
      | share\ (?:this|on|via)\b.* | share | tweet | print | email
      | download\ (?:the|our)\ app\b.* | get\ the\ .*\bapp | .*\b(?:app\ store|google\ play)\b.*
      | key\ takeaways | advertisement | sponsored(?:\ content)? | free\ ads\ here
      | subscribe\b.* | sign\ up\b.* | sign\ in | log\ ?in | skip\ to\b.* | back\ to\ top
      | privacy\ policy | terms\ of\ (?:use|service) | all\ rights\ reserved.* | ©.*
      | published(?:\ on)? | updated | on | by
      | your\ email\ address\ will\ not\ be\ published.*
      | (?:\S+\ +){0,3}(?:logo|image|photo|badge|icon)
    )[\s:.!]*$""",
    re.IGNORECASE | re.VERBOSE,
)
# Link teasers to other articles, whatever their length: "Related: Sanctions on Russia bite".
_TEASER_PREFIX = re.compile(
    r"^(?:related(?:\ (?:articles?|stories|posts|coverage|news|content))?|read\ (?:more|also|next)"
    r"|see\ also|also\ read|more\ on\ this(?:\ story)?|recommended(?:\ for\ you)?|most\ (?:read|popular)"
    r"|trending(?:\ now)?|watch|listen|don'?t\ miss)\s*[:|–—-]"
    r"|^\d+\ (?:responses?|comments?)\ to\b",
    re.IGNORECASE | re.VERBOSE,
)
_COOKIE = re.compile(r"\bcookies?\b", re.IGNORECASE)
_COOKIE_CONTEXT = re.compile(
    r"\b(?:accept|consent|privacy|browsing|experience|agree|settings|preferences)", re.IGNORECASE
)
_NAV_SEPARATOR = re.compile(r"\s*(?:\||•|·|»|›)\s*")
_NAV_ITEM_WORDS = 4
_NAV_ITEM_CHARS = 40
_NAV_RUN = 3


def _is_chrome_line(line: str) -> bool:
    """One line judged on its own: a known boilerplate phrase, a teaser, a cookie notice, a menu."""
    words = len(line.split())
    if words <= _SHORT_LINE_WORDS and _CHROME_LINE.match(line):
        return True
    if _TEASER_PREFIX.match(line):
        return True
    if _COOKIE.search(line) and _COOKIE_CONTEXT.search(line) and words <= 80:
        return True
    items = [s for s in _NAV_SEPARATOR.split(line) if s]
    return len(items) >= 3 and all(len(s.split()) <= _NAV_ITEM_WORDS for s in items)


def _is_link_like(line: str) -> bool:
    """A menu entry: a few words, no sentence punctuation."""
    return (
        len(line.split()) <= _NAV_ITEM_WORDS
        and len(line) <= _NAV_ITEM_CHARS
        and not re.search(r"[.!?\"”]$", line)
    )


def strip_chrome(text: str) -> str:
    """Drop site boilerplate lines; return the remaining non-blank lines joined by newlines.

    Removed: short lines that are known chrome ("Connect with us", "Post a Comment", "Read more",
    "Share this", "Key Takeaways", app-store badges, image alt texts), teaser lines pointing at
    other articles ("Related: ..."), cookie notices, menus on one line ("Home | World | ...") and
    navigation lists: runs of three or more short link-like lines (blank lines in between do not
    break a run). Article sentences are never short link-like lines, so they survive.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not _is_chrome_line(ln)]
    kept: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:  # the sentinel flushes a trailing run
        if line and _is_link_like(line):
            run.append(line)
            continue
        if len(run) < _NAV_RUN:
            kept.extend(run)
        run = []
        if line:
            kept.append(line)
    return "\n".join(kept)


_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'"})
# A dotted abbreviation ("U.S.", "U.K.") is one word, spelled without its dots; else letters and
# digits, with inner apostrophes ("don't", "Russia's").
_WORD_RE = re.compile(r"(?:[^\W\d_]\.){2,}|[^\W_]+(?:'[^\W_]+)*")


def _normalise(word: str) -> str:
    """Case-fold, drop dots and a possessive 's: `Russia` matches "Russia's" but not "Russian",
    `US` matches "U.S."."""
    w = word.translate(_APOSTROPHES).casefold().replace(".", "")
    return w[:-2] if w.endswith("'s") else w


def _words(text: str) -> list[tuple[str, int, int]]:
    """(normalised word, start, end) for each word; offsets index `text`.

    Hyphens split words ("pro-Kremlin" -> pro, kremlin), and queries are split the same way, so
    phrases written like the text match it.
    """
    # translate() maps one character to one character, so the offsets stay valid for `text`.
    return [
        (_normalise(m.group()), m.start(), m.end()) for m in _WORD_RE.finditer(text.translate(_APOSTROPHES))
    ]


# A sentence ends at . ! ? (with any closing quotes) followed by space, or at a line end; the
# whitespace is consumed so a full stop at the end of a line counts once.
_SENTENCE_END = re.compile(r"[.!?][\"”’')\]]*(?:\s+|$)|\n")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr st gen sen rep gov lt col sgt capt jr sr vs no prof pres corp inc ltd co jan feb "
    "mar apr jun jul aug sep sept oct nov dec".split()
)


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the full stop at `dot` closes an abbreviation ("U.S.", "Mr.") rather than a sentence."""
    m = re.search(r"[\w.]*$", text[max(0, dot - 20) : dot])
    word = m.group() if m else ""
    return "." in word or len(word) == 1 or word.casefold() in _ABBREVIATIONS


def _lead_span(text: str) -> tuple[int, int]:
    """Character range of the lead: the first two sentences, at most ~300 characters.

    The lead starts at the first line of four words or more, skipping datelines and section labels
    that extraction leaves at the top.
    """
    start = 0
    for line in text.split("\n"):
        if len(line.split()) >= 4:
            break
        start += len(line) + 1
    else:  # nothing but short lines: they are all the lead there is
        start = 0
    end, sentences = len(text), 0
    for m in _SENTENCE_END.finditer(text, start):
        if m.group()[0] == "." and _is_abbreviation(text, m.start()):
            continue
        sentences += 1
        if sentences == LEAD_SENTENCES:
            end = m.end()
            break
    cap = start + LEAD_MAX_CHARS
    if end > cap:  # cut at the end of the word that straddles the cap
        space = re.search(r"\s", text[cap:])
        end = min(end, cap + space.start()) if space else end
    return start, end


@dataclass
class _Doc:
    """An article tokenised for matching: parallel lists, one entry per word."""

    title: str
    text: str
    norms: list[str]
    positions: list[int]
    zones: list[str]
    starts: list[int]
    ends: list[int]
    index: dict[str, list[int]]
    lead: tuple[int, int]
    dropped_lines: int
    words_in_text: int
    # Zones a query may see at all. Normally all; _prominence narrows it to ask "does the title
    # alone satisfy this clause?", and a field scope (title:, body:) cannot widen it again.
    visible: frozenset[str] = _ZONE_SETS["any"]

    def source(self, i: int) -> str:
        return self.title if self.zones[i] == "title" else self.text

    def surface(self, first: int, last: int) -> str:
        """The words first..last (inclusive) as they appear in the article."""
        return self.source(first)[self.starts[first] : self.ends[last]]


def _build_doc(title: str, text: str) -> _Doc:
    """Strip chrome from title and text, find the lead, and index every word with its zone."""
    raw_lines = sum(1 for ln in text.splitlines() if ln.strip())
    title = strip_chrome(title).replace("\n", " ")
    text = strip_chrome(text)
    text_words = _words(text)
    lead = _lead_span(text)
    doc = _Doc(title, text, [], [], [], [], [], {}, lead, raw_lines - len(text.splitlines()), len(text_words))
    for pos, (w, s, e) in enumerate(_words(title)):
        _add_word(doc, w, pos, "title", s, e)
    for n, (w, s, e) in enumerate(text_words):
        zone = "lead" if lead[0] <= s < lead[1] else "body"
        _add_word(doc, w, _ZONE_GAP + n, zone, s, e)
    return doc


def _add_word(doc: _Doc, word: str, pos: int, zone: str, start: int, end: int) -> None:
    doc.index.setdefault(word, []).append(len(doc.norms))
    doc.norms.append(word)
    doc.positions.append(pos)
    doc.zones.append(zone)
    doc.starts.append(start)
    doc.ends.append(end)


# ---------------------------------------------------------------------------------------------
# Query language: AST and evaluation.
#
# An occurrence is a tuple of parts, each part a (first, last) inclusive range of word indexes:
# one part for a phrase, several for a NEAR window (one per operand), so evidence can show the
# matched words rather than the whole window.

Part = tuple[int, int]
Occurrence = tuple[Part, ...]


@dataclass(frozen=True)
class _Result:
    matched: bool
    hits: int
    # The occurrences behind the match, in document order: what evidence shows.
    occurrences: tuple[Occurrence, ...] = ()


_NO_MATCH = _Result(False, 0)


class Node:
    """A compiled query node. Positional nodes (words, phrases, OR of them, NEAR) know where they
    matched, which NEAR needs; AND and NOT only know whether they matched."""

    def is_positional(self) -> bool:
        return False

    def evaluate(self, doc: _Doc, zones: frozenset[str]) -> _Result:
        occs = self.occurrences(doc, zones)
        return _Result(bool(occs), len(occs), tuple(occs))

    def occurrences(self, doc: _Doc, zones: frozenset[str]) -> list[Occurrence]:
        raise NotImplementedError


@dataclass(frozen=True)
class Pattern:
    """One word of a query: an exact normalised word, or a prefix when written with a trailing *."""

    word: str
    prefix: bool = False

    def matches(self, norm: str) -> bool:
        return norm.startswith(self.word) if self.prefix else norm == self.word

    def __str__(self) -> str:
        return self.word + ("*" if self.prefix else "")


@dataclass(frozen=True)
class Phrase(Node):
    """A word (one pattern) or a quoted phrase (consecutive words)."""

    patterns: tuple[Pattern, ...]

    def is_positional(self) -> bool:
        return True

    def _candidates(self, doc: _Doc) -> Iterator[int]:
        first = self.patterns[0]
        if not first.prefix:
            yield from doc.index.get(first.word, ())
            return
        for norm, idxs in doc.index.items():
            if first.matches(norm):
                yield from idxs

    def occurrences(self, doc: _Doc, zones: frozenset[str]) -> list[Occurrence]:
        found: list[Occurrence] = []
        n = len(self.patterns)
        for i in self._candidates(doc):
            last = i + n - 1
            if last >= len(doc.norms) or doc.positions[last] - doc.positions[i] != n - 1:
                continue
            if all(
                doc.zones[i + k] in zones and p.matches(doc.norms[i + k]) for k, p in enumerate(self.patterns)
            ):
                found.append(((i, last),))
        return sorted(found)

    def __str__(self) -> str:
        words = " ".join(str(p) for p in self.patterns)
        return f'"{words}"' if len(self.patterns) > 1 else words


@dataclass(frozen=True)
class Or(Node):
    children: tuple[Node, ...]

    def is_positional(self) -> bool:
        return all(c.is_positional() for c in self.children)

    def occurrences(self, doc: _Doc, zones: frozenset[str]) -> list[Occurrence]:
        return sorted({occ for c in self.children for occ in c.occurrences(doc, zones)})

    def evaluate(self, doc: _Doc, zones: frozenset[str]) -> _Result:
        if self.is_positional():
            return super().evaluate(doc, zones)
        results = [r for r in (c.evaluate(doc, zones) for c in self.children) if r.matched]
        if not results:
            return _NO_MATCH
        return _Result(True, sum(r.hits for r in results), tuple(o for r in results for o in r.occurrences))

    def __str__(self) -> str:
        return "(" + " OR ".join(str(c) for c in self.children) + ")"


@dataclass(frozen=True)
class And(Node):
    children: tuple[Node, ...]

    def evaluate(self, doc: _Doc, zones: frozenset[str]) -> _Result:
        results = [c.evaluate(doc, zones) for c in self.children]
        if not all(r.matched for r in results):
            return _NO_MATCH
        # A conjunction is supported as often as its scarcest positive part; NOT parts add nothing.
        positive = [r for c, r in zip(self.children, results, strict=True) if not isinstance(c, Not)]
        hits = min((r.hits for r in positive), default=1)
        # Show as many occurrences of each part as the conjunction has hits: the first "Russia"
        # beside the one "sanctions", not every "Russia" in the article.
        return _Result(True, hits, tuple(o for r in positive for o in r.occurrences[:hits]))

    def __str__(self) -> str:
        return "(" + " AND ".join(str(c) for c in self.children) + ")"


@dataclass(frozen=True)
class Not(Node):
    child: Node

    def evaluate(self, doc: _Doc, zones: frozenset[str]) -> _Result:
        return _NO_MATCH if self.child.evaluate(doc, zones).matched else _Result(True, 1)

    def __str__(self) -> str:
        return f"NOT {self.child}"


@dataclass(frozen=True)
class Near(Node):
    """Both operands within `distance` words of each other, in either order."""

    left: Node
    right: Node
    distance: int

    def is_positional(self) -> bool:
        return True

    def _pairs(self, doc: _Doc, zones: frozenset[str]) -> list[tuple[Occurrence, Occurrence]]:
        pairs = []
        rights = self.right.occurrences(doc, zones)
        for a in self.left.occurrences(doc, zones):
            for b in rights:
                gap = _gap(doc, a, b)
                if gap is not None and gap <= self.distance:
                    pairs.append((a, b))
        return pairs

    def occurrences(self, doc: _Doc, zones: frozenset[str]) -> list[Occurrence]:
        return sorted({_window(a, b) for a, b in self._pairs(doc, zones)})

    def evaluate(self, doc: _Doc, zones: frozenset[str]) -> _Result:
        pairs = self._pairs(doc, zones)
        if not pairs:
            return _NO_MATCH
        # Hits: how many distinct occurrences of the scarcer operand found a partner, so one
        # "sanctions" among ten "Russia"s counts once.
        hits = min(len({a for a, _ in pairs}), len({b for _, b in pairs}))
        return _Result(True, hits, tuple(sorted({_window(a, b) for a, b in pairs})))

    def __str__(self) -> str:
        return f"{self.left} NEAR/{self.distance} {self.right}"


def _window(a: Occurrence, b: Occurrence) -> Occurrence:
    """The occurrence of a NEAR match: the parts of both operands, in document order."""
    return tuple(sorted(set(a + b)))


def _gap(doc: _Doc, a: Occurrence, b: Occurrence) -> int | None:
    """Words from the end of the earlier occurrence to the start of the later; None if they overlap."""
    a_first, a_last = a[0][0], max(p[1] for p in a)
    b_first, b_last = b[0][0], max(p[1] for p in b)
    if a_last < b_first:
        return doc.positions[b_first] - doc.positions[a_last]
    if b_last < a_first:
        return doc.positions[a_first] - doc.positions[b_last]
    return None


@dataclass(frozen=True)
class Scope(Node):
    """`title:(...)`, `lead:(...)`, `body:(...)`: the child sees only that zone, whatever the rule's zone."""

    zone: str
    child: Node

    def is_positional(self) -> bool:
        return self.child.is_positional()

    def occurrences(self, doc: _Doc, zones: frozenset[str]) -> list[Occurrence]:
        return self.child.occurrences(doc, _ZONE_SETS[self.zone] & doc.visible)

    def evaluate(self, doc: _Doc, zones: frozenset[str]) -> _Result:
        return self.child.evaluate(doc, _ZONE_SETS[self.zone] & doc.visible)

    def __str__(self) -> str:
        return f"{self.zone}:({self.child})"


# ---------------------------------------------------------------------------------------------
# Query language: lexer and recursive-descent parser.
#
#   query   := or_expr
#   or_expr := and_expr ("OR" and_expr)*
#   and_expr:= unary ("AND" unary)*
#   unary   := "NOT" unary | near
#   near    := primary ("NEAR/n" primary)*
#   primary := FIELD ":" primary | "(" or_expr ")" | PHRASE | WORD


class QueryError(ValueError):
    """A query does not parse. `position` is the 0-based character offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class _Token:
    kind: str  # WORD PHRASE LPAREN RPAREN AND OR NOT NEAR FIELD EOF
    text: str
    pos: int
    distance: int = 0


_OPERATORS = {"AND", "OR", "NOT"}
_QUOTES = {'"': '"', "“": "”", "”": "”"}
_BARE = re.compile(r'[^\s()"“”]+')


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(query):
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token("LPAREN" if ch == "(" else "RPAREN", ch, i))
            i += 1
        elif ch in _QUOTES:
            close = query.find(_QUOTES[ch], i + 1)
            if close < 0:
                raise QueryError(
                    f"the quote at character {i + 1} is never closed; add a closing {_QUOTES[ch]}", i
                )
            tokens.append(_Token("PHRASE", query[i + 1 : close], i))
            i = close + 1
        else:
            m = _BARE.match(query, i)
            assert m is not None  # any character that is not space, paren or quote starts a bare word
            tokens.extend(_lex_bare(m.group(), i))
            i = m.end()
    tokens.append(_Token("EOF", "", len(query)))
    return tokens


def _lex_bare(word: str, pos: int) -> list[_Token]:
    if word in _OPERATORS:
        return [_Token(word, word, pos)]
    if word == "NEAR" or word.startswith("NEAR/"):
        m = re.fullmatch(r"NEAR/(\d+)", word)
        if not m or int(m.group(1)) < 1:
            raise QueryError(f"'{word}' needs a distance of at least 1 word, like NEAR/5", pos)
        return [_Token("NEAR", word, pos, int(m.group(1)))]
    field_m = re.match(r"([A-Za-z]+):", word)
    if field_m:
        name = field_m.group(1)
        if name not in ZONES:
            raise QueryError(
                f"unknown field '{name}:'; use title:, lead:, body: or any: (or quote the text to search for it)",
                pos,
            )
        rest = word[field_m.end() :]
        return [_Token("FIELD", name, pos), *(_lex_bare(rest, pos + field_m.end()) if rest else [])]
    return [_Token("WORD", word, pos)]


def _compile_words(text: str, pos: int, quoted: bool) -> Phrase:
    """Turn a bare word or a phrase's text into patterns, checking wildcards."""
    patterns: list[Pattern] = []
    for chunk in text.split():
        prefix = chunk.endswith("*")
        stem = chunk[:-1] if prefix else chunk
        if "*" in stem:
            raise QueryError(
                f"'*' is only allowed at the end of a word (found in '{chunk}'); write e.g. 'sanction*'", pos
            )
        words = [w for w, _, _ in _words(stem)]
        if not words:
            what = "the phrase" if quoted else f"'{chunk}'"
            raise QueryError(f"{what} has no letters or digits to match; remove it or quote real words", pos)
        if prefix and len(words[-1]) < 2:
            raise QueryError(f"'{chunk}': a wildcard needs at least 2 letters before '*'", pos)
        patterns.extend(Pattern(w) for w in words[:-1])
        patterns.append(Pattern(words[-1], prefix))
    if not patterns:
        raise QueryError('empty phrase ""; put words between the quotes or remove them', pos)
    return Phrase(tuple(patterns))


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = _lex(query)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.tok.kind == "EOF":
            raise QueryError("the query is empty; write at least one word", 0)
        node = self.or_expr()
        if self.tok.kind != "EOF":
            raise self._unexpected_after_term()
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.tok.kind == "OR":
            self.take()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self) -> Node:
        children = [self.unary()]
        while self.tok.kind == "AND":
            self.take()
            children.append(self.unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self) -> Node:
        if self.tok.kind == "NOT":
            self.take()
            return Not(self.unary())
        return self.near()

    def near(self) -> Node:
        start = self.tok.pos
        node = self.primary()
        while self.tok.kind == "NEAR":
            op = self.take()
            right_pos = self.tok.pos
            right = self.primary()
            for operand, where in ((node, start), (right, right_pos)):
                if not operand.is_positional():
                    raise QueryError(
                        f"{op.text} takes words, phrases or (a OR b) groups of them; the operand at "
                        f"character {where + 1} contains AND/NOT: write (a {op.text} b) AND c instead",
                        where,
                    )
            node = Near(node, right, op.distance)
        return node

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "FIELD":
            self.take()
            if self.tok.kind in ("EOF", "RPAREN", "AND", "OR", "NEAR"):
                raise QueryError(
                    f"'{tok.text}:' needs something to search, like {tok.text}:(a OR b)", tok.pos
                )
            return Scope(tok.text, self.primary())
        if tok.kind == "LPAREN":
            self.take()
            if self.tok.kind == "RPAREN":
                raise QueryError("empty parentheses '()'; put a query inside or remove them", tok.pos)
            node = self.or_expr()
            if self.tok.kind == "EOF":
                raise QueryError(
                    f"unbalanced parenthesis: the '(' at character {tok.pos + 1} is never closed; add a ')'",
                    tok.pos,
                )
            if self.tok.kind != "RPAREN":
                raise self._unexpected_after_term()
            self.take()
            return node
        if tok.kind in ("PHRASE", "WORD"):
            self.take()
            return _compile_words(tok.text, tok.pos, quoted=tok.kind == "PHRASE")
        if tok.kind == "EOF":
            raise QueryError(
                "the query ends where a word, phrase or '(' is expected; complete or remove the "
                "last operator",
                tok.pos,
            )
        if tok.kind == "RPAREN":
            raise QueryError(
                f"')' at character {tok.pos + 1} comes where a word, phrase or '(' is expected", tok.pos
            )
        raise QueryError(
            f"expected a word, phrase or '(' at character {tok.pos + 1}, found '{tok.text}'", tok.pos
        )

    def _unexpected_after_term(self) -> QueryError:
        tok = self.tok
        if tok.kind == "RPAREN":
            return QueryError(
                f"unbalanced parenthesis: the ')' at character {tok.pos + 1} has no matching '('; remove it",
                tok.pos,
            )
        if tok.kind == "NOT":
            return QueryError(f"'NOT' at character {tok.pos + 1} joins nothing; write 'a AND NOT b'", tok.pos)
        hint = ""
        if tok.kind == "WORD" and tok.text.upper() in (*_OPERATORS, "NEAR"):
            hint = f" ('{tok.text}' is searched as a word: operators are uppercase, {tok.text.upper()})"
        return QueryError(
            f"missing operator before '{tok.text}' at character {tok.pos + 1}{hint}; join terms with AND, OR "
            f"or NEAR/n, or quote words to search them as a phrase",
            tok.pos,
        )


def parse_query(query: str) -> Node:
    """Compile a query string; raises `QueryError` with the character position of the problem."""
    return _Parser(query).parse()


# ---------------------------------------------------------------------------------------------
# Compiled topics.


@dataclass(frozen=True)
class Rule:
    """One named clause of a topic: its query as written and compiled, the zone it reads, its weight."""

    name: str
    query: str
    node: Node
    zone: str = "any"
    weight: float = 1.0


@dataclass(frozen=True)
class Exemplar:
    """A seed document as a unit-length TF-IDF vector (kept as sorted pairs: hashable, picklable)."""

    id: str
    vector: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Example:
    """A snippet from a topic file's `examples`, run by `check_examples`."""

    text: str
    title: str = ""


@dataclass(frozen=True)
class Topic:
    """A compiled topic file (see seeds/TOPICS.md for the meaning of each field)."""

    id: str
    description: str
    rules: tuple[Rule, ...]
    exemplars: tuple[Exemplar, ...] = ()
    alert_threshold: float = 0.5
    mention_threshold: float = 0.2
    alert_on_mentions: bool = False
    exemplar_weight: float = 0.2
    must_match: tuple[Example, ...] = ()
    must_not_match: tuple[Example, ...] = ()
    source: str = ""  # the file it was loaded from, for messages


# ---------------------------------------------------------------------------------------------
# Topic files: strict schema, validated with line numbers taken from the YAML node tree.

_Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RuleSpec(_Strict):
    name: _Slug
    query: Annotated[str, StringConstraints(min_length=1)]
    zone: Literal["title", "lead", "body", "any"] = "any"
    weight: float = Field(1.0, gt=0, le=5)


class _ExemplarSpec(_Strict):
    path: str | None = None
    text: str | None = None
    id: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _ExemplarSpec:
        if (self.path is None) == (self.text is None):
            raise ValueError("an exemplar needs exactly one of 'path' (a seed file) or 'text' (inline)")
        return self


class _ExampleSpec(_Strict):
    text: str
    title: str = ""


class _ExamplesSpec(_Strict):
    must_match: list[_ExampleSpec] = []
    must_not_match: list[_ExampleSpec] = []

    @field_validator("must_match", "must_not_match", mode="before")
    @classmethod
    def _plain_strings_are_texts(cls, value: Any) -> Any:
        # A bare string is the article text with no title: the short form most examples use.
        if isinstance(value, list):
            return [{"text": v} if isinstance(v, str) else v for v in value]
        return value


class _TopicSpec(_Strict):
    id: _Slug
    description: str
    rules: list[_RuleSpec] = Field(min_length=1)
    exemplars: list[_ExemplarSpec] = []
    alert_threshold: float = Field(0.5, gt=0, le=1)
    mention_threshold: float = Field(0.2, gt=0, le=1)
    alert_on_mentions: bool = False
    exemplar_weight: float = Field(0.2, ge=0, le=1)
    examples: _ExamplesSpec = _ExamplesSpec()

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> _TopicSpec:
        if self.mention_threshold > self.alert_threshold:
            raise ValueError(
                f"mention_threshold ({self.mention_threshold}) is above alert_threshold ({self.alert_threshold}); "
                "lower mention_threshold or raise alert_threshold"
            )
        return self


# Which schema applies at a location, to list the allowed keys when an unknown one turns up.
_MODEL_AT: dict[tuple[Any, ...], type[BaseModel]] = {
    (): _TopicSpec,
    ("rules", int): _RuleSpec,
    ("exemplars", int): _ExemplarSpec,
    ("examples",): _ExamplesSpec,
    ("examples", "must_match", int): _ExampleSpec,
    ("examples", "must_not_match", int): _ExampleSpec,
}


def _allowed_keys(parent: Sequence[Any]) -> str:
    model = _MODEL_AT.get(tuple(k if isinstance(k, str) else int for k in parent), _TopicSpec)
    return ", ".join(model.model_fields)


def _line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """Line (1-based) of the YAML node at a pydantic error location; the deepest one found."""
    if node is None:
        return None
    for key in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            match = next((v for k, v in node.value if k.value == key), None)
            if match is None:  # a missing key: the error belongs to the mapping that lacks it
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1


def _validation_error(exc: ValidationError, root: yaml.Node, path: str) -> ConfigError:
    err = exc.errors()[0]
    loc = err["loc"]
    where = _dotted(loc)
    if err["type"] == "extra_forbidden":
        key = loc[-1]
        parent = _dotted(loc[:-1]) or "the topic"
        msg = (
            f"unknown key '{key}' in {parent}; allowed keys: {_allowed_keys(loc[:-1])} (see seeds/TOPICS.md)"
        )
    elif err["type"] == "missing":
        msg = f"missing required key '{where}'; add it (see seeds/TOPICS.md)"
    else:
        detail = str(err["msg"]).removeprefix("Value error, ")
        msg = f"{where}: {detail}" if loc else detail
    return ConfigError(msg, path=path, line=_line_of(root, loc))


def _dotted(loc: Sequence[Any]) -> str:
    """('rules', 0, 'zone') -> 'rules[0].zone'"""
    out = ""
    for k in loc:
        out += f"[{k}]" if isinstance(k, int) else f".{k}" if out else str(k)
    return out


def _node_at(root: yaml.Node, loc: Sequence[Any]) -> yaml.Node | None:
    node: yaml.Node | None = root
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return None
    return node


def _compile_rule(spec: _RuleSpec, root: yaml.Node, index: int, path: str) -> Rule:
    # One line, single spaces: a long query folded over several YAML lines reads (and points its
    # error caret) the same as a short one.
    query = " ".join(spec.query.split())
    try:
        node = parse_query(query)
    except QueryError as e:
        qnode = _node_at(root, ("rules", index, "query"))
        line = qnode.start_mark.line + 1 if qnode is not None else None
        caret = " " * e.position + "^"
        raise ConfigError(
            f"rule '{spec.name}': bad query: {e.message}\n    {query}\n    {caret}",
            path=path,
            line=line,
        ) from None
    return Rule(spec.name, query, node, spec.zone, spec.weight)


def _load_exemplar(spec: _ExemplarSpec, n: int, topic_file: Path, root: yaml.Node) -> Exemplar:
    if spec.text is not None:
        return Exemplar(spec.id or f"inline-{n + 1}", _exemplar_vector(spec.text))
    assert spec.path is not None  # _ExemplarSpec guarantees one of path/text
    file = (topic_file.parent / spec.path).resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        pnode = _node_at(root, ("exemplars", n, "path"))
        raise ConfigError(
            f"exemplar '{spec.path}' cannot be read ({e.strerror or e}); paths are relative to the topic file "
            f"(resolved to {file})",
            path=str(topic_file),
            line=pnode.start_mark.line + 1 if pnode is not None else None,
        ) from None
    return Exemplar(spec.id or file.name, _exemplar_vector(text))


def _example(item: _ExampleSpec) -> Example:
    return Example(item.text, item.title)


def load_topic(path: str | Path) -> Topic:
    """Load and compile one topic file; `ConfigError` names the file, line and fix on any problem."""
    path = Path(path)
    where = str(path)
    try:
        source = path.read_text(encoding="utf-8")
        root = yaml.compose(source)
        data = yaml.safe_load(source)
    except OSError as e:
        raise ConfigError(f"cannot read topic file: {e.strerror or e}", path=where) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        context, context_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
        opened = f"{context} (line {context_mark.line + 1}): " if context and context_mark else ""
        raise ConfigError(
            f"not valid YAML: {opened}{getattr(e, 'problem', None) or e}; check indentation and quoting "
            "(queries with quotes are easiest inside single quotes)",
            path=where,
            line=mark.line + 1 if mark else None,
        ) from None
    if not isinstance(data, dict) or root is None:
        raise ConfigError("a topic file must be a mapping with id, description and rules", path=where, line=1)
    try:
        spec = _TopicSpec.model_validate(data)
    except ValidationError as e:
        raise _validation_error(e, root, where) from None
    if spec.id != path.stem:
        raise ConfigError(
            f"id '{spec.id}' does not match the file name '{path.name}'; rename the file or change the id",
            path=where,
            line=_line_of(root, ("id",)),
        )
    _check_unique([r.name for r in spec.rules], "rule name", root, "rules", "name", where)
    rules = tuple(_compile_rule(r, root, i, where) for i, r in enumerate(spec.rules))
    exemplars = tuple(_load_exemplar(x, i, path, root) for i, x in enumerate(spec.exemplars))
    _check_unique([x.id for x in exemplars], "exemplar id", root, "exemplars", "path", where)
    return Topic(
        id=spec.id,
        description=spec.description.strip(),
        rules=rules,
        exemplars=exemplars,
        alert_threshold=spec.alert_threshold,
        mention_threshold=spec.mention_threshold,
        alert_on_mentions=spec.alert_on_mentions,
        exemplar_weight=spec.exemplar_weight,
        must_match=tuple(_example(x) for x in spec.examples.must_match),
        must_not_match=tuple(_example(x) for x in spec.examples.must_not_match),
        source=where,
    )


def _check_unique(values: list[str], what: str, root: yaml.Node, section: str, key: str, path: str) -> None:
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v in seen:
            node = _node_at(root, (section, i, key)) or _node_at(root, (section, i))
            raise ConfigError(
                f"duplicate {what} '{v}'; give each one a distinct name",
                path=path,
                line=node.start_mark.line + 1 if node is not None else None,
            )
        seen.add(v)


def load_topics(directory: str | Path) -> list[Topic]:
    """All topics of a directory (every ``*.yaml``, sorted by file name)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(
            "topic directory not found; set topics_dir to a folder of *.yaml topic files", path=str(directory)
        )
    files = sorted(directory.glob("*.yaml"))
    stray = sorted(directory.glob("*.yml"))
    if stray:  # would otherwise be skipped without a word, and the topic silently never match
        raise ConfigError("topic files must end in .yaml; rename it", path=str(stray[0]))
    if not files:
        raise ConfigError(
            "no *.yaml topic files here; add one (format: seeds/TOPICS.md)", path=str(directory)
        )
    topics = [load_topic(f) for f in files]
    ids = Counter(t.id for t in topics)
    dupes = [i for i, n in ids.items() if n > 1]
    if dupes:
        raise ConfigError(f"topic id '{dupes[0]}' is defined twice; ids must be unique", path=str(directory))
    return topics


# ---------------------------------------------------------------------------------------------
# Exemplar similarity.


# Cached: the same few thousand words recur in every article, and the lookup is the hot path.
@functools.lru_cache(maxsize=200_000)
def _idf(word: str) -> float:
    return max(0.0, _IDF_CEILING - zipf_frequency(word, "en"))


def _is_content(word: str) -> bool:
    # Numbers and single letters ("a", "I", a stray "s") say nothing about a topic.
    return len(word) > 1 and not word.isdigit()


def _weights(words: Sequence[str]) -> dict[str, float]:
    counts = Counter(w for w in words if _is_content(w))
    vec = {w: (1.0 + math.log(c)) * _idf(w) for w, c in counts.items()}
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {w: v / norm for w, v in vec.items() if v > 0} if norm else {}


def _exemplar_vector(text: str) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(_weights([w for w, _, _ in _words(strip_chrome(text))]).items()))


@dataclass(frozen=True)
class _Similarity:
    exemplar: str
    cosine: float
    shared: tuple[str, ...]  # the words contributing most, as they appear in the article


def _closest_exemplar(doc: _Doc, topic: Topic, doc_vec: dict[str, float]) -> _Similarity | None:
    best: _Similarity | None = None
    for ex in topic.exemplars:
        contrib = {w: v * doc_vec[w] for w, v in ex.vector if w in doc_vec}
        cosine = sum(contrib.values())
        if cosine > 0 and (best is None or cosine > best.cosine):
            top = sorted(contrib, key=lambda w: -contrib[w])[:8]
            best = _Similarity(ex.id, cosine, tuple(_first_surface(doc, w) for w in top))
    return best


def _first_surface(doc: _Doc, norm: str) -> str:
    i = doc.index[norm][0]
    return doc.surface(i, i)


# ---------------------------------------------------------------------------------------------
# Scoring.


@dataclass(frozen=True)
class _ClauseScore:
    rule: Rule
    hits: int
    prominence: str  # the most prominent zone that satisfies the clause on its own
    repetition: float
    score: float
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True)
class _Decision:
    score: float
    level: str | None  # "alert", "mention" or None (below mention_threshold)
    clauses: tuple[_ClauseScore, ...]
    rule_score: float
    similarity: _Similarity | None
    exemplar_score: float


def _prominence(doc: _Doc, rule: Rule) -> str:
    """'title' if the title alone satisfies the clause, 'lead' if title+lead do, else 'body'."""
    for zone, visible in (("title", frozenset({"title"})), ("lead", frozenset({"title", "lead"}))):
        probe = dataclasses.replace(doc, visible=visible)
        if rule.node.evaluate(probe, _ZONE_SETS[rule.zone] & visible).matched:
            return zone
    return "body"


def _repetition(hits: int, doc: _Doc) -> float:
    per_length = hits * min(1.0, HITS_PER_WORDS / max(doc.words_in_text, 1))
    return min(REPETITION_CAP, 1.0 + 0.5 * math.log2(max(1.0, per_length)))


def _clause_evidence(doc: _Doc, rule: Rule, occurrences: Sequence[Occurrence]) -> tuple[Evidence, ...]:
    """One Evidence per zone the clause's words were found in, title first."""
    by_zone: dict[str, list[str]] = {}
    for first, last in sorted({p for occ in occurrences for p in occ}):
        spans = by_zone.setdefault(doc.zones[first], [])
        text = doc.surface(first, last)
        if text not in spans:
            spans.append(text)
    detail = f"{rule.name}: {rule.query}"
    zones = sorted(by_zone, key=lambda z: -_ZONE_RANK[z]) or ["body"]
    return tuple(Evidence("rule", detail, z, tuple(by_zone.get(z, ()))) for z in zones)


def _score_clause(doc: _Doc, rule: Rule) -> _ClauseScore | None:
    result = rule.node.evaluate(doc, _ZONE_SETS[rule.zone])
    if not result.matched:
        return None
    prominence = _prominence(doc, rule)
    repetition = _repetition(result.hits, doc)
    score = rule.weight * PROMINENCE[prominence] * repetition
    return _ClauseScore(
        rule, result.hits, prominence, repetition, score, _clause_evidence(doc, rule, result.occurrences)
    )


def _decide(doc: _Doc, topic: Topic, doc_vec: Callable[[], dict[str, float]] | None = None) -> _Decision:
    clauses = tuple(c for c in (_score_clause(doc, r) for r in topic.rules) if c is not None)
    rule_score = sum(c.score for c in clauses)
    similarity = None
    exemplar_score = 0.0
    if clauses and topic.exemplars and topic.exemplar_weight > 0:
        vec = doc_vec() if doc_vec else _doc_vector(doc)
        similarity = _closest_exemplar(doc, topic, vec)
        exemplar_score = topic.exemplar_weight * similarity.cosine if similarity else 0.0
    score = round(min(1.0, rule_score + exemplar_score), 4) if clauses else 0.0
    level = None
    if score >= topic.alert_threshold:
        level = "alert"
    elif score >= topic.mention_threshold:
        level = "mention"
    return _Decision(score, level, clauses, rule_score, similarity, exemplar_score)


def _doc_vector(doc: _Doc) -> dict[str, float]:
    return _weights(doc.norms)


def _lazy(make: Callable[[], dict[str, float]]) -> Callable[[], dict[str, float]]:
    cell: list[dict[str, float]] = []

    def get() -> dict[str, float]:
        if not cell:
            cell.append(make())
        return cell[0]

    return get


def _evidence(decision: _Decision) -> tuple[Evidence, ...]:
    evidence = [e for c in decision.clauses for e in c.evidence]
    sim = decision.similarity
    if sim is not None:
        evidence.append(
            Evidence("exemplar", f"{sim.exemplar} similarity {sim.cosine:.2f}", "body", sim.shared)
        )
    return tuple(evidence)


def match_article(doc_id: str, title: str, text: str, topics: Sequence[Topic]) -> list[TopicMatch]:
    """Match one article against every topic; one TopicMatch per topic at or above its mention_threshold."""
    doc = _build_doc(title, text)
    doc_vec = _lazy(lambda: _doc_vector(doc))  # computed once, and only if some rule fires
    matches = []
    for topic in topics:
        decision = _decide(doc, topic, doc_vec)
        if decision.level is not None:
            matches.append(TopicMatch(doc_id, topic.id, decision.score, decision.level, _evidence(decision)))
    return matches


def should_alert(match: TopicMatch, topic: Topic) -> bool:
    """Whether a match should raise an alert: always at level "alert", at "mention" only when the
    topic sets ``alert_on_mentions``. The level itself stays what the score says."""
    return match.level == "alert" or (topic.alert_on_mentions and match.level == "mention")


def check_examples(topic: Topic) -> list[str]:
    """Run a topic's own examples: must_match must alert, must_not_match must not. Returns failures."""
    failures = []
    for kind, examples, want_alert in (
        ("must_match", topic.must_match, True),
        ("must_not_match", topic.must_not_match, False),
    ):
        for n, ex in enumerate(examples, 1):
            decision = _decide(_build_doc(ex.title, ex.text), topic)
            if (decision.level == "alert") != want_alert:
                failures.append(
                    f"{topic.id}: {kind} example {n} scored {decision.score:.2f} ({decision.level or 'no match'}), "
                    f"{'needs' if want_alert else 'must stay below'} alert {topic.alert_threshold:.2f}: "
                    f"{_clip(ex.title + ' ' + ex.text)}"
                )
    return failures


def _clip(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def explain(title: str, text: str, topic: Topic) -> str:
    """A readable account of how `topic` scores this article: chrome, lead, every clause, exemplars."""
    doc = _build_doc(title, text)
    d = _decide(doc, topic)
    out = [
        f"topic {topic.id}: score {d.score:.2f} -> {d.level or 'no match'} "
        f"(alert >= {topic.alert_threshold:.2f}, mention >= {topic.mention_threshold:.2f})",
        f"  title: {_clip(doc.title) or '(none)'}",
        f"  lead:  {_clip(doc.text[doc.lead[0] : doc.lead[1]], 160) or '(none)'}",
        f"  chrome lines removed: {doc.dropped_lines}; words in text: {doc.words_in_text}",
        f"  rules: {d.rule_score:.2f}",
    ]
    fired = {c.rule.name: c for c in d.clauses}
    for rule in topic.rules:
        c = fired.get(rule.name)
        if c is None:
            out.append(f"    -     {rule.name}: no match  [{rule.query}]")
            continue
        out.append(
            f"    fired {rule.name}: {c.score:.2f} = weight {rule.weight:g} x {c.prominence} "
            f"{PROMINENCE[c.prominence]:g} x repetition {c.repetition:.2f} ({c.hits} hit{'s' * (c.hits != 1)})"
        )
        for e in c.evidence:
            out.append(f"          {e.zone}: {', '.join(repr(s) for s in e.spans) or '(no words)'}")
    if not d.clauses:
        out.append("  exemplars: not consulted (no rule fired)")
    elif d.similarity is None:
        out.append("  exemplars: +0.00 (none similar)")
    else:
        s = d.similarity
        out.append(
            f"  exemplars: +{d.exemplar_score:.2f} = weight {topic.exemplar_weight:g} x similarity "
            f"{s.cosine:.2f} to {s.exemplar}; shared: {', '.join(s.shared)}"
        )
    return "\n".join(out)
