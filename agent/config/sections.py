"""The configuration's sections, one pydantic model each: every key, its type, its range and its default.

Strict (``extra="forbid"``): an unknown key is an error naming it, never ignored.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from agent.config.paths import PROJECT_ROOT
from agent.llm.catalogue import DEFAULT_PROFILE, MODELS, PROFILES

HTTP_URL = re.compile(r"^https?://[^\s/]+")
Timeframe = Literal["1m", "5m", "15m", "30m", "1h", "1d", "1wk"]


def comma_list(value: Any) -> Any:
    """``"PETR4, VALE3"`` (as environment variables give lists) -> ``["PETR4", "VALE3"]``."""
    return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value


def http_url(value: str, example: str) -> str:
    """An http(s) URL with a host, without its trailing slash; else an error showing ``example``."""
    if not HTTP_URL.match(value):
        raise ValueError(f"must be an http(s) URL such as {example}")
    return value.rstrip("/")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMSettings(_Strict):
    provider: Literal["auto", "ollama", "embedded"] = "auto"
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(320, ge=16, le=8192)
    retries: int = Field(1, ge=0, le=5)
    claim_tolerance: float = Field(0.02, ge=0.0, le=1.0)
    on_claim_mismatch: Literal["discard", "flag"] = "discard"


class OllamaSettings(_Strict):
    host: str = "http://127.0.0.1:11434"
    timeout_s: float = Field(120.0, gt=0, le=3600)
    keep_alive: str = "10m"
    probe_timeout_s: float = Field(2.0, gt=0, le=60)
    parallel: int = Field(1, ge=1, le=64)  # concurrent requests per host; match the server's OLLAMA_NUM_PARALLEL
    hosts: tuple[str, ...] = ()  # several hosts: a pool (models pinned from /api/tags, failover); empty: `host`
    retry_after_s: float = Field(15.0, gt=0, le=3600)  # a failed pool host is probed again after this

    _split_hosts = field_validator("hosts", mode="before")(comma_list)

    @field_validator("hosts")
    @classmethod
    def _http_urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [h for h in v if not HTTP_URL.match(h)]
        if bad:
            raise ValueError(f"must be http(s) URLs such as http://192.168.1.50:11434, got {bad}")
        return tuple(h.rstrip("/") for h in v)

    @field_validator("host")
    @classmethod
    def _http_url(cls, v: str) -> str:
        return http_url(v, "http://127.0.0.1:11434")


class EmbeddedSettings(_Strict):
    """The embedded llama.cpp models: a named profile picks one per layer; ``models`` overrides single layers."""

    profile: str = DEFAULT_PROFILE
    models: dict[str, str] = Field(default_factory=dict)  # layer -> catalogue key, over the profile
    models_dir: Path = Path("models")  # assembled GGUF files; relative to the project root
    n_ctx: int = Field(2048, ge=512, le=32768)
    n_threads: int = Field(0, ge=0, le=256)
    seed: int = 42

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str) -> str:
        if v not in PROFILES:
            raise ValueError(f"unknown profile {v!r}; allowed: {', '.join(PROFILES)}")
        return v

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: dict[str, str]) -> dict[str, str]:
        layers = PROFILES[DEFAULT_PROFILE]
        bad_layers = [k for k in v if k not in layers]
        if bad_layers:
            raise ValueError(f"unknown layer(s) {bad_layers}; allowed: {', '.join(layers)}")
        bad = {k: m for k, m in v.items() if m not in MODELS}
        if bad:
            raise ValueError(f"unknown embedded model(s) {bad}; allowed: {', '.join(MODELS)}")
        return v

    def model_for(self, layer: str) -> str:
        """The catalogue key of the layer's embedded model."""
        return self.models.get(layer) or PROFILES[self.profile][layer]

    @property
    def models_path(self) -> Path:
        root = Path(__file__).resolve().parents[2]  # the project root
        return self.models_dir if self.models_dir.is_absolute() else root / self.models_dir


class FinalLayer(_Strict):
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=16, le=8192)  # cap on this layer's answer (default llm.max_tokens)
    think: bool | None = None  # Ollama's think option for a reasoning model: false = answer at once; null = not sent


class GateLayer(FinalLayer):
    """A layer that discards below a minimum score."""

    min_score: float = Field(ge=0.0, le=1.0)


