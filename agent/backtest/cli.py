"""``python -m agent.backtest``: the command line of a walk-forward backtest, its summary table and report.

    python -m agent.backtest --tickers PETR4,VALE3 --start 2021-01-01 --end 2025-12-31 \\
        --source csv --data-dir ../shared/data/b3/daily --mode quant --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from agent.backtest.engine import quant_deps
from agent.backtest.report import write_report
from agent.backtest.run import run_backtest
from agent.cli import add_run_flags, exit_code, start
from agent.config import TICKER_RE, comma_list, load_settings, normalize_ticker
from agent.deps import CascadeDeps
from agent.errors import ConfigError, DataError, ProviderError
from agent.llm.cache import LLMCache
from agent.market.sources import make_market_provider
from agent.ops.logs import setup_logging
from agent.store.jsonl import DecisionSink


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent.backtest", description="Walk-forward backtests of the cascade, "
                                "through the same graph and the same paper broker as the loop.")
    p.add_argument("--tickers", required=True, help="comma-separated B3 tickers, e.g. PETR4,VALE3")
    p.add_argument("--start", required=True, help="first day traded (YYYY-MM-DD); earlier bars only warm up")
    p.add_argument("--end", required=True, help="last day traded (YYYY-MM-DD)")
    p.add_argument("--mode", choices=["quant", "cascade"], default="quant",
                   help="quant: indicator rules (no LLM); cascade: the LLM layers, answers cached")
    add_run_flags(p)
    p.add_argument("--json", action="store_true", help="print the metrics JSON on stdout")
    p.add_argument("--report", type=Path, help="write report.html, PNG charts and metrics.json into this folder")
    p.add_argument("--no-quant-baseline", action="store_true", help="cascade mode: skip the quant baseline run")
    return p


def _dates(args: argparse.Namespace) -> tuple[date, date]:
    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError as exc:
        raise ConfigError(f"--start/--end: {exc} (expected YYYY-MM-DD)") from None
    if start > end:
        raise ConfigError(f"--start {start} is after --end {end}")
    return start, end


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        tickers = [normalize_ticker(t) for t in comma_list(args.tickers)]
        bad = [t for t in tickers if not TICKER_RE.match(t)]
        if not tickers or bad:
            raise ConfigError(f"--tickers: {bad or args.tickers!r} is not a list of B3 tickers (e.g. PETR4,VALE3)")
        start, end = _dates(args)
        overrides = {("logging", "level"): "WARNING"}
        if args.mode == "quant":
            settings = load_settings(args.config, overrides={
                ("market", "source"): args.source, ("market", "data_dir"): args.data_dir, **overrides})
            setup_logging(settings, to_file=False)
            deps = quant_deps(settings, make_market_provider(settings), None)
        else:
            deps = start_backtest(args, overrides)
            settings = deps.settings
    except (ConfigError, ProviderError) as exc:
        return exit_code(exc)

    work = args.report or Path(tempfile.mkdtemp(prefix="b3-backtest-"))
    try:
        if deps.sink is None and args.report:
            shutil.rmtree(work / "decisions", ignore_errors=True)  # a rerun into the same folder starts clean
            deps.sink = DecisionSink(work / "decisions")
        result = run_backtest(settings, deps, tickers, start, end, work, quant_baseline=not args.no_quant_baseline)
    except (DataError, ConfigError) as exc:
        return exit_code(ConfigError(str(exc)))
    finally:
        if deps.llm_cache is not None:
            deps.llm_cache.close()
    curves, run = result.pop("_curves"), result.pop("_run")
    if args.report:
        files = write_report(args.report, title=f"Backtest {run.mode}: {', '.join(tickers)} {start} to {end}",
                             metrics=result["metrics"], baselines=result["baselines"], equity=run.equity,
                             baseline_equity=curves, trades=run.trades, prices=run.closes, funnel=result["funnel"],
                             warnings=result["warnings"], meta=result["meta"])
        result["report"] = {name: str(path) for name, path in files.items()}
    else:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    else:
        print_summary(result)
    return 0


def start_backtest(args: argparse.Namespace, overrides: dict) -> CascadeDeps:
    """Cascade mode: the shared start-up path (LLM provider, banner), no live sink, and the LLM cache."""
    deps = start(args, overrides, sink=False, log_files=False)
    deps.llm_cache = LLMCache(deps.settings.llm_cache_store)
    return deps


def print_summary(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for warning in result["warnings"]:
        console.print(f"[bold yellow]warning:[/] {warning}")
    table = Table(title=f"{result['meta']['mode']} backtest {result['meta']['start']} to {result['meta']['end']}")
    runs = [("strategy", result["metrics"]), *result["baselines"].items()]
    table.add_column("metric")
    for name, _ in runs:
        table.add_column(name.replace("buy_and_hold:", "B&H "), justify="right")
    fmt = lambda v: "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    for key in ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_duration_bars",
                "trades", "win_rate", "profit_factor", "avg_trade", "exposure"):
        table.add_row(key, *[fmt(m.get(key)) for _, m in runs])
    console.print(table)
    m = result["metrics"]
    console.print(f"{m['decisions']} decisions, {m['buys']} BUY, LLM calls per decision {m['llm_calls_per_decision']}, "
                  f"cache hit rate {'n/a' if m['cache_hit_rate'] is None else m['cache_hit_rate']}, {m['bars_per_second']} bars/s")
    if result.get("report"):
        console.print(f"report: {result['report'].get('report.html', result['report'])}")
