"""Term building's word frequencies: the fast path gives what wordfreq itself gives."""

from __future__ import annotations

import re

from wordfreq import get_frequency_dict, zipf_frequency

from pipeline.stories import text


def test_listed_lowercase_words_get_wordfreqs_own_zipf_frequency():
    # The fast path answers a lowercase ASCII word from its frequency band, without wordfreq's
    # tokenizer. Every band, and a spread of the words in it, must give zipf_frequency's figure
    # (all 289,023 such words of wordfreq 3.1 were checked once when the path was written).
    text._zipf.cache_clear()
    words = [w for w in get_frequency_dict("en") if re.fullmatch(r"[a-z]+", w)]
    first_of_band: dict[float, str] = {}
    for w in words:
        first_of_band.setdefault(get_frequency_dict("en")[w], w)
    sample = set(words[::25]) | set(first_of_band.values())
    assert len(first_of_band) > 300
    wrong = [(w, text._zipf(w), zipf_frequency(w, "en")) for w in sorted(sample) if text._zipf(w) != zipf_frequency(w, "en")]
    assert wrong == []


def test_unlisted_and_other_words_still_go_through_wordfreq():
    text._zipf.cache_clear()
    for word in ("qzxwitkoffqz", "Witkoff", "kyiv's", "naïve", "über", "covid19", "e-mail", "the"):
        assert text._zipf(word) == zipf_frequency(word, "en"), word
