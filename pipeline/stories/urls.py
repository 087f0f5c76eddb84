"""URL identity: one canonical form per article URL (rung 1 of the ladder, see pipeline.stories)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from courlan import normalize_url, scrub_url

# ---------------------------------------------------------------------------------------------
# URL canonicalisation.

_TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gclsrc", "msclkid", "yclid", "twclid", "igshid", "mc_cid",
        "mc_eid", "ocid", "cmpid", "cmp", "icid", "ito", "smid", "smtyp", "sr_share", "share",
        "mbid", "rss", "wt.mc_id", "_ga", "_gl", "_hsenc", "_hsmi", "guccounter", "soc_src",
        "soc_trk", "ref_src", "ref_url", "outputtype", "amp", "amp_js_v", "usqp",
    }
)
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_", "ns_", "itm_", "vero_", "hsa_", "oly_")
# The AMP cache serves https://www.example.com/a as https://www-example-com.cdn.ampproject.org/c/s/www.example.com/a
_AMP_CACHE = re.compile(r"^[^/]+\.cdn\.ampproject\.org/[a-z]/(s/)?(.+)$", re.IGNORECASE)
_AMP_SEGMENT = re.compile(r"/amp(?=/|$)", re.IGNORECASE)
_AMP_SUFFIX = re.compile(r"[.-]amp(?=\.html?$|$)", re.IGNORECASE)


def _is_tracking(param: str) -> bool:
    name = param.lower()
    return name in _TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)


def _unwrap_amp_cache(url: str) -> str:
    _, sep, rest = url.partition("://")
    match = _AMP_CACHE.match(rest) if sep else None
    if not match:
        return url
    return ("https://" if match.group(1) else "http://") + match.group(2)


def canonical_url(url: str) -> str:
    """One deterministic form per article URL.

    Tracking parameters (utm_*, fbclid, gclid, ocid, cmpid, at_*, ...) and the fragment are dropped,
    AMP variants (amp. host, /amp segment, .amp suffix, ?amp, the AMP cache) fold onto the page
    they render, the scheme and host are lowercased, default ports and trailing slashes go.
    Other parameters are kept, sorted: they may name the article (?id=, ?story=), and dropping
    them would make two articles one URL, which the URL rung would then fold together.
    Returns "" for an empty URL and the stripped input when it does not parse.
    """
    url = url.strip()
    if not url:
        return ""
    try:
        parts = urlsplit(normalize_url(scrub_url(_unwrap_amp_cache(url)), strict=False))
    except (ValueError, AttributeError):
        return url
    host = parts.netloc.lower()
    if host.startswith("amp."):
        host = host[len("amp.") :]
    path = _AMP_SUFFIX.sub("", _AMP_SEGMENT.sub("", parts.path)).rstrip("/") or "/"
    params = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k))
    return urlunsplit((parts.scheme.lower(), host, path, urlencode(params), ""))
