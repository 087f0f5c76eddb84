"""Shared fixtures: project paths, the corpora folder, seed documents."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def corpora_dir() -> Path:
    """../shared/corpora by default; NEWSMON_CORPORA overrides. Missing under CI is a failure."""
    path = Path(os.environ.get("NEWSMON_CORPORA", ROOT.parent / "shared" / "corpora"))
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"corpora folder {path} is missing; CI must have ../shared/corpora")
        pytest.skip(f"corpora folder {path} not found (set NEWSMON_CORPORA)")
    return path


@pytest.fixture
def corpora() -> Path:
    return corpora_dir()


@pytest.fixture(scope="session")
def seed_labels() -> dict:
    return json.loads((SEEDS / "labels.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback traffic must never be sent through a proxy from the environment."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
