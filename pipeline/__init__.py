"""newsmon: a self-hosted, streaming news-monitoring pipeline.

feeds (APScheduler) -> Beam batch (download, extract, fold stories, match topics) -> DuckLake store
-> alert outbox -> Slack / email.
"""

__version__ = "0.1.0"
