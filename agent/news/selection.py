"""Which headlines reach a ticker's prompt: matched to the ticker, inside the time window,
screened for prompt injection, de-duplicated, newest first; and how they are written there.

What was left out is returned with its reason, for the decision record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from agent.config import normalize_ticker
from agent.news.headline import Headline, fold, require_aware
from agent.news.injection import PROMPT_MAX_CHARS, sanitize_for_prompt, screen_headline
from agent.news.tickers import match_tickers

# Publishers' clocks and ours disagree a little; more than this in the future is a bad date.
CLOCK_SKEW_TOLERANCE = timedelta(minutes=5)


def format_headlines(headlines: Iterable[Headline], max_chars: int = PROMPT_MAX_CHARS) -> str:
    """Headlines as prompt lines, each sanitised: ``- 2025-06-30 10:00 -0300 | source | title``."""
    return "\n".join(
        f"- {h.published:%Y-%m-%d %H:%M %z} | {sanitize_for_prompt(h.source, 60)} | {sanitize_for_prompt(h.title, max_chars)}"
        for h in headlines
    )


class NewsSelection(BaseModel):
    """The headlines chosen for one ticker, and what was left out and why (for the decision record).

    ``dropped`` lists (title, reason) for headlines refused as suspicious (prompt injection,
    future-dated); ``counts`` counts every other reason a headline was not selected.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticker: str
    headlines: list[Headline]
    dropped: list[tuple[str, str]] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def _title_key(title: str) -> str:
    return " ".join(re.findall(r"\w+", fold(title)))


_TRACKING_PARAMS = re.compile(r"^(?:utm_\w+|fbclid|gclid|ref)$", re.IGNORECASE)


def _url_key(url: str) -> str:
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k)])
    return urlunsplit(("https" if parts.scheme == "http" else parts.scheme, parts.netloc.lower(),
                       parts.path.rstrip("/"), query, ""))


def select_headlines(
    headlines: Iterable[Headline],
    ticker: str,
    aliases: Mapping[str, Sequence[str]],
    now: datetime,
    window_hours: float,
    max_items: int,
    *,
    clock_skew: timedelta = CLOCK_SKEW_TOLERANCE,
) -> NewsSelection:
    """The headlines about ``ticker`` published in the last ``window_hours`` (up to ``clock_skew``
    in the future), screened for prompt injection, de-duplicated (same normalised title or same
    URL: the earliest is kept), newest first, at most ``max_items``.
    """
    require_aware(now)
    if not window_hours > 0:
        raise ValueError(f"window_hours must be > 0, got {window_hours}")
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    ticker = normalize_ticker(ticker)
    by_ticker = {normalize_ticker(k): v for k, v in aliases.items()}
    notes: list[str] = []
    if ticker not in by_ticker:
        notes.append(f"no aliases for {ticker}: matched by the ticker code only")
    own = {ticker: tuple(by_ticker.get(ticker, ()))}
    oldest, newest = now - timedelta(hours=window_hours), now + clock_skew
    counts: dict[str, int] = {}
    dropped: list[tuple[str, str]] = []

    def count(kind: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1

    kept: list[Headline] = []
    for h in headlines:
        if ticker not in match_tickers(h, own):
            count("other_ticker")
        elif h.published < oldest:
            count("too_old")
        elif h.published > newest:
            count("future_dated")
            ahead = (h.published - now).total_seconds() / 60
            dropped.append((h.title, f"published {ahead:.0f} min after now (tolerance {clock_skew.total_seconds() / 60:.0f} min)"))
        else:
            reason = screen_headline(h.title) or (screen_headline(h.summary) if h.summary else None)
            if reason:
                count("prompt_injection")
                dropped.append((h.title, reason))
                logger.warning("news for {}: dropped {!r}: {}", ticker, h.title[:80], reason)
            else:
                kept.append(h)

    unique: list[Headline] = []
    seen_titles: set[str] = set()
    seen_urls: set[str] = set()
    for h in sorted(kept, key=lambda h: h.published):  # earliest first, so the original wins
        tkey, ukey = _title_key(h.title), (_url_key(h.url) if h.url else None)
        if tkey in seen_titles or (ukey is not None and ukey in seen_urls):
            count("duplicate")
            continue
        seen_titles.add(tkey)
        if ukey is not None:
            seen_urls.add(ukey)
        unique.append(h)

    unique.sort(key=lambda h: h.published, reverse=True)
    if len(unique) > max_items:
        counts["over_max_items"] = len(unique) - max_items
        unique = unique[:max_items]
    return NewsSelection(ticker=ticker, headlines=unique, dropped=dropped, counts=counts, notes=notes)
