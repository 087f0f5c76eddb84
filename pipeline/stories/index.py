"""The story index: rung 4 (rewrites, average link over a story's members) and retention.

See the package docstring (pipeline.stories) for the whole ladder and its cost bounds. Once a
batch is in, the stories it opened are judged again as wholes (`merge_new_stories`): a story of
new documents only may join the story it reports; stories with stored members never change.

Layout (no Python object per stored document, term or posting; see pipeline/stories/columns.py):

* rows: per document, its publication time, story (a 64-bit key), link, score, counts, and where
  its parts start in two flat buffers: `terms` (bytes) holds its term ids run by run (`_STORED`,
  3 bytes an id), then its line hashes (4 bytes), then the lead runs as bit masks over the runs
  they are a subset of (a lead term is a copy of a title or first-lines term: 1 bit, not 3 bytes;
  `_pack_terms`);
  `names` (bytes) holds its doc_id, story_id and the doc_id it matched;
* `_terms`: term id -> document frequency, stored documents holding it, background df;
* `_lines`: line hash -> counted documents holding the line (chrome detection);
* postings (sorted uint64 arrays): salient term -> documents, story -> members, doc_id -> key;
* the copy index (pipeline/stories/copies.py) with its own rows.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import repeat
from urllib.parse import urlsplit

import numpy as np

from pipeline.models import DedupDoc, StoryAssignment
from pipeline.stories.columns import ID_BYTES, KeyTable, Postings, RowStore, from_bytes24, nbytes, to_bytes24
from pipeline.stories.copies import _CopyIndex
from pipeline.stories.pairs import PairFacts, PairModel, facts_from_ids, load_model, pair_features
from pipeline.stories.people import protagonist
from pipeline.stories.settings import DedupSettings
from pipeline.stories.text import (
    LEAD_SALT,
    _background_df,
    _LineTerms,
    _Text,
    _word_background_df,
    cut_document,
    hash32,
    hash64,
    story_id_for,
    term_id,
)

# Runs of a document's term ids, in this order, each sorted by id.
R_LW, R_LN, R_LX, R_N, R_X, R_P, R_W, R_DF, R_PDF, R_Y, R_K = range(11)
_N_RUNS = 11      # R_K: the protagonist's name id (pipeline/stories/people.py), none or one
_WIDTH = 12         # `lens`: the length of each run, then of its line hashes
# The four spaces of the similarity: lead (words, names, numbers), names and numbers, pairs, words.
_SPACES = ((R_LW, R_LX + 1), (R_N, R_X + 1), (R_P, R_P + 1), (R_W, R_W + 1))
_VECTOR_END = R_W + 1   # runs before this one make the weighted vector
LINKS = ("original", "exact_copy", "near_copy", "rewrite")
_LINK_CODE = {name: n for n, name in enumerate(LINKS)}
_DAY = 86_400.0
_SALT = np.uint32(LEAD_SALT)


# Runs stored as ids in a row's `terms` (bytes): each id in 3 bytes (term ids are 24-bit,
# pipeline/stories/text.py), the line hashes in 4, then one bit per id of a lead run's base run
# (the lead run's ids XOR the lead salt are a subset of the base's), then the ids a lead run has
# and its base lacks (none, by construction, but kept general), unsalted, in 3 bytes.
_STORED = (R_N, R_X, R_P, R_W, R_DF, R_PDF, R_Y, R_K)
_LEAD_OF = ((R_LW, R_W), (R_LN, R_N), (R_LX, R_X))

_LINE_RUN = _N_RUNS   # `lens[_N_RUNS]`: the number of line hashes


def _pack_terms(runs: list[np.ndarray], line_hashes: np.ndarray) -> np.ndarray:
    """A row's `terms` (uint8): the stored runs, the line hashes, the lead masks, the lead extras."""
    masks, extras = [], []
    for lead, base in _LEAD_OF:
        unsalted = runs[lead] ^ _SALT
        masks.append(np.isin(runs[base], unsalted, assume_unique=True))
        extras.append(unsalted[~np.isin(unsalted, runs[base], assume_unique=True)])
    return np.concatenate([
        to_bytes24(np.concatenate([runs[n] for n in _STORED])),
        line_hashes.astype("<u4").view(np.uint8),
        np.packbits(np.concatenate(masks), bitorder="little"),
        to_bytes24(np.concatenate(extras)),
    ])


