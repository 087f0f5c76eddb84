"""The knobs of story folding (`DedupSettings`): one frozen dataclass the other modules read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DedupSettings:
    """Knobs of story folding. Defaults fitted with bench/eval_dedup.py (seeds and ECB+)."""

    window_days: float = 3.0              # rewrites only within +-window of publication (both dates known)
    # near copies
    near_copy_containment: float = 0.7    # shingle containment of a near copy; 0.7 lets an updated paragraph pass
    near_copy_min_ratio: float = 0.25     # smaller/larger shingle count: a brief inside a roundup is no copy
    min_shingles: int = 10                # fewer shingles than this: too short to call a near copy
    shingle_size: int = 5
    copy_sketch: int = 64                 # smallest shingle hashes kept per document (containment estimate)
    copy_probes: int = 8                  # of them, filed as near-copy candidates (a 60% trim misses all: p 0.4**8)
    # rewrites: score = weighted mean of the four cosines (the pair model's features)
    rewrite_threshold: float = 0.065      # average score over a story's members that makes a rewrite
    word_weight: float = 0.15             # content words (stemmed)
    name_weight: float = 0.15             # capitalised words and numbers
    phrase_weight: float = 0.7            # pairs of adjacent content words
    pair_sample: int = 16                 # word pairs kept: those whose id is 0 modulo this (a uniform sample; 8 and 16 tie out of fold, of none, 4, 8, 12, 16: quality/README.md)
    lead_weight: float = 0.2              # words and names of the title and the first lines
    lead_lines: int = 2
    min_line_words: int = 5               # shorter lines are chrome or subheads and do not count
    chrome_line_docs: int = 2             # a line in this many other documents is chrome, or in one of its own site (1, 2, 3 compared out of fold: quality/README.md)
    chrome_min_docs: int = 3              # a line in this many other documents is chrome, even in a partial copy
    stop_zipf: float = 6.0                # words this frequent in English (the, said, would) are no content
    prior_docs: float = 3.0               # weight of the wordfreq background, in pseudo-documents
    prior_doc_length: float = 300.0       # words per document, to turn a word frequency into a df
    # fewer content words: a short text, for the pair model's "short" part (a feed entry's title and
    # description mostly are). 14 of 8, 14, 20 by the out-of-fold figures (pipeline/stories/train.py).
    min_rewrite_terms: int = 14
    min_short_terms: int = 3              # fewer content words than this: never a rewrite (pair model)
    # a short text's names of more letters than this are also filed by their first letters (its
    # names space only): a feed entry's "Zelenskiy" meets another's "Zelensky", "Ukrainian" meets
    # "Ukraine". Full articles keep exact names: matched loosely there (any length), events of one
    # kind in one place came closer (ECB+ out of fold, false merges 0.9% -> 2.8%). 6 of 0, 5, 6, 7, 8
    # by the out-of-fold figures (pipeline/stories/train.py; nested per held-out day: 6 in every fold).
    short_name_prefix: int = 6
    # once a batch is indexed, a story it opened joins the story its members, as a whole, pass the
    # threshold against (StoryIndex.merge_new_stories): splits by the order of arrival mend
    merge_stories: bool = True
    use_pair_model: bool = True           # the learned pair model decides rewrites (pipeline/stories/pairs.py)
    norm_floor_terms: float = 1.0         # pseudo-terms of top IDF in every norm: two shared terms are no story
    # cost bounds
    salient_terms: int = 30               # terms per document in the rewrite candidate index
    min_shared_salient: int = 2           # salient terms a candidate document must share
    max_term_docs: int = 300              # a term in more documents of the window is no candidate evidence
    max_candidates: int = 100             # candidate documents kept per add (most evidence shared)
    max_candidate_stories: int = 6        # stories scored per add (the most evidence first)
    max_story_sample: int = 20            # newest distinct members a document is averaged against
    vector_cache_size: int = 5_000        # weighted vectors kept between adds
    max_copy_candidates: int = 50         # LSH candidates (newest first) whose containment is computed
    # retention: what the index keeps, and so its memory (~1.9 kB of arrays per stored article of ~500 words)
    max_history: int = 100_000            # documents kept in the index (the first added evicted first)
    retention_days: float | None = None   # documents published this long before the newest one go
