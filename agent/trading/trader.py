"""Paper trading around the cascade: decisions become orders, bars move the ledger, limits halt it.

One object shared by the live loop and the backtester, so both trade by the same rules:
- ``guard(ticker, decision_id)``: why a new BUY must not happen now (kill switch, open positions,
  pending order, a decision already acted on);
  the graph's ``decide`` node turns a blocked BUY into HOLD with that reason;
- ``on_bars(ticker, frame)``: fill pending orders at the next open, check stops and targets;
- ``on_decision(record)``: a BUY record becomes a pending order (once per decision id);
- ``mark(closes, day)``: equity, drawdown and daily P&L, the kill-switch limits, and the gauges.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from loguru import logger

from agent.config import KillSwitchSettings, Settings
from agent.market.calendar import B3_TZ, b3_timestamp
from agent.market.validation import is_index_ticker
from agent.ops.alerts import AlertQueue, halt_alert, trade_alert
from agent.ops.metrics import COUNTERS
from agent.store.db import Database, open_database
from agent.store.jsonl import DecisionSink
from agent.trading.broker import Costs, PaperBroker, bars_from_frame, last_mark
from agent.trading.kill_switch import KillSwitch, TradingState, fills_blocked


class PaperTrader:
    def __init__(self, broker: PaperBroker, switch: KillSwitch, limits: KillSwitchSettings,
                 alerts: AlertQueue | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 max_position_value: float | None = None, lot_size: int = 100,
                 max_position_shares: int | None = None):
        self.broker, self.switch, self.limits = broker, switch, limits
        self.alerts, self.clock = alerts, clock
        self.max_position_value = max_position_value  # MAX_POSITION_FRACTION x CAPITAL: a cap adds must respect
        self.max_position_shares = max_position_shares  # MAX_POSITION_SIZE: the same cap in shares
        self.lot_size = lot_size

    @classmethod
    def from_settings(cls, settings: Settings, alerts: AlertQueue | None = None, *, store: Database | None = None,
                      trades_log: Path | None = None, **kw: Any) -> "PaperTrader":
        """The ledger and kill switch in DATABASE_URL or DATABASE_PATH, the trade log in LOG_DIR/trades.jsonl;
        or in ``store`` and ``trades_log`` (a backtest's scratch ledger), with the same rules."""
        b = settings.broker
        db = store if store is not None else open_database(settings.store)  # one handle for ledger and switch
        switch = KillSwitch(db)  # first: its table exists before the broker's fills read it
        broker = PaperBroker(db, trades_log or settings.logging.dir / "trades.jsonl", settings.risk.capital,
                             Costs(b.slippage_bps, b.fee_bps, b.commission), b.allow_pyramiding, fills_blocked)
        return cls(broker, switch, settings.kill_switch, alerts,
                   max_position_value=settings.risk.capital * settings.risk.max_position_fraction,
                   max_position_shares=settings.risk.max_position_size, lot_size=settings.risk.lot_size, **kw)

    def _ts(self) -> str:
        return b3_timestamp(self.clock())

    # ------------------------------------------------------------------ before a decision

    def guard(self, ticker: str, decision_id: str | None = None) -> str | None:
        """Why a new BUY of ``ticker`` (decision ``decision_id``) must not happen now, or None."""
        if is_index_ticker(ticker):
            return f"{ticker} is an index: analysed and recorded, never traded"
        state = self.switch.state
        if state != TradingState.RUNNING:
            return f"kill switch is {state.value}: no new buys"
        if decision_id and (done := self.broker.order_status(decision_id)):
            return f"this bar's decision was already acted on (order {done})"
        pos = self.broker.positions().get(ticker)
        if pos and not self.broker.allow_pyramiding:
            return f"a position in {ticker} is already open (pyramiding off)"
        if pos and self._room_shares(pos) < self.lot_size:
            return (f"the {ticker} position is already at its size cap (MAX_POSITION_FRACTION of the capital, "
                    "MAX_POSITION_SIZE shares): no room for one more lot")
        return self.broker.refusal(self.broker.db, ticker, self.limits.max_open_positions)

    # ------------------------------------------------------------------ market and decisions

    def on_bars(self, ticker: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Feed ``ticker``'s latest daily bars: fills, then stops and targets. Returns the trades made."""
        if self.switch.state != TradingState.RUNNING:
            self.broker.cancel_pending(f"kill switch is {self.switch.state.value}", self._ts(), ticker)
        trades = self.broker.process_bars(ticker, bars_from_frame(frame), self._ts())
        for trade in trades:
            COUNTERS.inc("trades_total", action=trade["action"])
            logger.info("{} {} {} @ {:.2f} (fees {:.2f}{})", trade["ticker"], trade["action"], trade["qty"],
                        trade["price"], trade["fees"],
                        f", profit {trade['profit']:+.2f}" if trade["profit"] is not None else "")
            if self.alerts:
                self.alerts.notify(trade_alert(trade))
        return trades

    def on_decision(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """A BUY record becomes a pending order, unless the guard now forbids it. None when nothing queued."""
        if record.get("decision") != "BUY":
            return None
        blocked = self.guard(record["ticker"], record["decision_id"])
        if blocked:
            logger.warning("{}: BUY {} not queued: {}", record["ticker"], record["decision_id"], blocked)
            return None
        held = self.broker.positions().get(record["ticker"])
        if held:  # pyramiding: the add only fills the room left
            room_shares = self._room_shares(held, record["position"]["entry"])
            if room_shares < record["position"]["shares"]:
                record = {**record, "position": {**record["position"], "shares": room_shares}}
                logger.info("{}: add shrunk to {} shares to stay within MAX_POSITION_FRACTION and MAX_POSITION_SIZE",
                            record["ticker"], room_shares)
        return self.broker.submit(record, self._ts(), self.limits.max_open_positions)

    def _room_shares(self, position: dict[str, Any], price: float | None = None) -> int:
        """Whole lots a pyramiding add at ``price`` (default: the position's mark) may still put into a held
        position under both size caps: MAX_POSITION_FRACTION (BRL at the mark) and MAX_POSITION_SIZE (shares)."""
        room = float("inf")
        if self.max_position_value is not None:
            room = (self.max_position_value - position["qty"] * last_mark(position)) / (price or last_mark(position))
        if self.max_position_shares is not None:
            room = min(room, self.max_position_shares - position["qty"])
        if room == float("inf"):
            return 10**12
        return max(int(room // self.lot_size * self.lot_size), 0)

    def resubmit_unqueued(self, sink: DecisionSink, days: int = 7) -> int:
        """After a crash between a BUY record and its order: queue recent BUYs the ledger never saw."""
        since = self.clock().astimezone(B3_TZ).date() - timedelta(days=days)
        queued = 0
        for record in sink.records(since=since):
            if (record.get("decision") == "BUY" and record.get("origin") == "loop"
                    and self.broker.order_status(record["decision_id"]) is None):
                queued += self.on_decision(record) is not None
        if queued:
            logger.warning("restart: queued {} BUY decision(s) recorded before the crash", queued)
        return queued

    # ------------------------------------------------------------------ the kill switch

    def set_state(self, state: TradingState, reason: str, by: str) -> bool:
        changed = self.switch.set(state, reason, by, self._ts())
        if changed and state != TradingState.RUNNING:
            self.broker.cancel_pending(f"kill switch set to {state.value}: {reason}", self._ts())
        if changed and self.alerts and state == TradingState.HALTED:
            self.alerts.notify(halt_alert(reason))
        return changed

    def mark(self, closes: dict[str, float], day: date) -> dict[str, Any]:
        """Portfolio status at ``closes``; halts on a breached limit. Also sets the Prometheus gauges."""
        before = self.switch.state
        equity = self.broker.equity(closes)
        breach = self.switch.mark(equity, day.isoformat(), self.limits, self._ts())
        status = self.switch.status()
        state = TradingState(status["state"])
        if state == TradingState.HALTED and before != TradingState.HALTED:
            self.broker.cancel_pending(f"kill switch HALTED: {breach}", self._ts())
        positions, pending = self.broker.positions(), self.broker.orders("pending")
        peak, day_open = status["peak"] or equity, status["day_open"] or equity
        out = {"equity": equity, "cash": self.broker.cash, "open_positions": len(positions),
               "pending_orders": len(pending), "drawdown": (peak - equity) / peak if peak else 0.0,
               "daily_pnl": (equity - day_open) / day_open if day_open else 0.0, "state": state.value,
               "state_reason": status["reason"]}
        if state == TradingState.HALTED and before != TradingState.HALTED and self.alerts:
            self.alerts.notify(halt_alert(status["reason"], {k: out[k] for k in ("equity", "drawdown", "daily_pnl")}))
        for name in ("equity", "cash", "open_positions", "pending_orders", "drawdown", "daily_pnl"):
            COUNTERS.set_gauge(f"portfolio_{name}", out[name])
        for s in TradingState:
            COUNTERS.set_gauge("kill_switch_state", 1.0 if s == state else 0.0, state=s.value)
        return out
