"""`newsmon dashboard`: the Flask app behind waitress, on loopback unless told otherwise.

waitress because it is a production WSGI server in pure Python (no compiler, runs wherever
newsmon runs), well kept by the Pylons project, with a thread pool that suits blocking reads.
Werkzeug's own server says it is for development only.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

log = logging.getLogger("newsmon.lifecycle")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    token: str | None = None
    basic: tuple[str, str] | None = None

    @property
    def required(self) -> bool:
        return self.token is not None or self.basic is not None


def resolve_access(host: str, dash: Any, env: Mapping[str, str] | None = None) -> Access:
    """The access control for `host`: none on loopback unless configured; elsewhere a token or a
    basic-auth user is required, or it refuses (exit 2) naming the setting to add."""
    env = os.environ if env is None else env
    token = env.get(dash.token_env) or None
    basic = None
    if dash.basic_user:
        pw = env.get(dash.password_env)
        if not pw:
            raise ConfigError(f"dashboard.basic_user is set but the environment variable {dash.password_env} is empty; "
                              "export the password in it")
        basic = (dash.basic_user, pw)
    access = Access(token, basic)
    if not is_loopback(host) and not access.required:
        raise ConfigError(
            f"the dashboard would listen on {host}, beyond this machine, with no access control: export a token in "
            f"{dash.token_env} (or set dashboard.basic_user and {dash.password_env}), or bind to 127.0.0.1")
    if token is not None and len(token) < 16:
        raise ConfigError(f"{dash.token_env} is shorter than 16 characters; use a long random token "
                          "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")
    return access


class DashboardServer:
    """The running server: `url`, `serve_forever()`, `close()`; or a context manager that serves
    on a thread (tests, the demo)."""

    def __init__(self, data_dir: Path, host: str, port: int, access: Access, threads: int = 4) -> None:
        from waitress.server import create_server

        from pipeline.dashboard.app import create_app

        self.app = create_app(data_dir, token=access.token, basic=access.basic)
        # Open one reader now: a store that cannot be read fails here, in one line, not at the
        # first request; and the first analyst does not wait for the DuckLake attach.
        from pipeline.dashboard.queries import Query

        readers = self.app.extensions["newsmon_readers"]
        readers.run(Query("warm", "warm", "SELECT count(*) FROM rollup_counts"))
        readers.many([Query("warm", "warm", "SELECT 1")] * 4)  # the handles a page's queries run on side by side
        readers.many([Query("warm", "warm", "SELECT 1", small_tables=True)] * 2)
        # and pygal and the page template loaded: the first page costs what the next ones do
        from pipeline.dashboard.charts import Figure, Series, svg
        from pipeline.dashboard.templating import _env

        svg(Figure("lines", [Series("warm", "warm", "warm", ["a"], [1])], labels=["a"]))
        _env().get_template("page.html")
        self.server = create_server(self.app, host=host, port=port, threads=threads, ident="newsmon",
                                    clear_untrusted_proxy_headers=True)
        self.host = host
        self.port = int(self.server.effective_port)  # type: ignore[union-attr]
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}/"

    def serve_forever(self) -> None:
        log.info("dashboard_listening url=%s", self.url)
        try:
            self.server.run()
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        from waitress import wasyncore

        self.server.task_dispatcher.shutdown()  # requests in flight finish first
        # An empty map ends run()'s loop. While that loop runs on a thread of its own, its sockets
        # are closed from inside it (through waitress's trigger, between two polls): closed from
        # here they could vanish under its select() ("Bad file descriptor" in the server thread).
        close_all = functools.partial(wasyncore.close_all, self.server._map)  # type: ignore[union-attr]
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            try:
                self.server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
            except OSError:
                pass  # the loop, woken by something else, ran close_all (the trigger too) first
            thread.join(timeout=10)
        if self.server._map:  # type: ignore[union-attr]  # no loop running, or it did not stop in time
            close_all()
        self.app.extensions["newsmon_readers"].close()

    def __enter__(self) -> DashboardServer:
        self._thread = threading.Thread(target=self.server.run, name="dashboard", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(data_dir: Path, host: str, port: int, access: Access, threads: int, out: Any) -> int:
    """Serve until SIGTERM or Ctrl-C."""
    srv = DashboardServer(data_dir, host, port, access, threads)
    print(f"newsmon dashboard on {srv.url} (read-only; store {data_dir}); Ctrl-C to stop", file=out, flush=True)

    def _stop(*_: object) -> None:
        raise KeyboardInterrupt

    prev = signal.signal(signal.SIGTERM, _stop)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, prev)
    return 0
