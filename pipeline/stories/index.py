"""The story index: rung 4 (rewrites, average link over a story's members) and retention.

See the package docstring (pipeline.stories) for the whole ladder and its cost bounds.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, islice, repeat

import numpy as np
from rapidfuzz import fuzz

from pipeline.models import DedupDoc, StoryAssignment
from pipeline.stories.copies import _CopyIndex
from pipeline.stories.pairs import PairFacts, PairModel, facts_from_terms, load_model, pair_features
from pipeline.stories.settings import DedupSettings
from pipeline.stories.text import (
    _RUN_SPACES,
    _cut,
    _LineTerms,
    _Text,
    _word_background_df,
    normalise_text,
    story_id_for,
)

# ---------------------------------------------------------------------------------------------
# The story index.


class _TermTable:
    """Terms interned to int32 ids, and the document frequency of each in an array indexed by id.

    A term is looked up in the table once per document, when the document is made or counted;
    weighing a document later is a gather of `df` at its ids. An id lives while a stored document
    holds its term or its document frequency is positive, then it is freed for reuse, so the
    table follows the live documents.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str | None] = []
        self._free: list[int] = []
        self.df = np.zeros(1 << 12, dtype=np.int32)      # id -> counted documents holding the term
        self._refs = np.zeros(1 << 12, dtype=np.int32)   # id -> stored documents holding the term

    def __len__(self) -> int:
        return len(self._ids)

    # Saved (pipeline/stories/persist.py) as one string of the names and the arrays, not as a dict
    # of a million small strings: pickling the dict cost ~2.5 ms per article of the index.
    def __getstate__(self) -> dict:
        return {
            "names": "\x00".join("" if n is None else n for n in self._names),
            "free": np.array(self._free, dtype=np.int64),
            "df": self.df,
            "refs": self._refs,
        }

    def __setstate__(self, state: dict) -> None:
        names: list[str | None] = list(state["names"].split("\x00")) if state["names"] else []
        for i in state["free"].tolist():
            names[i] = None
        self._names = names
        self._ids = {n: i for i, n in enumerate(names) if n is not None}
        self._free = state["free"].tolist()
        self.df, self._refs = state["df"], state["refs"]

    def ids(self, terms: Iterable[str], known: dict[str, int] | None = None) -> np.ndarray:
        """The ids of `terms` (interning new ones), in their order.

        `known`: ids of some of them looked up before and still live, tried first (a small
        dict stays in the CPU cache; the table of a large index does not).
        """
        terms = terms if isinstance(terms, (list, tuple)) else list(terms)
        get = self._ids.get
        got = list(map(get if known is None else known.get, terms))
        if None in got:
            for n, term in enumerate(terms):
                if got[n] is None:
                    found = get(term)
                    got[n] = self._new(term) if found is None else found
        return np.array(got, dtype=np.int32)

    def _new(self, term: str) -> int:
        if self._free:
            i = self._free.pop()
            self._names[i] = term
        else:
            i = len(self._names)
            self._names.append(term)
            if i >= len(self.df):
                size = 2 * len(self.df)
                self.df = np.concatenate((self.df, np.zeros(size - len(self.df), dtype=np.int32)))
                self._refs = np.concatenate((self._refs, np.zeros(size - len(self._refs), dtype=np.int32)))
        self._ids[term] = i
        return i

    def df_of(self, term: str) -> int:
        i = self._ids.get(term)
        return 0 if i is None else int(self.df[i])

    def names(self, ids: np.ndarray) -> list[str]:
        return [self._names[i] for i in ids.tolist()]  # type: ignore[misc]

    def count(self, ids: np.ndarray, sign: int) -> None:
        """Add `sign` to the document frequency of `ids` (distinct)."""
        self.df[ids] += sign

    def hold(self, ids: np.ndarray, sign: int) -> None:
        """Add `sign` to the stored documents holding `ids` (distinct)."""
        self._refs[ids] += sign

    def release(self, ids: np.ndarray) -> None:
        """Free those of `ids` no stored document holds and no counted document has."""
        dead = ids[(self.df[ids] <= 0) & (self._refs[ids] <= 0)]
        names, table, free = self._names, self._ids, self._free
        for i in dead.tolist():
            name = names[i]
            if name is not None:   # an id may come twice
                del table[name]
                names[i] = None
                free.append(i)


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
    """What the index keeps of one document for the rewrite rung."""

    key: int
    doc_id: str
    published: float | None       # POSIX timestamp
    title: str                    # normalised, for the optional title similarity
    ids: np.ndarray               # int32 ids of its terms, in sorted term order: its similarity vector
    bounds: tuple[int, ...]       # where each space ("l:", "n:", "p:", "w:") runs in `ids`
    lead_base: np.ndarray         # int32 ids of the base terms of its "l:" terms (their df is the base's)
    background: np.ndarray        # float32 background df of its "l:", "n:" and "w:" terms, in order
    df_only: np.ndarray           # int32 ids of terms counted in the IDF but left out of the vector
    line_hashes: frozenset[int]
    salient: tuple[str, ...]      # terms under which the candidate index files it
    content_words: int
    story_id: str
    link: str
    counted: bool                 # in the corpus statistics (not a copy of a counted document)
    facts: PairFacts | None = None   # years, numbers, lead names, for the pair model

    def df_ids(self) -> np.ndarray:
        """Ids of the terms counted in the IDF: the "l:" terms sort first, the rest of `ids` counts."""
        return np.concatenate((self.ids[self.bounds[1] :], self.df_only))

    def held_ids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The term ids the document holds, in arrays of distinct ids: what keeps a term interned.

        `ids` and `df_only` are disjoint; the lead's base terms are in `ids` as well, held again
        so that their ids live as long as the document, whatever its lines.
        """
        return self.ids, self.lead_base, self.df_only


_DAY = 86_400.0


class _Posting:
    """The documents filed under one salient term: keys sorted by publication time, undated apart.

    Kept in typed arrays (16 bytes an entry); documents arrive mostly in time order, so adding is
    an append, and removing (eviction, oldest first) a binary search near the front.
    """

    __slots__ = ("keys", "times", "undated")

    def __init__(self) -> None:
        self.times = array("d")     # publication times, ascending
        self.keys = array("q")      # the key of each
        self.undated = array("q")   # keys of undated documents, in insertion order

    def __len__(self) -> int:
        return len(self.keys) + len(self.undated)

    def __iter__(self) -> Iterator[int]:
        return chain(self.keys, self.undated)

    def add(self, key: int, when: float | None) -> None:
        if when is None:
            self.undated.append(key)
        elif not self.times or when >= self.times[-1]:
            self.times.append(when)
            self.keys.append(key)
        else:
            i = bisect_right(self.times, when)
            self.times.insert(i, when)
            self.keys.insert(i, key)

    def remove(self, key: int, when: float | None) -> bool:
        """Remove `key` (filed at `when`); True when the posting is left empty."""
        if when is None:
            if key in self.undated:
                self.undated.remove(key)
        else:
            times, keys = self.times, self.keys
            i = bisect_left(times, when)
            while i < len(times) and times[i] == when:
                if keys[i] == key:
                    del times[i], keys[i]
                    break
                i += 1
        return not self.keys and not self.undated

    def within(self, when: float | None, window: float, cap: int) -> np.ndarray | None:
        """Keys of the documents within `window` of `when` (all for None; undated always count),
        or None when they are more than `cap`: two binary searches, whatever the posting's length."""
        if when is None:
            lo, hi = 0, len(self.times)
        else:
            lo, hi = bisect_left(self.times, when - window), bisect_right(self.times, when + window)
        if hi - lo + len(self.undated) > cap:
            return None
        # Slices are copies: the arrays stay free to grow (a buffer view would pin them).
        keys = np.frombuffer(self.keys[lo:hi], dtype=np.int64)
        if self.undated:
            keys = np.concatenate((keys, np.frombuffer(self.undated[:], dtype=np.int64)))
        return keys