def _unpack_terms(flat: np.ndarray, lens: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """(runs, line hashes) of a row's `terms` (see `_pack_terms`); `lens` as stored."""
    runs: list[np.ndarray] = [np.zeros(0, dtype=np.uint32)] * _N_RUNS
    stored = int(sum(lens[n] for n in _STORED))
    ids = from_bytes24(flat[: ID_BYTES * stored])
    at = 0
    for n in _STORED:
        runs[n] = ids[at : at + lens[n]]
        at += lens[n]
    at = ID_BYTES * stored
    nlines = int(lens[_LINE_RUN])
    lines = flat[at : at + 4 * nlines].copy().view("<u4").astype(np.uint32, copy=False)
    at += 4 * nlines
    nbits = int(sum(lens[base] for _, base in _LEAD_OF))
    nbytes_ = (nbits + 7) // 8
    bits = np.unpackbits(flat[at : at + nbytes_], count=nbits, bitorder="little").view(bool)
    at += nbytes_
    start = 0
    for lead, base in _LEAD_OF:
        got = runs[base][bits[start : start + lens[base]]] ^ _SALT
        start += lens[base]
        extra = int(lens[lead]) - len(got)
        if extra:
            got = np.concatenate((got, from_bytes24(flat[at : at + ID_BYTES * extra]) ^ _SALT))
            at += ID_BYTES * extra
        got.sort()
        runs[lead] = got
    return runs, lines


def _packed_length(lens: np.ndarray) -> int:
    """An upper bound of a row's `terms` length in bytes (its lead extras are at most its lead runs)."""
    masked = int(sum(lens[base] for _, base in _LEAD_OF))
    ids = int(lens[:_N_RUNS].sum())
    return ID_BYTES * ids + 4 * int(lens[_LINE_RUN]) + (masked + 7) // 8


def _run_of(term: str) -> int:
    if term[0] == "l":
        return R_LX if term[4] == "#" else (R_LN if term[2] == "n" else R_LW)
    if term[0] == "n":
        return R_X if term[2] == "#" else R_N
    return R_P if term[0] == "p" else R_W


def _ids(terms: Iterable[str]) -> np.ndarray:
    return np.fromiter(map(term_id, terms), dtype=np.uint32)


def _bg(terms: Iterable[str], s: DedupSettings) -> np.ndarray:
    return np.fromiter((_background_df(t, s.prior_docs, s.prior_doc_length) for t in terms), dtype=np.float32)


@dataclass(frozen=True, eq=False)
class _Vector:
    """The weighted vector of a new document: its term ids of positive weight, sorted, and weights."""

    ids: np.ndarray
    weights: np.ndarray

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """The weight of each of `ids` (0.0 where the vector has none)."""
        if not len(self.ids):
            return np.zeros(len(ids), dtype=np.float64)
        pos = np.searchsorted(self.ids, ids)
        np.minimum(pos, len(self.ids) - 1, out=pos)
        return np.where(self.ids[pos] == ids, self.weights[pos], 0.0)


@dataclass
class _Doc:
    """A document being decided (new), or a stored one read back from the rows (`key` >= 0)."""

    key: int
    doc_id: str
    published: float | None
    runs: list[np.ndarray]        # uint32 ids per run (`_RUNS`); lead runs salted
    line_hashes: np.ndarray       # uint32, distinct
    salient: np.ndarray           # uint32 ids of the terms the candidate index files it under
    content_words: int
    counted: bool
    story_id: str = ""
    link: str = ""
    facts: PairFacts | None = None
    bg: tuple[np.ndarray, np.ndarray] | None = None   # (ids, background df) of its terms, for the table
    site: int = 0                 # hash32 of its source or host (0: unknown), for chrome by site

    @property
    def ids(self) -> np.ndarray:
        """The ids of its weighted vector, run by run."""
        return np.concatenate(self.runs[:_VECTOR_END])

    @property
    def bounds(self) -> tuple[int, ...]:
        out = [0]
        for run in self.runs[:_VECTOR_END]:
            out.append(out[-1] + len(run))
        return tuple(out)

    def df_ids(self) -> np.ndarray:
        """Ids counted in the IDF of the term table: all but the lead copies, the pairs and the years."""
        return np.concatenate((self.runs[R_N], self.runs[R_X], self.runs[R_W], self.runs[R_DF]))

    def pair_ids(self) -> np.ndarray:
        """Word pair ids counted in the IDF of the pair table."""
        return np.concatenate((self.runs[R_P], self.runs[R_PDF]))

    def held_ids(self) -> np.ndarray:
        """Ids whose background the table keeps while the document is stored (no pairs: they have none)."""
        return np.concatenate((self.runs[R_N], self.runs[R_X], self.runs[R_W]))


def _site_of(doc: DedupDoc) -> int:
    """hash32 of the document's source, else of its URL's host; 0 when it has neither."""
    name = (doc.source or "").strip().lower()
    if not name and doc.url:
        name = (urlsplit(doc.url).hostname or "").lower()
    return (hash32(name) or 1) if name else 0


def _timestamp(when: datetime | None) -> float | None:
    utc = _utc(when)
    return None if utc is None else utc.timestamp()


def _utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _protagonist_ids(text: _Text, lead_lines: int) -> np.ndarray:
    """The id of the text's protagonist as a name term ("n:" id, as in R_N), or none."""
    name = protagonist(text.title, text.body, lead_lines)
    return np.array([] if name is None else [term_id("n:" + name)], dtype=np.uint32)


def _facts(runs: list[np.ndarray], published: float | None, content_words: int) -> PairFacts:
    return facts_from_ids(
        lead_names=(runs[R_LN] ^ _SALT).tolist(),
        lead_numbers=(runs[R_LX] ^ _SALT).tolist(),
        names=runs[R_N].tolist(),
        numbers=runs[R_X].tolist(),
        years=runs[R_Y].tolist(),
        protagonist=runs[R_K].tolist(),
        published=published,
        content_words=content_words,
    )


class StoryIndex:
    """Documents indexed so far and the story of each. See the module docstring for the ladder."""

    def __init__(
        self,
        settings: DedupSettings = DedupSettings(),  # noqa: B008 - frozen dataclass
        pair_model: PairModel | None = None,
    ) -> None:
        self.settings = settings
        # The learned pair model of the rewrite rung (pipeline/stories/pairs.py); None with
        # use_pair_model=False: the weighted cosine and rewrite_threshold decide alone.
        self.pair_model = pair_model if pair_model is not None or not settings.use_pair_model else load_model()
        self._rows = RowStore(
            {
                "published": (np.float64, 1),   # NaN: undated
                "story": (np.uint64, 1),
                "link": (np.uint8, 1),
                "score": (np.float32, 1),
                "counted": (np.bool_, 1),
                "lens": (np.uint16, _WIDTH),
                "name_len": (np.int32, 1),
                "site": (np.uint32, 1),
            },
            {"terms": np.uint8, "names": np.uint8},
        )
        self._copies = _CopyIndex(settings)
        self._salient = Postings()    # salient term id -> documents
        self._members = Postings()    # hash32(story_id) -> its documents
        self._doc_ids = Postings()    # hash32(doc_id) -> document
        # Corpus statistics for the IDF. Copies are not counted: a story reprinted ten times
        # would otherwise make its own words look common.
        self._terms = KeyTable(extra=True)
        # Word pairs have no background and are mostly unique: counts alone, 8 bytes a pair.
        self._pairs = KeyTable(extra=False)
        self._corpus_size = 0
        # Body lines of the counted documents -> how many contain them. A line a document shares
        # verbatim with a document it does not copy is chrome or a stock phrase, not its story.
        self._lines = KeyTable(extra=False)
        # The same by site: line hash XOR the site's hash -> counted documents of that site.
        self._site_lines = KeyTable(extra=False)
        # doc_id -> (counted, its cut text, its line terms, its prepared _Doc or None): observed,
        # not added yet. add() reuses them, so a batch's texts are tokenised once.
        self._observed: dict[str, tuple[bool, _Text, _LineTerms, _Doc | None]] = {}
        # Weighted vectors (float32 over a member's vector ids) and pair facts of stored
        # documents, kept between adds (bounded; see _refresh_vectors).
        self._vectors_size = 0
        self._vector_cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._ids_cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()   # unpacked vector ids
        self._facts_cache: OrderedDict[int, PairFacts] = OrderedDict()
        self._newest: float | None = None
        self._oldest: float | None = None   # no live dated document is older (retention_days)
        # The salient ids each document of the batch being folded was filed under (cleared when
        # the next batch is observed), and the member that the opener of a story joined to
        # another now rewrites (`merge_new_stories`; its names keep no room for it).
        self._fresh_salient: dict[int, np.ndarray] = {}
        self._merged_matches: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._rows)

    # -- saving (pipeline/stories/persist.py): arrays, not objects -------------------------------

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_observed"] = {}
        # The cached vectors stay (bounded): a loaded index then decides exactly as the saved one.
        # As three flat arrays (keys in LRU order, lengths, values), not thousands of small ones.
        cache = self._vector_cache
        state["_vector_cache"] = (
            np.fromiter(cache.keys(), dtype=np.int64, count=len(cache)),
            np.fromiter(map(len, cache.values()), dtype=np.int64, count=len(cache)),
            np.concatenate(list(cache.values())) if cache else np.zeros(0, dtype=np.float32),
        )
        state["_facts_cache"] = OrderedDict()
        state["_ids_cache"] = OrderedDict()
        state["_fresh_salient"] = {}
        state["pair_model"] = None
        state["_had_model"] = self.pair_model is not None
        return state

    def __setstate__(self, state: dict) -> None:
        had = state.pop("_had_model", False)
        cache = state["_vector_cache"]
        if isinstance(cache, tuple):
            keys, lens, flat = cache
            ends = np.cumsum(lens)
            state["_vector_cache"] = OrderedDict(
                (k, flat[e - n : e]) for k, n, e in zip(keys.tolist(), lens.tolist(), ends.tolist(), strict=True)
            )
        state.setdefault("_ids_cache", OrderedDict())
        state.setdefault("_fresh_salient", {})
        state.setdefault("_merged_matches", {})
        self.__dict__.update(state)
        if had:
            self.pair_model = load_model()

    # -- public ------------------------------------------------------------------------------

    def _key_of(self, doc_id: str) -> int | None:
        keys = self._doc_ids.get(hash32(doc_id))
        if not len(keys):
            return None
        for key in keys[self._rows.is_alive(keys)][::-1].tolist():
            if self._names(key)[0] == doc_id:
                return key
        return None

    def _names(self, key: int) -> list[str]:
        raw = self._rows.chunk("names", key, int(self._rows.get("name_len", key)))
        return raw.tobytes().decode("utf-8").split("\x00")

    def _assignment(self, key: int) -> StoryAssignment:
        doc_id, story_id, matched = self._names(key)
        matched = matched or self._merged_matches.get(key, "")
        rows = self._rows
        return StoryAssignment(
            doc_id, story_id, LINKS[int(rows.get("link", key))], matched or None,
            round(float(rows.get("score", key)), 4),
        )

    def assignment_of(self, doc_id: str) -> StoryAssignment | None:
        """The assignment of an indexed (not evicted) document, else None."""
        key = self._key_of(doc_id)
        return None if key is None else self._assignment(key)

    def observe(self, docs: Iterable[DedupDoc], prepared: Iterable[PreparedDoc | None] | None = None) -> None:
        """Count documents into the IDF statistics before they are added.

        A batch observed first is judged with the IDF of the whole batch rather than of the part
        added so far. Copies within the batch (or of indexed documents) are counted once; a doc_id
        is never counted twice, also when it is added later.

        `prepared`, one per document (None: made here), are `prepare_document(doc, settings)`
        made elsewhere, e.g. by the worker that extracted the document.
        """
        self._fresh_salient.clear()
        probe = _CopyIndex(self.settings)
        n = 0
        for doc, made in zip(docs, repeat(None) if prepared is None else prepared, strict=False):
            if doc.doc_id in self._observed or self._key_of(doc.doc_id) is not None:
                continue
            if made is None:
                text, cut = cut_document(doc, self.settings)
                counts = whole = None
            else:
                text, cut, counts, whole = made
            counted = self._copies.find(text) is None and probe.find(text) is None
            if counted:
                probe.insert(n, text)
                n += 1
                self._count(*(counts if counts is not None else self._counts(text, cut)))
            self._observed[doc.doc_id] = (counted, text, cut, whole)

    def _counts(self, text: _Text, cut: _LineTerms) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """What a counted document adds to the IDF statistics: `_count`'s arguments."""
        terms = [t for t in cut.terms(list(range(len(text.body)))) if t[0] != "l" and self._keeps(t)]
        words = [t for t in terms if t[0] != "p"]
        return _ids(words), _ids([t for t in terms if t[0] == "p"]), 1, _bg(words, self.settings)

    def add(self, doc: DedupDoc, story_id: str | None = None) -> StoryAssignment:
        """Decide the story of `doc` against the indexed documents, then index it.

        With `story_id` (history loaded from the store) the document is indexed under that story
        without a decision; the assignment then says ``original`` with score 0.0. A doc_id that is
        already indexed is not indexed twice: its first assignment is returned.
        """
        known = self._key_of(doc.doc_id)
        if known is not None:
            return self._assignment(known)
        prepared = self._observed.pop(doc.doc_id, None)
        observed = prepared is not None
        whole = None
        if observed:
            counted, text, cut, whole = prepared
        else:
            text, cut = cut_document(doc, self.settings)
        copy = self._copies.find(text)
        if not observed:
            counted = copy is None
        new = self._make_doc(doc, text, cut, counted, whole)
        if counted and not observed:
            # Judged within a corpus that holds it, as an observed document is.
            self._count(new.df_ids(), new.pair_ids(), 1, self._bg_of(new, new.df_ids()))
        if story_id is not None:
            assignment = StoryAssignment(doc.doc_id, story_id, "original", None, 0.0)
        elif copy is not None:
            link, other, score = copy
            assignment = StoryAssignment(doc.doc_id, self._names(other)[1], link, self._names(other)[0], round(score, 4))
        else:
            assignment = self._rewrite_or_original(new)
        self._index(new, text, assignment)
        if story_id is None:
            self._fresh_salient[new.key] = new.salient
        return assignment

    def forget(self, doc_id: str) -> None:
        """Evict one document, if indexed."""
        key = self._key_of(doc_id)
        if key is not None:
            self._evict(key)

    def forget_published_before(self, when: datetime) -> None:
        """Evict the documents published before `when` (undated ones stay, bounded by count).

        For an index kept between batches: it then holds what a history read from the store
        since `when` would hold, whatever the dates of its newest documents.
        """
        horizon = _timestamp(when)
        if horizon is not None:
            self._evict_published_before(horizon, force=True)

    # -- the rewrite rung ----------------------------------------------------------------------

    def _rewrite_threshold_of_long(self) -> float:
        """The score a full article needs to join a story (the pair model's, else `rewrite_threshold`)."""
        return self.settings.rewrite_threshold if self.pair_model is None else self.pair_model.long.threshold

    def _rewrite_threshold(self, new: _Doc) -> float:
        model = self.pair_model
        if model is None:
            return self.settings.rewrite_threshold
        short = new.content_words < self.settings.min_rewrite_terms
        return model.short.threshold if short else model.long.threshold

    def _rewrite_or_original(self, new: _Doc) -> StoryAssignment:
        closest = self._closest_story(new)
        if closest is not None and closest[0] >= self._rewrite_threshold(new):
            story_id, other_doc_id = closest[1]
            return StoryAssignment(new.doc_id, story_id, "rewrite", other_doc_id, round(closest[0], 4))
        score = round(closest[0], 4) if closest is not None else 0.0
        return StoryAssignment(new.doc_id, story_id_for(new.doc_id), "original", None, score)

    def _closest_story(self, new: _Doc) -> tuple[float, tuple[str, str]] | None:
        """The candidate story with the best average similarity, and (its id, its member closest to `new`).

        Average link: one close member is not enough to pull a document into a story, so a
        chain of pairwise-similar documents does not grow into one topic-wide story.
        """
        s = self.settings
        model = self.pair_model
        if new.content_words < (s.min_rewrite_terms if model is None else s.min_short_terms):
            return None
        self._refresh_vectors()
        vector = self._weigh(new)
        best: tuple[float, tuple[str, str]] | None = None
        for story_id in self._candidate_stories(new):
            members = self._story_sample(story_id, new.published)
            if not members:
                continue
            if model is not None:
                sims = [(self._pair_probability(new, vector, key), key) for key in members]
            else:
                sims = [(self._similarity(vector, key), key) for key in members]
            average = sum(score for score, _ in sims) / len(sims)
            if best is None or average > best[0]:
                closest = max(sims, key=lambda item: (item[0], -item[1]))[1]
                best = (average, (story_id, self._names(closest)[0]))
        return best

    def merge_new_stories(self, doc_ids: Iterable[str]) -> dict[str, StoryAssignment]:
        """Join the stories a batch opened to the stories they turn out to report, once the whole
        batch is indexed; returns the new assignment of every document that changed story.

        A document is decided when it is added, against the stories indexed by then: the first
        articles of a batch that report one event from different angles can each open a story
        before the article that ties them arrives. Here every story all of whose members came in
        `doc_ids` (none was stored before, none was alerted on) is judged again as a whole: the
        average pair probability of its members against the members of each candidate story (the
        same average link and threshold that decide an add), and the best story passing it takes
        the whole story in. The story that opened first keeps its id. Stories with earlier members
        never change: what the store holds stays as it was.
        """
        model = self.pair_model
        if model is None or not self.settings.merge_stories:
            return {}
        keys = sorted(k for k in (self._key_of(d) for d in doc_ids) if k is not None)
        if not keys:
            return {}
        mine = set(keys)
        opened: dict[str, list[int]] = {}
        for key in keys:
            opened.setdefault(self._names(key)[1], []).append(key)
        # When each story last changed (the newest key it gained in this batch, or a merge), and
        # when each story opened by the batch was last judged: a story is judged again only
        # against the stories that changed since (it failed the others then), a lone document's
        # first judgement being its add.
        changed_at = {story_id: max(members) for story_id, members in opened.items()}
        for story_id in list(opened):
            if not set(self._live_members(story_id).tolist()) <= mine:
                del opened[story_id]
        judged_at = {story_id: members[0] if len(members) == 1 else -1 for story_id, members in opened.items()}
        clock = keys[-1]
        changed: dict[str, StoryAssignment] = {}
        while True:
            proposals = []
            newest_change = max(changed_at.values())
            for story_id, members in opened.items():
                since: int | None = judged_at[story_id]
                if changed_at[story_id] > since:
                    since = None   # it changed itself: every candidate
                elif newest_change <= since:
                    continue
                best = self._best_other_story(story_id, members, changed_at, since)
                judged_at[story_id] = clock
                if best is not None:
                    proposals.append((best[0], min(members), story_id, best[1], best[2]))
            done: set[str] = set()
            for score, _, story_id, target, closest in sorted(proposals, key=lambda p: (-p[0], p[1])):
                if story_id in done or target in done:
                    continue
                source, into = story_id, target
                if target in opened and min(opened[target]) > min(opened[story_id]):
                    # The story that opened first keeps its id; the other's opener then rewrites it.
                    source, into = target, story_id
                    closest = self._names(min(opened[story_id]))[0]
                if not self._relabel(opened[source], source, into, closest, score):
                    continue
                for key in opened[source]:
                    changed[self._names(key)[0]] = self._assignment(key)
                if into in opened:
                    opened[into] = sorted(opened[into] + opened[source])
                clock += 1
                changed_at[into] = clock
                del opened[source], judged_at[source], changed_at[source]
                done.update((source, into))
            if not done:
                return changed

    def _best_other_story(self, story_id: str, members: list[int], changed_at: dict[str, int],
                          since: int | None) -> tuple[float, str, str] | None:
        """(average probability, story, closest member's doc_id) of the best other story that the
        members of `story_id` pass the rewrite threshold against, as a whole; else None. With
        `since`, only the stories changed after it (`changed_at`) are judged."""
        docs = [self._stored(k) for k in self._distinct_sample(np.array(members, dtype=np.int64))]
        s = self.settings
        if any(d.content_words < s.min_rewrite_terms for d in docs):
            return None   # short texts (feed entries, headlines) are not judged again
        self._refresh_vectors()
        vectors = [self._weigh(d) for d in docs]
        candidates: dict[str, None] = {}
        for doc in docs:
            doc.salient = self._fresh_salient.get(doc.key, np.zeros(0, dtype=np.uint32))   # filed under at its add
            for other in self._candidate_stories(doc):
                if other != story_id and (since is None or changed_at.get(other, -1) > since):
                    candidates.setdefault(other, None)
        threshold = sum(self._rewrite_threshold(d) for d in docs) / len(docs)
        best: tuple[float, str, str] | None = None
        for other in candidates:
            sims = []
            for doc, vector in zip(docs, vectors, strict=True):
                sims.extend((self._pair_probability(doc, vector, k), k) for k in self._story_sample(other, doc.published))
            if not sims:
                continue
            average = sum(p for p, _ in sims) / len(sims)
            if average >= threshold and (best is None or average > best[0]):
                closest = max(sims, key=lambda item: (item[0], -item[1]))[1]
                best = (average, other, self._names(closest)[0])
        return best

    def _relabel(self, keys: list[int], old: str, new: str, closest: str, score: float) -> bool:
        """Move the documents `keys` (added in this batch, not saved yet) from story `old` to `new`;
        the one that opened `old` becomes a rewrite of `closest` in `new`. False (nothing moved)
        if `new`'s id is not as long as `old`'s (the names are rewritten in place)."""
        old_b, new_b = old.encode("utf-8"), new.encode("utf-8")
        if len(old_b) != len(new_b):
            return False
        rows = self._rows
        story, link, scores = rows.col("story"), rows.col("link"), rows.col("score")
        for key in keys:
            r = key - rows.base
            names = rows.chunk("names", key, int(rows.get("name_len", key)))
            parts = names.tobytes().split(b"\x00")
            assert parts[1] == old_b, (parts, old)
            at = len(parts[0]) + 1
            names[at : at + len(new_b)] = np.frombuffer(new_b, dtype=np.uint8)
            story[r] = np.uint64(hash64(new))
            if link[r] == _LINK_CODE["original"]:
                link[r] = _LINK_CODE["rewrite"]
                scores[r] = round(score, 4)
                self._merged_matches[key] = closest
        self._members.insert(hash32(new), keys, rows.is_alive)
        return True

    def _member_ids(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids of the vector, lens) of a stored document (unpacked once, kept beside its vector)."""
        got = self._ids_cache.get(key)
        if got is None:
            runs, _ = self._unpacked(key)
            got = self._ids_cache[key] = (np.concatenate(runs[:_VECTOR_END]), self._rows.get("lens", key).astype(np.int64))
            if len(self._ids_cache) > self.settings.vector_cache_size:
                self._ids_cache.popitem(last=False)
        else:
            self._ids_cache.move_to_end(key)
        return got

    def _similarity(self, vector: _Vector, key: int) -> float:
        """The dot product of the weighted vectors of a new document and stored `key`."""
        ids, _ = self._member_ids(key)
        return float(vector.gather(ids) @ self._cached_vector(key))

    def _space_cosines(self, vector: _Vector, key: int) -> tuple[float, float, float, float]:
        """The TF-IDF cosine of `new` (weighed as `vector`) and stored `key` in each space."""
        s = self.settings
        ids, lens = self._member_ids(key)
        products = vector.gather(ids) * self._cached_vector(key)
        weights = (s.lead_weight, s.name_weight, s.phrase_weight, s.word_weight)
        total = sum(weights)
        ends = np.concatenate(([0], np.cumsum(lens[:_VECTOR_END])))
        # Each space is scaled to length sqrt(weight / total): its dot product is that share of its cosine.
        out = []
        for (a, b), weight in zip(_SPACES, weights, strict=True):
            out.append(float(products[ends[a] : ends[b]].sum()) * total / weight if weight > 0 else 0.0)
        return out[0], out[1], out[2], out[3]

    def _member_facts(self, key: int) -> PairFacts:
        facts = self._facts_cache.get(key)
        if facts is None:
            doc = self._stored(key)
            facts = self._facts_cache[key] = doc.facts  # type: ignore[assignment]
            if len(self._facts_cache) > self.settings.vector_cache_size:
                self._facts_cache.popitem(last=False)
        else:
            self._facts_cache.move_to_end(key)
        return facts  # type: ignore[return-value]

    def _pair_vector(self, new: _Doc, vector: _Vector, key: int) -> np.ndarray:
        assert new.facts is not None
        return pair_features(self._space_cosines(vector, key), new.facts, self._member_facts(key))

    def _pair_probability(self, new: _Doc, vector: _Vector, key: int) -> float:
        """The pair model's probability that `new` and stored `key` report one event."""
        assert self.pair_model is not None and new.facts is not None
        model = self.pair_model.for_pair(new.facts, self._member_facts(key), self.settings.min_rewrite_terms)
        return model.probability(self._pair_vector(new, vector, key))

    def refresh_model(self) -> None:
        """Use the pair model saved with this code (an index loaded from disk keeps its own copy)."""
        if self.settings.use_pair_model:
            self.pair_model = load_model()

    def content_words_of(self, doc_id: str) -> int:
        key = self._key_of(doc_id)
        assert key is not None, doc_id
        return int(self._rows.get("lens", key)[R_W])

    def pair_features_of(self, doc_a: str, doc_b: str) -> np.ndarray:
        """The pair features of two indexed documents, `doc_a` weighed as a new one (training, explaining)."""
        self._refresh_vectors()
        ka, kb = self._key_of(doc_a), self._key_of(doc_b)
        assert ka is not None and kb is not None, (doc_a, doc_b)
        a = self._stored(ka)
        return self._pair_vector(a, self._weigh(a), kb)

    def _in_window(self, a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return True
        return abs(a - b) <= self.settings.window_days * _DAY

    def _story_sample(self, story_id: str, published: float | None) -> list[int]:
        """Members a document is averaged against: distinct texts in its window, newest first.

        Exact and near copies repeat another member's text; averaging over them would weigh a
        story by how often one article was reprinted.
        """
        rows = self._rows
        keys = self._live_members(story_id)[::-1]
        times = rows.col("published")[keys - rows.base]
        if published is not None:
            inside = np.isnan(times) | (np.abs(times - published) <= self.settings.window_days * _DAY)
            keys = keys[inside]
        return self._distinct_sample(keys)

    def _live_members(self, story_id: str) -> np.ndarray:
        """The indexed documents of `story_id`, oldest first."""
        rows = self._rows
        keys = self._members.get(hash32(story_id))
        keys = keys[rows.is_alive(keys)]
        return keys[rows.col("story")[keys - rows.base] == np.uint64(hash64(story_id))]

    def _distinct_sample(self, keys: np.ndarray) -> list[int]:
        """The first `max_story_sample` of `keys` that are no exact or near copy (all of them if
        every one is)."""
        links = self._rows.col("link")[keys - self._rows.base]
        distinct = (links == _LINK_CODE["original"]) | (links == _LINK_CODE["rewrite"])
        sample = self.settings.max_story_sample
        chosen = keys[distinct][:sample]
        return (chosen if len(chosen) else keys[:sample]).tolist()

    def _candidate_stories(self, new: _Doc) -> list[str]:
        """Stories of the documents sharing most salient terms with `new`, within its window.

        The candidates come from the postings of its salient terms alone (never from a scan of the
        index): the newest documents filed under each term, those inside the window kept (terms
        in more than `max_term_docs` documents of the window are no evidence and are passed over),
        ranked by evidence (the sum over the shared terms of log(max_term_docs / documents of the
        window holding the term): a shared rare name outweighs shared common words); the
        `max_candidates` with the most evidence give at most `max_candidate_stories` stories.
        """
        s = self.settings
        if not len(new.salient):
            return []
        rows = self._rows
        keys, which = self._salient.get_many(new.salient, newest=4 * s.max_term_docs)
        if not len(keys):
            return []
        live = rows.is_alive(keys)
        keys, which = keys[live], which[live]
        if new.published is not None:
            times = rows.col("published")[keys - rows.base]
            inside = np.isnan(times) | (np.abs(times - new.published) <= s.window_days * _DAY)
            keys, which = keys[inside], which[inside]
        if not len(keys):
            return []
        per_term = np.bincount(which, minlength=len(new.salient))
        useful = per_term[which] <= s.max_term_docs
        keys, which = keys[useful], which[useful]
        if not len(keys):
            return []
        weights = np.log((s.max_term_docs + 1.0) / per_term[which])
        # Per candidate: the shared terms, and the evidence (summed in term order, in one array pass).
        order = np.argsort(which, kind="stable")
        keys, weights = keys[order], weights[order]
        keys, inverse, shared = np.unique(keys, return_inverse=True, return_counts=True)
        evidence = np.bincount(inverse, weights=weights, minlength=len(keys))
        enough = shared >= s.min_shared_salient
        keys, shared, evidence = keys[enough], shared[enough], evidence[enough]
        # Most evidence first, then most shared terms, then the newest.
        ranked = keys[np.lexsort((-keys, -shared, -evidence))][: s.max_candidates]
        stories: dict[str, None] = {}
        for key in ranked.tolist():
            stories.setdefault(self._names(key)[1], None)
            if len(stories) >= s.max_candidate_stories:
                break
        return list(stories)

    # -- weighting -----------------------------------------------------------------------------

    def _refresh_vectors(self) -> None:
        """Drop the cached vectors when the corpus has grown by a quarter since they were made.

        Re-weighting every stored document whenever the IDF moves would cost O(index) per add;
        between refreshes a cached vector is at most a quarter of the corpus behind.
        """
        if self._corpus_size > self._vectors_size + max(1, self._vectors_size // 4):
            self._vectors_size = self._corpus_size
            self._vector_cache.clear()

    def _weights_of(self, runs: list[np.ndarray], doc: _Doc | None = None) -> np.ndarray:
        """The weighted vector over the ids of `runs[:_VECTOR_END]`: idf * scale of its space.

        Binary TF-IDF per space, each space scaled to length sqrt(weight / total weight): the
        dot product of two such vectors is the weighted mean of the per-space cosines.
        IDF: the corpus plus `prior_docs` pseudo-documents of general English (wordfreq). With a
        few documents the background tells 'Witkoff' from 'report'; as the corpus grows it takes
        over, and the words a whole stream shares lose their weight. A lead term is as rare as
        its base term (its id XOR the lead salt): one document frequency for both. A new `doc`
        brings the background of its terms (the table may not know them yet).
        """
        s = self.settings
        lens = [len(r) for r in runs[:_VECTOR_END]]
        ends = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
        lead_end = int(ends[R_LX + 1])
        ids = np.concatenate(runs[:_VECTOR_END])
        base = ids.copy()
        base[:lead_end] ^= _SALT
        pair_lo, pair_hi = int(ends[R_P]), int(ends[R_P + 1])
        df, bg = self._terms.get(base)
        if doc is not None:
            bg = self._bg_of(doc, base).astype(np.float64)
        df[pair_lo:pair_hi] = self._pairs.get(base[pair_lo:pair_hi])[0]
        bg[pair_lo:pair_hi] = 0.0
        log_docs = math.log(self._corpus_size + s.prior_docs + 1.0)
        idf = log_docs - np.log(df + bg + 1.0)
        np.maximum(idf, 0.0, out=idf)
        squares = idf * idf
        # A space of a handful of terms (an article with two numbers and no names) would reach
        # cosine 1 on one shared term: every norm gets `norm_floor_terms` terms of top IDF.
        floor = s.norm_floor_terms * log_docs**2
        weights = (s.lead_weight, s.name_weight, s.phrase_weight, s.word_weight)
        total = sum(weights)
        for (a, b), weight in zip(_SPACES, weights, strict=True):
            lo, hi = int(ends[a]), int(ends[b])
            if weight > 0 and hi > lo:
                idf[lo:hi] *= math.sqrt(weight / total) / math.sqrt(floor + float(squares[lo:hi].sum()))
            else:
                idf[lo:hi] = 0.0
        return idf

    def _weigh(self, doc: _Doc) -> _Vector:
        """The weighted vector of `doc`: its term ids of positive weight (sorted) and their weights."""
        values = self._weights_of(doc.runs, doc if doc.bg is not None else None)
        ids = doc.ids
        keep = values > 0
        ids, values = ids[keep], values[keep]
        order = np.argsort(ids, kind="stable")
        return _Vector(ids[order], values[order])

    def _cached_vector(self, key: int) -> np.ndarray:
        """The weighted vector of a stored document (over its vector ids), kept between adds."""
        vector = self._vector_cache.get(key)
        if vector is None:
            vector = self._vector_cache[key] = self._weights_of(self._stored_runs(key)).astype(np.float32)
            if len(self._vector_cache) > self.settings.vector_cache_size:
                self._vector_cache.popitem(last=False)
        else:
            self._vector_cache.move_to_end(key)
        return vector

    # -- indexing ------------------------------------------------------------------------------

    def _unpacked(self, key: int) -> tuple[list[np.ndarray], np.ndarray]:
        lens = self._rows.get("lens", key).astype(np.int64)
        return _unpack_terms(self._rows.chunk("terms", key, _packed_length(lens)), lens)

    def _stored_runs(self, key: int) -> list[np.ndarray]:
        return self._unpacked(key)[0]

    def _stored(self, key: int) -> _Doc:
        """A stored document read back from the rows (what the pair features need)."""
        rows = self._rows
        runs, line_hashes = self._unpacked(key)
        when = float(rows.get("published", key))
        published = None if math.isnan(when) else when
        words = len(runs[R_W])
        doc_id, story_id, _ = self._names(key)
        return _Doc(
            key=key, doc_id=doc_id, published=published, runs=runs,
            line_hashes=line_hashes, salient=np.zeros(0, dtype=np.uint32),
            content_words=words, counted=bool(rows.get("counted", key)), story_id=story_id,
            link=LINKS[int(rows.get("link", key))], facts=_facts(runs, published, words),
            site=int(rows.get("site", key)),
        )

    def _make_doc(self, doc: DedupDoc, text: _Text, cut: _LineTerms, counted: bool, whole: _Doc | None = None) -> _Doc:
        """The document to decide and index. `whole`: the one `prepare_document` made, with all
        its lines its own, which this is unless some of its lines are chrome here."""
        s = self.settings
        site = _site_of(doc)
        own_lines = self._own_lines(text, site)
        if whole is not None and not (own_lines and len(own_lines) < len(text.body)):
            return replace(whole, counted=counted)
        full = cut.terms(list(range(len(text.body))))
        own = cut.terms(own_lines) if own_lines and len(own_lines) < len(text.body) else full
        if s.phrase_weight <= 0:
            own = {t for t in own if not t.startswith("p:")}
            full = {t for t in full if not t.startswith("p:")}
        by_run: list[list[str]] = [[] for _ in range(_N_RUNS)]
        for term in own:
            by_run[_run_of(term)].append(term)
        if s.short_name_prefix and len(by_run[R_W]) < s.min_rewrite_terms:
            # A short text's names also by their first letters, so that a feed entry's
            # "Zelenskiy" meets another's "Zelensky", "Russian" meets "Russia" (names space only).
            names = set(by_run[R_N])
            by_run[R_N].extend(sorted({t[: 2 + s.short_name_prefix] for t in names if len(t) > 2 + s.short_name_prefix} - names))
        counted_only = [t for t in full - own if t[0] != "l"]
        by_run[R_DF] = [t for t in counted_only if t[0] != "p"]
        by_run[R_PDF] = [t for t in counted_only if t[0] == "p"]
        if s.pair_sample > 1:
            for n in (R_P, R_PDF):
                by_run[n] = [t for t in by_run[n] if term_id(t) % s.pair_sample == 0]
        runs: list[np.ndarray] = []
        for n, terms in enumerate(by_run[:R_Y]):
            ids = _ids([t[2:] for t in terms] if n <= R_LX else terms)
            if n <= R_LX:
                ids ^= _SALT
            runs.append(np.unique(ids))
        years = sorted({int(t[3:]) for t in by_run[R_X] if len(t) == 7 and t[3:].isdigit() and 1900 <= int(t[3:]) <= 2099})
        runs.append(np.array(years, dtype=np.uint32))
        runs.append(_protagonist_ids(text, s.lead_lines))
        published = _timestamp(doc.published)
        words = len(runs[R_W])
        # Background df of every term the table may have to create: the held runs and the df-only one.
        bg_terms = [t for n in (R_N, R_X, R_W, R_DF) for t in by_run[n]]
        made = _Doc(
            key=-1,
            doc_id=doc.doc_id,
            published=published,
            runs=runs,
            line_hashes=np.unique(np.array([h & 0xFFFFFFFF for h in text.line_hashes], dtype=np.uint32)),
            salient=self._salient_ids(by_run[R_N] + by_run[R_W]),
            content_words=words,
            counted=counted,
            bg=(_ids(bg_terms), _bg(bg_terms, s)),
            site=site,
        )
        made.facts = _facts(runs, published, words)
        return made

    def _keeps(self, term: str) -> bool:
        """Whether the index keeps `term` (word pairs may be off or sampled)."""
        if term[0] != "p":
            return True
        s = self.settings
        return s.phrase_weight > 0 and (s.pair_sample <= 1 or term_id(term) % s.pair_sample == 0)

    def _bg_of(self, doc: _Doc, ids: np.ndarray) -> np.ndarray:
        """The background df of `ids` (terms of `doc`), for creating them in the table."""
        assert doc.bg is not None
        known, values = doc.bg
        order = np.argsort(known, kind="stable")
        pos = np.searchsorted(known[order], ids)
        np.minimum(pos, max(len(known) - 1, 0), out=pos)
        return values[order][pos] if len(known) else np.zeros(len(ids), dtype=np.float32)

    def _own_lines(self, text: _Text, site: int = 0) -> list[int]:
        """The body lines that are the document's own, not chrome shared with other documents.

        A line another document of the same site (`site`, a hash of its source or host; 0:
        unknown) holds is chrome ("Sign up for our newsletter ..."), and so is a line that
        `chrome_line_docs` other documents hold, whatever their site: one other outlet quoting the
        same wire sentence is no chrome. Unless most of the body was seen, as in a partial copy,
        whose shared lines are its story; there only lines seen in `chrome_min_docs` documents
        or more go.
        """
        hashes = np.array([h & 0xFFFFFFFF for h in text.line_hashes], dtype=np.uint32)
        seen = self._lines.get(hashes)[0]
        partial_copy = 2 * int(np.count_nonzero(seen)) > len(seen)
        if partial_copy:
            return [i for i, n in enumerate(seen.tolist()) if n < self.settings.chrome_min_docs]
        chrome = seen >= self.settings.chrome_line_docs
        if site:
            chrome |= self._site_lines.get(hashes ^ np.uint32(site))[0] > 0
        return np.flatnonzero(~chrome).tolist()

    def _salient_ids(self, terms: list[str]) -> np.ndarray:
        """The rarest words and names in general English: stable as the corpus grows, unlike IDF."""
        s = self.settings
        prior, length = s.prior_docs, s.prior_doc_length
        ranked = heapq.nsmallest(s.salient_terms, ((_word_background_df(t, prior, length), t) for t in terms))
        return np.unique(_ids(t for _, t in ranked))

    def _count(self, ids: np.ndarray, pairs: np.ndarray, sign: int, bg: np.ndarray | None = None) -> None:
        self._terms.update(ids, sign, 0, bg)
        self._pairs.update(pairs, sign)
        self._corpus_size += sign

    def _index(self, doc: _Doc, text: _Text, assignment: StoryAssignment) -> None:
        rows = self._rows
        story = assignment.story_id
        names = "\x00".join((doc.doc_id, story, assignment.matched_doc_id or "")).encode("utf-8")
        lens = [len(r) for r in doc.runs] + [len(doc.line_hashes)]
        if max(lens) > 0xFFFF:
            raise ValueError(f"document {doc.doc_id}: more than 65,535 terms in one run")
        key = rows.append(
            {
                "published": np.nan if doc.published is None else doc.published,
                "story": hash64(story),
                "link": _LINK_CODE[assignment.link],
                "score": assignment.score,
                "counted": doc.counted,
                "lens": lens,
                "name_len": len(names),
                "site": doc.site,
            },
            {"terms": _pack_terms(doc.runs, doc.line_hashes), "names": np.frombuffer(names, dtype=np.uint8)},
        )
        doc.key = key
        self._copies.insert(key, text)
        alive = rows.is_alive
        self._salient.add(doc.salient, key, alive)
        self._members.add([hash32(story)], key, alive)
        self._doc_ids.add([hash32(doc.doc_id)], key, alive)
        held = doc.held_ids()
        self._terms.update(held, 0, 1, self._bg_of(doc, held))
        if doc.counted:
            self._lines.update(doc.line_hashes, 1)
            if doc.site:
                self._site_lines.update(doc.line_hashes ^ np.uint32(doc.site), 1)
        if doc.published is not None:
            self._newest = doc.published if self._newest is None else max(self._newest, doc.published)
            self._oldest = doc.published if self._oldest is None else min(self._oldest, doc.published)
        self._retain()

    def _retain(self) -> None:
        """Evict beyond `max_history` documents (the first added first) and beyond `retention_days`.

        The age of a document is taken against the newest publication date indexed, not the
        clock, so that a batch of old documents is folded as it was when they were new.
        """
        rows = self._rows
        while len(rows) > self.settings.max_history:
            self._evict(rows.front)
        days = self.settings.retention_days
        if days is not None and self._newest is not None:
            self._evict_published_before(self._newest - days * _DAY)

    def _evict_published_before(self, horizon: float, force: bool = False) -> None:
        if not force and (self._oldest is None or self._oldest >= horizon):
            return
        rows = self._rows
        times = rows.col("published")
        alive = rows.alive.view()
        for key in (np.flatnonzero(alive & (times < horizon)) + rows.base).tolist():
            self._evict(key)
        times = rows.col("published")[rows.alive.view()]
        times = times[~np.isnan(times)]
        self._oldest = float(times.min()) if len(times) else None

    def _evict(self, key: int) -> None:
        doc = self._stored(key)
        self._rows.kill(key)
        self._copies.remove(key)
        self._vector_cache.pop(key, None)
        self._ids_cache.pop(key, None)
        self._facts_cache.pop(key, None)
        self._merged_matches.pop(key, None)
        if doc.counted:
            self._count(doc.df_ids(), doc.pair_ids(), -1)
            self._lines.update(doc.line_hashes, -1)
            if doc.site:
                self._site_lines.update(doc.line_hashes ^ np.uint32(doc.site), -1)
        self._terms.update(doc.held_ids(), 0, -1)

    # -- checks (tests, bench) -----------------------------------------------------------------------

    def nbytes(self) -> dict[str, int]:
        """Bytes of the index's arrays by part (the bench reports them per article)."""
        c = self._copies
        return {
            "rows and term ids": nbytes(self._rows),
            "term table": nbytes(self._terms),
            "pair table": nbytes(self._pairs),
            "line table": nbytes(self._lines) + nbytes(self._site_lines),
            "postings": nbytes(self._salient) + nbytes(self._members) + nbytes(self._doc_ids),
            "copies": nbytes(c._rows) + nbytes(c._urls) + nbytes(c._texts) + nbytes(c._probes),
        }

    def live_keys(self) -> set[int]:
        return set(self._rows.live_keys().tolist())


# ---------------------------------------------------------------------------------------------
# A document prepared on another process.

# (its cut text, its line terms, `_count`'s arguments, the `_Doc` it is when all its lines are its own)
PreparedDoc = tuple[_Text, _LineTerms, tuple, _Doc]
_EMPTY: dict[DedupSettings, StoryIndex] = {}


def prepare_document(doc: DedupDoc, settings: DedupSettings) -> PreparedDoc:
    """What the index makes of `doc` that depends on `doc` alone, for `StoryIndex.observe`: made on
    the worker that extracted it, it leaves the fold the look-ups. It is made by an empty index,
    where no line is chrome, so `add` uses it unless some of the document's lines are chrome in
    the index that adds it (then that part is made again there)."""
    index = _EMPTY.get(settings)
    if index is None:
        index = _EMPTY[settings] = StoryIndex(replace(settings, use_pair_model=False))
    text, cut = cut_document(doc, settings)
    counts, whole = index._counts(text, cut), index._make_doc(doc, text, cut, counted=True)
    # The line terms go back uncut: they are needed again only where some lines are chrome, and
    # they are most of what would travel.
    return text, _LineTerms(text.title, text.body, settings), counts, whole


# ---------------------------------------------------------------------------------------------
# Batch entry point.

_UNDATED = datetime.max.replace(tzinfo=UTC)


def fold_stories(
    docs: Iterable[DedupDoc],
    settings: DedupSettings = DedupSettings(),  # noqa: B008 - frozen dataclass
    history: Iterable[tuple[DedupDoc, str]] = (),
    pair_model: PairModel | None = None,
) -> list[StoryAssignment]:
    """Assign every document a story; the result does not depend on the order of `docs`.

    `history` (document, story_id) pairs are indexed first, as decided before. The batch is then
    observed and added in (published, doc_id) order, undated documents last; the assignments
    come back in the input order.
    """
    index = StoryIndex(settings, pair_model)
    for doc, story_id in history:
        index.add(doc, story_id=story_id)
    docs = list(docs)
    ordered = sorted(docs, key=lambda d: (_utc(d.published) or _UNDATED, d.doc_id))
    index.observe(ordered)
    decided = {doc.doc_id: index.add(doc) for doc in ordered}
    decided.update(index.merge_new_stories(decided))
    return [decided[doc.doc_id] for doc in docs]
