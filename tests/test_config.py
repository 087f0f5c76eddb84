"""Config validation: bad files are errors that name the file, the line and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    if not isinstance(node, dict):
        return set()
    out = set()
    for k, v in node.items():
        out.add(prefix + k)
        out |= _paths(v, f"{prefix}{k}.")
    return out


def test_the_example_settings_file_is_valid_and_lists_every_key() -> None:
    import yaml

    example = Path(__file__).resolve().parents[1] / "deploy" / "newsmon.yaml.example"
    raw = yaml.safe_load(example.read_text(encoding="utf-8"))
    config.Settings.model_validate(raw)  # strict: an unknown or misspelt key fails here
    missing = _keys(config.Settings) - _paths(raw)
    assert not missing, f"keys missing from {example.name}: {sorted(missing)}"


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
