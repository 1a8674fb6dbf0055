"""Configuration: ``config.yaml`` defaults, overridden by ``.env`` and then the environment.

Validated once at start-up with pydantic. Unknown keys are rejected, and every error
names the key (and the environment variable that set it) with the allowed values.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from agent.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "config.yaml"
DEFAULT_ENV_PATH = PROJECT_ROOT / ".env"

LAYER_NAMES = ("sentiment", "technical", "risk", "data_validation", "final_score")
Timeframe = Literal["1m", "5m", "15m", "30m", "1h", "1d", "1wk"]
TICKER_RE = re.compile(r"^[A-Z0-9^][A-Z0-9.^]{1,14}$")


def comma_list(value: Any) -> Any:
    """``"PETR4, VALE3"`` (as environment variables give lists) -> ``["PETR4", "VALE3"]``."""
    return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value


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
        bad = [h for h in v if not re.match(r"^https?://[^\s/]+", h)]
        if bad:
            raise ValueError(f"must be http(s) URLs such as http://192.168.1.50:11434, got {bad}")
        return tuple(h.rstrip("/") for h in v)

    @field_validator("host")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:11434")
        return v.rstrip("/")


class EmbeddedSettings(_Strict):
    n_ctx: int = Field(4096, ge=512, le=32768)
    n_threads: int = Field(0, ge=0, le=256)
    seed: int = 42


class GateLayer(_Strict):
    """A layer that discards below a minimum score."""

    model: str = Field(min_length=1)
    min_score: float = Field(ge=0.0, le=1.0)


class RiskLayer(_Strict):
    """The risk layer discards above a maximum assessed risk."""

    model: str = Field(min_length=1)
    max_risk: float = Field(ge=0.0, le=1.0)


class FinalLayer(_Strict):
    model: str = Field(min_length=1)


class LayersSettings(_Strict):
    sentiment: GateLayer
    technical: GateLayer
    risk: RiskLayer
    data_validation: GateLayer
    final_score: FinalLayer

    def model_for(self, layer: str) -> str:
        return getattr(self, layer).model


class DecisionSettings(_Strict):
    min_confidence: float = Field(0.75, ge=0.0, le=1.0)


class RiskSettings(_Strict):
    capital: float = Field(100_000.0, gt=0, le=1e12)
    max_position_size: float = Field(0.10, gt=0.0, le=1.0)
    max_loss_per_trade: float = Field(0.02, gt=0.0, le=0.5)
    profit_target: float = Field(0.06, gt=0.0, le=5.0)
    atr_stop_multiple: float = Field(1.5, gt=0.0, le=20.0)
    min_reward_risk: float = Field(1.5, ge=0.0, le=20.0)
    max_volatility: float = Field(0.80, gt=0.0, le=10.0)
    max_drawdown: float = Field(0.60, gt=0.0, le=1.0)
    lookback_bars: int = Field(252, ge=20, le=5000)
    risk_free_rate: float = Field(0.10, ge=-0.5, le=1.0)
    lot_size: int = Field(100, ge=1, le=100_000)


class TimeframeSettings(_Strict):
    primary: Literal["1d"] = "1d"  # the risk rules (Sharpe, volatility, ATR stop) are calibrated on daily bars
    secondary: Timeframe = "1h"
    tertiary: Timeframe = "5m"


class MarketSettings(_Strict):
    source: Literal["sim", "csv", "auto", "yfinance", "brapi"] = "sim"
    data_dir: Path | None = None
    lookback_bars: int = Field(300, ge=30, le=20_000)
    min_bars: int = Field(60, ge=30, le=20_000)
    max_stale_sessions: int = Field(1, ge=0, le=250)
    max_bar_age_days: int = Field(5, ge=1, le=3650)
    max_jump: float = Field(0.40, gt=0.0, le=10.0)
    intraday_lookback_bars: int = Field(120, ge=30, le=20_000)
    live_min_interval_s: float = Field(1.0, ge=0.0, le=60.0)
    sim_seed: int = 7
    timeframes: TimeframeSettings = TimeframeSettings()

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
    dir: Path = Path("logs")
    retention_days: int = Field(30, ge=1, le=3650)
    fsync: bool = False


class MetricsSettings(_Strict):
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = Field(9108, ge=1, le=65535)


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
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http(s) URL such as https://api.telegram.org")
        return v.rstrip("/")


class LoopSettings(_Strict):
    # layer_major: every ticker passes layer k before any starts layer k+1, so each layer's model loads once
    # per cycle; ticker_major: one ticker through all five layers, then the next (reloads models on a busy host)
    scheduling: Literal["layer_major", "ticker_major"] = "layer_major"
    market_hours: Literal["auto", "always", "never"] = "auto"  # auto: gate live sources only (sim/csv run any time)
    stall_after_intervals: float = Field(3.0, ge=1.0, le=1000.0)  # alert when no cycle completed in this many intervals
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

    cache_path: Path = Path("data/llm_cache.db")  # replayed LLM answers: a rerun makes no LLM call
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
    dashboard_token: SecretStr | None = None  # halt/resume from the dashboard beyond loopback

    @field_validator("dashboard_token")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')")
        return v


class Settings(_Strict):
    simulation_mode: bool = True
    enable_real_trading: bool = False
    tickers: tuple[str, ...] = ("PETR4",)
    analysis_interval_s: int = Field(300, ge=1, le=86_400)
    llm: LLMSettings = LLMSettings()
    ollama: OllamaSettings = OllamaSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    layers: LayersSettings
    decision: DecisionSettings = DecisionSettings()
    risk: RiskSettings = RiskSettings()
    market: MarketSettings = MarketSettings()
    news: NewsSettings = NewsSettings()
    logging: LoggingSettings = LoggingSettings()
    database_path: Path = Path("data/agent.db")
    database_url: SecretStr | None = None  # postgresql://... moves the ledger, kill switch, LLM cache, checkpoints

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (leave it unset for SQLite at DATABASE_PATH)")
        return v

    @property
    def store(self) -> Path | SecretStr:
        """Where the ledger and the kill switch live: Postgres when set, else SQLite at DATABASE_PATH."""
        return self.database_url or self.database_path

    @property
    def llm_cache_store(self) -> Path | SecretStr:
        """Where the LLM answer cache lives: Postgres when set, else SQLite at LLM_CACHE_PATH."""
        return self.database_url or self.backtest.cache_path
    metrics: MetricsSettings = MetricsSettings()
    alerts: AlertSettings = AlertSettings()
    loop: LoopSettings = LoopSettings()
    broker: BrokerSettings = BrokerSettings()
    kill_switch: KillSwitchSettings = KillSwitchSettings()
    backup: BackupSettings = BackupSettings()
    dashboard: DashboardSettings = DashboardSettings()
    backtest: BacktestSettings = BacktestSettings()
    secrets: Secrets = Secrets()

    _split_tickers = field_validator("tickers", mode="before")(comma_list)

    @field_validator("tickers")
    @classmethod
    def _valid_tickers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one ticker is required, e.g. PETR4")
        out = []
        for t in v:
            t = normalize_ticker(t)
            if not TICKER_RE.match(t):
                raise ValueError(f"{t!r} is not a B3 ticker (expected e.g. PETR4, VALE3)")
            out.append(t)
        return tuple(dict.fromkeys(out))

    @field_validator("simulation_mode")
    @classmethod
    def _only_simulation(cls, v: bool) -> bool:
        if not v:
            raise ValueError("must be true: simulation (paper trading) is the only mode that exists")
        return v

    @field_validator("enable_real_trading")
    @classmethod
    def _no_real_trading(cls, v: bool) -> bool:
        if v:
            raise ValueError(
                "real trading is refused: this agent has no broker integration and only paper-trades. "
                "Set ENABLE_REAL_TRADING=false (allowed: false)"
            )
        return v

    def fingerprint(self) -> str:
        """Hash of every setting that can change a decision (not paths, ports or secrets)."""
        relevant = {
            "layers": self.layers.model_dump(mode="json"),
            "decision": self.decision.model_dump(mode="json"),
            "risk": self.risk.model_dump(mode="json"),
            "llm": self.llm.model_dump(mode="json", exclude={"retries"}),
            "market": {"lookback_bars": self.market.lookback_bars, "min_bars": self.market.min_bars},
            "news": self.news.model_dump(mode="json", include={"window_hours", "max_items", "on_no_news"}),
        }
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def normalize_ticker(ticker: str) -> str:
    """``petr4`` and ``PETR4.SA`` both mean PETR4 on B3."""
    t = ticker.strip().upper()
    return t[:-3] if t.endswith(".SA") else t


# Environment variable -> config key path. The env name is quoted in errors for keys it set.
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "SIMULATION_MODE": ("simulation_mode",),
    "ENABLE_REAL_TRADING": ("enable_real_trading",),
    "B3_TICKERS": ("tickers",),
    "ANALYSIS_INTERVAL": ("analysis_interval_s",),
    "LLM_PROVIDER": ("llm", "provider"),
    "OLLAMA_HOST": ("ollama", "host"),
    "OLLAMA_TIMEOUT": ("ollama", "timeout_s"),
    "OLLAMA_NUM_PARALLEL": ("ollama", "parallel"),
    "OLLAMA_HOSTS": ("ollama", "hosts"),
    "OLLAMA_MODEL_SENTIMENT": ("layers", "sentiment", "model"),
    "OLLAMA_MODEL_STANDARD": ("layers", "technical", "model"),
    "OLLAMA_MODEL_REASONING": ("layers", "risk", "model"),
    "OLLAMA_MODEL_CODER": ("layers", "data_validation", "model"),
    "OLLAMA_MODEL_FAST": ("layers", "final_score", "model"),
    "MIN_CONFIDENCE": ("decision", "min_confidence"),
    "CAPITAL": ("risk", "capital"),
    "MAX_POSITION_SIZE": ("risk", "max_position_size"),
    "MAX_LOSS_PER_TRADE": ("risk", "max_loss_per_trade"),
    "PROFIT_TARGET": ("risk", "profit_target"),
    "MARKET_SOURCE": ("market", "source"),
    "MARKET_DATA_DIR": ("market", "data_dir"),
    "TIMEFRAME_PRIMARY": ("market", "timeframes", "primary"),
    "TIMEFRAME_SECONDARY": ("market", "timeframes", "secondary"),
    "TIMEFRAME_TERTIARY": ("market", "timeframes", "tertiary"),
    "NEWS_PROVIDER": ("news", "provider"),
    "NEWS_FEEDS": ("news", "feeds"),
    "NEWS_FILE": ("news", "file"),
    "LOG_LEVEL": ("logging", "level"),
    "LOG_DIR": ("logging", "dir"),
    "LOG_RETENTION_DAYS": ("logging", "retention_days"),
    "DATABASE_PATH": ("database_path",),
    "DATABASE_URL": ("database_url",),
    "METRICS_ENABLED": ("metrics", "enabled"),
    "PROMETHEUS_BIND": ("metrics", "bind"),
    "PROMETHEUS_PORT": ("metrics", "port"),
    "TELEGRAM_CHAT_ID": ("alerts", "telegram_chat_id"),
    "SLACK_WEBHOOK_URL": ("alerts", "slack_webhook_url"),
    "SMTP_HOST": ("alerts", "smtp_host"),
    "SMTP_PORT": ("alerts", "smtp_port"),
    "SMTP_USER": ("alerts", "smtp_user"),
    "ALERT_EMAIL_TO": ("alerts", "email_to"),
    "ALERT_EMAIL_FROM": ("alerts", "email_from"),
    "LOOP_MARKET_HOURS": ("loop", "market_hours"),
    "LOOP_SCHEDULING": ("loop", "scheduling"),
    "SLIPPAGE_BPS": ("broker", "slippage_bps"),
    "B3_FEE_BPS": ("broker", "fee_bps"),
    "BROKER_COMMISSION": ("broker", "commission"),
    "ALLOW_PYRAMIDING": ("broker", "allow_pyramiding"),
    "MAX_DAILY_LOSS": ("kill_switch", "max_daily_loss"),
    "MAX_PORTFOLIO_DRAWDOWN": ("kill_switch", "max_drawdown"),
    "MAX_OPEN_POSITIONS": ("kill_switch", "max_open_positions"),
    "LLM_CACHE_PATH": ("backtest", "cache_path"),
    "BACKUP_DIR": ("backup", "dir"),
    "BACKUP_KEEP_DAYS": ("backup", "keep_days"),
    "DASHBOARD_ENABLED": ("dashboard", "enabled"),
    "DASHBOARD_BIND": ("dashboard", "bind"),
    "DASHBOARD_PORT": ("dashboard", "port"),
    "BACKTEST_REPORTS_DIR": ("dashboard", "reports_dir"),
    "DASHBOARD_ALLOWED_HOSTS": ("dashboard", "allowed_hosts"),
    "BRAPI_TOKEN": ("secrets", "brapi_token"),
    "TELEGRAM_TOKEN": ("secrets", "telegram_token"),
    "SMTP_PASSWORD": ("secrets", "smtp_password"),
    "DASHBOARD_TOKEN": ("secrets", "dashboard_token"),
}
SECRET_ENV_KEYS = frozenset({"BRAPI_TOKEN", "TELEGRAM_TOKEN", "SMTP_PASSWORD", "SLACK_WEBHOOK_URL", "DATABASE_URL",
                             "DASHBOARD_TOKEN"})
# Keys .env may hold that belong to other tools (LangGraph Studio, LangSmith); accepted silently.
FOREIGN_ENV_PREFIXES = ("LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_", "OLLAMA_NUM_", "REDIS_")


def _set_path(tree: dict, path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _env_overrides(env_file: Path | None, environ: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Merge .env and the environment (environment wins). Returns (values, unknown .env keys)."""
    merged: dict[str, str] = {}
    unknown: list[str] = []
    if env_file is not None and env_file.is_file():
        for key, value in dotenv_values(env_file).items():
            if key in ENV_KEYS:
                merged[key] = value or ""
            elif not key.startswith(FOREIGN_ENV_PREFIXES):
                unknown.append(key)
    for key in ENV_KEYS:
        if key in environ:
            merged[key] = environ[key]
    # An empty value means "not set" (as in .env.example), never "empty string".
    return {k: v.strip() for k, v in merged.items() if v is not None and v.strip() != ""}, unknown


