"""Email channel: send an alert through an SMTP submission server.

One connection per `send`: EHLO, STARTTLS (unless disabled), EHLO again, AUTH when a username is
configured, then one message to all recipients.

The message:
    Subject     render_subject(msg)
    Message-ID  <{alert_id}@newsmon>, derived only from the alert id, so a re-send after a crash
                (the server accepted DATA but we died before recording it) carries the same id
                and receivers or their filters can recognise the duplicate
    Date        the alert's created_at: a re-send is the same message, not a new one
    body        render_text(msg), UTF-8

Outcomes of `send`:

    accepted for at least one recipient        delivered (refused recipients are logged)
    credentials but starttls=False             PermanentDeliveryError, before connecting
    auth rejected (535), 5xx at any step       PermanentDeliveryError
    every recipient refused with 5xx           PermanentDeliveryError
    server certificate not trusted             PermanentDeliveryError (fix ssl_context/cafile)
    server lacks STARTTLS/AUTH/SMTPUTF8        PermanentDeliveryError
    4xx at any step (greylisting, 421 busy, 454 temporary auth failure)
                                               TransientDeliveryError
    connection refused/reset, DNS, timeout     TransientDeliveryError

The password is never logged or put into messages, and `repr` masks it.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from pipeline.alert.message import AlertMessage, render_subject, render_text
from pipeline.errors import (
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

log = logging.getLogger(__name__)

# Characters allowed in the left part of a Message-ID (RFC 5322 dot-atom-text), minus a few that
# confuse naive parsers. Anything else in an alert id is mapped to "-", which keeps the mapping
# deterministic.
_MSGID_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")


def message_id(alert_id: str) -> str:
    """The Message-ID for an alert: `<{alert_id}@newsmon>` (unsafe characters become '-')."""
    local = _MSGID_UNSAFE.sub("-", alert_id).strip(".") or "alert"
    local = re.sub(r"\.{2,}", ".", local)
    return f"<{local}@newsmon>"


def _classify_code(code: int, what: str) -> DeliveryError:
    if 400 <= code < 500:
        return TransientDeliveryError(what)
    return PermanentDeliveryError(what)


def _reply_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:200]


class EmailNotifier:
    """Deliver alerts by SMTP to a fixed list of recipients."""

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: tuple[str, ...],
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 20.0,
        *,
        local_hostname: str | None = None,
    ) -> None:
        """`local_hostname` is the name sent in EHLO; by default smtplib derives it from the host's
        FQDN, which can mean a slow DNS lookup on machines without a proper hostname."""
        if not host:
            raise ConfigError("email: SMTP host is empty")
        if not sender:
            raise ConfigError("email: sender address is empty")
        recipients = tuple(r.strip() for r in recipients if r and r.strip())
        if not recipients:
            raise ConfigError("email: at least one recipient is required")
        if timeout <= 0:
            raise ConfigError("email: timeout must be positive")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = recipients
        self.username = username or None
        self._password = password
        self.starttls = starttls
        # The default context verifies the certificate chain and the host name against the
        # system trust store; pass a context with a private CA for internal relays.
        self._ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self.timeout = timeout
        self.local_hostname = local_hostname

    def __repr__(self) -> str:
        password = None if self._password is None else "***"
        return (
            f"EmailNotifier(host={self.host!r}, port={self.port!r}, sender={self.sender!r}, "
            f"recipients={self.recipients!r}, username={self.username!r}, password={password!r}, "
            f"starttls={self.starttls!r}, timeout={self.timeout!r})"
        )

    def build_message(self, msg: AlertMessage) -> EmailMessage:
        """The email for an alert; deterministic for a given alert and configuration."""
        email = EmailMessage()
        email["Subject"] = render_subject(msg)
        email["From"] = self.sender
        email["To"] = ", ".join(self.recipients)
        created = msg.created_at if msg.created_at.tzinfo else msg.created_at.replace(tzinfo=UTC)
        email["Date"] = format_datetime(created.astimezone(UTC))
        email["Message-ID"] = message_id(msg.alert_id)
        # RFC 3834: tells vacation responders and ticket systems not to answer the alert.
        email["Auto-Submitted"] = "auto-generated"
        email["X-Newsmon-Alert-Id"] = msg.alert_id
        email.set_content(render_text(msg), charset="utf-8")
        return email

    def build_other(
        self, subject: str, body: str, message_id_: str, *, created: datetime, in_reply_to: str | None = None,
        references: Sequence[str] = (), alert_id: str | None = None,
    ) -> EmailMessage:
        """A message that is not the alert itself: a follow-up in the alert's thread
        (`In-Reply-To`/`References`, RFC 5322 3.6.4), a digest, a test or a health alert."""
        email = EmailMessage()
        email["Subject"] = subject
        email["From"] = self.sender
        email["To"] = ", ".join(self.recipients)
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        email["Date"] = format_datetime(created.astimezone(UTC))
        email["Message-ID"] = message_id_
        if in_reply_to:
            email["In-Reply-To"] = in_reply_to
            email["References"] = " ".join(dict.fromkeys([*references, in_reply_to]))
        email["Auto-Submitted"] = "auto-generated"
        if alert_id:
            email["X-Newsmon-Alert-Id"] = alert_id
        email.set_content(body, charset="utf-8")
        return email

    def send(self, msg: AlertMessage) -> None:
        self.deliver(self.build_message(msg), msg.alert_id)

    def deliver(self, email: EmailMessage, what: str) -> None:
        """Send one built message (an alert, a follow-up, a digest); `what` names it in logs."""
        if self.username and not self.starttls:
            # Checked before connecting: AUTH PLAIN/LOGIN would put the password on the wire in
            # clear text (base64 is not encryption).
            raise PermanentDeliveryError(
                "email: refusing to send SMTP credentials without TLS; set starttls: true "
                "(or remove username/password for a relay that needs no authentication)"
            )
        if self.username and self._password is None:
            raise PermanentDeliveryError("email: a username is configured but no password")
        where = f"{self.host}:{self.port}"
        try:
            refused = self._deliver(email)
        except smtplib.SMTPRecipientsRefused as err:
            codes = [code for code, _ in err.recipients.values()]
            detail = "; ".join(
                f"{rcpt}: {code} {_reply_text(text)}" for rcpt, (code, text) in err.recipients.items()
            )
            # All refused. Only when every refusal is temporary (greylisting, full mailbox) is a
            # later attempt worth making.
            if codes and all(400 <= c < 500 for c in codes):
                raise TransientDeliveryError(f"email: {where} refused all recipients for now: {detail}") from err
            raise PermanentDeliveryError(f"email: {where} refused all recipients: {detail}") from err
        except smtplib.SMTPAuthenticationError as err:
            # 454 is "temporary authentication failure" (e.g. the auth backend is down).
            what = f"email: {where} rejected the credentials for {self.username!r}: {err.smtp_code} {_reply_text(err.smtp_error)}"
            if 400 <= err.smtp_code < 500:
                raise TransientDeliveryError(what) from err
            raise PermanentDeliveryError(what) from err
        except smtplib.SMTPResponseException as err:
            # Sender refused, DATA refused, bad greeting, HELO refused: decided by the reply code.
            what = f"email: {where} answered {err.smtp_code} {_reply_text(err.smtp_error)}"
            raise _classify_code(err.smtp_code, what) from err
        except smtplib.SMTPServerDisconnected as err:
            # Also raised when the connection drops after DATA but before the reply: the message
            # may have been delivered, which is what the deterministic Message-ID is for.
            raise TransientDeliveryError(f"email: {where} closed the connection: {err}") from err
        except smtplib.SMTPNotSupportedError as err:
            raise PermanentDeliveryError(f"email: {where} does not support a required feature: {err}") from err
        except smtplib.SMTPException as err:
            # e.g. "No suitable authentication method found": configuration, not weather.
            raise PermanentDeliveryError(f"email: {where}: {err}") from err
        except ssl.SSLCertVerificationError as err:
            raise PermanentDeliveryError(
                f"email: the TLS certificate of {where} is not trusted ({err.verify_message}); "
                "configure a CA file for this server or fix its certificate"
            ) from err
        except ValueError as err:
            # UnicodeError included: a non-ASCII address the server cannot take, or a malformed
            # header value. Sending the same alert again will fail the same way.
            raise PermanentDeliveryError(f"email: cannot encode {what}: {err}") from err
        except OSError as err:
            # Refused, reset, unreachable, DNS failure, timeout, TLS handshake trouble.
            raise TransientDeliveryError(f"email: cannot talk to {where}: {type(err).__name__}: {err}") from err

        if refused:
            log.warning(
                "email: %s delivered, but %s refused %d recipient(s): %s",
                what,
                where,
                len(refused),
                ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in refused.items()),
            )
        log.debug("email: delivered %s via %s", what, where)

    def _deliver(self, email: EmailMessage) -> dict[str, tuple[int, bytes]]:
        # Passing host to the constructor (rather than calling connect later) matters: smtplib
        # takes the TLS server name for certificate checks from the constructor argument.
        smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=self._ssl_context)
                smtp.ehlo()  # capabilities (AUTH in particular) are announced again after TLS
            if self.username:
                smtp.login(self.username, self._password or "")
            refused = smtp.send_message(email, from_addr=self.sender, to_addrs=list(self.recipients))
        except BaseException:
            # No QUIT on failure: after a timeout it would only wait for another `timeout`.
            smtp.close()
            raise
        # DATA was accepted, so the alert is delivered; a failing QUIT must not turn that into an
        # error (and a duplicate on retry), so the goodbye is best effort.
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
        return refused
