"""The learned side of topics: a new topic from scratch (check, backtest, label, train, live), the
model's decisions and explanations, chrome that never counts, short texts, and the sense check."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.stages.topics import explain, load_topics, match_article, should_alert

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "new_topic"
TOPICS_DIR = ROOT / "seeds" / "topics"


@pytest.fixture(scope="module")
def topics():
    return {t.id: t for t in load_topics(TOPICS_DIR)}


def alerts(topic, title: str, text: str = "") -> bool:
    found = match_article("d", title, text, [topic])
    return bool(found) and should_alert(found[0], topic)


def _store_with_articles(data_dir: Path, articles: list[tuple[str, str, str]]) -> None:
    """A real store holding these (id, title, text) articles, one story each, no topic matches."""
    from pipeline.models import Article, FeedItem, FeedState, ItemResult, StoryAssignment
    from pipeline.store import Store

    now = datetime(2026, 3, 1, tzinfo=UTC)
    with Store.open(data_dir) as s:
        items = [FeedItem(f"i-{a}", "f", f"g-{a}", f"https://e.org/{a}", t, "", now, now) for a, t, _ in articles]
        s.record_poll(FeedState("f"), fetched_at=now, outcome="ok", status=200, error_kind=None, error=None,
                      duration_ms=0, items=items)
        results = [
            ItemResult(it, "stored", None,
                       Article(a, it.item_id, "f", it.url, it.url, title, text, now, None, "S", None, f"h-{a}", now),
                       StoryAssignment(a, f"s-{a}", "original", None, 1.0))
            for it, (a, title, text) in zip(items, articles, strict=True)
        ]
        s.load_batch("b1", results, now=now, runner="test", started_at=now)


def test_a_new_topic_in_an_afternoon(tmp_path: Path, capsys) -> None:
    """The README's walk-through: write a topic, check it, backtest it over history without alerting,
    label a stored article, train the model (which learns from that label), and go live."""
    from pipeline.store import Store

    tdir = tmp_path / "topics"
    tdir.mkdir()
    shutil.copy(FIXTURE / "grain-deal.yaml", tdir)
    data = tmp_path / "data"
    _store_with_articles(data, [
        ("a1", "Grain ships leave Odesa under the new corridor",
         "Three ships loaded with Ukrainian wheat left Odesa through the Black Sea corridor on Monday."),
        ("a2", "Silos hit in Izmail", "Drones hit grain silos in the port of Izmail, damaging cargo for export."),
        ("a3", "Central bank holds rates", "The central bank kept its key rate unchanged for a third month."),
    ])
    common = ["--data-dir", str(data), "--topics", str(tdir)]

    assert main(["topics", "check", "--topics", str(tdir)]) == 0
    assert "model: none" in capsys.readouterr().out

    # Backtest over history: two stories would alert; nothing is sent, and --apply marks them backfill.
    assert main(["topics", "backtest", "grain-deal", "--since", "2026-01-01", *common]) == 0
    out = capsys.readouterr().out
    assert "2 story alerts now against 0 sent; 2 would appear, 0 would disappear" in out
    assert main(["topics", "backtest", "grain-deal", "--since", "2026-01-01", "--apply", *common]) == 0
    assert "2 matches recorded as backfill" in capsys.readouterr().out
    with Store.open(data, read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM alert_outbox") == 0
        assert s.scalar("SELECT count(*) FROM topic_matches WHERE topic = 'grain-deal' AND backfill") == 2

    # An analyst's judgement is kept with who and when, and becomes a training example.
    assert main(["topics", "label", "a3", "grain-deal", "no", "--by", "ana", "--note", "rates", *common]) == 0
    assert main(["topics", "label", "missing", "grain-deal", "no", *common]) == 1
    assert "no stored article 'missing'" in capsys.readouterr().err
    with Store.open(data, read_only=True) as s:
        assert s.query("SELECT article_id, label, labelled_by FROM topic_labels")[1] == [("a3", "no", "ana")]

    assert main(["topics", "train", *common, "--corpus", str(FIXTURE / "grain-deal-labels.jsonl")]) == 0
    out = capsys.readouterr().out
    # 2 examples + 24 labelled texts + 1 label from the store.
    assert "grain-deal: trained on 27 texts" in out and "article:no 1" in out
    model_file = tdir / "grain-deal.model.json"
    saved = json.loads(model_file.read_text())
    assert saved["version"] == 1 and saved["weights"] and 0 < saved["threshold"] < 1

    topic = load_topics(tdir)[0]
    assert topic.model is not None and not topic.model_stale
    assert alerts(topic, "Ukraine ships wheat from Odesa through its Black Sea corridor")
    assert not alerts(topic, "Central bank cuts rates", "The central bank cut its key rate by half a point.")
    assert "model: P(about)" in explain("Grain corridor reopens", "Ships with grain left Odesa port.", topic)
    assert main(["topics", "check", "--topics", str(tdir)]) == 0
    assert "model: alert at P(about)" in capsys.readouterr().out

    # Renaming a rule leaves the model unusable: the topic scores by its rules and says so.
    yaml_file = tdir / "grain-deal.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("food-prices", "food-costs"))
    topic = load_topics(tdir)[0]
    assert topic.model is None and topic.model_stale
    assert main(["topics", "check", "--topics", str(tdir)]) == 0
    assert "STALE" in capsys.readouterr().out


def test_train_refuses_a_model_that_breaks_a_seed_or_example(tmp_path: Path, capsys) -> None:
    """`topics train` reviews the new model before writing it: what it changes on the labelled texts,
    and whether it still decides the topic's examples and seed articles as labelled. A seed labelled
    `no` that the new model would alert on keeps the old model (rc 1, the seed named); --force writes."""
    tdir = tmp_path / "topics"
    tdir.mkdir()
    shutil.copy(FIXTURE / "grain-deal.yaml", tdir)
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "labels.json").write_text(json.dumps({"topics": {"grain-deal": {"about": [], "mentions_only": []}}}))
    (seeds / "900_ships.txt").write_text(
        "Grain ships leave Odesa through the corridor\n"
        "Three bulk carriers loaded with Ukrainian wheat left the port of Odesa through the Black Sea grain "
        "corridor on Monday, the first grain shipments in weeks, port officials said.\n")
    common = ["--data-dir", str(tmp_path / "data"), "--topics", str(tdir), "--no-store",
              "--corpus", str(FIXTURE / "grain-deal-labels.jsonl"), "--corpus", str(seeds)]
    model_file = tdir / "grain-deal.model.json"

    assert main(["topics", "train", *common]) == 1
    out = capsys.readouterr().out
    assert "alerts on its 25 labelled texts (in sample)" in out and "decisions change" in out
    assert "NOT WRITTEN" in out and "seed 900_ships.txt (no) would alert" in out
    assert not model_file.exists()

    assert main(["topics", "train", *common, "--dry-run", "--force"]) == 0
    assert "not written (--dry-run)" in capsys.readouterr().out and not model_file.exists()

    assert main(["topics", "train", *common, "--force"]) == 0
    out = capsys.readouterr().out
    assert "written anyway (--force): grain-deal: seed 900_ships.txt (no) would alert" in out
    assert model_file.exists() and load_topics(tdir)[0].model is not None


def test_shipped_topics_carry_a_model_trained_on_their_current_rules(topics) -> None:
    for topic in topics.values():
        assert topic.model is not None, topic.id
        assert not topic.model_stale, f"{topic.id}: retrain with `newsmon topics train` (see quality/README.md)"


def test_evidence_names_the_models_reasons(topics) -> None:
    found = match_article(
        "d", "EU adopts new sanctions package against Russia",
        "The European Union adopted its 19th package of sanctions against Russia on Thursday, listing more "
        "shadow fleet tankers and lowering the price cap on Russian crude.", [topics["sanctions"]],
    )
    assert found and found[0].level == "alert"
    model = [e for e in found[0].evidence if e.kind == "model"]
    assert model and model[0].detail.startswith("P(about)")
    assert any(s.startswith("sanctions-on-russia") or s.startswith("vocabulary") for s in model[0].spans)


def test_headlines_alone_are_enough(topics) -> None:
    # Feed entries often carry a headline and nothing else.
    assert alerts(topics["sanctions"], "EU readies new sanctions package against Russia's shadow fleet")
    assert alerts(topics["peace-talks"], "Russian and Ukrainian delegations to meet in Istanbul for peace talks")
    assert alerts(topics["ultimatum"], "Trump gives Putin 10 days to agree a ceasefire or face tariffs")
    assert not alerts(topics["sanctions"], "EU readies new sanctions on Iran over drone sales")
    assert not alerts(topics["peace-talks"], "Israel and Hamas resume ceasefire talks in Cairo")


def test_an_ultimatum_needs_a_demand_tied_to_ending_the_war(topics) -> None:
    ultimatum = topics["ultimatum"]
    business = (
        "Lukoil given deadline to sell foreign assets",
        "The US Treasury gave Russia's Lukoil until December 13 to sell its foreign assets, extending a "
        "deadline set under the sanctions on Russian oil companies. Buyers have approached the company.",
    )
    assert not alerts(ultimatum, *business)
    assert not alerts(ultimatum, "Russia sets itself a deadline to take the town",
                      "Russian commanders set a deadline of the end of the month to capture the town, "
                      "a Ukrainian officer said, as fighting continued around it.")


def test_words_in_page_chrome_never_count(topics) -> None:
    body = (
        "The city council approved a new budget for public transport on Tuesday.\n"
        "Bus fares will stay the same next year, the mayor said, while two tram lines will be extended.\n"
    )
    chrome = (
        "Most read\n"
        "EU agrees new sanctions on Russia\n"
        "Trump gives Putin a deadline to end the war\n"
        "Peace talks between Russia and Ukraine resume in Istanbul\n"
        "Breaking: Kremlin rejects Trump's ultimatum on ceasefire\n"
        "DEADLINE\n"
        "Subscribe to continue reading: sanctions, ceasefire talks and the ultimatum explained.\n"
    )
    for topic in topics.values():
        assert not match_article("d", "Council approves transport budget", body + chrome, [topic]), topic.id


def test_a_label_given_while_the_daemon_holds_the_store_waits_and_counts(tmp_path: Path, capsys) -> None:
    from pipeline.store import Store
    from pipeline.store.labels import import_pending_labels, pending_labels
    from pipeline.store.lock import WriterLock

    data = tmp_path / "data"
    _store_with_articles(data, [("a1", "Grain ships leave Odesa", "Ships with wheat left Odesa port.")])
    daemon_lock = WriterLock(data)  # what a running daemon holds
    try:
        assert main(["topics", "label", "a1", "sanctions", "no", "--by", "ana", "--data-dir", str(data)]) == 0
        assert "queued while the daemon holds the store" in capsys.readouterr().out
        assert [p["article_id"] for p in pending_labels(data)] == ["a1"]
    finally:
        daemon_lock.release()
    # The writer (the daemon, after its next batch) moves it into the store, once.
    with Store.open(data) as s:
        assert import_pending_labels(s) == 1
        assert import_pending_labels(s) == 0
        assert s.query("SELECT article_id, topic, label, labelled_by FROM topic_labels")[1] == [
            ("a1", "sanctions", "no", "ana")
        ]
    assert pending_labels(data) == []


TRAINING_ONLY_TOPIC = """\
id: grain
description: Grain shipments from Black Sea ports.
rules:
  - name: grain-exports
    query: '(grain OR wheat) NEAR/8 (export* OR shipment* OR corridor)'
