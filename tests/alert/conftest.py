"""Fixtures with real servers on 127.0.0.1 for the alert channels.

    smtp_server        a started `SmtpTestServer` (STARTTLS + AUTH alerts/s3cret)
    webhook_receiver   a started `WebhookReceiver` answering 200 "ok" until told otherwise
    closed_port        a loopback port nothing listens on
    silent_server      a started `SilentServer` (accepts, never answers)
    no_proxy_env       clears http(s)_proxy variables (autouse for the tests in this folder)

Other test modules can use the classes in tests/alert/servers.py directly, or re-export these
fixtures in their own conftest.py:

    from tests.alert.conftest import no_proxy_env, smtp_server, webhook_receiver  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alert.servers import SilentServer, SmtpTestServer, WebhookReceiver
from tests.alert.servers import closed_port as _closed_port

# urllib honours these for every request; a proxy configured in the environment would receive
# the loopback test traffic (and the fake webhook secret) instead of the test server.
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove proxy settings from the environment for the duration of a test."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _alert_tests_bypass_proxies(no_proxy_env: None) -> None:
    """Every test here talks to 127.0.0.1 only, including the ones using `closed_port`."""


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpTestServer]:
    with SmtpTestServer(tmp_path) as server:
        yield server


@pytest.fixture
def webhook_receiver(no_proxy_env: None) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def closed_port() -> int:
    return _closed_port()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server
