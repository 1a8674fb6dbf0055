"""The dashboard API's response and request bodies: what the OpenAPI schema promises (and
schemathesis checks) for every JSON endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
)


class Problem(BaseModel):
    detail: str  # what was wrong, in words


class LayerBrief(BaseModel):
    model_config = ConfigDict(extra="ignore")

    layer: str
    passed: bool
    error: str | None = None  # kind of LLM failure, when there was one


REASON_CHARS = 300  # a summary's reason is cut here; the decision page shows it whole


class DecisionSummary(BaseModel):
    """A decision record as the lists show it. Also how each record line is read: a line that does not
    fit these types is skipped and counted, never shown half-broken (records are files anyone can edit)."""

    model_config = ConfigDict(extra="ignore")

    decision_id: str = Field(min_length=1, max_length=100)
    ts: AwareDatetime
    ticker: str = Field(min_length=1, max_length=20)
    bar_date: str | None = None
    decision: Literal["BUY", "HOLD"]
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    discarded_at: str | None = None
    reason: str = ""
    origin: str = "one_shot"
    data_source: str = "?"
    llm_provider: str = "?"
    defaults_in_use: list[str] = Field(default_factory=list)
    layers: list[LayerBrief] = Field(default_factory=list)

    @field_validator("reason")
    @classmethod
    def _cut(cls, v: str) -> str:
        return v if len(v) <= REASON_CHARS else v[:REASON_CHARS - 1] + "…"

    @field_serializer("ts")
    def _as_written(self, ts: datetime) -> str:
        return ts.isoformat()  # with its offset, as in the record (the decision page looks it up by it)


class LatestDecisions(BaseModel):
    decisions: list[DecisionSummary]
    defaults_in_use: list[str]  # embedded defaults tagged in these records: the page announces them
    skipped_lines: int  # lines in LOG_DIR that were not records (torn or corrupt)


class DecisionPage(BaseModel):
    total: int
    offset: int
    decisions: list[DecisionSummary]


class DecisionDetail(BaseModel):
    record: dict[str, Any]
    occurrences: int  # how many times this decision id was recorded (the loop re-decides an unchanged bar)
    order_status: str | None  # what the paper broker did with it: pending/filled/rejected/cancelled, or none
    order_note: str | None


class FunnelStage(BaseModel):
    stage: str
    reached: int
    passed: int
    discarded: int
    errors: int


class Funnel(BaseModel):
    since: str
    until: str
    unique: bool
    decisions: int
    buy: int
    hold: int
    stopped_before_layers: int
    layers: list[FunnelStage]
    blocked_after_layers: dict[str, int]
    by_day: dict[str, dict[str, int]]


class Position(BaseModel):
    ticker: str
    qty: int
    entry: float
    open_fees: float
    stop: float | None
    take_profit: float | None
    decision_id: str
    entry_bar: str
    checked_through: str | None
    opened_at: str
    last_close: float | None
    market_value: float
    unrealised_pnl: float
    unrealised_return: float | None


class PendingOrder(BaseModel):
    decision_id: str
    ticker: str
    bar_date: str
    qty: int
    stop: float | None
    take_profit: float
    created_at: str


class Portfolio(BaseModel):
    available: bool
    note: str | None
    initial: float | None
    cash: float | None
    equity: float | None
    positions: list[Position]
    pending_orders: list[PendingOrder]


class Trade(BaseModel):
    trade_id: str
    ts: str
    bar_date: str
    action: str
    ticker: str
    qty: int
    price: float
    fees: float
    profit: float | None
    decision_id: str
    entry_price: float | None
    entry_bar: str | None
    # a close's profit over the value it opened at
    return_: float | None = Field(alias="return")


class Trades(BaseModel):
    available: bool
    note: str | None
    total: int
    realised_pnl: float
    closed: int
    win_rate: float | None
    trades: list[Trade]


class EquityPoint(BaseModel):
    day: str
    equity: float
    peak: float
    drawdown: float


class BenchmarkPoint(BaseModel):
    day: str
    value: float  # the Ibovespa rescaled to start at the curve's first equity


class Equity(BaseModel):
    available: bool
    note: str | None
    points: list[EquityPoint]
    max_drawdown: float | None
    benchmark_name: str
    benchmark_source: str | None
    benchmark_note: str | None
    benchmark: list[BenchmarkPoint]


class Control(BaseModel):
    enabled: bool
    token_required: bool
    why: str


class KillSwitchLogEntry(BaseModel):
    ts: str
    state: str
    reason: str
    changed_by: str


class KillSwitchView(BaseModel):
    available: bool
    note: str | None
    state: str | None
    reason: str | None
    changed_at: str | None
    changed_by: str | None
    log: list[KillSwitchLogEntry]
    control: Control


class KillSwitchCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["halt", "no_new_buys", "resume"]
    reason: str = Field("", max_length=200)


class KillSwitchResult(BaseModel):
    changed: bool
    state: str


class Cycle(BaseModel):
    seq: int
    ts: str
    cycle: int
    took_s: float
    buy: int
    hold: int
    failed: int
    skipped: int
    interrupted: bool
    error: str | None
    interval_s: float
    provider: str
    data_source: str
    last_bars: dict[str, str]
    sleeping_until: str | None  # a row the loop writes when it goes to sleep until B3 opens


class Staleness(BaseModel):
    ticker: str
    last_bar: str
    age_days: int


class Health(BaseModel):
    available: bool
    note: str | None
    status: Literal["ok", "late", "stalled", "sleeping", "never_ran", "unknown"]
    status_reason: str
    last_cycle: Cycle | None
    age_s: float | None
    cycles: list[Cycle]
    staleness: list[Staleness]
    errors_log: list[str]  # the tail of LOG_DIR/errors.log (already masked)
    skipped_record_lines: int


class ReportSummary(BaseModel):
    """The headline of a backtest's metrics.json (written by agent/backtest/report.py; read as untrusted)."""

    mode: str | None = None
    tickers: list[str] = Field(default_factory=list)
    start: str | None = None
    end: str | None = None
    provider: str | None = None
    data_source: str | None = None
    total_return: float | None = None
    cagr: float | None = None
    sharpe: float | None = None
    max_drawdown: float | None = None
    trades: int | None = None
    win_rate: float | None = None
    profit_factor: float | None = None
    llm_calls_per_decision: float | None = None
    baselines: dict[str, float | None] = Field(default_factory=dict)  # name -> total return
    warnings: int = 0

    @classmethod
    def from_payload(cls, payload: Any) -> "ReportSummary":
        """Raises ValueError (pydantic's ValidationError) when metrics.json is not a report's shape."""
        if not isinstance(payload, dict):
            raise ValueError("metrics.json is not an object")
        meta, metrics = payload.get("meta") or {}, payload.get("metrics") or {}
        baselines = payload.get("baselines") or {}
        if not all(isinstance(x, dict) for x in (meta, metrics, baselines)):
            raise ValueError("metrics.json: meta, metrics and baselines must be objects")
        return cls.model_validate({
            **{k: meta.get(k) for k in ("mode", "tickers", "start", "end", "provider", "data_source")
               if meta.get(k) is not None},
            **{k: metrics.get(k) for k in ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "win_rate",
                                           "profit_factor", "llm_calls_per_decision")},
            "baselines": {str(k): (v.get("total_return") if isinstance(v, dict) else None) for k, v in baselines.items()},
            "warnings": len(payload.get("warnings") or [])})


class BacktestReport(BaseModel):
    name: str
    modified: str
    html: str | None  # link to the report page, when it exists
    metrics: ReportSummary | None
    note: str | None


class Backtests(BaseModel):
    reports_dir: str
    reports: list[BacktestReport]


class AppStatus(BaseModel):
    poll_s: float
    bind: str
    port: int
    log_dir: str
    ledger: str
    control: Control
