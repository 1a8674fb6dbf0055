"""``python -m agent.eval scenarios``: labelled cascade situations where the right call is not in doubt,
built from the real daily bars in ``../shared/data/b3/daily``.

- technical: steady uptrends (close above rising 20/50/200-day averages, +6% or more over 20 days, RSI
  55-70) should pass; downtrends just before a large fall (close under its 50- and 200-day averages, MACD
  histogram negative, and the next 20 sessions fell 8% or more) should be discarded;
- sentiment: clearly bad news on an uptrend day should be discarded (the headline, not the tape, decides);
  the uptrend's price action alone should pass;
- risk: the day's real snapshot with the take-profit moved so that reward/risk is 0.3 (far below the
  minimum) should not be approved; the real snapshot of an uptrend day, which the risk rules passed, should;
- data validation: a stop above the entry, or bars 25 sessions stale, should be judged invalid; the
  day's real proposal should be valid;
- final score: an uptrend every earlier layer approved strongly should reach the minimum confidence.

Each case calls its layer directly (``call_layer`` and the layer's gate), past the deterministic
prechecks that would otherwise catch the broken cases first: this measures the model, not the code.
The days are chosen by the rules above from 2024-06 onwards, skipping the development days prompts
were written against; the layers' inputs and prompts were developed on the same rules applied to other
tickers and years (PETR4, BBAS3, ABEV3, SUZB3, 2019-2023), never on these cases. Reported per layer:
agreement with the labels, invalid answers, pass (BUY) rate.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from agent.config import LAYER_NAMES, load_settings
from agent.deps import CascadeDeps, build_deps
from agent.errors import LLMError
from agent.eval.dataset import DAILY_BARS
from agent.layers import LAYERS
from agent.llm.call import call_layer
from agent.nodes import compute_indicators, compute_risk, load_market_data

DAILY_DIR = DAILY_BARS
TICKERS = ("ITUB4", "VALE3", "BBDC4", "WEGE3")
DEV_DAYS = {("PETR4", "2024-01-09"), ("ITUB4", "2024-01-03"), ("VALE3", "2024-03-15")}  # prompt work only
SINCE = "2024-06-01"
BAD_NEWS = ("{name} reports a quarterly loss far worse than expected and suspends its dividend",
            "{name} is charged with fraud by regulators; its chief executive resigns",
            "{name} warns of a sharp fall in revenue and cuts 20% of its workforce")
NAMES = {"ITUB4": "Itau Unibanco", "VALE3": "Vale", "BBDC4": "Bradesco", "WEGE3": "WEG", "BBAS3": "Banco do Brasil",
         "ABEV3": "Ambev", "PETR4": "Petrobras"}


@dataclass
class Case:
    layer: str
    expect: str  # "pass" or "discard"
    kind: str
    ticker: str
    day: str
    headlines: list[str] = field(default_factory=list)
    risk: dict[str, Any] = field(default_factory=dict)  # overrides of the risk snapshot
    market: dict[str, Any] = field(default_factory=dict)  # overrides of the market summary


def _frame(ticker: str) -> pd.DataFrame:
    df = pd.read_csv(DAILY_DIR / f"{ticker}.SA.csv", parse_dates=["Date"], index_col="Date")
    c = df["Close"]
    delta = c.diff()
    up, down = delta.clip(lower=0).ewm(alpha=1 / 14).mean(), (-delta.clip(upper=0)).ewm(alpha=1 / 14).mean()
    macd = c.ewm(span=12).mean() - c.ewm(span=26).mean()
    return pd.DataFrame({"close": c, "sma20": c.rolling(20).mean(), "sma50": c.rolling(50).mean(),
                         "sma200": c.rolling(200).mean(), "rsi": 100 - 100 / (1 + up / down),
                         "macd_hist": macd - macd.ewm(span=9).mean(), "ch20": c.pct_change(20),
                         "next20": c.shift(-20) / c - 1})


def _days(mask: pd.Series, ticker: str, n: int) -> list[str]:
    days = [str(d.date()) for d in mask[mask].index if str(d.date()) >= SINCE and (ticker, str(d.date())) not in DEV_DAYS]
    return days[:: max(1, len(days) // n)][:n] if days else []


def build_cases(per_rule: int = 1) -> list[Case]:
    """The labelled cases, picked from the bars by rule (deterministic: same data, same cases)."""
    cases: list[Case] = []
    for i, ticker in enumerate(TICKERS):
        f = _frame(ticker)
        uptrend = ((f.close > f.sma20) & (f.sma20 > f.sma50) & (f.sma50 > f.sma200) & (f.ch20 > 0.06)
                   & f.rsi.between(55, 70))
        before_fall = (f.close < f.sma50) & (f.close < f.sma200) & (f["macd_hist"] < 0) & (f.next20 < -0.08)
        for day in _days(uptrend, ticker, per_rule):
            cases.append(Case("technical", "pass", "steady uptrend", ticker, day))
            cases.append(Case("sentiment", "discard", "clearly bad news", ticker, day,
                              headlines=[BAD_NEWS[i % len(BAD_NEWS)].format(name=NAMES[ticker])]))
            cases.append(Case("sentiment", "pass", "uptrend price action, no news", ticker, day))
            cases.append(Case("risk", "discard", "reward/risk 0.3", ticker, day, risk={"reward_risk": 0.3}))
            cases.append(Case("risk", "pass", "the real snapshot (rules passed)", ticker, day))
            cases.append(Case("data_validation", "pass", "the real proposal", ticker, day))
            cases.append(Case("final_score", "pass", "uptrend, every layer approved", ticker, day))
            if i % 2:
                cases.append(Case("data_validation", "discard", "stop above entry", ticker, day, risk={"stop_above": True}))
            else:
                cases.append(Case("data_validation", "discard", "bars 25 sessions stale", ticker, day,
                                  market={"sessions_behind": 25, "missing_sessions": 25}))
        for day in _days(before_fall, ticker, per_rule):
            cases.append(Case("technical", "discard", "downtrend before a large fall", ticker, day))
    return cases


STRONG_VERDICTS = {"sentiment": 0.85, "technical": 0.8, "risk": 0.8, "data_validation": 0.9}


def case_state(case: Case, deps: CascadeDeps) -> dict[str, Any]:
    deps.clock = lambda: datetime.fromisoformat(f"{case.day}T21:00:00+00:00").astimezone(timezone.utc)
    state: dict[str, Any] = {"ticker": case.ticker, "as_of": case.day, "layers": [], "size_factor": 1.0,
                             "headlines": list(case.headlines)}
    for node in (load_market_data, compute_indicators, compute_risk):
        state.update(node(state, deps))
    risk = dict(state.get("risk") or {})
    if "reward_risk" in case.risk and risk.get("stop") is not None:
        risk["take_profit"] = round(risk["entry"] + case.risk["reward_risk"] * (risk["entry"] - risk["stop"]), 4)
        risk["reward_risk"] = case.risk["reward_risk"]
    if case.risk.get("stop_above") and risk.get("atr"):
        risk["stop"] = round(risk["entry"] + risk["atr"], 4)
    state["rules_blocked"] = bool(risk.get("blocks"))
    risk["blocks"] = []
    state["risk"] = risk
    state["market"] = {**(state.get("market") or {}), **case.market}
    order = LAYER_NAMES.index(case.layer)
    state["layers"] = [{"layer": name, "score": STRONG_VERDICTS[name], "reason": "approved"}
                       for name in LAYER_NAMES[:order]]
    return state


def run_case(case: Case, deps: CascadeDeps) -> dict[str, Any]:
    spec, started = LAYERS[case.layer], time.perf_counter()
    state = case_state(case, deps)
    expect = case.expect
    if case.layer == "risk" and expect == "pass" and state.pop("rules_blocked"):
        expect = "discard"  # the risk rules refused this real snapshot: refusing is then the right call
    out = {"layer": case.layer, "kind": case.kind, "ticker": case.ticker, "day": case.day, "expect": expect}
    try:
        called = call_layer(spec, state, deps)
    except LLMError as exc:
        return {**out, "got": "discard", "error": exc.kind, "reason": str(exc)[:200],
                "seconds": time.perf_counter() - started}
    gate = spec.gate(called.answer, deps.settings)
    return {**out, "got": "pass" if gate.passed else "discard", "error": None, "reason": gate.reason[:200],
            "seconds": time.perf_counter() - started, "tokens_in": called.tokens_in, "tokens_out": called.tokens_out}


def run_scenarios(provider: str = "embedded", per_rule: int = 1) -> dict[str, Any]:
    settings = load_settings(overrides={("llm", "provider"): provider, ("market", "source"): "csv",
                                        ("market", "data_dir"): DAILY_DIR})
    deps = build_deps(settings, sink=False)
    results = [run_case(case, deps) for case in build_cases(per_rule)]
    per_layer = {}
    for layer in LAYER_NAMES:
        rows = [r for r in results if r["layer"] == layer]
        if rows:
            per_layer[layer] = {
                "model": deps.provider.models.get(layer), "n": len(rows),
                "agreement": sum(r["got"] == r["expect"] for r in rows) / len(rows),
                "pass_rate": sum(r["got"] == "pass" for r in rows) / len(rows),
                "invalid": sum(r["error"] is not None for r in rows),
                "seconds_mean": sum(r["seconds"] for r in rows) / len(rows)}
    return {"provider": deps.provider.name, "per_layer": per_layer, "cases": results}


def print_scenarios(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"labelled scenarios ({report['provider']})", header_style="bold")
    for col in ("layer", "model", "cases", "agreement", "pass (BUY) rate", "invalid", "s/case"):
        table.add_column(col, justify="left" if col in ("layer", "model") else "right")
    for layer, r in report["per_layer"].items():
        table.add_row(layer, str(r["model"]), str(r["n"]), f"{r['agreement']:.0%}", f"{r['pass_rate']:.0%}",
                      str(r["invalid"]), f"{r['seconds_mean']:.1f}")
    console.print(table)
    for r in report["cases"]:
        mark = "ok " if r["got"] == r["expect"] else "MISS"
        console.print(f"  {mark} {r['layer']:<15} {r['kind']:<32} {r['ticker']} {r['day']} expect {r['expect']}, "
                      f"got {r['got']}{' (' + r['error'] + ')' if r['error'] else ''}: {r['reason'][:90]}",
                      highlight=False)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from loguru import logger

    p = argparse.ArgumentParser(prog="python -m agent.eval scenarios", description=__doc__.splitlines()[0])
    p.add_argument("--provider", default="embedded", choices=["embedded", "ollama", "auto"])
    p.add_argument("--per-rule", type=int, default=1, help="days per rule and ticker (default 1)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    report = run_scenarios(args.provider, args.per_rule)
    print_scenarios(report, Console())
    if args.json:
        import json

        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0
