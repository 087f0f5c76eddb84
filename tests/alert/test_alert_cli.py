"""`newsmon silence add|list|expire` and `newsmon alerts list|test|replay` against a real store
and the loopback Slack stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.alert.alert_world import AlertWorld
from tests.alert.servers import SlackApiServer


@pytest.fixture
def slack() -> Iterator[SlackApiServer]:
    with SlackApiServer(channels=("C0SPORT",)) as server:
        yield server


@pytest.fixture
def setup(tmp_path: Path, slack: SlackApiServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    data = tmp_path / "data"
    w = AlertWorld(data, datetime.now(UTC) - timedelta(minutes=10))
    w.copies("s1", ["bbc", "ap"])
    w.close()
    settings = tmp_path / "newsmon.yaml"
    settings.write_text(f"""\
data_dir: {data}
alerts:
  slack:
    channel: {slack.CHANNEL}
    api_url: {slack.api_url}
    timeout_seconds: 5
  routes:
    - name: sport
      match: {{feed_tags: [sport]}}
      slack_channel: C0SPORT
""", encoding="utf-8")
    monkeypatch.setenv("NEWSMON_SLACK_BOT_TOKEN", slack.TOKEN)
    return settings, data


def test_silence_add_list_expire(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    settings, _ = setup
    assert main(["silence", "add", "--config", str(settings), "--topic", "sanctions", "--source", "bbc",
                 "--until", "3d", "--comment", "bbc sanctions noise", "--author", "desk"]) == 0
    out = capsys.readouterr().out
    sid = out.split(":")[0]
    assert sid.startswith("sil-") and "topic=sanctions source=bbc" in out
    assert main(["silence", "list", "--config", str(settings)]) == 0
    listed = capsys.readouterr().out
    assert sid in listed and "active" in listed and "bbc sanctions noise" in listed
    assert main(["silence", "expire", "--config", str(settings), sid]) == 0
    capsys.readouterr()
    assert main(["silence", "list", "--config", str(settings)]) == 0
    assert "no silences in force" in capsys.readouterr().out
    assert main(["silence", "list", "--config", str(settings), "--all"]) == 0
    assert "expired" in capsys.readouterr().out
    assert main(["silence", "add", "--config", str(settings), "--until", "soon", "--topic", "x", "--comment", "c"]) == 2
    assert "cannot read the time 'soon'" in capsys.readouterr().err
    assert main(["silence", "add", "--config", str(settings), "--until", "2h", "--comment", "c"]) == 2
    assert main(["silence", "expire", "--config", str(settings), "sil-nope"]) == 1


def test_alerts_test_replay_and_list(setup: tuple[Path, Path], slack: SlackApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    settings, data = setup
    assert main(["alerts", "test", "--config", str(settings), "--route", "sport"]) == 0
    assert "sport/slack: sent" in capsys.readouterr().out
    (msg,) = slack.messages
    assert msg["channel"] == "C0SPORT" and "test alert for route sport" in msg["text"]
    assert main(["alerts", "test", "--config", str(settings), "--route", "nope"]) == 2

    from pipeline.store import Store

    with Store.open(data, read_only=True) as s:
        aid = s.scalar("SELECT alert_id FROM alert_outbox")
    assert main(["alerts", "replay", "--config", str(settings), aid]) == 0
    assert f"replayed {aid} on default" in capsys.readouterr().out
    replay = slack.messages[-1]
    assert replay["channel"] == slack.CHANNEL and replay["text"].startswith("(replay) newsmon alert: topic sanctions")
    assert main(["alerts", "replay", "--config", str(settings), "nope"]) == 1

    assert main(["alerts", "list", "--config", str(settings), "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("noted_at,route,channel,kind,status")
    kinds = sorted(r.split(",")[3] for r in rows[1:])
    assert kinds == ["replay", "test"]


def test_alerts_test_while_the_daemon_holds_the_store_is_logged_at_its_next_run(
        setup: tuple[Path, Path], slack: SlackApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.alert.notifiers import SlackApiNotifier
    from pipeline.alert.routes import Route

    settings, data = setup
    w = AlertWorld(data, datetime.now(UTC))  # this process holds the store, like the daemon
    try:
        assert main(["alerts", "test", "--config", str(settings), "--route", "sport"]) == 0
        out = capsys.readouterr().out
        assert "sport/slack: sent" in out and "queued for the notification log" in out
        assert w.log("test") == []  # not in the store yet: the verb could not write it
        route = Route("default", [SlackApiNotifier(slack.TOKEN, slack.CHANNEL, api_url=slack.api_url)])
        engine = w.engine([route])
        engine.run()  # the daemon's next alert run records it
        (row,) = w.log("test")
        assert row["route"] == "sport" and row["status"] == "sent" and row["receipt"] == slack.messages[0]["ts"]
        engine.run()  # recorded once, not again
        assert len(w.log("test")) == 1
    finally:
        w.close()
