"""Live providers (yfinance, brapi) on recorded-format answers: no network, no sleeping.

Yahoo fixtures are raw chart-API JSON (``/v8/finance/chart/PETR4.SA``); the yfinance DataFrames are made
from them by yfinance itself, with only its HTTP GET and timezone lookup replaced, so the frames have
exactly the shape yfinance gives (tz-aware index, Dividends and Stock Splits columns, auto-adjusted).
brapi fixtures are ``/api/quote/{ticker}`` answers served through ``httpx.MockTransport``.
"""

from __future__ import annotations

import inspect
import json
import warnings
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
from loguru import logger
from pydantic import SecretStr

from agent.errors import (
    BrapiAuthError,
    ConfigError,
    DataError,
    DataSourceUnavailable,
    RateLimited,
)
from agent.market.bar_cache import BarCache, CachedProvider
from agent.market.bars import OHLCV, MarketDataProvider
from agent.market.brapi import BrapiProvider, brapi_symbol
from agent.market.history import choose_period
from agent.market.ratelimit import RateLimiter, parse_retry_after
from agent.market.yahoo import YFinanceProvider, yahoo_symbol, yfinance_history
from agent.ops.logs import redact

# yfinance 1.7 calls pandas methods with inplace=True, which pandas 3 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "live"
TOKEN = "tok-Zq81xVb3JmT4pLr"  # a made-up brapi token; it must never show up in any message
TODAY_YAHOO = date(2026, 1, 23)  # the day the daily chart fixture ends
TODAY_BRAPI = date(2025, 12, 30)  # the day the brapi fixtures end


