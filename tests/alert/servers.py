"""Real servers on 127.0.0.1 for testing the alert channels, usable from any test module.

    SmtpTestServer(workdir)   aiosmtpd with STARTTLS (self-signed certificate made at start-up)
                              and AUTH LOGIN/PLAIN for alerts/s3cret; records every message
    WebhookReceiver()         HTTP server that records POSTed JSON and answers as told
    SlackApiServer()          chat.postMessage + conversations.history with metadata, one bot token
    closed_port()             a loopback port nothing listens on (connection refused)
    SilentServer()            accepts TCP connections and never says a word (timeouts)

All of them are context managers and listen on 127.0.0.1 only. Example outside tests/alert:

    from tests.alert.servers import SmtpTestServer

    def test_x(tmp_path):
        with SmtpTestServer(tmp_path) as smtp:
            notifier = EmailNotifier(smtp.host, smtp.port, ..., ssl_context=smtp.client_ssl_context())
            ...
            assert smtp.messages[0].message["Subject"] == ...

The pytest fixtures wrapping them live in tests/alert/conftest.py.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def closed_port() -> int:
    """A loopback port with no listener: connecting to it is refused at once."""
    return free_port()


def write_self_signed_cert(directory: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    """Write cert.pem/key.pem valid for localhost and 127.0.0.1; return (cert_path, key_path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        # A self-signed leaf that is also its own CA, so it can be loaded as a cafile.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# --------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    """One message the SMTP test server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage       # parsed with the modern email policy
    tls: bool                   # the session had completed STARTTLS
    authenticated: bool         # the session had completed AUTH


@dataclass
class AuthAttempt:
    mechanism: str
    login: str
    success: bool


class _RecordingHandler:
    def __init__(self, server: SmtpTestServer) -> None:
        self._server = server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._server.data_reply
        if reply is not None:
            return reply
        if self._server.after_data is not None:
            self._server.after_data(envelope)
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self._server.messages.append(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                message=parsed,
                tls=session.ssl is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 Message accepted for delivery"


class SmtpTestServer:
    """An aiosmtpd server on 127.0.0.1 that insists on STARTTLS and on AUTH.

    * `host`, `port`: where it listens (after `start()`).
    * `cert_path`: its self-signed certificate; `client_ssl_context()` trusts exactly that.
    * `messages`: list of `ReceivedMail`, in arrival order.
    * `auth_attempts`: list of `AuthAttempt`.
    * `data_reply`: set to an SMTP reply such as "451 4.3.0 Try again later" to answer DATA
      with it instead of accepting (the message is then not recorded); None to accept.
    * `after_data`: a callable run with each envelope once its DATA has arrived and before the
      server answers (the message is recorded whatever the client does next).
    """

    USERNAME = "alerts"
    PASSWORD = "s3cret"

    def __init__(
        self,
        workdir: Path,
        *,
        require_auth: bool = True,
        username: str = USERNAME,
        password: str = PASSWORD,
    ) -> None:
        self.workdir = Path(workdir)
        self.host = LOOPBACK
        self.port = 0
        self.username = username
        self.password = password
        self.require_auth = require_auth
        self.messages: list[ReceivedMail] = []
        self.auth_attempts: list[AuthAttempt] = []
        self.data_reply: str | None = None
        self.after_data: Any = None  # called with the envelope once DATA is in, before the reply
        self.cert_path, self.key_path = write_self_signed_cert(self.workdir / "smtp-tls")
        self._controller: Controller | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        ok = login == self.username and auth_data.password.decode("utf-8", "replace") == self.password
        self.auth_attempts.append(AuthAttempt(mechanism=mechanism, login=login, success=ok))
        return AuthResult(success=ok, handled=False)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server against its self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def start(self) -> SmtpTestServer:
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(str(self.cert_path), str(self.key_path))
        last_error: Exception | None = None
        # The port is picked before aiosmtpd binds it, so another process could take it in
        # between; a couple of attempts make that race harmless.
        for _ in range(5):
            port = free_port()
            controller = Controller(
                _RecordingHandler(self),
                hostname=LOOPBACK,
                port=port,
                # A fixed name: the default is the machine's FQDN, which can mean a DNS lookup.
                server_hostname="localhost",
                tls_context=server_tls,
                require_starttls=True,
                auth_require_tls=True,
                auth_required=self.require_auth,
                authenticator=self._authenticate,
            )
            try:
                controller.start()
            except OSError as err:
                last_error = err
                continue
            self._controller = controller
            self.port = port
            return self
        raise RuntimeError(f"could not start the SMTP test server: {last_error}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- HTTP stand-ins


class _HttpStandIn:
    """A pytest-httpserver on 127.0.0.1 with the routes `_routes()` registers; a context manager."""

    def __init__(self, *, threaded: bool = False) -> None:
        # threaded: one request that hangs (a fault the Slack stand-in injects) must not stall the rest
        self._server = HTTPServer(host=LOOPBACK, port=0, threaded=threaded)
        self._server.no_handler_status_code = 404
        self._lock = threading.Lock()

    def _routes(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._routes()
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()
        self._server.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- HTTP webhook


@dataclass
class ReceivedPost:
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any = field(default=None)   # parsed body, None when it was not JSON


class WebhookReceiver(_HttpStandIn):
    """A Slack-like incoming-webhook endpoint on 127.0.0.1.

    * `url`: the full webhook URL (its path contains the fake secret `SECRET`).
    * `posts`: every POST to that path, as `ReceivedPost`; `bodies` is just the parsed JSON.
    * `answer(status, body, headers)` sets the reply for the following requests; presets:
      `answer_ok()`, `answer_rate_limited(retry_after=7)`, `answer_server_error()`,
      `answer_invalid_payload()`. Requests to any other path get 404 "no_service", like Slack.
    """

    SECRET = "xSecretWebhookToken0123456789"
    PATH = f"/services/T00NEWSMON/B00NEWSMON/{SECRET}"

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[ReceivedPost] = []
        self._reply: tuple[int, str, dict[str, str]] = (200, "ok", {})

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.port}{self.PATH}"

    def url_for(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self._server.port}{path}"

    @property
    def bodies(self) -> list[Any]:
        return [p.json for p in self.posts]

    def answer(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._reply = (status, body, dict(headers or {}))

    def answer_ok(self) -> None:
        self.answer(200, "ok")

    def answer_rate_limited(self, retry_after: int = 7) -> None:
        self.answer(429, "rate_limited", {"Retry-After": str(retry_after)})

    def answer_server_error(self) -> None:
        self.answer(500, "internal_error")

    def answer_invalid_payload(self) -> None:
        self.answer(400, "invalid_payload")

    def _handle(self, request: Request) -> Response:
        raw = request.get_data()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        with self._lock:
            self.posts.append(ReceivedPost(request.path, dict(request.headers), raw, parsed))
            status, body, headers = self._reply
        return Response(body, status=status, headers=headers, content_type="text/plain; charset=utf-8")

    def _routes(self) -> None:
        self._server.expect_request(self.PATH, method="POST").respond_with_handler(self._handle)


# --------------------------------------------------------------------------- a server that hangs


class SilentServer:
    """Listens on 127.0.0.1 and accepts connections (in the kernel backlog) but never answers,
    so clients run into their read timeout. `port` is valid after `start()`."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self.host = LOOPBACK
        self.port = 0

    def start(self) -> SilentServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((LOOPBACK, 0))
        sock.listen(16)
        self._sock = sock
        self.port = sock.getsockname()[1]
        return self

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- Slack Web API


@dataclass
class SlackFaults:
    """Faults the Slack stand-in injects, drawn per request from its own seeded random stream.

    * `rate_429`: answer 429 ratelimited with Retry-After `retry_after` seconds (nothing stored)
    * `rate_5xx`: answer 500/502/503 (nothing stored)
    * `rate_hang`: for writes, store the message and then hold the answer `hang_seconds` (longer
      than the client's timeout: it arrived, but the client cannot know); for reads, just hang
    A write that arrives while a Retry-After the stand-in gave is still running is counted in
    `SlackApiServer.retry_after_violations`.
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_hang: float = 0.0
    retry_after: float = 1.0
    hang_seconds: float = 2.5
    seed: int = 14


class SlackApiServer(_HttpStandIn):
    """A small stand-in for the Slack Web API on 127.0.0.1: `chat.postMessage` (with `thread_ts`
    and `reply_broadcast`), `chat.update`, `conversations.history` and `conversations.replies`, with
    message metadata, one bot token, and injected faults (`SlackFaults`).

    * `api_url`: the base URL to give the client (`http://127.0.0.1:PORT/api/`).
    * `TOKEN`, `CHANNEL`: the bot token and the default channel id it accepts (`invalid_auth`,
      `channel_not_found` otherwise); `channels=` accepts more.
    * `messages`: every message posted (top-level and replies), as dicts with ts, channel, text,
      blocks, metadata, thread_ts, reply_broadcast (in order); `updates` every chat.update.
    * `alert_ids()`: the alert id of every top-level alert message (from its metadata), in order.
    * `writes[channel]`: arrival times (time.monotonic) of posts and updates, for rate checks.
    * `orphans`: replies whose thread_ts named no message of the channel (answered thread_not_found).
    * `answer_post(status, error, headers)`: make the next `chat.postMessage` calls fail like that
      (error=None and status=200 to go back to normal); `history_error` does the same for
      `conversations.history`. `calls` counts requests per method; `faults_injected` per kind.
    * `after_post`: a callable run with each message after it is stored and before the answer is
      sent (e.g. to kill the client right after Slack accepted its post).
    """

    TOKEN = "xoxb-0000-newsmon-test-token"
    CHANNEL = "C0NEWSMON1"

    def __init__(self, channels: tuple[str, ...] = (), faults: SlackFaults | None = None) -> None:
        super().__init__(threaded=True)
        import random

        self.channels = {self.CHANNEL, *channels}
        self.messages: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.faults = faults or SlackFaults()
        self.faults_injected: dict[str, int] = {"429": 0, "5xx": 0, "hang": 0}
        self.writes: dict[str, list[float]] = {}
        self.orphans: list[dict[str, Any]] = []
        self.retry_after_violations = 0
        self._held_until: dict[str, float] = {}
        self._rng = random.Random(self.faults.seed)
        self._post_fault: tuple[int, str | None, dict[str, str]] = (200, None, {})
        self.history_error: str | None = None
        self.after_post: Any = None  # called with each posted message before the answer goes out
        self._clock = 1_700_000_000.0

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.port}/api/"

    def alert_ids(self) -> list[str | None]:
        return [(m.get("metadata") or {}).get("event_payload", {}).get("alert_id") for m in self.messages
                if (m.get("metadata") or {}).get("event_type", "newsmon_alert") == "newsmon_alert"
                and not m.get("thread_ts")]

    def replies(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("thread_ts")]

    def answer_post(self, status: int = 200, error: str | None = None, headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._post_fault = (status, error, dict(headers or {}))

    def _json(self, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.TOKEN}":
            return self._json({"ok": False, "error": "invalid_auth"})
        return None

    def clear_channel(self) -> None:
        """Empty the channel, as for a newsdesk whose channel this store has never posted to."""
        with self._lock:
            self.messages.clear()

    def _count(self, method: str) -> None:
        with self._lock:
            self.calls[method] = self.calls.get(method, 0) + 1

    def _fault(self, channel: str | None, write: bool) -> tuple[str | None, Response | None]:
        """Draw this request's fault: (kind, answer to give now) or (None, None)."""
        f = self.faults
        with self._lock:
            now = time.monotonic()
            if write and channel is not None:
                if now < self._held_until.get(channel, 0.0):
                    self.retry_after_violations += 1
                self.writes.setdefault(channel, []).append(now)
            x = self._rng.random()
            if x < f.rate_429:
                self.faults_injected["429"] += 1
                if channel is not None:
                    self._held_until[channel] = now + f.retry_after
                return "429", self._json({"ok": False, "error": "ratelimited"}, 429,
                                         {"Retry-After": str(int(f.retry_after) if f.retry_after >= 1 else 1)})
            x -= f.rate_429
            if x < f.rate_5xx:
                self.faults_injected["5xx"] += 1
                status = self._rng.choice((500, 502, 503))
                return "5xx", self._json({"ok": False, "error": "internal_error"}, status)
            x -= f.rate_5xx
            if x < f.rate_hang:
                self.faults_injected["hang"] += 1
                return "hang", None
        return None, None

    def _args(self, request: Request) -> dict[str, Any]:
        body = request.get_json(force=True, silent=True)
        if isinstance(body, dict):
            return body
        return {**request.args.to_dict(), **request.form.to_dict()}  # the SDK sends reads as form POSTs

    def _post(self, request: Request) -> Response:
        self._count("chat.postMessage")
        with self._lock:
            status, error, headers = self._post_fault
        denied = self._auth(request)
        if denied is not None:
            return denied
        if error is not None or status != 200:
            return self._json({"ok": False, "error": error or "internal_error"}, status, headers)
        body = self._args(request)
        channel = body.get("channel")
        if channel not in self.channels:
            return self._json({"ok": False, "error": "channel_not_found"})
        kind, answer = self._fault(channel, write=True)
        if answer is not None:
            return answer
        thread_ts = body.get("thread_ts")
        with self._lock:
            if thread_ts and not any(m["ts"] == thread_ts and m["channel"] == channel and not m.get("thread_ts")
                                     for m in self.messages):
                self.orphans.append(body)
                return self._json({"ok": False, "error": "thread_not_found"})
            # Real ts values are unique per channel and increase; a fake clock keeps them so.
            self._clock = max(self._clock + 0.000100, time.time())
            ts = f"{self._clock:.6f}"
            message = {
                "type": "message",
                "ts": ts,
                "channel": channel,
                "text": body.get("text"),
                "blocks": body.get("blocks"),
                "metadata": body.get("metadata"),
                "thread_ts": thread_ts,
                "reply_broadcast": bool(body.get("reply_broadcast")),
            }
            self.messages.append(message)
        if self.after_post is not None:
            self.after_post(message)
        if kind == "hang":
            time.sleep(self.faults.hang_seconds)
        return self._json({"ok": True, "channel": channel, "ts": ts, "message": message})

    def _update(self, request: Request) -> Response:
        self._count("chat.update")
        denied = self._auth(request)
        if denied is not None:
            return denied
        body = self._args(request)
        channel = body.get("channel")
        kind, answer = self._fault(channel, write=True)
        if answer is not None:
            return answer
        with self._lock:
            target = next((m for m in self.messages if m["ts"] == body.get("ts") and m["channel"] == channel), None)
            if target is None:
                return self._json({"ok": False, "error": "message_not_found"})
            target["text"], target["blocks"] = body.get("text"), body.get("blocks")
            self.updates.append({"channel": channel, "ts": body.get("ts"), "text": body.get("text"),
                                 "blocks": body.get("blocks")})
        if kind == "hang":
            time.sleep(self.faults.hang_seconds)
        return self._json({"ok": True, "channel": channel, "ts": body.get("ts")})

    def _read(self, request: Request, method: str) -> Response:
        self._count(method)
        denied = self._auth(request)
        if denied is not None:
            return denied
        if self.history_error and method == "conversations.history":
            return self._json({"ok": False, "error": self.history_error})
        args = self._args(request)
        channel = args.get("channel")
        if channel not in self.channels:
            return self._json({"ok": False, "error": "channel_not_found"})
        kind, answer = self._fault(channel, write=False)
        if answer is not None:
            return answer
        if kind == "hang":
            time.sleep(self.faults.hang_seconds)
        oldest = float(args.get("oldest") or 0)
        limit = int(args.get("limit") or 100)
        start = int(args.get("cursor") or 0)
        with_meta = str(args.get("include_all_metadata")) in ("1", "true", "True")
        with self._lock:
            if method == "conversations.history":  # the channel: top-level messages and broadcast replies
                found = [m for m in reversed(self.messages) if m["channel"] == channel and float(m["ts"]) > oldest
                         and (not m.get("thread_ts") or m.get("reply_broadcast"))]  # newest first
            else:  # one thread: the parent and its replies, oldest first
                ts = args.get("ts")
                found = [m for m in self.messages if m["channel"] == channel
                         and (m["ts"] == ts or m.get("thread_ts") == ts) and (float(m["ts"]) > oldest or m["ts"] == ts)]
        page = found[start : start + limit]
        if not with_meta:
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(found)
        return self._json({
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        })

    def _history(self, request: Request) -> Response:
        return self._read(request, "conversations.history")

    def _routes(self) -> None:
        self._server.expect_request("/api/chat.postMessage", method="POST").respond_with_handler(self._post)
        self._server.expect_request("/api/chat.update", method="POST").respond_with_handler(self._update)
        self._server.expect_request("/api/conversations.history").respond_with_handler(self._history)
        self._server.expect_request("/api/conversations.replies").respond_with_handler(
            lambda r: self._read(r, "conversations.replies"))
