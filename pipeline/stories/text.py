"""What a document says: normalised text, its terms (words, names, numbers, word pairs, lead), shingles.

Shared by the copy rungs (pipeline.stories.copies) and rewrite scoring (pipeline.stories.index).
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from wordfreq import freq_to_zipf, get_frequency_dict, zipf_frequency

from pipeline.models import DedupDoc
from pipeline.stories.settings import DedupSettings
from pipeline.stories.urls import canonical_url

# ---------------------------------------------------------------------------------------------
# Text normalisation.

# Typographic variants that NFKC leaves alone, mapped to their ASCII form.
_PUNCT_VARIANTS = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"',
        "\u00bb": '"', "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-",
    }
)
_NON_WORD = re.compile(r"[^\w\s]+|_+")
_SPACES = re.compile(r"\s+")


def _unify(text: str) -> str:
    """NFKC with ASCII quotes and dashes; case is kept (names are found by their capitals)."""
    return unicodedata.normalize("NFKC", text).translate(_PUNCT_VARIANTS)


def normalise_text(text: str) -> str:
    """Lowercase, NFKC, punctuation removed, whitespace collapsed: the form exact copies share."""
    return _normal_unified(_unify(text))


def _normal_unified(text: str) -> str:
    """`normalise_text` of a text that `_unify` has seen already."""
    return _SPACES.sub(" ", _NON_WORD.sub(" ", text.lower())).strip()


def text_hash(text: str) -> str:
    """sha1 hex of `normalise_text`: equal for copies that differ only in case, quotes or spacing."""
    return hashlib.sha1(normalise_text(text).encode("utf-8")).hexdigest()


def story_id_for(doc_id: str) -> str:
    """The id of a story whose first document is `doc_id`."""
    return "s_" + hashlib.sha1(doc_id.encode("utf-8")).hexdigest()[:12]



# ---------------------------------------------------------------------------------------------
# What a document says. Term keys carry their space: "w:" content word (stemmed), "n:" name or
# number, "p:" pair of adjacent content words, "l:" a word or name of the lead.

_TOKEN = re.compile(r"[^\W\d_]+|\d+(?:[.,]\d+)*")
_SENTENCE_END = frozenset(".!?:;")
_SUFFIXES = ("ing", "ed", "es", "s")
_COMMON_OPENER_ZIPF = 4.5   # a capitalised word this common that opens a sentence is not a name
_RUN_SPACES = ("l:", "n:", "p:", "w:")   # the order of the spaces in a sorted tuple of terms


def _wordfreq_zipf(freq: float) -> float:
    """`zipf_frequency` of a word that is one token with this listed frequency: wordfreq's own
    arithmetic (combine one token, round to 3 significant digits, to the Zipf scale, round to 2)."""
    one_over = 0.0
    one_over += 1.0 / freq
    combined = 1.0 / one_over
    combined = round(combined, math.floor(-math.log(combined, 10)) + 3)
    return round(freq_to_zipf(combined), 2)


@lru_cache(maxsize=1)
def _english_words() -> tuple[dict[str, float], dict[float, float], float]:
    """The words wordfreq knows with their frequencies, the Zipf frequency of each listed
    frequency (a few hundred bands), and the Zipf frequency it gives a word it does not know."""
    freqs = get_frequency_dict("en")
    bands = {f: _wordfreq_zipf(f) for f in set(freqs.values())}
    return freqs, bands, zipf_frequency("qxzqxzqxzqxz", "en")


@lru_cache(maxsize=300_000)
def _zipf(word: str) -> float:
    freqs, bands, unknown = _english_words()
    # A lowercase ASCII word is its own single token, so its answer is known without wordfreq's
    # tokenizer (the costly part of a lookup): its band's Zipf frequency when wordfreq lists it
    # (the same figure for every such word of the list: tests/stories/test_text.py), else the
    # unknown word's.
    if word.isascii() and word.isalpha() and word.islower():
        freq = freqs.get(word)
        return unknown if freq is None else bands[freq]
    return zipf_frequency(word, "en")


def _stem(word: str) -> str:
    """A light suffix strip, so that 'arrested'/'arrest' and 'talks'/'talk' meet."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


