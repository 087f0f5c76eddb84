"""The Flask app of `newsmon dashboard`: pages, CSV downloads, access control.

Flask because the pages are server-rendered HTML over synchronous DuckDB reads: a WSGI app
with Jinja templates is the whole need, and Flask is the most used, best kept one (Pallets).
An async framework would only wrap the same blocking queries in threads.

Requests borrow read-only store handles from a pool (opening one costs a DuckLake attach), so
they run side by side, beside the daemon, and see every batch it has committed.
"""

from __future__ import annotations

import base64
import hmac
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, request

from pipeline.dashboard import pages
from pipeline.dashboard.pages import Links, NotFound
from pipeline.dashboard.queries import Filters, Query
from pipeline.dashboard.templating import render, render_error

# The pages run no script and load nothing: charts are SVG drawn on the server (charts.py) and
# the style sheet is in the page, so the CSP allows inline styles and nothing else.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


# A DuckDB optimizer pass the dashboard's readers skip. On a DuckLake store, statistics
# propagation asks the catalog for the statistics of every column a query reads, table by table;
# for a table with inlined rows (the small, often-written alert tables) that costs more than
# running the query. At 1M articles, load ~8, median page times without it against with it
# (queries only): overview 189/264 ms, stories 310/406, topics 309/397, feeds 255/477, story
# 358/475. Skipping join ordering as well was slower on the stories and topics pages, but on the
# queries of the small alert and dead-letter tables (Query.small_tables) it cost 85-95 ms of a
# 130-210 ms query: those run on readers that skip it too. The passes only find plans; results
# are the same without them.
SKIPPED_OPTIMIZERS = ("statistics_propagation",)
SKIPPED_FOR_SMALL_TABLES = ("statistics_propagation", "join_order")


class Readers:
    """A pool of read-only Stores: a request borrows one (opening a new one only when all are
    busy) and gives it back, so sequential requests reuse one handle and parallel ones get their
    own. Two kinds of handle: one planning as `skip` says, one as `skip_small` (for queries of
    small tables, Query.small_tables)."""

    def __init__(self, data_dir: Path, skip: tuple[str, ...] = SKIPPED_OPTIMIZERS,
                 skip_small: tuple[str, ...] = SKIPPED_FOR_SMALL_TABLES) -> None:
        self.data_dir = data_dir
        self.skip = {False: skip, True: skip_small}
        self._idle: dict[bool, list[Any]] = {False: [], True: []}
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._pool: Any = None

    def run(self, query: Query) -> tuple[list[str], list[tuple[Any, ...]]]:
        kind = query.small_tables
        with self._lock:
            store = self._idle[kind].pop() if self._idle[kind] else None
        if store is None:
            from pipeline.store import Store

            store = Store.open(self.data_dir, read_only=True, disabled_optimizers=self.skip[kind])
            with self._lock:
                self._all.append(store)
        try:
            return store.query(query.sql, query.params)
        finally:
            with self._lock:
                self._idle[kind].append(store)

    __call__ = run

    def many(self, queries: list[Query]) -> list[tuple[list[str], list[tuple[Any, ...]]]]:
        """Run independent queries side by side, each on a handle of its own (DuckDB works
        without the GIL): a page's cost is its slowest query rather than the sum."""
        if len(queries) < 2:
            return [self.run(q) for q in queries]
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dashboard-query")
            pool = self._pool
        return list(pool.map(self.run, queries))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            for s in self._all:
                s.close()
            self._all.clear()
            for idle in self._idle.values():
                idle.clear()


def create_app(data_dir: Path, *, token: str | None = None, basic: tuple[str, str] | None = None,
               run: Callable[[Query], tuple[list[str], list[tuple[Any, ...]]]] | None = None) -> Flask:
    """The dashboard over the store at `data_dir`. With `token` or `basic` (user, password) set,
    every request must carry them."""
    app = Flask("newsmon.dashboard", static_folder=None)
    readers = Readers(Path(data_dir))
    app.extensions["newsmon_readers"] = readers
    runner = run or readers
    links = Links(static=False)

    @app.before_request
    def _auth() -> Response | None:
        if token is None and basic is None:
            return None
        if token is not None:
            given = request.args.get("token") or ""
            h = request.headers.get("Authorization", "")
            if h.startswith("Bearer "):
                given = h[7:]
            if given and hmac.compare_digest(given.encode(), token.encode()):
                return None
            if request.cookies.get("newsmon_token") and hmac.compare_digest(
                    request.cookies["newsmon_token"].encode(), token.encode()):
                return None
        if basic is not None:
            h = request.headers.get("Authorization", "")
            if h.startswith("Basic "):
                try:
                    user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
                except ValueError:
                    user, pw = "", ""
                if hmac.compare_digest(user.encode(), basic[0].encode()) and hmac.compare_digest(
                        pw.encode(), basic[1].encode()):
                    return None
        resp = Response("authentication required\n", 401, mimetype="text/plain")
        if basic is not None:
            resp.headers["WWW-Authenticate"] = 'Basic realm="newsmon", charset="UTF-8"'
        return resp

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        # A token given in the URL becomes a cookie, so links and CSV downloads keep working.
        if token is not None and request.args.get("token") and resp.status_code < 400:
            resp.set_cookie("newsmon_token", request.args["token"], httponly=True, samesite="Strict")
        return resp

    def filters() -> Filters:
        try:
            return Filters.parse(request.args.to_dict())
        except ValueError as e:
            abort(Response(render_error(f"bad filter: {e}", links, 400), 400, mimetype="text/html"))

    def page_response(name: str, story_id: str = "") -> Response:
        try:
            page = pages.render_page(name, runner, filters(), story_id)
        except NotFound as e:
            return Response(render_error(str(e), links, 404), 404, mimetype="text/html")
        return Response(render(page, links, story_id=story_id), mimetype="text/html")

    @app.get("/")
    def overview() -> Response:
        return page_response("overview")

    @app.get("/<any(stories, topics, feeds):name>")
    def named(name: str) -> Response:
        return page_response(name)

    @app.get("/story/<path:story_id>")
    def story(story_id: str) -> Response:
        return page_response("story", story_id)

    @app.get("/csv/<name>/<table>.csv")
    @app.get("/csv/story/<path:story_id>/<table>.csv")
    def csv(table: str, name: str = "story", story_id: str = "") -> Response:
        try:
            page = pages.render_page(name, runner, filters(), story_id)
            t = page.block(table)
        except NotFound as e:
            return Response(f"{e}\n", 404, mimetype="text/plain")
        stem = f"story-{story_id}" if story_id else name
        return Response(t.csv(), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{stem}-{table}.csv"'})

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    return app
