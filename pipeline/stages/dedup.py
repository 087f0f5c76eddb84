"""Story folding, the stage's face: the rules live in the `pipeline.stories` package.

`pipeline.stories` holds one module per concern (settings, urls, text, copies, index, pair
model); this module re-exports the names the stages, the CLI and the tests import from here.
"""

from __future__ import annotations

from pipeline.stories import (
    DedupSettings,
    StoryIndex,
    canonical_url,
    fold_stories,
    normalise_text,
    story_id_for,
    text_hash,
)
from pipeline.stories.text import _background_df, _cut, _LineTerms  # noqa: F401 - used by tests

__all__ = [
    "DedupSettings",
    "StoryIndex",
    "canonical_url",
    "fold_stories",
    "normalise_text",
    "story_id_for",
    "text_hash",
]
