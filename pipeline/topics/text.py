"""Article text for matching: site chrome removed, words normalised, the lead found, every word
indexed with its zone (title, lead, body)."""

from __future__ import annotations

import bisect
import dataclasses
import re
from dataclasses import dataclass

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
    r"|trending(?:\ now)?|watch|listen|don'?t\ miss|breaking(?:\ news)?|live(?:\ updates)?|latest(?:\ news)?"
    r"|just\ in|developing(?:\ story)?)\s*[:|–—-]"
    r"|^\d+\ (?:responses?|comments?)\ to\b",
    re.IGNORECASE | re.VERBOSE,
)
# Headers of link lists ("Most read", "Related stories", a news ticker): the header and the headline
# lines under it, up to the next sentence, are chrome.
_LIST_HEADER = re.compile(
    r"^(?:most\ (?:read|popular|viewed|shared)|related(?:\ (?:articles?|stories|posts|coverage|news|content|topics))?"
    r"|recommended(?:\ (?:for\ you|stories|articles))?|trending(?:\ (?:now|stories|news))?|more\ (?:from|on|stories|news)\b.*"
    r"|you\ (?:may|might)\ also\ (?:like|be\ interested\ in)|top\ stories|latest(?:\ (?:news|stories|headlines))?"
    r"|editor'?s\ picks?|breaking(?:\ news)?|news\ ticker|live\ updates|what\ to\ read\ next|read\ next"
    r"|in\ other\ news|popular\ (?:now|stories)|must\ reads?)[\s:.!]*$",
    re.IGNORECASE | re.VERBOSE,
)
_LIST_ITEM_WORDS = 25
# Paywall and subscription banners, whatever their length.
_PAYWALL = re.compile(
    r"\b(?:subscribe\ (?:now\ )?to\ (?:continue|keep)\ reading|(?:this|the)\ (?:article|story|content)\ is\ (?:for|available\ to|reserved\ for)\ (?:paid\ )?(?:subscribers|members)"
    r"|already\ a\ (?:subscriber|member)|you\ have\ reached\ (?:your|the)\ (?:free\ )?(?:article\ )?limit|free\ articles?\ (?:left|remaining)"
    r"|to\ continue\ reading,?\ (?:subscribe|log\ ?in|sign\ in)|unlock\ (?:this|full)\ (?:article|access)|become\ a\ (?:subscriber|member)\ (?:to|for)"
    r"|start\ your\ (?:free\ )?trial)\b",
    re.IGNORECASE | re.VERBOSE,
)
# A lone label in capitals ("DEADLINE", "LIVE", "EXCLUSIVE"): a section or badge, not text.
_CAPS_LABEL = re.compile(r"^[A-Z][A-Z&'’ -]{1,30}$")
_COOKIE = re.compile(r"\bcookies?\b", re.IGNORECASE)
_COOKIE_CONTEXT = re.compile(
    r"\b(?:accept|consent|privacy|browsing|experience|agree|settings|preferences)", re.IGNORECASE
)
_NAV_SEPARATOR = re.compile(r"\s*(?:\||•|·|»|›)\s*")
_NAV_MARK = re.compile(r"[|•·»›]")
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
    if words <= 80 and _COOKIE.search(line) and _COOKIE_CONTEXT.search(line):
        return True
    if words <= 40 and _PAYWALL.search(line):
        return True
    if not _NAV_MARK.search(line):  # no separator, no menu
        return False
    items = [s for s in _NAV_SEPARATOR.split(line) if s]
    return len(items) >= 3 and all(len(s.split()) <= _NAV_ITEM_WORDS for s in items)


def _is_link_like(line: str) -> bool:
    """A menu entry: a few words, no sentence punctuation."""
    return (
        len(line.split()) <= _NAV_ITEM_WORDS
        and len(line) <= _NAV_ITEM_CHARS
        and not re.search(r"[.!?\"”]$", line)
    )


