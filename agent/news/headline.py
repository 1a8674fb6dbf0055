"""The validated headline and what a provider returns (batch, per-feed report), with the text
normalisation every other news module relies on.

Headlines are untrusted input: everything is normalised here (NFC, invisible characters removed,
whitespace collapsed, lengths bounded) so that matching, screening and prompts all see one form.
"""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

TITLE_MAX_CHARS = 500
SOURCE_MAX_CHARS = 120
SUMMARY_MAX_CHARS = 1000
# How many per-row reasons a report keeps verbatim (the counts are always complete).
MAX_NOTES = 20


# ---------------------------------------------------------------------------------------------
# Text normalisation

_WS_RE = re.compile(r"\s+")
_TAG_RE = re.compile(r"<[^>]*>")


def strip_invisible(text: str) -> str:
    """Drop control, format (zero-width, bidi override), private-use and surrogate characters.

    Whitespace controls (newline, tab) become spaces so words stay apart.
    """
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\t\n\r\v\f\x85\u2028\u2029":
            out.append(" ")
        elif cat in ("Cc", "Cf", "Co", "Cs"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def normalize_text(text: str) -> str:
    """NFC, invisible characters removed, whitespace collapsed: the form a Headline stores."""
    return _WS_RE.sub(" ", strip_invisible(unicodedata.normalize("NFC", text))).strip()


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def fold(text: str) -> str:
    """Accent- and case-insensitive comparison form ("Itaú" and "ITAU" fold to "itau")."""
    return _WS_RE.sub(" ", strip_accents(strip_invisible(text)).casefold()).strip()


def plain_text(text: str) -> str:
    """Feed text as plain text: markup removed, entities decoded."""
    return normalize_text(html.unescape(_TAG_RE.sub(" ", text)))


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def unaccented(text: str) -> str:
    """Accent-free, invisible characters removed, whitespace collapsed; case kept."""
    return _WS_RE.sub(" ", strip_accents(strip_invisible(text)))


def require_aware(now: datetime) -> None:
    """Refuse a naive ``now``: windows and dates compared with it would be off by the UTC offset."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


# ---------------------------------------------------------------------------------------------
# The boundary models


class Headline(BaseModel):
    """One news item, validated: normalised text and a timezone-aware publication time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    source: str
    published: datetime
    url: str | None = None
    summary: str | None = None

    @field_validator("title", "source")
    @classmethod
    def _bounded_text(cls, v: str, info: ValidationInfo) -> str:
        limit = TITLE_MAX_CHARS if info.field_name == "title" else SOURCE_MAX_CHARS
        v = normalize_text(v)
        if not 1 <= len(v) <= limit:
            raise ValueError(f"must be 1..{limit} characters after normalising whitespace, got {len(v)}")
        return v

    @field_validator("published")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        # A naive time is ambiguous by three hours on B3 (UTC vs America/Sao_Paulo): refuse it.
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("must be timezone-aware (e.g. 2025-06-30T10:00:00-03:00); a naive time is ambiguous")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        if not v:
            return None  # an empty cell means "no link", as an empty env value means "not set"
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc or _WS_RE.search(v):
            raise ValueError(f"must be an http(s) URL, got {v[:80]!r}")
        return v

    @field_validator("summary")
    @classmethod
    def _summary(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = normalize_text(v)
        # Summaries are optional context and often whole articles: cap them rather than refuse.
        return cap(v, SUMMARY_MAX_CHARS) if v else None


class FeedReport(BaseModel):
    """What one feed (URL or file) yielded and what was skipped; goes into logs and records."""

    model_config = ConfigDict(extra="forbid")

    feed: str
    ok: bool
    error: str | None = None
    entries: int = Field(0, ge=0)
    headlines: int = Field(0, ge=0)
    skipped: dict[str, int] = Field(default_factory=dict)
    repaired: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class NewsBatch(BaseModel):
    """Everything a provider returned in one fetch, with one report per feed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    fetched_at: datetime
    headlines: list[Headline]
    reports: list[FeedReport]

    @property
    def errors(self) -> list[str]:
        return [f"{r.feed}: {r.error}" for r in self.reports if not r.ok]


class Tally:
    """Counts skip reasons and keeps the first few row-level notes; ends as one FeedReport."""

    def __init__(self) -> None:
        self.skipped: dict[str, int] = {}
        self.repaired: dict[str, int] = {}
        self.notes: list[str] = []
        self._extra = 0

    def skip(self, kind: str, note: str | None = None) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        if note:
            self.note(note)

    def repair(self, kind: str) -> None:
        self.repaired[kind] = self.repaired.get(kind, 0) + 1

    def note(self, note: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(note)
        else:
            self._extra += 1

    def report(self, feed: str, entries: int, headlines: int) -> FeedReport:
        notes = self.notes + ([f"... and {self._extra} more"] if self._extra else [])
        return FeedReport(feed=feed, ok=True, entries=entries, headlines=headlines,
                          skipped=self.skipped, repaired=self.repaired, notes=notes)
