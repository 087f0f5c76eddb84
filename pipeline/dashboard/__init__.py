"""The analysts' dashboard: pages over the store, served by `newsmon dashboard`, written as a
static site by `newsmon report`.

    queries.py   every query a page shows, as (title, SQL, parameters): the SQL is shown under
                 each chart and table, and each table downloads as CSV
    pages.py     the pages (overview, stories, story, topics, feeds): run the queries, shape the
                 charts (charts.Figure specs)
    charts.py    draws a chart as inline SVG on the server (pygal): no chart script in the browser
    templating.py  the Jinja template every page renders through (templates/, the style sheet inline)
    app.py       the Flask app: routes, access control
    serve.py     `newsmon dashboard`: a waitress server on loopback by default
    report.py    `newsmon report --out DIR`: the same pages as files
    cli.py       the commands

Read-only: the pages open the store as a reader (pipeline.store.connection: READ_ONLY attach,
no file access beyond the lake), so they run beside the daemon, any number of them.
"""