def _describe(loc: tuple, env_for_path: dict[tuple[str, ...], str]) -> str:
    path = tuple(str(p) for p in loc if not isinstance(p, int))
    key = ".".join(path) or "<root>"
    for n in range(len(path), 0, -1):
        origin = env_for_path.get(path[:n])
        if origin:
            return f"{key} ({origin})"
    return key


def load_settings(
    config_path: Path | str | None = None,
    env_file: Path | str | None = DEFAULT_ENV_PATH,
    environ: dict[str, str] | None = None,
    overrides: dict[tuple[str, ...], Any] | None = None,
) -> Settings:
    """Load and validate the configuration once. Raises ConfigError naming the bad key.

    ``overrides`` are command-line values (highest precedence), keyed by config path.
    """
    path = Path(config_path) if config_path else DEFAULT_CONFIG_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        if config_path:
            raise ConfigError(f"config file {path} is missing or empty")
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")

    env_values, unknown = _env_overrides(Path(env_file) if env_file else None, dict(os.environ if environ is None else environ))
    if unknown:
        raise ConfigError(
            f".env has unknown key(s): {', '.join(sorted(unknown))}. Allowed keys are listed in .env.example"
        )
    env_for_path = {ENV_KEYS[k]: f"env {k}" for k in env_values}
    for key, value in env_values.items():
        _set_path(raw, ENV_KEYS[key], value)
    for cfg_path, value in (overrides or {}).items():
        if value is not None:
            _set_path(raw, cfg_path, value)
            env_for_path.setdefault(cfg_path, "command-line option")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _describe(err["loc"], env_for_path)
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against config.yaml)"
            value = err.get("input")
            shown = "" if err["type"] in ("extra_forbidden", "missing") or _is_secret_loc(err["loc"]) else f" = {value!r}"
            lines.append(f"  {where}{shown}: {msg}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def _is_secret_loc(loc: tuple) -> bool:
    return bool(loc) and (loc[0] in ("secrets", "database_url") or (len(loc) > 1 and loc[1] == "slack_webhook_url"))
