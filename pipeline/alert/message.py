"""The alert record handed to notifiers, and how it is rendered for each channel.

Contract:

* `AlertMessage` is frozen and holds only plain values, so the outbox can store it and a notifier
  can render it any number of times with the same result.
* `alert_id` is stable for a (topic, story) pair. Notifiers use it as an idempotency key (the
  email Message-ID, for instance), so a re-send after a crash is recognisable as the same alert.
* The render functions are pure: same message in, same output out. They never raise on odd input
  (empty evidence, missing dates, very long titles); they shorten to each channel's limits.

    render_text(msg)    plain text body for email and the console
    render_slack(msg)   {"text": fallback, "blocks": [...]} for a Slack incoming webhook
    render_subject(msg) "[newsmon] <topic>: <title>", at most 150 characters, one line
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SUBJECT_MAX = 150

# Slack Block Kit limits (characters). Going over any of them makes Slack reject the whole
# payload with 400 invalid_blocks, which would turn a cosmetic problem into a lost alert.
_SLACK_HEADER_MAX = 150
_SLACK_TEXT_MAX = 3000
_SLACK_TITLE_MAX = 300
_SLACK_DESCRIPTION_MAX = 500
_EVIDENCE_LINES_MAX = 10
_OUTLETS_SHOWN_MAX = 8


@dataclass(frozen=True)
class AlertMessage:
    """One alert: a story matched a topic."""

    alert_id: str              # stable id of the (topic, story) alert; used as idempotency key
    topic: str
    topic_description: str
    story_id: str
    title: str
    url: str
    sitename: str | None
    published: datetime | None
    score: float
    evidence: tuple[str, ...]  # short human-readable evidence lines
    outlets: tuple[str, ...]   # outlets that carried the story so far
    created_at: datetime


# --------------------------------------------------------------------------- helpers


def _one_line(text: str) -> str:
    """Collapse all whitespace (newlines included) to single spaces."""
    return " ".join(text.split())


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def _utc(moment: datetime) -> datetime:
    # Records are meant to carry aware UTC datetimes; a naive one is read as UTC rather than
    # as local time so that rendering does not depend on the host's time zone.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_time(moment: datetime | None) -> str:
    """`2024-05-01 14:03 UTC`, or `unknown` when there is no date."""
    if moment is None:
        return "unknown"
    return _utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _outlets_line(msg: AlertMessage) -> str:
    outlets = [o for o in msg.outlets if o]
    if not outlets:
        return msg.sitename or ""
    shown = ", ".join(outlets[:_OUTLETS_SHOWN_MAX])
    hidden = len(outlets) - _OUTLETS_SHOWN_MAX
    return f"{shown} +{hidden} more" if hidden > 0 else shown


# An evidence line as the store writes it: "<kind> <detail> in <zone>[: 'span', 'span', ...]",
# where a rule's detail is "<name>: <its whole query>". The non-greedy detail with the anchored
# tail lets a query contain " in " itself.
_EVIDENCE_RE = re.compile(r"^(?P<kind>\S+) (?P<detail>.+?) in (?P<zone>\w+)(?:: (?P<spans>'.*'))?$")
_SPANS_SHOWN_MAX = 6


def compact_evidence(evidence: tuple[str, ...]) -> list[str]:
    """One line per rule or exemplar, its zones and matched words merged, without the query.

    The whole rule query repeated once per zone made alerts long and hid the words that matched;
    the rule's name says which rule fired (`newsmon topics test` shows its query and why).
    Lines of another shape are kept as they are."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for raw in evidence:
        line = _one_line(raw)
        if not line:
            continue
        m = _EVIDENCE_RE.match(line)
        if m is None:
            groups.setdefault(line, ([], []))
            continue
        detail = m["detail"].split(": ", 1)[0] if m["kind"] == "rule" else m["detail"]
        zones, spans = groups.setdefault(f"{m['kind']} {detail}", ([], []))
        if m["zone"] not in zones:
            zones.append(m["zone"])
        for span in re.findall(r"'([^']*)'", m["spans"] or ""):
            if span.lower() not in (x.lower() for x in spans):
                spans.append(span)
    out = []
    for head, (zones, spans) in groups.items():
        shown = ", ".join(f"'{x}'" for x in spans[:_SPANS_SHOWN_MAX])
        more = f" +{len(spans) - _SPANS_SHOWN_MAX}" if len(spans) > _SPANS_SHOWN_MAX else ""
        out.append(head + (f" in {', '.join(zones)}" if zones else "") + (f": {shown}{more}" if shown else ""))
    return out


