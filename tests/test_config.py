"""Config validation: bad files are errors that name the file, the line and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline import config
from pipeline.cli import main
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """feeds:
  - id: one
    url: https://example.org/rss.xml
    tags: [world]
  - id: two
    url: https://example.org/atom.xml
    interval_minutes: 30
"""


def write(tmp_path: Path, text: str, name: str = "sources.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_the_shipped_sources_file_is_valid_and_covers_the_seed_topics() -> None:
    feeds = config.load_sources(ROOT / "sources.yaml")
    assert len(feeds) >= 15
    tags = {t for f in feeds for t in f.tags}
    assert {"world", "russia-ukraine", "us", "sanctions"} <= tags
    assert all(f.url.startswith("https://") for f in feeds)


def test_good_sources_load(tmp_path: Path) -> None:
    feeds = config.load_sources(write(tmp_path, GOOD))
    assert [f.id for f in feeds] == ["one", "two"]
    assert feeds[1].interval_minutes == 30


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD.replace("    tags: [world]", "    tagz: [world]"), 4, "unknown key"),
        (GOOD.replace("https://example.org/atom.xml", "ftp://example.org/atom.xml"), 6, "http"),
        (GOOD.replace("id: two", "id: one"), 5, "duplicate feed id 'one'"),
        (GOOD.replace("id: two", "id: Two Feeds"), 5, "lowercase"),
        (GOOD.replace("interval_minutes: 30", "interval_minutes: 0"), 7, "greater than or equal"),
        (GOOD + "  - url: https://example.org/x\n", 8, "required"),
        ("feeds:\n  - id: a\n    url: [unclosed\n", 4, "YAML syntax"),
        ("feeds:\n  - id: a\n    id: b\n    url: https://e.org/\n", 3, "appears twice"),
    ],
)
def test_bad_sources_name_file_line_and_fix(tmp_path: Path, text: str, line: int, words: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        config.load_sources(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert words in msg


def test_check_config_exits_2_on_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, GOOD.replace("id: two", "id: one"))
    assert main(["check-config", "--sources", str(p), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert f"{p}:5:" in err and "duplicate feed id" in err


def test_settings_file_unknown_key_and_secret_from_env(tmp_path: Path) -> None:
    src = write(tmp_path, GOOD)
    bad = write(tmp_path, f"sources: {src}\nfetch:\n  timeout: 3\n", "newsmon.yaml")
    with pytest.raises(ConfigError, match=r"newsmon.yaml:3: fetch.timeout: unknown key"):
        config.load(bad)
    good = write(
        tmp_path,
        f"sources: {src}\nalerts:\n  slack: {{}}\n  email:\n    host: 127.0.0.1\n    sender: a@b\n"
        "    recipients: [c@d]\n    username: alerts\n",
        "newsmon.yaml",
    )
    with pytest.raises(ConfigError, match="NEWSMON_SLACK_WEBHOOK_URL"):
        config.load(good, env={})
    cfg = config.load(good, env={"NEWSMON_SLACK_WEBHOOK_URL": "https://hooks.example/T000/SECRET", "NEWSMON_SMTP_PASSWORD": "pw-SECRET"})
    assert cfg.secrets.slack_webhook_url is not None
    dumped = json.dumps(cfg.dump())
    assert "SECRET" not in dumped and "SECRET" not in repr(cfg)


def test_check_config_dump_never_prints_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    src = write(tmp_path, GOOD)
    cfgfile = write(tmp_path, f"sources: {src}\nalerts:\n  slack: {{}}\n", "newsmon.yaml")
    monkeypatch.setenv("NEWSMON_SLACK_WEBHOOK_URL", "https://hooks.example/T000/VERYSECRET")
    assert main(["check-config", "--config", str(cfgfile), "--dump"]) == 0
    out = capsys.readouterr().out
    assert "VERYSECRET" not in out and "**********" in out


def _keys(model: type, prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    out = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        out.add(prefix + name)
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out |= _keys(arg, f"{prefix}{name}.")
    return out


def _paths(node: object, prefix: str = "") -> set[str]:
    if isinstance(node, list):  # a list of models (alerts.routes): the keys of its items
        return set().union(*(_paths(item, prefix) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    out = set()
    for k, v in node.items():
        out.add(prefix + k)
        out |= _paths(v, f"{prefix}{k}.")
    return out


EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "newsmon.yaml.example"
DEPLOYMENT_CHOICES = {"data_dir"}  # the example's values for these differ from the defaults


def test_the_example_settings_file_is_valid_and_lists_every_key() -> None:
    import yaml

    # With its optional lines ("#~ ") switched on, it names every key and validates strictly.
    full = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8").replace("#~ ", ""))
    config.Settings.model_validate(full)  # strict: an unknown or misspelt key fails here
    missing = _keys(config.Settings) - _paths(full)
    assert not missing, f"keys missing from {EXAMPLE.name}: {sorted(missing)}"


def _differences(got: object, want: object, prefix: str = "") -> list[str]:
    if isinstance(got, dict) and isinstance(want, dict):
        return [d for k in got for d in _differences(got[k], want.get(k), f"{prefix}{k}.")]
    if isinstance(got, list | tuple) and isinstance(want, list | tuple):
        got, want = list(got), list(want)
    return [] if got == want else [f"{prefix.rstrip('.')}: {got!r} (default {want!r})"]


def test_the_example_settings_file_holds_the_defaults_and_works_when_copied(tmp_path: Path, capsys) -> None:
    """It claimed every key with its default but held a fake Slack channel and SMTP host, which
    failed when copied. Copied as it is (next to a sources file and the topics), it now passes."""
    import shutil

    import yaml

    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    defaults = config.Settings().model_dump(mode="json")
    diffs = [d for d in _differences(raw, defaults) if d.split(":")[0] not in DEPLOYMENT_CHOICES]
    assert not diffs, diffs
    etc = tmp_path / "etc-newsmon"
    etc.mkdir()
    shutil.copy(EXAMPLE, etc / "newsmon.yaml")
    shutil.copy(ROOT / "sources.yaml", etc / "sources.yaml")
    shutil.copytree(ROOT / "seeds", etc / "seeds")
    argv = ["check-config", "--config", str(etc / "newsmon.yaml"), "--data-dir", str(tmp_path / "data")]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert f"from {etc / 'sources.yaml'}" in out and f"from {etc / 'seeds' / 'topics'}" in out


def test_slack_web_api_needs_its_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sources.yaml").write_text("feeds:\n  - id: a\n    url: https://example.org/feed\n", encoding="utf-8")
    settings = tmp_path / "newsmon.yaml"
    settings.write_text("alerts:\n  slack:\n    channel: C0123\n", encoding="utf-8")
    monkeypatch.delenv("NEWSMON_SLACK_BOT_TOKEN", raising=False)
    with pytest.raises(ConfigError) as info:
        config.load(settings, sources_path=tmp_path / "sources.yaml", env={})
    assert "NEWSMON_SLACK_BOT_TOKEN" in str(info.value) and info.value.line == 3
    cfg = config.load(settings, sources_path=tmp_path / "sources.yaml", env={"NEWSMON_SLACK_BOT_TOKEN": "xoxb-1"})
    assert cfg.secrets.slack_bot_token is not None and cfg.secrets.slack_webhook_url is None
    assert "xoxb-1" not in json.dumps(cfg.dump(), default=str)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    """It said "(and 1 more problem(s))" and showed only the first; each fix then cost a run."""
    settings = write(tmp_path, "fetch:\n  workers: 0\n  colour: red\npipeline:\n  max_batch_items: -1\n", "newsmon.yaml")
    with pytest.raises(ConfigError) as info:
        config.load(settings, sources_path=write(tmp_path, GOOD), env={})
    msg = str(info.value)
    assert msg.startswith(f"{settings}: 3 problems:")
    assert f"{settings}:2: fetch.workers" in msg and f"{settings}:3: fetch.colour: unknown key" in msg
    assert f"{settings}:5: pipeline.max_batch_items" in msg
    src = write(tmp_path, "feeds:\n  - id: a\n    url: https://e.org/a\n  - id: a\n    url: https://e.org/a\n"
                          "  - id: b\n    url: https://e.org/b\n  - id: b\n    url: https://e.org/c\n", "dup.yaml")
    slack = write(tmp_path, "alerts:\n  slack: {}\n", "slack.yaml")
    with pytest.raises(ConfigError) as info:  # problems in two files and the environment, together
        config.load(slack, sources_path=src, env={})
    msg = str(info.value)
    assert msg.startswith("2 problems:") and "duplicate feed id 'a'" in msg and "duplicate feed id 'b'" in msg
    assert "same url as 'a'" in msg and "NEWSMON_SLACK_WEBHOOK_URL is empty" in msg


def test_an_empty_feed_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sources.yaml:1: feeds: the list is empty; add at least one feed"):
        config.load(sources_path=write(tmp_path, "feeds: []\n"), env={})


def test_no_silent_fallback_to_the_bundled_feeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Run from another folder, it used to watch the project's default feeds without a word."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        config.load(env={})
    msg = str(info.value)
    assert f"no sources file: {tmp_path / 'sources.yaml'} does not exist; pass --sources FILE" in msg
    assert "curated default feeds ship at" in msg and str(config.bundled("sources.yaml")) in msg
    assert main(["check-config"]) == 2
    # Commands that never read the feeds do not need them.
    assert config.load(env={}, feeds_required=False).feeds == ()


def test_allow_networks_is_a_setting_and_the_refusal_names_it(tmp_path: Path) -> None:
    from pipeline.daemon import http_settings
    from pipeline.errors import PermanentFetchError
    from pipeline.fetch.http import HttpClient
    from tests.fetch.faultserver import FaultServer

    with pytest.raises(ConfigError, match=r"fetch.allow_networks: .*'10.0.0.300' is not a network"):
        config.load(sources_path=write(tmp_path, GOOD), env={}, overrides={"fetch.allow_networks": ["10.0.0.300"]})
    with FaultServer("127.0.0.2") as srv:
        srv.feed("/f.xml")
        plain = config.load(sources_path=write(tmp_path, GOOD), env={})
        with HttpClient(http_settings(plain, pages=False)) as client, pytest.raises(PermanentFetchError) as info:
            client.get(srv.url("/f.xml"))
        assert "fetch.allow_networks" in str(info.value) and "127.0.0.2/32" in str(info.value)
        # One network allowed; the guard stays on for everything else.
        cfg = config.load(sources_path=write(tmp_path, GOOD), env={}, overrides={"fetch.allow_networks": ["127.0.0.2/32"]})
        assert not cfg.settings.fetch.allow_private_addresses
        with HttpClient(http_settings(cfg, pages=False)) as client:
            assert client.get(srv.url("/f.xml")).status == 200
            with pytest.raises(PermanentFetchError, match="refused"):
                client.get("http://127.0.0.1:9/f.xml")


def test_extract_processes_is_refused_on_a_runner_that_cannot_hold_the_worker_pool() -> None:
    assert config.PipelineConfig(extract_processes=2).extract_processes == 2
    for bad in ({"runner": "DaskRunner"}, {"beam_args": ("--direct_running_mode=multi_processing",)}):
        with pytest.raises(ValidationError, match="extract_processes > 1 needs runner: FnApiRunner"):
            config.PipelineConfig(extract_processes=2, **bad)
