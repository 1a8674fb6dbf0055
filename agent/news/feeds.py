"""Where headlines come from: the NewsProvider interface, RSS/Atom feeds and local files.

Feeds are untrusted and can be broken: every provider reports what it skipped and why, and one
bad feed never stops the others. Nothing here ever calls an LLM.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import feedparser
import httpx
from loguru import logger
from pydantic import ValidationError

from agent.errors import ConfigError, FeedError, NaiveDateError, validation_problems
from agent.news.headline import (
    FeedReport,
    Headline,
    NewsBatch,
    Tally,
    plain_text,
    require_aware,
)

# A feed larger than this is not a news feed (or is an attack on memory); it is refused.
MAX_FEED_BYTES = 5 * 1024 * 1024
USER_AGENT = "b3-cascade-agent/0.1 (news reader; paper trading)"


def _log_report(provider: str, report: FeedReport) -> None:
    if not report.ok:
        logger.warning("news {} {}: {}", provider, report.feed, report.error)
    elif report.skipped:
        logger.info("news {} {}: {} headlines, skipped {}", provider, report.feed, report.headlines, report.skipped)


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
        require_aware(now)
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
        tally = Tally()
        if parsed.get("bozo"):
            tally.note(f"malformed feed ({type(parsed.bozo_exception).__name__}: {parsed.bozo_exception}); "
                       f"{len(entries)} entries recovered")
        feed_title = plain_text(parsed.get("feed", {}).get("title") or "")
        source = feed_title or urlsplit(url).netloc
        out: list[Headline] = []
        for n, entry in enumerate(entries, 1):
            title = plain_text(entry.get("title") or "")
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
            summary = plain_text(entry.get("summary") or "") or None
            try:
                out.append(Headline(title=title, source=source, published=published, url=link, summary=summary))
            except ValidationError as exc:
                tally.skip("invalid", f"entry {n}: {_row_problems(exc)}")
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
        require_aware(now)
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
    tally = Tally()
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
            tally.skip("invalid", f"line {n}: {_row_problems(exc)}")
    return out, tally.report(feed, entries, len(out))


def _row_problems(exc: ValidationError) -> str:
    """Why a row was skipped: the fields and what is wrong, never the third-party text itself."""
    return "; ".join(validation_problems(exc, label=lambda loc: ".".join(str(p) for p in loc) or "row",
                                         show_input=lambda err: False))