def _is_sentence(line: str) -> bool:
    return len(line.split()) > _LIST_ITEM_WORDS or bool(re.search(r"[.!?\"”’]$", line))


def _drop_link_lists(lines: list[str]) -> list[str]:
    """Drop a link-list header ("Most read", "Related stories", "Breaking news") and the headline
    lines that follow it, up to the first line that reads as a sentence."""
    out: list[str] = []
    in_list = False
    for line in lines:
        if line and _LIST_HEADER.match(line):
            in_list = True
            continue
        if in_list:
            if not line:
                continue
            if not _is_sentence(line):
                continue
            in_list = False
        out.append(line)
    return out


# Markup that some sources leave in their text (statements published as Markdown, pasted HTML):
# a link's target, a bare URL and a tag are not the article's words ("inflation-tariffs-recession"
# in a link target is no tariff), and lines wrapped at a fixed width are not paragraphs.
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\(\s*[^)\s]*\s*\)")
_BARE_URL = re.compile(r"(?:https?://|www\.)\S+")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]{0,300}>")
_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)\*(?=\w)|(?<=\w)\*(?!\w)")
_BLOCK_START = re.compile(r"^\s*(?:[-*+•]\s|\d{1,3}[.)]\s|#|>|\|)")
_WRAP_MIN, _WRAP_MAX = 50, 80  # a wrapped line's length, in characters
_WRAPPED_SHARE = 0.5


def _is_wrapped(lines: list[str]) -> bool:
    """Whether the text is hard-wrapped: paragraphs are separated by blank lines, most lines are of
    one width and none is much longer (lines holding a URL, which cannot be broken, left out)."""
    full = [ln.strip() for ln in lines if ln.strip() and "://" not in ln]
    if len(full) < 4 or not any(not ln.strip() for ln in lines):
        return False
    if max(len(ln) for ln in full) > _WRAP_MAX + 20:
        return False
    return sum(_WRAP_MIN <= len(ln) <= _WRAP_MAX for ln in full) / len(full) >= _WRAPPED_SHARE


def normalise_markup(text: str) -> str:
    """Plain text from Markdown or HTML remnants: a link becomes its words, URLs and tags go, and
    a hard-wrapped text gets one line per paragraph (or list item) again."""
    wrapped = _is_wrapped(text.splitlines())
    if "](" in text:
        text = _MD_LINK.sub(r"\1", text)
    if "://" in text or "www." in text:
        text = _BARE_URL.sub(" ", text)
    if "<" in text:
        text = _HTML_TAG.sub(" ", text)
    if "*" in text or "__" in text:
        text = _EMPHASIS.sub("", text)
    if not wrapped:
        return text
    out: list[str] = []
    joining = False
    for line in text.splitlines():
        if not line.strip():
            joining = False
            out.append("")
        elif joining and not _BLOCK_START.match(line):
            out[-1] = f"{out[-1]} {line.strip()}"
        else:
            out.append(line.strip())
            joining = True
    return "\n".join(out)


def strip_chrome(text: str) -> str:
    """Drop site boilerplate lines; return the remaining non-blank lines joined by newlines.

    Removed: short lines that are known chrome ("Connect with us", "Post a Comment", "Read more",
    "Share this", "Key Takeaways", app-store badges, image alt texts), teaser lines pointing at
    other articles ("Related: ..."), cookie notices, menus on one line ("Home | World | ...") and
    navigation lists: runs of three or more short link-like lines (blank lines in between do not
    break a run). Article sentences are never short link-like lines, so they survive. Markup is
    made plain first (`normalise_markup`).
    """
    lines = _drop_link_lists([ln.strip() for ln in normalise_markup(text).splitlines()])
    lines = [ln for ln in lines if ln and not _is_chrome_line(ln)]
    if len(lines) > 1:  # a lone capitalised label among other lines; a one-line text is kept
        lines = [ln for ln in lines if not (len(ln.split()) <= 3 and _CAPS_LABEL.match(ln))]
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


