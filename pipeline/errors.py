"""The exception tree.

    NewsmonError
    ├── ConfigError            bad config / input file: the CLI exits 2
    ├── FetchError             talking to a remote server failed
    │   ├── TransientFetchError    timeouts, 5xx, 429 (carries retry_after): retry with backoff
    │   └── PermanentFetchError    404/410, refused address, too large, wrong content type
    ├── DeliveryError          an alert could not be delivered
    │   ├── TransientDeliveryError network trouble, 5xx, 429 from Slack, SMTP 4xx
    │   └── PermanentDeliveryError 4xx from Slack, SMTP 5xx, bad credentials
    └── StoreError             the database refused an operation

Only the adapters that talk to the outside world raise Fetch/Delivery errors; callers branch on
Transient vs Permanent, never on messages.
"""

from __future__ import annotations


class NewsmonError(Exception):
    """Base of every error newsmon raises on purpose."""


class ConfigError(NewsmonError):
    """A config or input file is invalid. The message names the file, the line and the fix."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)


class FetchError(NewsmonError):
    """A request failed. `kind` is a short class: timeout, dns, tls, connect, http_4xx, http_5xx, ..."""

    def __init__(self, message: str, *, kind: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class TransientFetchError(FetchError):
    """Worth retrying later; `retry_after` (seconds) when the server said so."""

    def __init__(
        self, message: str, *, kind: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, kind=kind, status=status)
        self.retry_after = retry_after


class PermanentFetchError(FetchError):
    """Retrying will not help (404, 410, refused address, body too large, not a feed)."""


class DeliveryError(NewsmonError):
    """An alert could not be delivered to a channel."""


class TransientDeliveryError(DeliveryError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    pass


class StoreError(NewsmonError):
    pass
