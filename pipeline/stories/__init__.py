"""Story folding: decide which documents are the same story.

Contract
--------
`StoryIndex.add(doc)` decides the story of one `DedupDoc` against every document indexed before it,
then indexes it. The decision walks a ladder and records the rung that linked it as
`StoryAssignment.link`:

1. ``exact_copy`` -- same canonical URL as an indexed document (the same article), score 1.0;
2. ``exact_copy`` -- same normalised text under another URL, score 1.0;
3. ``near_copy`` -- a reprint: verbatim, trimmed, with extra chrome, an updated paragraph or a new
   headline. Candidates share one of the smallest shingle hashes of the other text; the decision is
   the containment ``|A & B| / min(|A|, |B|)`` of the shingle sets, estimated from bottom-k
   sketches (exact for texts of up to `copy_sketch` shingles; a copy trimmed to 60% scores 1.0);
4. ``rewrite`` -- another outlet's rewrite, or a translation, of the same story. Candidates share
   specific terms with the document and fall within `window_days` of it (when both dates are
   known). The similarity is a weighted mean of TF-IDF cosines over content words, names and
   numbers, adjacent word pairs (the same facts in similar phrasing) and the lead (title and
   first lines, where a report states its event). The document joins the story with the best
   *average* similarity over its members (average link: stories do not chain), if that average
   reaches `rewrite_threshold`; the score is that average;
5. ``original`` -- a new story, id ``"s_" + sha1(doc_id of its first document)[:12]``; the score is
   the best average it was refused with (0.0 when no story was a candidate).

IDF comes from the documents seen so far, exact and near copies counted once, blended with a
general-English background from wordfreq so that a handful of documents is enough (a stream fed
to `add` alone builds its IDF as it goes; `observe` gives a batch the IDF of the whole batch
first, as `fold_stories` does). Chrome does
not count: lines under `min_line_words` words ("Connect with us", app badges) are dropped, and so
are lines a document shares verbatim with another document it is not a copy of (a site's
newsletter blurb, comment-form text).

Determinism: the same documents in the same order give the same result (no randomness, no
clock). `fold_stories` observes the whole batch first and adds it sorted by (published, doc_id),
so its result does not depend on the input order. The module is pure Python (no Beam, no
database): the Beam stage and ``newsmon dedup`` share it.

Cost: the work per add is bounded by the candidate limits of `DedupSettings`, never a scan of the
index: near-copy candidates come from postings of the `copy_probes` smallest shingle hashes of each
document (at most `max_copy_candidates`, those sharing most first, then the newest), rewrite
candidates from postings of each document's rarest words and names (the newest 4 x
`max_term_docs` of each), restricted to its window; terms in more than `max_term_docs` documents
of the window are no evidence; candidates are ranked by their evidence, the sum over the shared
terms of log(max_term_docs / the term's documents in the window), so a shared rare name outweighs
shared common words, and at most `max_candidates` documents and `max_candidate_stories` stories
are scored. Terms are 24-bit hashed ids; document frequencies live in sorted arrays, so weighing a
document is a binary search of its ids plus array arithmetic, whatever the size of the index; a
member is scored by gathering the new document's weights onto the member's cached weight array.
bench/bench_dedup_scale.py measures it with 1,000 and 100,000 stored articles.

Memory: no Python object per stored document, term or posting (pipeline/stories/columns.py).
A stored document is a row of fixed columns, its term ids run by run (3 bytes each) and line
hashes (4) in one flat byte buffer (its lead terms as bit masks over the runs they copy), its
bottom-k copy sketch (3 bytes a hash) in another, its ids and story in one
bytes buffer, and 8-byte entries in sorted posting arrays; the term statistics are sorted arrays
of 16 bytes a key, the word-pair and line counts 5 bytes a key (a one-byte count, larger ones
aside). Most of a news article's bytes are its term ids (3 bytes each: content words, names,
word pairs); `pair_sample` keeps a uniform sample of the pairs (one in 16), so their ids and counts
(mostly new keys) are a small part. The index is saved as a few dozen arrays plus an append-only log
of what each batch changed (pipeline/stories/persist.py).

Retention: the index keeps at most `max_history` documents, evicting the first added, and, with
`retention_days`, none published that long before the newest one; an evicted document leaves the
term, pair and line statistics at once and the postings at their next merge (until then they are
skipped: every look-up checks that a key is alive).
"""

from pipeline.stories.index import StoryIndex, fold_stories
from pipeline.stories.settings import DedupSettings
from pipeline.stories.text import normalise_text, story_id_for, text_hash
from pipeline.stories.urls import canonical_url

__all__ = [
    "DedupSettings",
    "StoryIndex",
    "canonical_url",
    "fold_stories",
    "normalise_text",
    "story_id_for",
    "text_hash",
]