class RiskLayer(FinalLayer):
    """The risk layer discards above a maximum assessed risk."""

    max_risk: float = Field(ge=0.0, le=1.0)


class LayersSettings(_Strict):
    sentiment: GateLayer
    technical: GateLayer
    risk: RiskLayer
    data_validation: GateLayer
    final_score: FinalLayer

    def model_for(self, layer: str) -> str:
        return getattr(self, layer).model

    def max_tokens_for(self, layer: str, default: int) -> int:
        return getattr(self, layer).max_tokens or default

    def think_for(self, layer: str) -> bool | None:
        return getattr(self, layer).think


class DecisionSettings(_Strict):
    min_confidence: float = Field(0.75, ge=0.0, le=1.0)


class TimeframeSettings(_Strict):
    primary: Literal["1d"] = "1d"  # the risk rules (Sharpe, volatility, ATR stop) are calibrated on daily bars
    secondary: Timeframe = "1h"
    tertiary: Timeframe = "5m"


class MarketSettings(_Strict):
    source: Literal["sim", "csv", "auto", "yfinance", "brapi"] = "sim"
    data_dir: Path | None = None
    brapi_base_url: str = "https://brapi.dev/api"  # the API root (the original guide's BRAPI_BASE_URL)
    lookback_bars: int = Field(300, ge=30, le=20_000)
    min_bars: int = Field(60, ge=30, le=20_000)
    max_stale_sessions: int = Field(1, ge=0, le=250)
    max_bar_age_days: int = Field(5, ge=1, le=3650)
    max_jump: float = Field(0.40, gt=0.0, le=10.0)
    intraday_lookback_bars: int = Field(120, ge=30, le=20_000)
    live_min_interval_s: float = Field(1.0, ge=0.0, le=60.0)
    sim_seed: int = 7
    timeframes: TimeframeSettings = TimeframeSettings()

    @field_validator("brapi_base_url")
    @classmethod
    def _brapi_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http(s) URL such as https://brapi.dev/api")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _lookback_covers_min(self) -> "MarketSettings":
        if self.lookback_bars < self.min_bars:
            raise ValueError(f"lookback_bars ({self.lookback_bars}) must be >= min_bars ({self.min_bars})")
        return self


class NewsSettings(_Strict):
    """Headlines for the sentiment layer. News text is untrusted: screened and sanitised before any prompt."""

    provider: Literal["none", "file", "rss"] = "none"
    feeds: tuple[str, ...] = ()
    file: Path | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)
    window_hours: float = Field(24.0, gt=0, le=24 * 30)
    max_items: int = Field(8, ge=1, le=50)
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    on_no_news: Literal["price_action", "pass", "discard"] = "price_action"

    _split_feeds = field_validator("feeds", mode="before")(comma_list)

    @model_validator(mode="after")
    def _provider_has_its_source(self) -> "NewsSettings":
        if self.provider == "file" and self.file is None:
            raise ValueError("provider 'file' needs news.file (env NEWS_FILE)")
        if self.provider == "rss" and not self.feeds:
            raise ValueError("provider 'rss' needs news.feeds (env NEWS_FEEDS, comma-separated URLs)")
        bad = [f for f in self.feeds if not re.match(r"^https?://", f)]
        if bad:
            raise ValueError(f"feeds must be http(s) URLs, got {bad}")
        return self


class LoggingSettings(_Strict):
    level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    dir: Path = PROJECT_ROOT / "logs"
    retention_days: int = Field(30, ge=1, le=3650)
    fsync: bool = False


class MetricsSettings(_Strict):
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = Field(9108, ge=1, le=65535)
    grafana_port: int = Field(3000, ge=1, le=65535)  # Grafana's, in deploy/compose.yaml (the agent serves none)


class AlertSettings(_Strict):
    """Each channel is on when its settings are present; alerts go out from a queue, never inline."""

    telegram_chat_id: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    slack_webhook_url: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_starttls: bool = True
    email_from: str | None = None
    email_to: str | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)
    queue_size: int = Field(100, ge=1, le=100_000)

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        return http_url(v, "https://api.telegram.org")


