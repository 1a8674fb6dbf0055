"""A populated store for the dashboard tests, made by the real parts the loop uses: the compiled
graph (fake chat models) over the real B3 daily bars, the paper trader, the kill switch's marks
and the loop's heartbeat, over sessions of June 2025.

PETR4 passes every layer (BUYs that become paper trades), VALE3 is discarded at the technical
layer and ITUB4 at sentiment; one ITUB4 reason carries HTML, to prove the pages show it as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from agent.config import Settings
from agent.deps import CascadeDeps
from agent.eval.passing import LOOSE_RISK, PASS
from agent.graph import build_graph
from agent.llm.providers import ProviderChoice
from agent.market.csv_files import CsvProvider
from agent.prompts import PromptLibrary
from agent.store.jsonl import DecisionSink
from agent.trading.heartbeat import LoopHealth
from agent.trading.trader import PaperTrader
from tests.conftest import DAILY_DIR, DISCARD, FakeFactory, make_settings

TICKERS = ("PETR4", "VALE3", "ITUB4")
XSS = "<img src=x onerror=\"document.body.dataset.pwned='1'\"><script>document.body.dataset.pwned='1'</script>"
ANSWERS = {
    "PETR4": PASS,
    "VALE3": {**PASS, "technical": DISCARD["technical"]},
    "ITUB4": {**PASS, "sentiment": {**DISCARD["sentiment"], "reason": f"bad news {XSS}"}},
}


@dataclass
class Populated:
    settings: Settings
    days: list[date]
    records: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    now: datetime  # the clock the app should use: a minute after the last cycle


def settings_for(tmp_path: Path, store: Path | str, **extra: Any) -> Settings:
    overrides = {**LOOSE_RISK, ("risk", "capital"): 100_000.0, ("logging", "dir"): tmp_path / "logs",
                 ("market", "source"): "csv", ("market", "data_dir"): DAILY_DIR,
                 ("dashboard", "reports_dir"): tmp_path / "reports", ("tickers",): ",".join(TICKERS)}
    if str(store).startswith("postgresql://"):
        overrides[("database_url",)] = str(store)
    else:
        overrides[("database_path",)] = Path(store)
    overrides.update({tuple(k.split(".")): v for k, v in extra.items()})
    return make_settings(overrides)


def populate(tmp_path: Path, store: Path | str, sessions: int = 12, **extra: Any) -> Populated:
    settings = settings_for(tmp_path, store, **extra)
    market = CsvProvider(DAILY_DIR, settings.market.max_jump)
    now = [datetime(2025, 6, 2, 21, 0, tzinfo=timezone.utc)]
    clock = lambda: now[0]  # noqa: E731
    trader = PaperTrader.from_settings(settings, clock=clock)
    health = LoopHealth(trader.broker.db)
    frames = {t: market.get_bars(t, "1d", lookback=400).frame for t in TICKERS}
    # sessions the Ibovespa file (BVSP.csv, ends 2025-06-27) also covers: the equity page's benchmark
    days = [d.date() for d in frames["PETR4"].index
            if pd.Timestamp("2025-05-01") <= d <= pd.Timestamp("2025-06-27")][-sessions:]
    sink = DecisionSink(settings.logging.dir)
    graphs = {}
    for ticker in TICKERS:
        deps = CascadeDeps(settings=settings, market=market,
                           provider=ProviderChoice("fake", "tests", {layer: f"fake-{layer}" for layer in
                                                                     ("sentiment", "technical", "risk",
                                                                      "data_validation", "final_score")}),
                           model_factory=FakeFactory(ANSWERS[ticker]), prompts=PromptLibrary(), sink=sink,
                           clock=clock, sleep=lambda s: None)
        deps.guard, deps.origin = trader.guard, "loop"
        graphs[ticker] = build_graph(deps)
    records, trades = [], []
    for cycle, day in enumerate(days, start=1):
        now[0] = datetime.combine(day, time(20, 30), timezone.utc)
        closes = {}
        for ticker in TICKERS:
            frame = frames[ticker].loc[:pd.Timestamp(day)]
            trades += trader.on_bars(ticker, frame)
            closes[ticker] = float(frame["close"].iloc[-1])
            record = graphs[ticker].invoke({"ticker": ticker, "as_of": day.isoformat()})["record"]
            records.append(record)
            trader.on_decision(record)
        trader.mark(closes, day)
        counts = {"BUY": sum(r["decision"] == "BUY" for r in records[-3:]),
                  "HOLD": sum(r["decision"] == "HOLD" for r in records[-3:]), "failed": 0, "skipped": 0}
        health.record(ts=now[0].isoformat(timespec="seconds"), cycle=cycle, took_s=1.5 + cycle / 10, counts=counts,
                      interrupted=False, error=None, interval_s=300, provider="fake", data_source="csv",
                      last_bars={t: day.isoformat() for t in TICKERS})
    return Populated(settings, days, records, trades, datetime.combine(days[-1], time(20, 31), timezone.utc))
