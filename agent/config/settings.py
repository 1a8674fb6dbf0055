"""``Settings``: the whole validated configuration, and what it says about tickers."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from agent.config.paths import LLM_CACHE_FILE, PROJECT_ROOT, ledger_file
from agent.config.risk_limits import RiskSettings
from agent.config.sections import (
    AlertSettings,
    BacktestSettings,
    BackupSettings,
    BrokerSettings,
    DashboardSettings,
    DecisionSettings,
    EmbeddedSettings,
    KillSwitchSettings,
    LayersSettings,
    LLMSettings,
    LoggingSettings,
    LoopSettings,
    MarketSettings,
    MetricsSettings,
    NewsSettings,
    OllamaSettings,
    Secrets,
    _Strict,
    comma_list,
)
from agent.llm.catalogue import (
    LAYER_NAMES,  # one tuple: the embedded profiles are keyed by it
)

TICKER_RE = re.compile(r"^[A-Z0-9^][A-Z0-9.^]{1,14}$")


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
    database_path: Path = PROJECT_ROOT / "data" / "agent.db"  # a file, or a folder that holds agent.db
    database_url: SecretStr | None = None  # postgresql://... moves the ledger, kill switch, LLM cache, checkpoints

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (leave it unset for SQLite at DATABASE_PATH)")
        return v

    @property
    def ledger_path(self) -> Path:
        """The SQLite ledger: DATABASE_PATH, or agent.db inside it when it is a folder (see config/paths.py)."""
        return ledger_file(self.database_path)

    @property
    def llm_cache_path(self) -> Path:
        """LLM_CACHE_PATH, else llm_cache.db beside the ledger (inside a DATABASE_PATH folder)."""
        return self.backtest.cache_path or self.ledger_path.parent / LLM_CACHE_FILE

    @property
    def store(self) -> Path | SecretStr:
        """Where the ledger and the kill switch live: Postgres when set, else SQLite at DATABASE_PATH."""
        return self.database_url or self.ledger_path

    @property
    def llm_cache_store(self) -> Path | SecretStr:
        """Where the LLM answer cache lives: Postgres when set, else SQLite (``llm_cache_path``)."""
        return self.database_url or self.llm_cache_path
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
            "embedded": {layer: self.embedded.model_for(layer) for layer in LAYER_NAMES},
            "market": {"lookback_bars": self.market.lookback_bars, "min_bars": self.market.min_bars},
            "news": self.news.model_dump(mode="json", include={"window_hours", "max_items", "on_no_news"}),
        }
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def normalize_ticker(ticker: str) -> str:
    """``petr4`` and ``PETR4.SA`` both mean PETR4 on B3."""
    t = ticker.strip().upper()
    return t[:-3] if t.endswith(".SA") else t
