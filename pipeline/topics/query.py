"""The topic query language (seeds/TOPICS.md): lexer, recursive-descent parser and the compiled
AST that evaluates against a tokenised article."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.topics.text import _ZONE_SETS, ZONES, _Doc, _words

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
        # The doc's distinct words, sorted: the words with this prefix are one contiguous run.
        words = doc.sorted_words()
        at = bisect.bisect_left(words, first.word)
        while at < len(words) and words[at].startswith(first.word):
            yield from doc.index[words[at]]
            at += 1

    def occurrences(self, doc: _Doc, zones: frozenset[str]) -> list[Occurrence]:
        first = self.patterns[0]
        if len(self.patterns) == 1 and not first.prefix:  # one exact word: its index, in order
            dz = doc.zones
            return [((i, i),) for i in doc.index.get(first.word, ()) if dz[i] in zones]
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


def evaluate_clause(node: Node, doc: _Doc, zones: frozenset[str]) -> _Result:
    """node.evaluate(doc, zones), computed once per article for each clause and zone set."""
    key = (id(node), doc.visible, zones)
    found = doc.memo.get(key)
    if found is None:
        found = doc.memo[key] = node.evaluate(doc, zones)
    return found


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