def fixture_json(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


class FakeClock:
    """Monotonic seconds that only move when someone sleeps (or a test advances them)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def fake_limiter(min_interval_s: float = 1.0) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(min_interval_s, clock=clock, sleep=clock.sleep), clock


# ------------------------------------------------------------------ offline yfinance


class _YahooResponse:
    def __init__(self, payload):
        self._payload = payload
        self.text = json.dumps(payload)
        self.status_code = 200
        self.url = "https://query2.finance.yahoo.com/v8/finance/chart"

    def json(self):
        return self._payload


@pytest.fixture
def offline_yahoo(monkeypatch):
    """Serve chart fixtures to yfinance by symbol; record each GET (url, params)."""
    import yfinance.base
    import yfinance.data

    served: dict[str, str] = {}
    calls: list[tuple[str, dict]] = []

    def get(self, url, params=None, timeout=30):
        calls.append((url, dict(params or {})))
        symbol = url.rsplit("/", 1)[-1]
        name = served.get(symbol, "yahoo_chart_not_found.json")
        return _YahooResponse(fixture_json(name))

    monkeypatch.setattr(yfinance.data.YfData, "get", get)
    monkeypatch.setattr(yfinance.base.TickerBase, "_get_ticker_tz", lambda self, timeout: "America/Sao_Paulo")
    return served, calls


def yahoo_frame(offline_yahoo, fixture: str, symbol: str = "PETR4.SA", interval: str = "1d") -> pd.DataFrame:
    """The DataFrame yfinance 1.7 builds from a recorded chart answer."""
    served, _ = offline_yahoo
    served[symbol] = fixture
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The inplace keyword")
        return yfinance_history(symbol, period="3mo", interval=interval)


def frame_fetcher(frames: dict[str, pd.DataFrame], calls: list | None = None):
    def fetch(symbol: str, *, period: str, interval: str) -> pd.DataFrame:
        if calls is not None:
            calls.append((symbol, period, interval))
        return frames[interval].copy()

    return fetch


@pytest.fixture
def daily_frame(offline_yahoo) -> pd.DataFrame:
    return yahoo_frame(offline_yahoo, "yahoo_chart_PETR4_1d.json")


def yf_provider(frames, calls=None, **kwargs) -> YFinanceProvider:
    limiter, _ = fake_limiter()
    return YFinanceProvider(frame_fetcher(frames, calls), limiter=limiter, today=lambda: TODAY_YAHOO, **kwargs)


# ------------------------------------------------------------------ yfinance: parsing


def test_recorded_yfinance_daily_frame_has_the_expected_shape(daily_frame):
    """The assumptions the provider makes about yfinance's output, checked on yfinance's own output."""
    assert list(daily_frame.columns) == ["Open", "High", "Low", "Close", "Volume", "Dividends", "Stock Splits"]
    assert str(daily_frame.index.tz) == "America/Sao_Paulo"
    assert (daily_frame.index == daily_frame.index.normalize()).all()  # daily bars at local midnight
    assert daily_frame["Dividends"].iloc[11] == pytest.approx(0.94)


def test_yfinance_daily_bars_are_adjusted_tz_naive_and_ohlcv_only(daily_frame):
    bars = yf_provider({"1d": daily_frame}).get_bars("PETR4", lookback=1000)
    f = bars.frame
    assert bars.source == "yfinance" and bars.ticker == "PETR4" and bars.timeframe == "1d"
    assert list(f.columns) == list(OHLCV)  # Dividends and Stock Splits are not carried
    assert f.index.tz is None and f.index.name == "date"
    assert f.index.is_monotonic_increasing and (f.index == f.index.normalize()).all()
    assert f.index[0] == pd.Timestamp("2025-12-08") and f.index[-1] == pd.Timestamp("2026-01-23")
    assert pd.Timestamp("2025-12-24") not in f.index  # the all-null holiday row Yahoo sent
    assert len(f) == 31 and bars.report.rows_out == 31
    # auto_adjust: before the 0.94 dividend the raw close 31.10 becomes the adjusted 30.1568
    assert f.loc["2025-12-22", "close"] == pytest.approx(30.156794, abs=1e-4)
    assert f.loc["2025-12-22", "open"] == pytest.approx(31.25 * 30.156794 / 31.10, abs=1e-3)
    assert f.loc["2025-12-23", "close"] == pytest.approx(30.31, abs=1e-5)  # ex-date itself is not scaled
    assert f.loc["2026-01-21", "volume"] == 93_270_900


def test_yfinance_hourly_bars_are_in_b3_local_time(offline_yahoo):
    raw = yahoo_frame(offline_yahoo, "yahoo_chart_PETR4_1h.json", interval="1h")
    assert str(raw.index.tz) == "America/Sao_Paulo"
    utc_first = raw.index[0].tz_convert("UTC")
    assert (utc_first.hour, utc_first.minute) == (13, 0)  # 10:00 in São Paulo
    bars = yf_provider({"1h": raw}).get_bars("PETR4", "1h", lookback=100)
    f = bars.frame
    assert f.index.tz is None
    assert f.index[0] == pd.Timestamp("2025-12-26 10:00") and f.index[-1] == pd.Timestamp("2025-12-30 17:00")
    assert len(f) == 24 and set(f.index.hour) == set(range(10, 18))
    assert "after_hours" not in bars.report.dropped
    assert f.loc[pd.Timestamp("2025-12-29 10:00"), "open"] == pytest.approx(30.56, abs=1e-5)


def test_default_fetch_runs_yfinance_end_to_end_offline(offline_yahoo):
    served, calls = offline_yahoo
    served["PETR4.SA"] = "yahoo_chart_PETR4_1d.json"
    limiter, _ = fake_limiter()
    bars = YFinanceProvider(limiter=limiter, today=lambda: TODAY_YAHOO).get_bars("petr4.sa", lookback=300)
    assert bars.source == "yfinance" and len(bars) == 31
    (url, params), = calls
    assert url.endswith("/v8/finance/chart/PETR4.SA")
    assert params["range"] == "2y" and params["interval"] == "1d"


def test_unknown_symbol_through_yfinance_is_a_data_error_naming_it(offline_yahoo):
    limiter, _ = fake_limiter()
    with pytest.raises(DataError, match=r"XPTO3\.SA") as info:
        YFinanceProvider(limiter=limiter, today=lambda: TODAY_YAHOO).get_bars("XPTO3")
    assert not isinstance(info.value, DataSourceUnavailable)  # skip, not retry


# ------------------------------------------------------------------ mapping and limits


@pytest.mark.parametrize("ticker, yahoo, brapi", [
    ("PETR4", "PETR4.SA", "PETR4"),
    ("petr4.sa", "PETR4.SA", "PETR4"),
    (" vale3 ", "VALE3.SA", "VALE3"),
    ("IBOV", "^BVSP", "^BVSP"),
    ("BVSP", "^BVSP", "^BVSP"),
    ("^BVSP", "^BVSP", "^BVSP"),
])
def test_symbol_mapping(ticker, yahoo, brapi):
    assert yahoo_symbol(ticker) == yahoo
    assert brapi_symbol(ticker) == brapi


@pytest.mark.parametrize("timeframe, lookback, end, custom, period, cut", [
    ("1d", 300, None, True, "2y", False),
    ("1d", 20, None, True, "3mo", False),
    ("1d", 10, None, True, "1mo", False),
    ("1d", 300, date(2020, 1, 23), True, "10y", False),  # six years back plus the lookback
    ("1wk", 300, None, True, "10y", False),
    ("1h", 120, None, True, "3mo", False),
    ("1h", 5000, None, True, "730d", True),  # Yahoo keeps about 730 days of 1h bars
    ("1h", 5000, None, False, "1y", True),  # brapi has no "730d": its largest safe range
    ("5m", 120, None, True, "1mo", False),
    ("5m", 5000, None, True, "60d", True),  # 5m/15m/30m: 60 days
    ("30m", 1000, None, False, "1mo", True),
    ("1m", 300, None, True, "5d", False),
])
def test_choose_period_covers_the_lookback_within_yahoo_limits(timeframe, lookback, end, custom, period, cut):
    choice = choose_period(timeframe, lookback, end, TODAY_YAHOO, allow_custom_days=custom)
    assert choice.period == period
    assert (choice.note is not None) == cut


def test_end_older_than_the_intraday_limit_is_refused_without_fetching(daily_frame):
    calls: list = []
    provider = yf_provider({"1d": daily_frame, "1h": daily_frame}, calls)
    with pytest.raises(DataError, match="730 days"):
        provider.get_bars("PETR4", "1h", end=TODAY_YAHOO - timedelta(days=800))
    with pytest.raises(DataError, match="60 days"):
        provider.get_bars("PETR4", "5m", end=TODAY_YAHOO - timedelta(days=61))
    with pytest.raises(DataError, match="not supported"):
        provider.get_bars("PETR4", "2h")
    assert calls == []


def test_capped_lookback_is_noted_in_the_report(offline_yahoo):
    raw = yahoo_frame(offline_yahoo, "yahoo_chart_PETR4_1h.json", interval="1h")
    calls: list = []
    bars = yf_provider({"1h": raw}, calls).get_bars("PETR4", "1h", lookback=6000)
    assert calls == [("PETR4.SA", "730d", "1h")]
    assert any("730 days" in n for n in bars.report.notes)


def test_index_ticker_maps_to_bvsp(daily_frame):
    calls: list = []
    bars = yf_provider({"1d": daily_frame}, calls).get_bars("IBOV", lookback=5)
    assert calls[0][0] == "^BVSP" and bars.ticker == "IBOV"


# ------------------------------------------------------------------ windowing


def test_windowing_by_end_and_lookback(daily_frame):
    calls: list = []
    provider = yf_provider({"1d": daily_frame}, calls)
    bars = provider.get_bars("PETR4", end=date(2026, 1, 9), lookback=5)
    assert list(bars.frame.index) == list(pd.to_datetime(["2026-01-05", "2026-01-06", "2026-01-07",
                                                          "2026-01-08", "2026-01-09"]))
    assert calls[-1] == ("PETR4.SA", "1mo", "1d")  # 14 days behind today plus 5 sessions
    weekend = provider.get_bars("PETR4", end=date(2026, 1, 10), lookback=3)  # a Saturday
    assert weekend.frame.index[-1] == pd.Timestamp("2026-01-09") and len(weekend) == 3
    with pytest.raises(DataError, match="no 1d bars for PETR4.SA up to 2025-12-01"):
        provider.get_bars("PETR4", end=date(2025, 12, 1))


def test_bars_after_end_cannot_change_the_bars_before_it(daily_frame):
    """A split-like jump after ``end`` must not cut history before ``end`` (no look-ahead)."""
    split = daily_frame.copy()
    later = split.index >= pd.Timestamp("2026-01-13", tz="America/Sao_Paulo")
    split.loc[later, ["Open", "High", "Low", "Close"]] *= 0.5
    provider = yf_provider({"1d": split})
    before = provider.get_bars("PETR4", end=date(2026, 1, 12), lookback=1000)
    assert before.frame.index[0] == pd.Timestamp("2025-12-08") and "before_price_jump" not in before.report.dropped
    live = provider.get_bars("PETR4", lookback=1000)
    assert live.frame.index[0] == pd.Timestamp("2026-01-13") and live.report.dropped["before_price_jump"] > 0


# ------------------------------------------------------------------ yfinance: errors


def test_empty_yfinance_result_is_a_data_error_naming_the_symbol():
    provider = yf_provider({"1d": pd.DataFrame(columns=["Open", "High", "Low", "Close", "Volume"])})
    with pytest.raises(DataError, match=r"no 1d bars for PETR4\.SA"):
        provider.get_bars("PETR4")


def test_missing_columns_are_a_data_error(daily_frame):
    with pytest.raises(DataError, match="lacks column"):
        yf_provider({"1d": daily_frame.drop(columns=["Volume"])}).get_bars("PETR4")


def test_network_errors_become_retryable_data_errors():
    from curl_cffi.requests.exceptions import ConnectionError as CurlConnectionError

    def fetch(symbol, *, period, interval):
        raise CurlConnectionError("Failed to perform, curl: (6) Could not resolve host: query2.finance.yahoo.com")

    limiter, _ = fake_limiter()
    provider = YFinanceProvider(fetch, limiter=limiter, today=lambda: TODAY_YAHOO)
    with pytest.raises(DataSourceUnavailable, match="network error fetching PETR4.SA") as info:
        provider.get_bars("PETR4")
    assert isinstance(info.value, DataError) and isinstance(info.value.__cause__, OSError)
    assert not isinstance(info.value, RateLimited)


def test_yahoo_rate_limit_holds_off_the_next_requests(daily_frame):
    from yfinance.exceptions import YFRateLimitError

    calls: list = []

    def fetch(symbol, *, period, interval):
        calls.append(symbol)
        if len(calls) == 1:
            raise YFRateLimitError()
        return daily_frame

    limiter, clock = fake_limiter()
    provider = YFinanceProvider(fetch, limiter=limiter, today=lambda: TODAY_YAHOO, max_wait_s=10)
    with pytest.raises(RateLimited) as info:
        provider.get_bars("PETR4")
    assert info.value.retry_after == 30
    with pytest.raises(RateLimited):  # still cooling down: refused without calling Yahoo
        provider.get_bars("PETR4")
    assert calls == ["PETR4.SA"]
    clock.now += 25  # 5 s left: within max_wait_s, so the provider waits them out
    assert len(provider.get_bars("PETR4")) == 31
    assert clock.slept[-1] == pytest.approx(5.0) and calls == ["PETR4.SA", "PETR4.SA"]


# ------------------------------------------------------------------ rate limiter


def test_rate_limiter_spaces_calls_on_a_fake_clock():
    limiter, clock = fake_limiter(2.0)
    assert limiter.wait() == 0.0  # the first call never waits
    assert limiter.wait() == pytest.approx(2.0)
    clock.now += 0.5
    assert limiter.wait() == pytest.approx(1.5)
    clock.now += 10
    assert limiter.wait() == 0.0
    limiter.defer(7)
    assert limiter.pending() == pytest.approx(7.0)
    assert limiter.wait() == pytest.approx(7.0)
    assert clock.slept == pytest.approx([2.0, 1.5, 7.0])
    with pytest.raises(ValueError):
        RateLimiter(-1)


def test_providers_respect_the_minimum_interval(daily_frame):
    limiter, clock = fake_limiter(1.5)
    provider = YFinanceProvider(frame_fetcher({"1d": daily_frame}), limiter=limiter, today=lambda: TODAY_YAHOO)
    provider.get_bars("PETR4")
    provider.get_bars("VALE3")
    assert clock.slept == pytest.approx([1.5])


def test_parse_retry_after():
    now = datetime(2026, 1, 23, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == pytest.approx(90)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


# ------------------------------------------------------------------ brapi


class BrapiServer:
    """A MockTransport answering from fixtures; records every request."""

    def __init__(self, status: int = 200, fixture: str | None = "brapi_quote_PETR4_1d.json",
                 headers: dict[str, str] | None = None, body: bytes | None = None, raises: Exception | None = None):
        self.status, self.fixture, self.headers, self.body, self.raises = status, fixture, headers or {}, body, raises
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.raises is not None:
            raise self.raises
        if self.body is not None:
            return httpx.Response(self.status, content=self.body, headers=self.headers)
        return httpx.Response(self.status, json=fixture_json(self.fixture), headers=self.headers)

    def provider(self, token: SecretStr | None = SecretStr(TOKEN), **kwargs) -> tuple[BrapiProvider, FakeClock]:
        limiter, clock = fake_limiter()
        client = httpx.Client(transport=httpx.MockTransport(self))
        return BrapiProvider(token, client=client, limiter=limiter, today=lambda: TODAY_BRAPI, **kwargs), clock


def test_brapi_daily_request_and_parsing():
    server = BrapiServer()
    provider, _ = server.provider()
    bars = provider.get_bars("PETR4", lookback=20)
    (req,) = server.requests
    assert req.url.host == "brapi.dev" and req.url.path == "/api/quote/PETR4"
    assert dict(req.url.params) == {"range": "3mo", "interval": "1d"}
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(req.url)
    f = bars.frame
    assert bars.source == "brapi" and bars.ticker == "PETR4" and list(f.columns) == list(OHLCV)
    assert len(f) == 20 and f.index[-1] == pd.Timestamp("2025-12-30") and f.index.tz is None
    assert (f.index == f.index.normalize()).all() and f.index.is_monotonic_increasing
    assert bars.report.dropped == {"nan_price": 1}  # the null 2025-12-24 entry
    # adjusted like yfinance auto_adjust: close = adjustedClose, open scaled by the same factor
    assert f.loc["2025-12-22", "close"] == pytest.approx(30.156794, abs=1e-5)
    assert f.loc["2025-12-22", "open"] == pytest.approx(31.25 * 30.156794 / 31.10, abs=1e-4)
    assert f.loc["2025-12-30", "close"] == pytest.approx(30.82)
    assert f.loc["2025-12-30", "volume"] == 16_880_600


def test_brapi_intraday_bars_are_local_time():
    server = BrapiServer(fixture="brapi_quote_PETR4_1h.json")
    provider, _ = server.provider()
    bars = provider.get_bars("PETR4", "1h", lookback=50)
    assert dict(server.requests[0].url.params) == {"range": "1mo", "interval": "1h"}
    assert list(bars.frame.index) == [pd.Timestamp(f"2025-12-30 {h}:00") for h in range(10, 18)]


def test_brapi_index_keeps_zero_volume_bars():
    server = BrapiServer(fixture="brapi_quote_BVSP_1d.json")
    provider, _ = server.provider()
    bars = provider.get_bars("IBOV", end=date(2025, 6, 27), lookback=100)
    assert server.requests[0].url.raw_path.startswith(b"/api/quote/%5EBVSP?")
    assert bars.ticker == "IBOV" and len(bars) == 10
    assert bars.frame.iloc[-1]["volume"] == 0 and bars.frame.index[-1] == pd.Timestamp("2025-06-27")


def test_brapi_without_token_sends_no_authorization_header():
    server = BrapiServer()
    provider, _ = server.provider(token=None)
    provider.get_bars("PETR4", lookback=5)
    assert "authorization" not in server.requests[0].headers


def test_brapi_401_says_the_token_is_invalid_without_showing_it():
    server = BrapiServer(401, "brapi_error_401.json")
    provider, _ = server.provider()
    with pytest.raises(BrapiAuthError, match="invalid") as info:
        provider.get_bars("PETR4")
    assert isinstance(info.value, ConfigError) and "BRAPI_TOKEN" in str(info.value)
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value) and TOKEN not in repr(provider)
    provider, _ = BrapiServer(401, "brapi_error_401.json").provider(token=None)
    with pytest.raises(BrapiAuthError, match="set BRAPI_TOKEN"):
        provider.get_bars("PETR4")


def test_brapi_429_is_retryable_and_honours_retry_after():
    server = BrapiServer(429, "brapi_error_429.json", headers={"Retry-After": "7"})
    provider, clock = server.provider(max_wait_s=5)
    with pytest.raises(RateLimited, match="429") as info:
        provider.get_bars("PETR4")
    assert info.value.retry_after == 7 and isinstance(info.value, DataSourceUnavailable)
    with pytest.raises(RateLimited):  # 7 s > max_wait_s: refused without a request
        provider.get_bars("PETR4")
    assert len(server.requests) == 1
    server.status, server.fixture = 200, "brapi_quote_PETR4_1d.json"
    provider.max_wait_s = 60
    assert len(provider.get_bars("PETR4", lookback=5)) == 5
    assert clock.slept == pytest.approx([7.0]) and len(server.requests) == 2


def test_brapi_server_and_network_errors_are_retryable():
    provider, _ = BrapiServer(500, "brapi_error_500.json").provider()
    with pytest.raises(DataSourceUnavailable, match="HTTP 500"):
        provider.get_bars("PETR4")
    provider, _ = BrapiServer(raises=httpx.ConnectError("[Errno -3] Temporary failure in name resolution")).provider()
    with pytest.raises(DataSourceUnavailable, match="ConnectError"):
        provider.get_bars("PETR4")
    provider, _ = BrapiServer(raises=httpx.ReadTimeout("timed out")).provider()
    with pytest.raises(DataSourceUnavailable, match="timed out"):
        provider.get_bars("PETR4")


def test_brapi_client_errors_skip_the_ticker():
    provider, _ = BrapiServer(404, "brapi_error_404.json").provider()
    with pytest.raises(DataError, match="HTTP 404.*XPTO3") as info:
        provider.get_bars("XPTO3")
    assert not isinstance(info.value, DataSourceUnavailable)


def test_brapi_malformed_answers_are_specific_data_errors():
    provider, _ = BrapiServer(fixture="brapi_malformed.json").provider()
    with pytest.raises(DataError, match=r"historicalDataPrice\.2\.close: Field required") as info:
        provider.get_bars("PETR4")
    assert "historicalDataPrice.3.date" in str(info.value)
    provider, _ = BrapiServer(body=b"<html>Bad gateway</html>", headers={"content-type": "text/html"}).provider()
    with pytest.raises(DataError, match="not JSON"):
        provider.get_bars("PETR4")
    provider, _ = BrapiServer(body=json.dumps({"results": [{"symbol": "PETR4"}]}).encode()).provider()
    with pytest.raises(DataError, match="no historicalDataPrice"):
        provider.get_bars("PETR4")
    provider, _ = BrapiServer(body=b'{"results": []}').provider()
    with pytest.raises(DataError, match="results"):
        provider.get_bars("PETR4")
    provider, _ = BrapiServer().provider()
    with pytest.raises(DataError, match="asked for VALE3"):  # the answer is for another ticker
        provider.get_bars("VALE3")


def test_token_never_reaches_messages_or_logs():
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="TRACE")
    try:
        cases = [BrapiServer(401, "brapi_error_401.json"), BrapiServer(429, "brapi_error_429.json"),
                 BrapiServer(500, "brapi_error_500.json"), BrapiServer(404, "brapi_error_404.json"),
                 BrapiServer(fixture="brapi_malformed.json"),
                 BrapiServer(raises=httpx.ConnectError(f"refused (Authorization: Bearer {TOKEN})"))]
        for server in cases:
            provider, _ = server.provider()
            with pytest.raises(DataError if server.status != 401 else ConfigError) as info:
                provider.get_bars("PETR4")
            seen += [str(info.value), repr(info.value), repr(provider)]
        provider, _ = BrapiServer().provider()
        provider.get_bars("PETR4", lookback=5)
    finally:
        logger.remove(sink)
    assert any("brapi GET" in line for line in seen)  # requests are logged...
    assert not [line for line in seen if TOKEN in line]  # ...without the token


def test_redact():
    assert redact(f"https://brapi.dev/api/quote/PETR4?range=1mo&token={TOKEN}") == \
        "https://brapi.dev/api/quote/PETR4?range=1mo&token=***"
    assert redact(f"Authorization: Bearer {TOKEN}") == "Authorization: Bearer ***"
    assert redact(f"echo {TOKEN}!", SecretStr(TOKEN)) == "echo ***!"


# ------------------------------------------------------------------ the protocol


def test_both_providers_satisfy_the_market_data_protocol(daily_frame, tmp_path):
    expected = inspect.signature(MarketDataProvider.get_bars)
    yf_live = yf_provider({"1d": daily_frame})
    brapi_live, _ = BrapiServer().provider()
    for provider, source in ((yf_live, "yfinance"), (brapi_live, "brapi")):
        typed: MarketDataProvider = provider
        assert typed.name == source
        got = inspect.signature(type(provider).get_bars)
        assert [(p.name, p.default) for p in got.parameters.values()] == \
            [(p.name, p.default) for p in expected.parameters.values()]
        bars = typed.get_bars("PETR4", "1d", end=date(2025, 12, 30), lookback=10)
        f = bars.frame
        assert bars.source == source and bars.timeframe == "1d" and len(bars) == 10
        assert list(f.columns) == list(OHLCV) and f.index[-1] == pd.Timestamp("2025-12-30")
        assert (f[["open", "high", "low", "close"]] > 0).all().all() and (f["high"] >= f["low"]).all()
        assert (f["volume"] > 0).all() and not f.isna().any().any()


def test_cached_provider_serves_cached_bars_when_the_live_source_is_down(tmp_path):
    server = BrapiServer()
    live, _ = server.provider()
    cached = CachedProvider(live, BarCache(tmp_path / "bars.db"))
    first = cached.get_bars("PETR4", lookback=20)
    assert first.source == "brapi"
    server.status, server.fixture = 503, "brapi_error_500.json"
    again = cached.get_bars("PETR4", lookback=20)
    assert len(again) == 20 and any("served from cache" in n for n in again.report.notes)
    pd.testing.assert_series_equal(again.frame["close"], first.frame["close"], check_freq=False, check_index_type=False)