def _timestamp(when: datetime | None) -> float | None:
    utc = _utc(when)
    return None if utc is None else utc.timestamp()


def _utc(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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
        self._next_key = 0
        self._docs: OrderedDict[int, _Doc] = OrderedDict()   # insertion order = eviction order
        self._assignments: dict[int, StoryAssignment] = {}
        self._by_doc_id: dict[str, int] = {}
        self._copies = _CopyIndex(settings)
        # story_id -> member keys, in insertion order (dicts as ordered sets), so the newest come
        # last; salient term -> the documents filed under it, by publication time.
        self._stories: dict[str, dict[int, None]] = {}
        self._postings: dict[str, _Posting] = {}
        # Corpus statistics for the IDF. Copies are not counted: a story reprinted ten times
        # would otherwise make its own words look common.
        self._terms = _TermTable()
        self._corpus_size = 0
        # doc_id -> (counted, its cut text, its line terms, the ids of its terms when counted):
        # observed, not added yet. add() reuses them, so a batch's texts are tokenised and their
        # terms looked up in the term table once. The ids stay live: the count holds them.
        self._observed: dict[str, tuple[bool, _Text, _LineTerms, dict[str, int] | None]] = {}
        # Body lines of the counted documents -> how many contain them. A line a document shares
        # verbatim with a document it does not copy is chrome or a stock phrase, not its story.
        self._line_docs: Counter[int] = Counter()
        # Weighted vectors of stored documents, kept between adds (see _refresh_vectors).
        self._vectors_size = 0
        self._vector_cache: OrderedDict[int, np.ndarray] = OrderedDict()
        # (published, key) of the dated documents, oldest first, for `retention_days`.
        self._by_age: list[tuple[float, int]] = []
        self._newest: float | None = None

    def __len__(self) -> int:
        return len(self._docs)

    # -- public ------------------------------------------------------------------------------

    def assignment_of(self, doc_id: str) -> StoryAssignment | None:
        """The assignment of an indexed (not evicted) document, else None."""
        key = self._by_doc_id.get(doc_id)
        return None if key is None else self._assignments[key]

    def observe(self, docs: Iterable[DedupDoc]) -> None:
        """Count documents into the IDF statistics before they are added.

        A batch observed first is judged with the IDF of the whole batch rather than of the part
        added so far. Copies within the batch (or of indexed documents) are counted once; a doc_id
        is never counted twice, also when it is added later.
        """
        probe = _CopyIndex(self.settings)
        for n, doc in enumerate(docs):
            if doc.doc_id in self._observed or doc.doc_id in self._by_doc_id:
                continue
            text = _cut(doc, self.settings)
            cut = _LineTerms(text.title, text.body, self.settings)
            counted = self._copies.find(text) is None and probe.find(text) is None
            known = None
            if counted:
                probe.insert(n, text)
                terms = [t for t in cut.terms(list(range(len(text.body)))) if not t.startswith("l:")]
                ids = self._terms.ids(terms)
                self._count(ids)
                known = dict(zip(terms, ids.tolist(), strict=True))
            self._observed[doc.doc_id] = (counted, text, cut, known)

    def add(self, doc: DedupDoc, story_id: str | None = None) -> StoryAssignment:
        """Decide the story of `doc` against the indexed documents, then index it.

        With `story_id` (history loaded from the store) the document is indexed under that story
        without a decision; the assignment then says ``original`` with score 0.0. A doc_id that is
        already indexed is not indexed twice: its first assignment is returned.
        """
        known = self._by_doc_id.get(doc.doc_id)
        if known is not None:
            return self._assignments[known]
        prepared = self._observed.pop(doc.doc_id, None)
        observed = prepared is not None
        if observed:
            counted, text, cut, known = prepared
        else:
            text = _cut(doc, self.settings)
            cut = _LineTerms(text.title, text.body, self.settings)
            known = None
        copy = self._copies.find(text)
        if not observed:
            counted = copy is None
        new = self._make_doc(doc, text, cut, counted, known)
        if counted and not observed:
            # Judged within a corpus that holds it, as an observed document is.
            self._count(new.df_ids())
        if story_id is not None:
            assignment = StoryAssignment(doc.doc_id, story_id, "original", None, 0.0)
        elif copy is not None:
            link, other, score = copy
            assignment = self._link(new, link, self._docs[other], score)
        else:
            assignment = self._rewrite_or_original(new)
        self._index(new, text, assignment)
        return assignment

    def forget(self, doc_id: str) -> None:
        """Evict one document, if indexed."""
        key = self._by_doc_id.get(doc_id)
        if key is not None:
            self._evict(key)

    def forget_published_before(self, when: datetime) -> None:
        """Evict the documents published before `when` (undated ones stay, bounded by count).

        For an index kept between batches: it then holds what a history read from the store
        since `when` would hold, whatever the dates of its newest documents.
        """
        horizon = _timestamp(when)
        if horizon is not None:
            self._evict_published_before(horizon)

    # -- the rewrite rung ----------------------------------------------------------------------

    @staticmethod
    def _link(new: _Doc, link: str, other: _Doc, score: float) -> StoryAssignment:
        return StoryAssignment(new.doc_id, other.story_id, link, other.doc_id, round(score, 4))

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
            return self._link(new, "rewrite", closest[1], closest[0])
        score = round(closest[0], 4) if closest is not None else 0.0
        return StoryAssignment(new.doc_id, story_id_for(new.doc_id), "original", None, score)

    def _closest_story(self, new: _Doc) -> tuple[float, _Doc] | None:
        """The candidate story with the best average similarity, and its member closest to `new`.

        Average link: one close member is not enough to pull a document into a story, so a
        chain of pairwise-similar documents does not grow into one topic-wide story.
        """
        s = self.settings
        model = self.pair_model
        if new.content_words < (s.min_rewrite_terms if model is None else s.min_short_terms):
            return None
        self._refresh_vectors()
        vector = self._weigh(new)
        best: tuple[float, _Doc] | None = None
        for story_id in self._candidate_stories(new):
            members = self._story_sample(story_id, new.published)
            if not members:
                continue
            if model is not None:
                sims = [(self._pair_probability(new, vector, member), member) for member in members]
            else:
                if best is not None and self._similarity_bound(new, vector, members) < best[0] - 1e-9:
                    continue   # cannot beat the best story: its members need not be weighed
                sims = [(self._similarity(new, vector, member), member) for member in members]
            average = sum(score for score, _ in sims) / len(sims)
            if best is None or average > best[0]:
                best = (average, max(sims, key=lambda item: (item[0], -item[1].key))[1])
        return best

    def _space_cosines(self, vector: _Vector, member: _Doc) -> tuple[float, float, float, float]:
        """The TF-IDF cosine of `new` (weighed as `vector`) and `member` in each space (see `_space_idf`)."""
        s = self.settings
        products = vector.gather(member.ids) * self._cached_vector(member)
        weights = (s.lead_weight, s.name_weight, s.phrase_weight, s.word_weight)
        total = sum(weights)
        runs = member.bounds
        # Each space is scaled to length sqrt(weight / total): its dot product is that share of its cosine.
        cosines = [
            float(products[runs[n] : runs[n + 1]].sum()) * total / weight if weight > 0 else 0.0
            for n, weight in enumerate(weights)
        ]
        return cosines[0], cosines[1], cosines[2], cosines[3]

    def _pair_vector(self, new: _Doc, vector: _Vector, member: _Doc) -> np.ndarray:
        assert new.facts is not None and member.facts is not None
        return pair_features(self._space_cosines(vector, member), new.facts, member.facts)

    def _pair_probability(self, new: _Doc, vector: _Vector, member: _Doc) -> float:
        """The pair model's probability that `new` and `member` report one event."""
        assert self.pair_model is not None and new.facts is not None and member.facts is not None
        model = self.pair_model.for_pair(new.facts, member.facts, self.settings.min_rewrite_terms)
        return model.probability(self._pair_vector(new, vector, member))

    def refresh_model(self) -> None:
        """Use the pair model saved with this code (an index loaded from disk keeps its own copy)."""
        if self.settings.use_pair_model:
            self.pair_model = load_model()

    def content_words_of(self, doc_id: str) -> int:
        return self._docs[self._by_doc_id[doc_id]].content_words

    def pair_features_of(self, doc_a: str, doc_b: str) -> np.ndarray:
        """The pair features of two indexed documents, `doc_a` weighed as a new one (training, explaining)."""
        self._refresh_vectors()
        a, b = self._docs[self._by_doc_id[doc_a]], self._docs[self._by_doc_id[doc_b]]
        return self._pair_vector(a, self._weigh(a), b)

    def _similarity_bound(self, new: _Doc, vector: _Vector, members: list[_Doc]) -> float:
        """An upper bound of the average similarity of `new` to `members`, from shared terms alone.

        Per space, Cauchy-Schwarz over the k terms a member shares with `new`: its weights there
        have length at most sqrt(weight / total * k / (norm_floor_terms + k)), whatever IDF they
        were weighed with (each IDF is at most log N, the floor is norm_floor_terms * (log N)**2).
        """
        s = self.settings
        weights = (s.lead_weight, s.name_weight, s.phrase_weight, s.word_weight)
        total = sum(weights)
        bound = 0.0
        for member in members:
            gathered = vector.gather(member.ids)
            runs = member.bounds
            for n, weight in enumerate(weights):
                shared = gathered[runs[n] : runs[n + 1]]
                shared = shared[shared > 0]
                k = len(shared)
                if k:
                    bound += math.sqrt(weight / total * k / (s.norm_floor_terms + k) * math.fsum((shared * shared).tolist()))
            if s.title_weight and new.title and member.title:
                bound += s.title_weight
        return bound / len(members)

    def _in_window(self, a: float | None, b: float | None) -> bool:
        if a is None or b is None:
            return True
        return abs(a - b) <= self.settings.window_days * _DAY

    def _candidate_stories(self, new: _Doc) -> list[str]:
        """Stories of the documents sharing most salient terms with `new`, within its window.

        The candidates come from the postings of its salient terms alone (never from a scan of the
        index): the documents of each posting inside the window (cut by binary search on its
        publication times), the `max_candidates` with the most evidence kept (the sum over the shared
        terms of log(max_term_docs / documents of the window holding the term): a large window
        brings chance overlaps on common words, which rank below a shared rare name).
        """
        s = self.settings
        found: list[np.ndarray] = []     # per useful term: the keys of its documents in the window
        weights: list[np.ndarray] = []   # and log(cap / their number), repeated for each
        postings = self._postings
        for term in new.salient:
            posting = postings.get(term)
            if posting is None:
                continue
            keys = posting.within(new.published, s.window_days * _DAY, s.max_term_docs)
            if keys is None:
                # Common in the window (a large history makes chance overlaps of such terms
                # frequent): no evidence of a shared story, and the cost would grow with the index.
                continue
            if not len(keys):
                continue
            # The fewer documents of the window hold the term, the more a shared one says.
            found.append(keys)
            weights.append(np.full(len(keys), math.log((s.max_term_docs + 1.0) / len(keys))))
        if not found:
            return []
        # Per candidate: the shared terms, and the evidence (summed in term order, in one array pass).
        keys, inverse, shared = np.unique(np.concatenate(found), return_inverse=True, return_counts=True)
        evidence = np.bincount(inverse, weights=np.concatenate(weights), minlength=len(keys))
        enough = shared >= s.min_shared_salient
        keys, shared, evidence = keys[enough], shared[enough], evidence[enough]
        # Most evidence first, then most shared terms, then the newest.
        ranked = keys[np.lexsort((-keys, -shared, -evidence))]
        stories: dict[str, None] = {}
        taken = 0
        for key in ranked.tolist():
            other = self._docs[key]
            stories.setdefault(other.story_id, None)
            taken += 1
            if taken >= s.max_candidates or len(stories) >= s.max_candidate_stories:
                break
        return list(stories)

    def _story_sample(self, story_id: str, published: float | None) -> list[_Doc]:
        """Members a document is averaged against: distinct texts in its window, newest first.

        Exact and near copies repeat another member's text; averaging over them would weigh a
        story by how often one article was reprinted.
        """
        distinct: list[_Doc] = []
        copies: list[_Doc] = []
        for key in reversed(self._stories.get(story_id, {})):
            member = self._docs[key]
            if self._in_window(published, member.published):
                (distinct if member.link in ("original", "rewrite") else copies).append(member)
                if len(distinct) >= self.settings.max_story_sample:
                    break
        return distinct or copies[: self.settings.max_story_sample]

    def _similarity(self, new: _Doc, vector: _Vector, member: _Doc) -> float:
        """The dot product of the weighted vectors of `new` and `member` (see `_space_idf`).

        The member's vector is an array over its term ids (in sorted term order); `new`'s weights
        are gathered onto them by a binary search of its sorted ids, and the sum runs in the
        member's term order (deterministic).
        """
        weights = self._cached_vector(member)
        gathered = vector.gather(member.ids)
        score = float(gathered @ weights)
        weight = self.settings.title_weight
        if weight and new.title and member.title:
            score += weight * fuzz.token_set_ratio(new.title, member.title) / 100.0
        return score

    # -- weighting -----------------------------------------------------------------------------

    def _refresh_vectors(self) -> None:
        """Drop the cached vectors when the corpus has grown by a quarter since they were made.

        Re-weighting every stored document whenever the IDF moves would cost O(index) per add;
        between refreshes a cached vector is at most a quarter of the corpus behind.
        """
        if self._corpus_size > self._vectors_size + max(1, self._vectors_size // 4):
            self._vectors_size = self._corpus_size
            self._vector_cache.clear()

    def _space_idf(self, doc: _Doc) -> tuple[np.ndarray, dict[str, float], tuple[int, ...]]:
        """IDF of each term of `doc` (0 where not positive), the scale of each space, the space runs.

        Binary TF-IDF per space, each space scaled to length sqrt(weight / total weight): the
        dot product of two such vectors is the weighted mean of the per-space cosines.
        IDF: the corpus plus `prior_docs` pseudo-documents of general English (wordfreq). With a
        few documents the background tells 'Witkoff' from 'report'; as the corpus grows it takes
        over, and the words a whole stream shares lose their weight. `doc.ids` follow the sorted
        terms, so each space ("l:", "n:", "p:", "w:") is one run of them; the work is one gather
        of the document frequencies at its ids and array arithmetic, not a loop over the terms.
        """
        s = self.settings
        bounds = doc.bounds
        lead_end, name_end, pair_end = bounds[1], bounds[2], bounds[3]
        log_docs = math.log(self._corpus_size + s.prior_docs + 1.0)
        # A lead word is as rare as the same word anywhere: one document frequency for both.
        counts = self._terms.df
        df = np.empty(len(doc.ids), dtype=np.float64)
        df[:lead_end] = counts[doc.lead_base]
        df[lead_end:] = counts[doc.ids[lead_end:]]
        df[:name_end] += doc.background[:name_end]
        df[pair_end:] += doc.background[name_end:]
        idf = log_docs - np.log(df + 1.0)
        np.maximum(idf, 0.0, out=idf)
        squares = idf * idf
        # A space of a handful of terms (an article with two numbers and no names) would reach
        # cosine 1 on one shared term: every norm gets `norm_floor_terms` terms of top IDF.
        floor = s.norm_floor_terms * log_docs**2
        weights = (s.lead_weight, s.name_weight, s.phrase_weight, s.word_weight)
        total = sum(weights)
        scales: dict[str, float] = {}
        for n, space in enumerate(_RUN_SPACES):
            a, b = bounds[n], bounds[n + 1]
            if weights[n] > 0 and b > a:
                scales[space[0]] = math.sqrt(weights[n] / total) / math.sqrt(floor + float(squares[a:b].sum()))
            else:
                scales[space[0]] = 0.0
        return idf, scales, bounds

    def _weights(self, doc: _Doc) -> np.ndarray:
        """The weighted vector of `doc` as an array over `doc.terms`: idf * scale of its space."""
        idf, scales, bounds = self._space_idf(doc)
        return idf * np.repeat([scales[space[0]] for space in _RUN_SPACES], np.diff(bounds))

    def _weigh(self, doc: _Doc) -> _Vector:
        """The weighted vector of `doc`: its term ids of positive weight (sorted) and their weights."""
        values = self._weights(doc)
        keep = values > 0
        ids, values = doc.ids[keep], values[keep]
        order = np.argsort(ids, kind="stable")
        return _Vector(ids[order], values[order])

    def _cached_vector(self, doc: _Doc) -> np.ndarray:
        """The weighted vector of a stored document (an array over its terms), kept between adds."""
        vector = self._vector_cache.get(doc.key)
        if vector is None:
            vector = self._vector_cache[doc.key] = self._weights(doc)
            if len(self._vector_cache) > self.settings.vector_cache_size:
                self._vector_cache.popitem(last=False)
        else:
            self._vector_cache.move_to_end(doc.key)
        return vector

    # -- indexing ------------------------------------------------------------------------------

    def _make_doc(
        self, doc: DedupDoc, text: _Text, cut: _LineTerms, counted: bool, known: dict[str, int] | None = None
    ) -> _Doc:
        full = cut.terms(list(range(len(text.body))))
        own_lines = self._own_lines(text)
        own = cut.terms(own_lines) if own_lines and len(own_lines) < len(text.body) else full
        terms = tuple(sorted(own))   # words, names and lead terms come interned
        bounds = (0, *(bisect_left(terms, space) for space in _RUN_SPACES[1:]), len(terms))
        table = self._terms
        key, self._next_key = self._next_key, self._next_key + 1
        made = _Doc(
            key=key,
            doc_id=doc.doc_id,
            published=_timestamp(doc.published),
            title=normalise_text(doc.title),
            ids=table.ids(terms, known),
            bounds=bounds,
            lead_base=table.ids([t[2:] for t in terms[: bounds[1]]], known),
            background=self._background(terms),
            df_only=table.ids([t for t in full - own if not t.startswith("l:")], known),
            line_hashes=frozenset(text.line_hashes),
            salient=self._salient(terms),
            content_words=bounds[4] - bounds[3],
            story_id="",
            link="",
            counted=counted,
        )
        made.facts = facts_from_terms(terms, made.published, made.content_words)
        for ids in made.held_ids():
            table.hold(ids, 1)
        return made

    def _background(self, terms: tuple[str, ...]) -> np.ndarray:
        """The background df of the lead (of its base term), name and word terms of sorted `terms`.

        Fixed for the life of the document, so weighing it later needs only the corpus counts.
        """
        s = self.settings
        name_end, pair_end = bisect_left(terms, "p:"), bisect_left(terms, "w:")
        lead_end = bisect_left(terms, "n:")
        spaced = chain((t[2:] for t in terms[:lead_end]), islice(terms, lead_end, name_end), islice(terms, pair_end, None))
        count = name_end + len(terms) - pair_end
        return np.fromiter(
            map(_word_background_df, spaced, repeat(s.prior_docs), repeat(s.prior_doc_length)), dtype=np.float32, count=count
        )

    def _own_lines(self, text: _Text) -> list[int]:
        """The body lines that are the document's own, not chrome shared with other documents.

        A line already seen in another document is chrome ("Sign up for our newsletter ...") -
        unless most of the body was seen, as in a partial copy, whose shared lines are its story;
        there only lines seen in `chrome_min_docs` documents or more go.
        """
        seen = [self._line_docs[h] for h in text.line_hashes]
        partial_copy = 2 * sum(1 for n in seen if n) > len(seen)
        limit = self.settings.chrome_min_docs if partial_copy else 1
        return [i for i, n in enumerate(seen) if n < limit]

    def _salient(self, terms: tuple[str, ...]) -> tuple[str, ...]:
        """The rarest words and names in general English: stable as the corpus grows, unlike IDF."""
        s = self.settings
        prior, length = s.prior_docs, s.prior_doc_length
        names = islice(terms, bisect_left(terms, "n:"), bisect_left(terms, "p:"))
        words = islice(terms, bisect_left(terms, "w:"), None)
        ranked = heapq.nsmallest(
            s.salient_terms, ((_word_background_df(t, prior, length), t) for t in chain(names, words))
        )
        return tuple(t for _, t in ranked)

    def _count(self, ids: np.ndarray, sign: int = 1) -> None:
        self._terms.count(ids, sign)
        self._corpus_size += sign

    def _index(self, doc: _Doc, text: _Text, assignment: StoryAssignment) -> None:
        doc.story_id, doc.link = assignment.story_id, assignment.link
        key = doc.key
        self._docs[key] = doc
        self._assignments[key] = assignment
        self._by_doc_id[doc.doc_id] = key
        self._copies.insert(key, text)
        self._stories.setdefault(doc.story_id, {})[key] = None
        postings = self._postings
        for term in doc.salient:
            posting = postings.get(term)
            if posting is None:
                posting = postings[term] = _Posting()
            posting.add(key, doc.published)
        if doc.counted:
            self._line_docs.update(doc.line_hashes)
        if doc.published is not None:
            heapq.heappush(self._by_age, (doc.published, key))
            self._newest = doc.published if self._newest is None else max(self._newest, doc.published)
        self._retain()

    def _retain(self) -> None:
        """Evict beyond `max_history` documents (the first added first) and beyond `retention_days`.

        The age of a document is taken against the newest publication date indexed, not the
        clock, so that a batch of old documents is folded as it was when they were new.
        """
        while len(self._docs) > self.settings.max_history:
            self._evict(next(iter(self._docs)))
        days = self.settings.retention_days
        if days is not None and self._newest is not None:
            self._evict_published_before(self._newest - days * _DAY)
        if len(self._by_age) > 2 * len(self._docs) + 64:
            # Entries of documents evicted by count: drop them, so the heap stays within the bound.
            self._by_age = [(when, key) for when, key in self._by_age if key in self._docs]
            heapq.heapify(self._by_age)

    def _evict_published_before(self, horizon: float) -> None:
        heap = self._by_age
        while heap and heap[0][0] < horizon:
            _, key = heapq.heappop(heap)
            if key in self._docs:
                self._evict(key)

    def _evict(self, key: int) -> None:
        doc = self._docs.pop(key)
        del self._assignments[key]
        if self._by_doc_id.get(doc.doc_id) == key:
            del self._by_doc_id[doc.doc_id]
        self._copies.remove(key)
        self._vector_cache.pop(key, None)
        _discard(self._stories, doc.story_id, key)
        postings = self._postings
        for term in doc.salient:
            posting = postings.get(term)
            if posting is not None and posting.remove(key, doc.published):
                del postings[term]
        if doc.counted:
            self._count(doc.df_ids(), -1)
            self._line_docs.subtract(doc.line_hashes)
            for h in doc.line_hashes:
                if self._line_docs[h] <= 0:
                    del self._line_docs[h]
        held = doc.held_ids()
        for ids in held:
            self._terms.hold(ids, -1)
        self._terms.release(np.concatenate(held))


def _discard(table: dict[str, dict[int, None]], name: str, key: int) -> None:
    members = table.get(name)
    if members is not None:
        members.pop(key, None)
        if not members:
            del table[name]


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
    return [decided[doc.doc_id] for doc in docs]