def _evidence_lines(msg: AlertMessage) -> list[str]:
    lines = compact_evidence(msg.evidence)
    if len(lines) > _EVIDENCE_LINES_MAX:
        rest = len(lines) - (_EVIDENCE_LINES_MAX - 1)
        lines = lines[: _EVIDENCE_LINES_MAX - 1] + [f"… and {rest} more"]
    return lines


# --------------------------------------------------------------------------- plain text


def render_subject(msg: AlertMessage) -> str:
    """`[newsmon] <topic>: <title>` on one line, at most 150 characters."""
    subject = f"[newsmon] {_one_line(msg.topic)}: {_one_line(msg.title) or '(untitled)'}"
    return _truncate(subject, SUBJECT_MAX)


def render_text(msg: AlertMessage) -> str:
    """A plain-text rendering for email bodies and the console."""
    lines = [f"newsmon alert: topic {_one_line(msg.topic)}"]
    if msg.topic_description.strip():
        lines.append(_one_line(msg.topic_description))
    lines += ["", _one_line(msg.title) or "(untitled)", msg.url, ""]
    if msg.sitename:
        lines.append(f"Source:    {_one_line(msg.sitename)}")
    lines.append(f"Published: {format_time(msg.published)}")
    lines.append(f"Score:     {msg.score:.2f}")
    outlets = [o for o in msg.outlets if o]
    if outlets:
        lines.append(f"Outlets ({len(outlets)}): {', '.join(outlets)}")
    evidence = _evidence_lines(msg)
    if evidence:
        lines += ["", "Evidence:"]
        lines += [f"  - {e}" for e in evidence]
    lines += ["", f"Alert {msg.alert_id} (story {msg.story_id}) raised {format_time(msg.created_at)}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Slack


def _slack_escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link_target(url: str) -> str:
    # Inside `<url|label>` the characters < > | and whitespace would end or split the link.
    # None of them may appear raw in a valid URL anyway, so percent-encoding them is lossless.
    out = url.strip()
    for raw, encoded in (("<", "%3C"), (">", "%3E"), ("|", "%7C"), (" ", "%20")):
        out = out.replace(raw, encoded)
    return "".join(out.split())


def render_slack(msg: AlertMessage) -> dict[str, Any]:
    """A Block Kit payload: header (topic), linked title, context line, evidence bullets.

    `text` is the notification/fallback text Slack shows where blocks are not rendered.
    """
    title = _one_line(msg.title) or "(untitled)"
    fallback = _truncate(f"[newsmon] {_one_line(msg.topic)}: {title} {msg.url}", _SLACK_TEXT_MAX)

    label = _slack_escape(_truncate(title, _SLACK_TITLE_MAX))
    section = f"<{_slack_link_target(msg.url)}|{label}>"
    if msg.topic_description.strip():
        description = _truncate(_one_line(msg.topic_description), _SLACK_DESCRIPTION_MAX)
        section += f"\n_{_slack_escape(description)}_"

    context = []
    outlets = _outlets_line(msg)
    if outlets:
        context.append(_slack_escape(outlets))
    context.append(f"published {format_time(msg.published)}")
    context.append(f"score {msg.score:.2f}")
    context.append(f"alert `{_slack_escape(msg.alert_id)}`")

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _truncate(f"newsmon: {_one_line(msg.topic)}", _SLACK_HEADER_MAX),
                "emoji": False,
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(section, _SLACK_TEXT_MAX)}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _truncate(item, _SLACK_TEXT_MAX)} for item in context
            ],
        },
    ]
    evidence = _evidence_lines(msg)
    if evidence:
        body = "*Evidence*\n" + "\n".join(f"• {_slack_escape(e)}" for e in evidence)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _truncate(body, _SLACK_TEXT_MAX)}})
    return {"text": fallback, "blocks": blocks}