@lru_cache(maxsize=300_000)
def _stem_zipf(stem: str) -> float:
    """English frequency of the commonest word that `_stem` maps to `stem`."""
    return max(_zipf(stem + suffix) for suffix in ("", *_SUFFIXES))


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def _token_info(token: str, stop_zipf: float) -> tuple[str | None, bool, str | None, str | None]:
    """(name term, whether a sentence opener that common is no name, content stem, its "w:" term).

    The terms are interned: documents share one copy of each.
    """
    lower = token.lower()
    zipf = _zipf(lower)
    name = sys.intern("n:" + lower) if token[0].isupper() and len(token) > 1 else None
    stem = sys.intern(_stem(lower)) if len(lower) > 2 and zipf < stop_zipf else None
    return name, zipf >= _COMMON_OPENER_ZIPF, stem, None if stem is None else sys.intern("w:" + stem)


@lru_cache(maxsize=300_000)
def _lead_term(term: str) -> str:
    return sys.intern("l:" + term)


class _Memo(dict):
    """A bounded memo that is emptied when full (for keys that are cheap to recompute), with less
    overhead per look-up than lru_cache."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key, value):
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value


_token_infos: dict[float, _Memo] = {}   # stop_zipf -> token -> _token_info(token, stop_zipf)
_TOKEN_SPLIT = re.compile(f"({_TOKEN.pattern})")   # tokens at odd indices, what lies between at even


def _line_terms(line: str, stop_zipf: float) -> frozenset[str]:
    """The "w:", "n:" and "p:" terms of one line."""
    terms: set[str] = set()
    content: list[str] = []
    infos = _token_infos.get(stop_zipf)
    if infos is None:
        infos = _token_infos[stop_zipf] = _Memo(300_000)
    parts = _TOKEN_SPLIT.split(line)
    for i in range(1, len(parts), 2):
        token = parts[i]
        if token[0].isdigit():
            terms.add("n:#" + token.replace(",", ""))
            continue
        info = infos.get(token)
        if info is None:
            info = infos.put(token, _token_info(token, stop_zipf))
        name, common_opener, stem, word = info
        # A sentence opens the line, or follows a sentence end between this token and the last.
        if name is not None and not (common_opener and (i == 1 or not _SENTENCE_END.isdisjoint(parts[i - 1]))):
            terms.add(name)
        if stem is not None:
            content.append(stem)
            terms.add(word)
    terms.update(f"p:{first}_{second}" for first, second in zip(content, content[1:], strict=False))
    return frozenset(terms)


class _LineTerms:
    """Terms of the lines of one document, each line cut once, however many term sets use it."""

    def __init__(self, title: str, body: list[str], settings: DedupSettings) -> None:
        self.settings = settings
        self.title = title
        self.body = body
        self._lines: dict[int, frozenset[str]] = {}
        self._title: frozenset[str] | None = None

    def line(self, n: int) -> frozenset[str]:
        got = self._lines.get(n)
        if got is None:
            got = self._lines[n] = _line_terms(self.body[n], self.settings.stop_zipf)
        return got

    def title_terms(self) -> frozenset[str]:
        if self._title is None:
            self._title = _line_terms(self.title, self.settings.stop_zipf)
        return self._title

    def terms(self, lines: list[int]) -> set[str]:
        """The terms of the title and the body lines `lines`, plus "l:" copies of those of the lead.

        Binary: a rewrite states a fact once, however often its source repeated it.
        """
        terms: set[str] = set()
        for n in lines:
            terms |= self.line(n)
        lead = lines[: self.settings.lead_lines]
        lead_terms: set[str] = set()
        for n in lead:
            lead_terms |= self.line(n)
        title = self.title
        if title and (not lines or normalise_text(title) != normalise_text(self.body[lines[0]])):
            terms |= self.title_terms()
            lead_terms |= self.title_terms()
        terms.update(_lead_term(t) for t in lead_terms if not t.startswith("p:"))
        return terms


def _background_df(term: str, prior_docs: float, doc_length: float) -> float:
    """Expected document frequency of a term among `prior_docs` documents of general English.

    Word pairs get none: their IDF comes from the corpus (and the prior documents) alone.
    """
    if term.startswith("p:"):
        return 0.0
    return _word_background_df(term, prior_docs, doc_length)


_backgrounds = _Memo(200_000)   # (term, prior_docs, doc_length) -> background df


def _word_background_df(term: str, prior_docs: float, doc_length: float) -> float:
    key = (term, prior_docs, doc_length)
    got = _backgrounds.get(key)
    return got if got is not None else _backgrounds.put(key, _computed_background_df(term, prior_docs, doc_length))


def _computed_background_df(term: str, prior_docs: float, doc_length: float) -> float:
    space, word = term[:2], term[2:]
    zipf = _stem_zipf(word) if space == "w:" else _zipf(word.lstrip("#"))
    if zipf <= 0:
        return 0.0
    return prior_docs * (1.0 - math.exp(-doc_length * 10.0 ** (zipf - 9.0)))


@dataclass(frozen=True, eq=False)
class _Text:
    """A document cut up for the copy rungs: body lines and their hashes, shingles, URL, text hash."""

    title: str
    body: list[str]               # lines of at least min_line_words words (all lines if none is)
    line_hashes: tuple[int, ...]  # one per body line
    shingles: np.ndarray          # sorted unique 24-bit hashes (uint32) of word n-grams
    url: str
    text_hash: str                # "" for an empty text, which copies nothing


@lru_cache(maxsize=500_000)
def _token_hash(token: str) -> int:
    return _hash64(token)


_GRAM_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_MIX_MULTIPLIER = np.uint64(0xFF51AFD7ED558CCD)


def _shingle_hashes(tokens: list[str], size: int) -> np.ndarray:
    """Sorted unique 24-bit hashes of the word `size`-grams (one gram for a shorter text).

    Each token is hashed once; a gram's hash combines its tokens' hashes by position
    (multiply-add modulo 2**64), then the bits are mixed and the top 24 kept (3 bytes in the
    index). Only the two bottom-k sketches of a candidate pair are compared: 64 x 64 values share
    a false one with probability ~2e-4, a containment off by 1/64 once in 4,000 comparisons.
    """
    if not tokens:
        return np.zeros(0, dtype=np.uint32)
    words = np.fromiter((_token_hash(t) for t in tokens), dtype=np.uint64, count=len(tokens))
    count = max(1, len(tokens) - size + 1)
    gram = np.zeros(count, dtype=np.uint64)
    for offset in range(min(size, len(tokens))):
        gram = gram * _GRAM_MULTIPLIER + words[offset : offset + count]
    gram ^= gram >> np.uint64(33)
    gram *= _MIX_MULTIPLIER
    gram ^= gram >> np.uint64(33)
    return np.unique((gram >> np.uint64(40)).astype(np.uint32))


def _cut(doc: DedupDoc, settings: DedupSettings) -> _Text:
    unified = _unify(doc.text)
    lines = [line.strip() for line in unified.splitlines() if line.strip()]
    # Short lines are chrome ("Connect with us", app badges) or subheads.
    body = [line for line in lines if len(line.split()) >= settings.min_line_words] or lines
    normal_lines = [_normal_unified(line) for line in body]
    tokens = " ".join(normal_lines).split()
    normal = _normal_unified(unified)
    return _Text(
        title=_unify(doc.title).strip(),
        body=body,
        line_hashes=tuple(_hash64(line) for line in normal_lines),
        shingles=_shingle_hashes(tokens, settings.shingle_size),
        url=canonical_url(doc.url),
        text_hash=hashlib.sha1(normal.encode("utf-8")).hexdigest() if normal else "",
    )


def cut_document(doc: DedupDoc, settings: DedupSettings) -> tuple[_Text, _LineTerms]:
    """A document cut for the index: its `_Text` and its `_LineTerms` (what depends on the document
    alone)."""
    text = _cut(doc, settings)
    return text, _LineTerms(text.title, text.body, settings)


# ---------------------------------------------------------------------------------------------
# Term ids: 24-bit hashes of the term keys (the low 24 bits of a 32-bit hash), stable across
# processes (a saved index keeps them), stored in 3 bytes each. Two terms share an id with
# probability 6e-8 per pair: two documents share a false term with probability ~5e-3 (300 terms
# each), a vanishing part of a cosine; in a window of V distinct terms a share ~V / 2**24 of them
# have their document frequency counted with another term's, almost always another rare one (the
# common words that carry most frequency are a few ten thousand). Never a decision by itself:
# copies are decided on 64-bit keys and 32-bit shingles, chrome on 32-bit line hashes.
TERM_ID_BITS = 24
_TERM_ID_MASK = (1 << TERM_ID_BITS) - 1

LEAD_SALT = 0x5BD1E995   # the id of a lead term is its base term's id XOR this (>= 2**24: no base id)


def term_id(term: str) -> int:
    # Word pairs seldom repeat across documents, so they have their own small memo: it serves the
    # several look-ups of one document's pairs (sampling, counting, indexing) without emptying the
    # memo of words, which repeat across documents.
    memo = _pair_ids if term[0] == "p" else _term_ids
    got = memo.get(term)
    return got if got is not None else memo.put(term, _uncached_id(term))


def _uncached_id(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "big") & _TERM_ID_MASK


_term_ids = _Memo(300_000)
_pair_ids = _Memo(65_536)


def hash32(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "big")


def hash64(text: str) -> int:
    """A nonzero 64-bit key of `text` (0 is kept for "none")."""
    return _hash64(text) or 1