# Apostrophes other than the plain one, read as the plain one.
_CURLY = ("’", "‘", "ʼ", "`")
# A dotted abbreviation ("U.S.", "U.K.") is one word, spelled without its dots; else letters and
# digits, with inner apostrophes ("don't", "Russia's").
_WORD_RE = re.compile(r"(?:[^\W\d_]\.){2,}|[^\W_]+(?:'[^\W_]+)*")


def _normalise(word: str) -> str:
    """Case-fold, drop dots and a possessive 's: `Russia` matches "Russia's" but not "Russian",
    `US` matches "U.S."."""
    return _normalise_plain(_plain_apostrophes(word))


def _normalise_plain(w: str) -> str:
    """`_normalise` of a word whose apostrophes are already plain."""
    w = w.casefold().replace(".", "")
    return w[:-2] if w.endswith("'s") else w


# Surface word -> normalised word. News repeats its words (an article's 700 words hold ~300
# distinct ones, and the same few thousand recur across articles), so each is normalised once;
# the table is emptied when it reaches its bound, so it never grows without limit.
_NORMS: dict[str, str] = {}
_NORMS_MAX = 200_000


def _words(text: str) -> list[tuple[str, int, int]]:
    """(normalised word, start, end) for each word; offsets index `text`.

    Hyphens split words ("pro-Kremlin" -> pro, kremlin), and queries are split the same way, so
    phrases written like the text match it.
    """
    norms = _NORMS
    if len(norms) > _NORMS_MAX:
        norms.clear()
    out = []
    for m in _WORD_RE.finditer(_plain_apostrophes(text)):
        g = m.group()
        w = norms.get(g)
        if w is None:
            w = norms[g] = _normalise_plain(g)
        s, e = m.span()
        out.append((w, s, e))
    return out


def _plain_apostrophes(text: str) -> str:
    """`text` with every curly apostrophe plain, by str.replace (str.translate with a table walks
    the text in Python-level steps; replace is C, and most texts hold one kind of apostrophe at
    most). Each replacement is one character for one, so offsets stay valid for `text`."""
    for curly in _CURLY:
        if curly in text:
            text = text.replace(curly, "'")
    return text


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

    _sorted: list[str] | None = None
    # Results of whole clauses already evaluated on this article, keyed by (clause, visible zones,
    # zones): the rules, the model's features and the prominence probes ask the same questions.
    # Probes made with dataclasses.replace share the dict; the key tells them apart.
    memo: dict = dataclasses.field(default_factory=dict)

    def sorted_words(self) -> list[str]:
        """The distinct words, sorted (for prefix look-ups); computed once per article."""
        if self._sorted is None:
            self._sorted = sorted(self.index)
        return self._sorted

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
    title_words = _words(title)
    text_words = _words(text)
    lead = _lead_span(text)
    everything = title_words + text_words
    norms = [w for w, _, _ in everything]
    # Text words sit in order, so the lead's words are one run: those starting inside the span.
    starts = [s for _, s, _ in everything]
    nt, nx = len(title_words), len(text_words)
    lead_from = bisect.bisect_left(starts, lead[0], lo=nt) - nt
    lead_to = bisect.bisect_left(starts, lead[1], lo=nt) - nt
    zones = ["title"] * nt + ["body"] * lead_from + ["lead"] * (lead_to - lead_from) + ["body"] * (nx - lead_to)
    index: dict[str, list[int]] = {}
    for i, w in enumerate(norms):
        hits = index.get(w)
        if hits is None:
            index[w] = [i]
        else:
            hits.append(i)
    return _Doc(
        title, text, norms,
        [*range(nt), *range(_ZONE_GAP, _ZONE_GAP + nx)],
        zones,
        starts,
        [e for _, _, e in everything],
        index, lead, raw_lines - len(text.splitlines()), nx,
    )
