"""Alert evidence is compact, and the outlets an alert lists agree with the story it is about."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipeline.alert.dispatch import dispatch
from pipeline.alert.message import compact_evidence, render_slack, render_text
from pipeline.alert.notifiers.console import ConsoleNotifier
from pipeline.models import Article, Evidence, FeedItem, FeedState, ItemResult, StoryAssignment, TopicMatch
from pipeline.store import Store

NOW = datetime.now(UTC)
QUERY = ('(talks OR negotiat* OR ceasefire* OR "peace in Europe") NEAR/15 (Russia* OR Ukrain* OR Putin OR Kyiv '
         'OR Moscow OR Kremlin)')
ZONES = {"title": ("Putin",), "lead": ("Ukraine", "talks"), "body": ("Putin", "ceasefire", "negotiations", "Kyiv")}


def _evidence() -> tuple[Evidence, ...]:
    return (
        *(Evidence("rule", f"negotiations: {QUERY}", zone, spans) for zone, spans in ZONES.items()),
        Evidence("exemplar", "004_48750b08ecc4a78b.txt similarity 0.99", "body", ("Zelensky", "Putin")),
    )


def _result(n: int, site: str) -> ItemResult:
    it = FeedItem(f"i{n}", f"f{n}", f"g{n}", f"https://{site}.example/{n}", f"t{n}", "", NOW, NOW)
    art = Article(f"a{n}", it.item_id, it.feed_id, it.url, it.url, "Talks on a ceasefire", "text", NOW, None, site,
                  "en", f"h{n}", NOW)
    match = TopicMatch(art.article_id, "peace-talks", 0.9, "alert", _evidence(), alert=True)
    link = "original" if n == 0 else "reprint"
    return ItemResult(it, "stored", None, art, StoryAssignment(art.article_id, "s1", link, None if n == 0 else "a0", 0.9),
                      (match,))


class Capture(ConsoleNotifier):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list = []

    def send(self, msg):  # type: ignore[no-untyped-def]
        self.sent.append(msg)
        return None


def test_one_story_in_three_outlets_gives_one_short_alert_listing_all_three(tmp_path: Path) -> None:
    results = [_result(n, site) for n, site in enumerate(("Wire Desk", "Capitol Report", "Albion Blog"))]
    with Store.open(tmp_path / "d") as s:
        for r in results:
            s.record_poll(FeedState(r.item.feed_id), fetched_at=NOW, outcome="ok", status=200, error_kind=None,
                          error=None, duration_ms=1, items=[r.item])
        s.load_batch("b1", results, now=NOW, runner="t", started_at=NOW)
        cap = Capture()
        assert dispatch(s, [cap], max_attempts=3).sent == 1
    (msg,) = cap.sent
    text = render_text(msg)
    # The summary of the same story names three outlets; so does its alert now (it said "Outlets (1)").
    assert "Outlets (3): Wire Desk, Albion Blog, Capitol Report" in text  # the alert's own first
    # The query is not repeated once per zone: one line per rule, zones and words merged.
    assert QUERY not in text and text.count("rule negotiations") == 1
    assert "rule negotiations in title, lead, body: 'Putin', 'Ukraine', 'talks', 'ceasefire', 'negotiations', 'Kyiv'" in text
    assert "exemplar 004_48750b08ecc4a78b.txt similarity 0.99 in body: 'Zelensky', 'Putin'" in text
    assert len(text) < 900, text
    body = render_slack(msg)["blocks"][-1]["text"]["text"]
    assert QUERY.replace("<", "&lt;") not in body and body.count("rule negotiations") == 1


def test_compact_evidence_keeps_lines_of_another_shape() -> None:
    assert compact_evidence(("similar to 3 earlier stories", "  ", "rule r in title: 'a'", "rule r in body: 'A', 'b'")) == [
        "similar to 3 earlier stories", "rule r in title, body: 'a', 'b'"]