class LoopSettings(_Strict):
    # layer_major: every ticker passes layer k before any starts layer k+1, so each layer's model loads once
    # per cycle; ticker_major: one ticker through all five layers, then the next (reloads models on a busy host)
    scheduling: Literal["layer_major", "ticker_major"] = "layer_major"
    market_hours: Literal["auto", "always", "never"] = "auto"  # auto: gate live sources only (sim/csv run any time)
    stall_after_intervals: float = Field(3.0, ge=1.0, le=1000.0)  # alert when no cycle completed in this many intervals
    # ...of the interval or of the slowest cycle so far, whichever is longer, and never sooner than this: a first
    # cycle loads the models, and a slow cascade with a short interval is busy, not stalled
    min_stall_s: float = Field(300.0, ge=1.0, le=86_400.0)
    failure_backoff_max_s: int = Field(3600, ge=0, le=86_400)  # cap on the backoff of a ticker failing the same way


class BrokerSettings(_Strict):
    """Paper-broker costs. B3 charges emolumentos + liquidação on traded value; corretagem is per order."""

    slippage_bps: float = Field(5.0, ge=0.0, le=1000.0)
    fee_bps: float = Field(3.25, ge=0.0, le=1000.0)
    commission: float = Field(0.0, ge=0.0, le=10_000.0)
    allow_pyramiding: bool = False


class KillSwitchSettings(_Strict):
    """Portfolio limits that halt trading (deterministic code; only a person resumes)."""

    max_daily_loss: float = Field(0.03, gt=0.0, le=1.0)  # of the equity at the start of the B3 day
    max_drawdown: float = Field(0.15, gt=0.0, le=1.0)  # of the peak equity
    max_open_positions: int = Field(5, ge=1, le=1000)  # open positions plus pending orders


class BacktestSettings(_Strict):
    """Walk-forward backtests (python -m agent.backtest)."""

    cache_path: Path | None = None  # replayed LLM answers (a rerun makes no LLM call); None: beside the ledger
    min_years_to_annualise: float = Field(0.95, ge=0.0, le=50.0)  # shorter windows get no CAGR/Sharpe/Sortino/Calmar
    risk_free_file: Path | None = None  # CSV of date,annual_rate (CDI/Selic); default: risk.risk_free_rate
    # When each model was released: its training data ends before. A backtest window that starts earlier
    # overlaps what the model may remember (look-ahead through its memory). Matched by name prefix.
    model_releases: dict[str, date] = Field(default_factory=lambda: {
        "smollm2": date(2024, 11, 1), "mistral": date(2024, 5, 22), "deepseek-r1": date(2025, 1, 20),
        "qwen2.5-coder": date(2024, 9, 19), "gemma3": date(2025, 3, 12)})

    @field_validator("model_releases")
    @classmethod
    def _lower_names(cls, v: dict[str, date]) -> dict[str, date]:
        return {k.lower(): d for k, d in v.items()}


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class DashboardSettings(_Strict):
    """The read-only web dashboard (python -m agent.dashboard; also started by ``make run`` when enabled)."""

    enabled: bool = True  # make run serves it too, on loopback by default
    bind: str = "127.0.0.1"
    port: int = Field(8050, ge=1, le=65535)
    poll_s: float = Field(5.0, ge=1.0, le=3600.0)  # how often the pages refresh their data
    reports_dir: Path = Path("reports")  # backtest reports (python -m agent.backtest --report reports/NAME)
    # host names a reverse proxy on this machine may send (on loopback, other Host headers are refused)
    allowed_hosts: tuple[str, ...] = ()

    _split_hosts = field_validator("allowed_hosts", mode="before")(comma_list)

    @property
    def loopback(self) -> bool:
        return self.bind in LOOPBACK


class BackupSettings(_Strict):
    dir: Path = Path("backups")
    keep_days: int = Field(7, ge=1, le=3650)


class Secrets(_Strict):
    """Secrets come from the environment or .env only; SecretStr keeps them out of logs and reprs."""

    brapi_token: SecretStr | None = None
    telegram_token: SecretStr | None = None
    smtp_password: SecretStr | None = None
    apprise_urls: SecretStr | None = None  # any other alert service: apprise URLs, comma- or space-separated
    dashboard_token: SecretStr | None = None  # halt/resume from the dashboard beyond loopback

    @field_validator("dashboard_token")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')")
        return v