examples:
  must_match: ["Wheat exports through the corridor resumed on Monday."]
  must_not_match: ["The bakery sells wheat bread."]
  train_about:
    - {title: Grain ships leave Odesa, text: Three ships loaded with wheat sailed through the corridor.}
  train_mentions:
    - A speech on farm policy noted grain exports in passing and turned to fertiliser prices.
  train_no:
    - {title: Grain of truth, text: "There is a grain of truth in the rumour, the minister said."}
"""


def test_training_only_examples_are_learned_from_but_never_checked(tmp_path: Path) -> None:
    from pipeline.stages.topics import check_examples, load_topic
    from pipeline.topics.labelled import examples_of

    path = tmp_path / "grain.yaml"
    path.write_text(TRAINING_ONLY_TOPIC, encoding="utf-8")
    topic = load_topic(path)
    assert [label for label, _ in topic.training] == ["about", "mentions", "no"]
    items = {it.id: it for it in examples_of(topic)}
    assert items["grain:about:1"].title == "Grain ships leave Odesa" and items["grain:about:1"].label == "about"
    assert items["grain:mentions:2"].label == "mentions" and items["grain:no:3"].label == "no"
    assert all(it.kind == "example" for it in items.values())  # trained on, never scored
    # Only must_match / must_not_match are checked: the `no` example's "grain" in another sense
    # does not fire a rule, and nothing requires the mentions example to stay below an alert.
    assert check_examples(topic) == []
    # The YAML trap: a bare `no:` key is the boolean false, so the keys carry a train_ prefix and an
    # unknown key names the allowed ones.
    path.write_text(TRAINING_ONLY_TOPIC.replace("train_about:", "about:"), encoding="utf-8")
    with pytest.raises(Exception, match="train_about"):
        load_topic(path)


def test_the_densest_passage_counts_beside_the_whole_text() -> None:
    from pipeline.topics.learn import PASSAGE_WORDS, passage_features

    # Two rules hold within one paragraph-sized stretch: half of the four rules.
    near = passage_features({"a": [10, 500], "b": [30], "c": [2000], "d": []}, [10, 20, 30, 2000])
    assert near["passage:rules"] == 0.5
    assert near["passage:share"] == 0.75
    # The same hits spread out further than PASSAGE_WORDS apart: one rule per stretch.
    apart = passage_features({"a": [0], "b": [PASSAGE_WORDS + 1]}, [0, PASSAGE_WORDS + 1])
    assert apart["passage:rules"] == 0.5 and apart["passage:share"] == 0.5
    assert passage_features({}, []) == {}


def test_a_headline_is_scored_by_its_short_features_alone(topics) -> None:
    from pipeline.topics.learn import TopicModel

    model = TopicModel(("a:fired", "short:a:fired", "short"), (5.0, 1.0, -1.0), 0.0, 0.5, 0.5, "", short_separate=True)
    headline = {"a:fired": 1.0, "short:a:fired": 1.0, "short": 1.0}
    assert dict(model.contributions(headline)) == {"short:a:fired": 1.0, "short": -1.0}
    article = {"a:fired": 1.0}
    assert dict(model.contributions(article))["a:fired"] == 5.0
    # A model trained before the switch scores headlines as it was fitted: with every feature.
    old = TopicModel(model.features, model.weights, 0.0, 0.5, 0.5, "")
    assert dict(old.contributions(headline))["a:fired"] == 5.0
    # The shipped peace-talks model was trained this way, and says so in its file.
    assert topics["peace-talks"].model.short_separate
