"""News headlines for the sentiment layer: providers, ticker matching, selection and screening.

Headlines are untrusted input twice over: the feeds can be broken (so every provider reports
what it skipped and why, and one bad feed never stops the others), and the text can try to
instruct the model (so ``select_headlines`` screens every headline and returns the dropped
ones with the reason, for the decision record). Nothing here ever calls an LLM.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser
import httpx
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from agent.config import normalize_ticker
from agent.errors import AgentError, ConfigError

TITLE_MAX_CHARS = 500
SOURCE_MAX_CHARS = 120
SUMMARY_MAX_CHARS = 1000
# What one headline may occupy in a prompt: enough for any real title, too little for a payload.
PROMPT_MAX_CHARS = 300
# A feed larger than this is not a news feed (or is an attack on memory); it is refused.
MAX_FEED_BYTES = 5 * 1024 * 1024
USER_AGENT = "b3-cascade-agent/0.1 (news reader; paper trading)"
# Publishers' clocks and ours disagree a little; more than this in the future is a bad date.
CLOCK_SKEW_TOLERANCE = timedelta(minutes=5)
# How many per-row reasons a report keeps verbatim (the counts are always complete).
MAX_NOTES = 20


class FeedError(AgentError):
    """A news feed or file could not be fetched or parsed. Action: skip that feed; the others go on."""


# ---------------------------------------------------------------------------------------------
# Text helpers


_WS_RE = re.compile(r"\s+")
_TAG_RE = re.compile(r"<[^>]*>")
# Characters that delimit code, markup or JSON in a prompt; a headline never needs them.
_PROMPT_DELIMITERS = str.maketrans("", "", "`<>{}[]")


def _strip_invisible(text: str) -> str:
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
    return _WS_RE.sub(" ", _strip_invisible(unicodedata.normalize("NFC", text))).strip()


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def _fold(text: str) -> str:
    """Accent- and case-insensitive comparison form ("Itaú" and "ITAU" fold to "itau")."""
    return _WS_RE.sub(" ", _strip_accents(_strip_invisible(text)).casefold()).strip()


def _plain(text: str) -> str:
    """Feed text as plain text: markup removed, entities decoded."""
    return normalize_text(html.unescape(_TAG_RE.sub(" ", text)))


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---------------------------------------------------------------------------------------------
# The boundary model


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
        return _cap(v, SUMMARY_MAX_CHARS) if v else None


def _validation_reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors())


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


class _Tally:
    """Counts skip reasons and keeps the first few row-level notes."""

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


def _log_report(provider: str, report: FeedReport) -> None:
    if not report.ok:
        logger.warning("news {} {}: {}", provider, report.feed, report.error)
    elif report.skipped:
        logger.info("news {} {}: {} headlines, skipped {}", provider, report.feed, report.headlines, report.skipped)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


# ---------------------------------------------------------------------------------------------
# Providers


class NewsProvider(Protocol):
    """Anything that returns headlines. ``collect`` adds one report per feed for the record."""

    name: str

    def fetch(self, now: datetime) -> list[Headline]: ...

    def collect(self, now: datetime) -> NewsBatch: ...


FetchFn = Callable[[str, float], bytes]


def http_fetch(url: str, timeout_s: float, client: httpx.Client | None = None) -> bytes:
    """GET a feed with a timeout and a User-Agent; any failure is a FeedError naming the URL.

    The body is read in chunks and refused past MAX_FEED_BYTES. ``client`` is for tests.
    """
    headers = {"User-Agent": USER_AGENT, "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"}
    try:
        stream = (client.stream("GET", url, headers=headers, timeout=timeout_s, follow_redirects=True)
                  if client is not None else
                  httpx.stream("GET", url, headers=headers, timeout=timeout_s, follow_redirects=True))
        with stream as response:
            if response.status_code != 200:
                raise FeedError(f"GET {url}: HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if len(body) > MAX_FEED_BYTES:
                    raise FeedError(f"GET {url}: response larger than {MAX_FEED_BYTES} bytes")
            return bytes(body)
    except httpx.TimeoutException as exc:
        raise FeedError(f"GET {url}: timed out after {timeout_s}s ({type(exc).__name__})") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise FeedError(f"GET {url}: {type(exc).__name__}: {exc}") from exc


class NaiveDateError(ValueError):
    """A date with no timezone: refused, because guessing UTC or Brasília is off by three hours."""


_ZONE_ABBREVIATIONS = {"BRT": "-0300", "BRST": "-0200"}  # Brasília times unknown to email.utils


def parse_feed_date(raw: str) -> datetime:
    """RFC-822 (RSS) or ISO-8601 (Atom) to an aware datetime. Raises ValueError, never guesses a zone.

    ``-0000`` is UTC per RFC 5322; BRT/BRST are mapped to their offsets; a date with no zone
    at all is refused (feedparser's parsed tuples would silently call it UTC).
    """
    text = raw.strip()
    head, _, zone = text.rpartition(" ")
    if zone.upper() in _ZONE_ABBREVIATIONS:
        text = f"{head} {_ZONE_ABBREVIATIONS[zone.upper()]}"
    elif zone == "-0000":
        text = f"{head} +0000"
    try:
        value = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"unrecognised date {raw[:60]!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDateError(f"date {raw[:60]!r} has no timezone")
    return value


class RssNewsProvider:
    """RSS 2.0 / Atom feeds parsed with feedparser from bytes fetched by ``fetch``.

    Fetching is injectable so tests never touch the network and feedparser never does its own
    HTTP. Each feed is isolated: any failure becomes that feed's FeedReport error.
    """

    name = "rss"

    def __init__(self, urls: Sequence[str], timeout_s: float, fetch: FetchFn | None = None):
        if not urls:
            raise ConfigError("news.feeds: at least one feed URL is required for the rss provider")
        seen: set[str] = set()
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"news.feeds: {url!r} is not an http(s) URL")
            if url in seen:
                raise ConfigError(f"news.feeds: {url!r} is listed twice")
            seen.add(url)
        if not timeout_s > 0:
            raise ConfigError(f"news.timeout_s: must be > 0, got {timeout_s}")
        self.urls = list(urls)
        self.timeout_s = float(timeout_s)
        self._fetch = fetch or http_fetch

    def fetch(self, now: datetime) -> list[Headline]:
        return self.collect(now).headlines

    def collect(self, now: datetime) -> NewsBatch:
        _require_aware(now)
        headlines: list[Headline] = []
        reports: list[FeedReport] = []
        for url in self.urls:
            try:
                items, report = self._one(url)
            except Exception as exc:  # noqa: BLE001 - one feed's failure of any kind must not stop the others
                report = FeedReport(feed=url, ok=False, error=f"{type(exc).__name__}: {exc}")
                items = []
            _log_report(self.name, report)
            headlines.extend(items)
            reports.append(report)
        return NewsBatch(provider=self.name, fetched_at=now, headlines=headlines, reports=reports)

    def _one(self, url: str) -> tuple[list[Headline], FeedReport]:
        data = self._fetch(url, self.timeout_s)
        # A stream, never a str: feedparser treats a str as a URL or a file name to open.
        parsed = feedparser.parse(io.BytesIO(data))
        version = parsed.get("version", "")
        entries = parsed.get("entries", [])
        if not version and not entries:
            why = f" ({type(parsed.bozo_exception).__name__}: {parsed.bozo_exception})" if parsed.get("bozo") else ""
            raise FeedError(f"not an RSS or Atom feed{why}")
        tally = _Tally()
        if parsed.get("bozo"):
            tally.note(f"malformed feed ({type(parsed.bozo_exception).__name__}: {parsed.bozo_exception}); "
                       f"{len(entries)} entries recovered")
        feed_title = _plain(parsed.get("feed", {}).get("title") or "")
        source = feed_title or urlsplit(url).netloc
        out: list[Headline] = []
        for n, entry in enumerate(entries, 1):
            title = _plain(entry.get("title") or "")
            if not title:
                tally.skip("no_title")
                continue
            raw_date = entry.get("published") or entry.get("updated")
            if not raw_date:
                tally.skip("no_date")
                continue
            try:
                published = parse_feed_date(raw_date)
            except NaiveDateError as exc:
                tally.skip("no_timezone", f"entry {n}: {exc}")
                continue
            except ValueError as exc:
                tally.skip("bad_date", f"entry {n}: {exc}")
                continue
            link = (entry.get("link") or "").strip() or None
            if link is not None and urlsplit(link).scheme not in ("http", "https"):
                tally.repair("non_http_link_removed")
                link = None
            summary = _plain(entry.get("summary") or "") or None
            try:
                out.append(Headline(title=title, source=source, published=published, url=link, summary=summary))
            except ValidationError as exc:
                tally.skip("invalid", f"entry {n}: {_validation_reason(exc)}")
        return out, tally.report(url, len(entries), len(out))


FILE_COLUMNS = ("title", "published", "source", "url", "summary")
REQUIRED_COLUMNS = ("title", "published", "source")


class FileNewsProvider:
    """A local file of headlines: JSONL (``.jsonl``/``.ndjson``) or CSV (``.csv``) with the columns
    title, published (ISO-8601 with offset), source, and optional url, summary.

    For offline runs and backtests. A bad row is skipped with its line number in the reason;
    a truncated last JSONL line (a writer still appending) is tolerated and counted.
    """

    name = "file"

    def __init__(self, path: Path | str):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".ndjson", ".csv"):
            raise ConfigError(f"news.file: {self.path} must end in .jsonl, .ndjson or .csv")
        if not self.path.is_file():
            raise ConfigError(f"news.file: {self.path} is not a file")
        self.kind = "csv" if suffix == ".csv" else "jsonl"

    def fetch(self, now: datetime) -> list[Headline]:
        return self.collect(now).headlines

    def collect(self, now: datetime) -> NewsBatch:
        _require_aware(now)
        try:
            data = self.path.read_bytes()
            rows = _csv_rows(data) if self.kind == "csv" else _jsonl_rows(data)
            headlines, report = _rows_to_headlines(str(self.path), rows)
        except (OSError, FeedError) as exc:
            headlines, report = [], FeedReport(feed=str(self.path), ok=False, error=str(exc))
        _log_report(self.name, report)
        return NewsBatch(provider=self.name, fetched_at=now, headlines=headlines, reports=[report])


# A row is (line number, fields) or (line number, kind, reason) when it could not be read at all.
_Row = tuple[int, dict[str, Any]] | tuple[int, str, str]


def _jsonl_rows(data: bytes) -> Iterable[_Row]:
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue  # blank lines (and the empty piece after the final newline) carry nothing
        last_unterminated = n == len(lines) and not complete
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield n, "not_utf8", f"line {n}: not UTF-8"
            continue
        except json.JSONDecodeError as exc:
            if last_unterminated:
                yield n, "truncated_last_line", f"line {n}: truncated last line (a write in progress?)"
            else:
                yield n, "bad_json", f"line {n}: not valid JSON ({exc.msg})"
            continue
        if not isinstance(obj, dict):
            yield n, "not_object", f"line {n}: expected a JSON object, got {type(obj).__name__}"
            continue
        yield n, obj


def _csv_rows(data: bytes) -> Iterable[_Row]:
    try:
        text = data.decode("utf-8-sig")  # Excel writes a BOM
    except UnicodeDecodeError as exc:
        raise FeedError(f"not UTF-8 ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [str(c).strip().lower() for c in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in FILE_COLUMNS]
    if missing or unknown:
        raise FeedError(f"CSV header must have {', '.join(REQUIRED_COLUMNS)} (optional url, summary); "
                        f"missing {missing}, unknown {unknown}")
    reader.fieldnames = header
    try:
        for row in reader:
            n = reader.line_num
            if None in row:
                yield n, "too_many_fields", f"line {n}: more fields than the header"
                continue
            missing_cells = [k for k, v in row.items() if v is None]
            if missing_cells:
                yield n, "missing_field", f"line {n}: fewer fields than the header (no {', '.join(missing_cells)})"
                continue
            # An empty optional cell means "not given"; an empty required cell is caught below.
            yield n, {k: v for k, v in row.items() if not (k in ("url", "summary") and v.strip() == "")}
    except csv.Error as exc:
        yield reader.line_num, "csv_error", f"line {reader.line_num}: {exc}; the rest of the file is unreadable"


def _rows_to_headlines(feed: str, rows: Iterable[_Row]) -> tuple[list[Headline], FeedReport]:
    tally = _Tally()
    out: list[Headline] = []
    entries = 0
    for row in rows:
        entries += 1
        if len(row) == 3:
            n, kind, reason = row
            if kind == "truncated_last_line":
                logger.debug("news file {}: {}", feed, reason)
            tally.skip(kind, reason)
            continue
        n, obj = row
        unknown = sorted(set(obj) - set(FILE_COLUMNS))
        if unknown:
            tally.skip("unknown_field", f"line {n}: unknown field(s) {unknown}; allowed {list(FILE_COLUMNS)}")
            continue
        missing = [c for c in REQUIRED_COLUMNS if not (isinstance(obj.get(c), str) and obj[c].strip())]
        if missing:
            tally.skip("missing_field", f"line {n}: {', '.join(missing)} missing, empty or not a string")
            continue
        bad_type = [c for c in ("url", "summary") if obj.get(c) is not None and not isinstance(obj[c], str)]
        if bad_type:
            tally.skip("invalid", f"line {n}: {', '.join(bad_type)} must be a string")
            continue
        try:
            published = datetime.fromisoformat(obj["published"].strip())
        except ValueError:
            tally.skip("bad_date", f"line {n}: published {obj['published'][:40]!r} is not ISO-8601")
            continue
        if published.tzinfo is None:
            tally.skip("no_timezone", f"line {n}: published {obj['published'][:40]!r} has no UTC offset "
                                      "(write e.g. 2025-06-30T10:00:00-03:00)")
            continue
        try:
            out.append(Headline(title=obj["title"], source=obj["source"], published=published,
                                url=obj.get("url"), summary=obj.get("summary")))
        except ValidationError as exc:
            tally.skip("invalid", f"line {n}: {_validation_reason(exc)}")
    return out, tally.report(feed, entries, len(out))


# ---------------------------------------------------------------------------------------------
# Ticker matching

# Company-name aliases per ticker. The ticker code itself always matches and is not listed.
# Aliases are matched as whole words (see match_tickers); everyday Portuguese words are avoided
# or written in full ("Rumo Logística", not "Rumo"), and short ones ("B3", "WEG") are whole-word
# only. Note that "B3" also names the exchange, so market-wide headlines reach B3SA3.
DEFAULT_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "PETR4": ("Petrobras", "Petróleo Brasileiro"),
    "PETR3": ("Petrobras", "Petróleo Brasileiro"),
    "VALE3": ("Vale",),
    "ITUB4": ("Itaú", "Itaú Unibanco"),
    "ITUB3": ("Itaú", "Itaú Unibanco"),
    "ITSA4": ("Itaúsa",),
    "BBDC4": ("Bradesco",),
    "BBDC3": ("Bradesco",),
    "ABEV3": ("Ambev",),
    "BBAS3": ("Banco do Brasil",),
    "SANB11": ("Santander Brasil",),
    "BPAC11": ("BTG Pactual",),
    "WEGE3": ("WEG",),
    "MGLU3": ("Magazine Luiza", "Magalu"),
    "B3SA3": ("B3",),
    "ELET3": ("Eletrobras",),
    "ELET6": ("Eletrobras",),
    "SUZB3": ("Suzano",),
    "GGBR4": ("Gerdau",),
    "CSNA3": ("CSN", "Companhia Siderúrgica Nacional"),
    "USIM5": ("Usiminas",),
    "PRIO3": ("PRIO", "PetroRio"),
    "EMBR3": ("Embraer",),
    "RENT3": ("Localiza",),
    "LREN3": ("Lojas Renner",),
    "RADL3": ("Raia Drogasil", "RD Saúde"),
    "RAIL3": ("Rumo Logística",),
    "SBSP3": ("Sabesp",),
    "CMIG4": ("Cemig",),
    "EQTL3": ("Equatorial Energia",),
    "VIVT3": ("Telefônica Brasil",),
    "HAPV3": ("Hapvida",),
    "TOTS3": ("Totvs",),
})


@lru_cache(maxsize=1024)
def _word_pattern(term: str) -> re.Pattern[str]:
    """Whole-word, accent-stripped, case-insensitive pattern for one alias or code.

    A hyphen counts as part of a word: "Vale" does not match "vale-refeição", nor "B3" "B3SA3".
    """
    words = [re.escape(w) for w in _strip_accents(normalize_text(term)).split(" ") if w]
    return re.compile(r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])", re.IGNORECASE)


def _mentions(text: str, term: str, proper_noun: bool) -> bool:
    """``proper_noun``: an alias written with a capital letter does not match an all-lowercase
    occurrence, so "vale a pena" or "localiza" (the verb) are not the companies."""
    for m in _word_pattern(term).finditer(text):
        if not proper_noun or m.group(0) != m.group(0).lower():
            return True
    return False


def match_tickers(headline: Headline, aliases: Mapping[str, Sequence[str]]) -> set[str]:
    """The tickers (keys of ``aliases``) a headline's title mentions.

    A ticker matches by its code (PETR4; any case; a root such as PETR only if listed as an
    alias) or by an alias, accent-insensitively and as a whole word. Case is ignored too, except
    that an alias with a capital letter needs the occurrence not to be all lowercase (write the
    alias in lowercase to opt out). Only the title is read: a summary of a market wrap names
    dozens of companies that the item is not about.
    """
    text = _strip_accents(headline.title)
    found: set[str] = set()
    for ticker, names in aliases.items():
        if _mentions(text, ticker, proper_noun=False):
            found.add(ticker)
            continue
        for alias in names:
            if alias.strip() and _mentions(text, alias, proper_noun=alias != alias.lower()):
                found.add(ticker)
                break
    return found


# ---------------------------------------------------------------------------------------------
# Prompt-injection defence

# (label, pattern) matched on the folded text: accent-free, case-folded, invisible characters removed.
# Each pattern needs the instruction's object, so the same verbs in ordinary news do not match.
_INJECTION_PATTERNS: list[tuple[str, re.Pattern[str]]] = [(label, re.compile(rx)) for label, rx in [
    # English.
    ("instruction override", r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)*"
                             r"(?:(?:previous|prior|above|earlier|preceding|system|original)\s+)*"
                             r"(?:instructions?|prompts?|rules|messages|directions|context)\b"),
    ("instruction override", r"\b(?:ignore|disregard|forget)\s+(?:everything\s+|all\s+)?(?:above|before\s+this)\b"
                             r"|\b(?:ignore|disregard|forget)\s+(?:all\s+)?(?:previous|prior|preceding|earlier)\b"),
    ("role change", r"\byou\s+are\s+now\b|\bfrom\s+now\s+on,?\s+you\b|\bpretend\s+(?:to\s+be|you\s+are)\b"),
    ("system prompt", r"\bsystem\s+prompt\b|\bdeveloper\s+(?:message|mode)\b"),
    ("answer dictation", r"\b(?:respond|reply|answer)\s+(?:only\s+|just\s+|strictly\s+|exactly\s+)?(?:with|in|using)\s+"
                         r"(?:only\s+|just\s+|exactly\s+)?(?:[\"'{]|(?:buy|hold|sell|json|score|confidence|yes|no)\b"
                         r"|a\s+(?:score|single)\b|the\s+word\b)"
                         r"|\b(?:respond|reply|answer)\s+(?:only|just|strictly)\b"),
    ("answer dictation", r"\b(?:output|return|print|emit)\s+(?:only\s+)?(?:valid\s+|the\s+following\s+|this\s+)?json\b"
                         r"|\bjson\s+only\b"),
    ("score dictation", r"\b(?:score|confidence|sentiment)\s*(?:[:=]|of|is|must\s+be|should\s+be|to)?\s*"
                        r"(?:1(?:[.,]0{1,2})?|0[.,]\d{1,2}|100\s*%)(?![\w.,])"),
    ("decision dictation", r"\b(?:answer|respond|reply|output|decide|decision|verdict)\s*(?:with|is|:|=)?\s*"
                           r"[\"']?(?:strong\s+)?buy\b"),
    # Portuguese (accent-free: "instruções" is "instrucoes", "esqueça" is "esqueca").
    ("instruction override", r"\b(?:ignore|desconsidere|esqueca)\s+(?:todas\s+|todos\s+|tudo\s+|as\s+|os\s+|o\s+|a\s+|suas\s+)*"
                             r"(?:(?:instrucoes|instrucao|orientacoes|regras|comandos|mensagens)\b"
                             r"|(?:acima|anteriores|previas)\b|o\s+que\s+(?:foi\s+dito|esta\s+acima))"),
    ("role change", r"\bvoce\s+(?:agora\s+e|e\s+agora)\b|\ba\s+partir\s+de\s+agora,?\s+voce\b|\bfinja\s+(?:ser|que)\b"),
    ("system prompt", r"\b(?:prompt|instrucoes|mensagem)\s+(?:do|de)\s+sistema\b"),
    ("answer dictation", r"\b(?:responda|retorne|devolva|escreva|diga)\s+(?:apenas|somente|so)\b"
                         r"|\b(?:responda|retorne|devolva|escreva|diga)\s+(?:com|em|um|o)\s+(?:apenas\s+|somente\s+)?"
                         r"(?:[\"'{]|(?:json|buy|hold|compra|comprar|nota|pontuacao|score|sim|nao)\b|a\s+palavra\b)"),
    ("score dictation", r"\b(?:pontuacao|score|nota|confianca)\s*(?:[:=]|igual\s+a)\s*(?:1(?:[.,]0{1,2})?|0[.,]\d{1,2}|10|100\s*%)(?![\w.,])"
                        r"|\b(?:pontuacao|score)\s+(?:de\s+)?(?:1[.,]0{1,2}|0[.,]\d{1,2})(?![\w.,])"
                        r"|\batribua\s+(?:a\s+)?(?:nota|pontuacao)\s+maxima\b"),
    ("decision dictation", r"\b(?:decisao|veredito|resposta)\s*[:=]\s*[\"']?(?:buy|compra|comprar)\b"),
    # Chat-template markup and role markers.
    ("chat markup", r"<\|[a-z_]+\|>|\[/?inst\]|<</?sys>>|#{2,}\s*(?:system|instruction|instrucao)"
                    r"|^(?:system|assistant|sistema|assistente)\s*:"),
]]
# Matched on the accent-free text with its case kept: "BUY now" shouted at the model, not
# "Buy now, pay later" in a fintech headline.
_CASED_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("decision dictation", re.compile(r"\bBUY\s+(?:NOW|now|it|IT)\b|\b(?:COMPRE|COMPRAR)\s+(?:AGORA|agora)\b")),
]


def screen_headline(text: str) -> str | None:
    """Why ``text`` looks like an instruction to the model, or None when it reads as news.

    Matched on an accent-free, case-folded form with invisible characters removed (so
    "ig\\u200bnore" is caught). Patterns need the instruction's object ("ignore previous
    instructions"), so ordinary verbs in news ("Investidores ignoram alta do petróleo",
    "BTG recomenda compra") pass.
    """
    folded = _fold(text)
    cased = _WS_RE.sub(" ", _strip_accents(_strip_invisible(text)))
    for patterns, subject in ((_INJECTION_PATTERNS, folded), (_CASED_PATTERNS, cased)):
        for label, pattern in patterns:
            m = pattern.search(subject)
            if m:
                return f"prompt injection suspected ({label}: {m.group(0)[:60]!r})"
    return None


def sanitize_for_prompt(text: str, max_chars: int = PROMPT_MAX_CHARS) -> str:
    """Untrusted text made inert for a prompt: no control or invisible characters, no backticks or
    markup/JSON delimiters (``<>{}[]``), one line, at most ``max_chars`` characters."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    return _cap(normalize_text(text.translate(_PROMPT_DELIMITERS)), max_chars)


def format_headlines(headlines: Iterable[Headline], max_chars: int = PROMPT_MAX_CHARS) -> str:
    """Headlines as prompt lines, each sanitised: ``- 2025-06-30 10:00 -0300 | source | title``."""
    return "\n".join(
        f"- {h.published:%Y-%m-%d %H:%M %z} | {sanitize_for_prompt(h.source, 60)} | {sanitize_for_prompt(h.title, max_chars)}"
        for h in headlines
    )


# ---------------------------------------------------------------------------------------------
# Selection


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
    return " ".join(re.findall(r"\w+", _fold(title)))


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
    _require_aware(now)
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
