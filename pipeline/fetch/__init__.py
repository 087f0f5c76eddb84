"""Talking to feed and article servers: the hardened HTTP client and the feed parser.

`http` fetches (address guard, budgets, politeness, conditional GET); `parse` turns feed bytes
into `FeedItem`s. Both raise only `TransientFetchError`/`PermanentFetchError` on purpose.
"""

from pipeline.fetch.http import HttpClient, HttpSettings, Response, check_address, parse_retry_after
from pipeline.fetch.parse import ParsedFeed, item_id, parse_feed

__all__ = [
    "HttpClient",
    "HttpSettings",
    "ParsedFeed",
    "Response",
    "check_address",
    "item_id",
    "parse_feed",
    "parse_retry_after",
]
