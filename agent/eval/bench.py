"""``make bench``: what the agent costs on this machine, printed as ratios against plain references.

- indicators: ``tools.indicators.indicator_frame`` (``ta``'s numbers through pandas' window kernels) against
  the same indicators written directly with pandas/numpy, in bars per second;
- backtest: ``quant`` mode (the full graph and paper broker, bar by bar) against backtesting.py running
  an SMA cross on the same bars, in bars per second;
- cascade: each layer's latency with the embedded model, per ticker, and LLM calls per decision;
- scheduling: model loads per cycle of 20 tickers, ticker-major against layer-major, on a local Ollama
  stub that keeps 3 models in memory and takes time to load one (as Ollama on a CPU host does);
- hosts: decisions per minute with 1, 2 and 4 stub hosts, and the framework's overhead.

Numbers are single runs on whatever machine runs them; compare ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from loguru import logger

from agent.config import LAYER_NAMES, load_settings
from agent.eval.dataset import DAILY_BARS
from agent.eval.ollama_stub import OllamaStub
from agent.eval.passing import LOOSE_RISK, PASS
from agent.market.csv_files import CsvProvider
from agent.ops.logs import STDERR_FORMAT

DEFAULT_DATA = DAILY_BARS


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` runs, in seconds (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


# ------------------------------------------------------------------ indicators

def reference_indicators(bars: pd.DataFrame) -> pd.DataFrame:
    """The same indicator set written straight with pandas/numpy (Wilder smoothing as ``ewm``)."""
    close, high, low, volume = bars["close"], bars["high"], bars["low"], bars["volume"]
    out = pd.DataFrame(index=bars.index)
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False).mean()
    out["rsi"] = 100 - 100 / (1 + gain / loss)
    macd = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
    out["macd"], out["macd_signal"] = macd, macd.ewm(span=9, adjust=False).mean()
    mid, sd = close.rolling(20).mean(), close.rolling(20).std(ddof=0)
    out["bb_upper"], out["bb_middle"], out["bb_lower"] = mid + 2 * sd, mid, mid - 2 * sd
    for w in (20, 50, 200):
        out[f"sma_{w}"] = close.rolling(w).mean()
    for w in (9, 21):
        out[f"ema_{w}"] = close.ewm(span=w, adjust=False).mean()
    prev = close.shift(1)
    tr = np.maximum(high - low, np.maximum((high - prev).abs(), (low - prev).abs()))
    out["atr"] = tr.ewm(alpha=1 / 14, adjust=False).mean()
    up, down = high.diff(), -low.diff()
    plus = pd.Series(np.where((up > down) & (up > 0), up, 0.0), index=bars.index).ewm(alpha=1 / 14, adjust=False).mean()
    minus = pd.Series(np.where((down > up) & (down > 0), down, 0.0), index=bars.index).ewm(alpha=1 / 14,
                                                                                          adjust=False).mean()
    dx = 100 * (plus - minus).abs() / (plus + minus)
    out["adx"] = dx.ewm(alpha=1 / 14, adjust=False).mean()
    out["volume_ratio"] = volume / volume.rolling(20).mean()
    return out


def bench_indicators(frame: pd.DataFrame, repeats: int) -> dict[str, Any]:
    from tools.indicators import indicator_frame

    ours = best_of(lambda: indicator_frame(frame), repeats)
    ref = best_of(lambda: reference_indicators(frame), repeats)
    return {"bars": len(frame), "ours_bars_per_s": len(frame) / ours, "reference_bars_per_s": len(frame) / ref,
            "ours_over_reference_time": ours / ref}


# ------------------------------------------------------------------ backtest speed

def bench_backtest(data_dir: Path, ticker: str, start: date, end: date) -> dict[str, Any]:
    from agent.backtest.engine import quant_deps, walk_forward

    settings = load_settings(None, env_file=None, environ={}, overrides={
        ("market", "source"): "csv", ("market", "data_dir"): data_dir})
    with tempfile.TemporaryDirectory() as work:
        run = walk_forward(quant_deps(settings, CsvProvider(data_dir), None), [ticker], start, end, Path(work))
    ours = run.bars / run.seconds

    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):
        def init(self):
            self.fast, self.slow = self.I(SMA, self.data.Close, 10), self.I(SMA, self.data.Close, 20)

        def next(self):
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()

    frame = CsvProvider(data_dir).get_bars(ticker, end=end, lookback=1_000_000).frame
    frame = frame.loc[frame.index >= pd.Timestamp(start)]
    ohlcv = frame.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    bt = Backtest(ohlcv, SmaCross, cash=1_000_000, commission=0.000325, finalize_trades=True)
    ref_seconds = best_of(bt.run, 3)
    return {"ticker": ticker, "bars": run.bars, "decisions": run.decisions, "quant_bars_per_s": ours,
            "backtesting_py_bars_per_s": len(ohlcv) / ref_seconds,
            "backtesting_py_over_quant_speed": (len(ohlcv) / ref_seconds) / ours}


# ------------------------------------------------------------------ cascade latency (embedded model)

def bench_cascade(tickers: list[str], provider: str) -> dict[str, Any]:
    """Every layer called once per ticker on a real state (gates ignored), then one real decision each."""
    from agent.deps import build_deps
    from agent.errors import LLMError
    from agent.graph import build_graph, run_cascade
    from agent.layers import LAYERS
    from agent.llm.call import call_layer
    from agent.nodes import (
        compute_indicators,
        compute_risk,
        load_market_data,
        load_news,
    )

    settings = load_settings(None, overrides={("market", "source"): "sim", ("llm", "provider"): provider})
    deps = build_deps(settings, sink=False)
    graph = build_graph(deps)
    per_layer: dict[str, list[float]] = {layer: [] for layer in LAYER_NAMES}
    invalid: dict[str, int] = {layer: 0 for layer in LAYER_NAMES}
    decisions, calls = [], []
    for ticker in tickers:
        state: dict[str, Any] = {"ticker": ticker, "as_of": None, "layers": [], "size_factor": 1.0, "headlines": []}
        for node in (load_market_data, compute_indicators, compute_risk, load_news):
            state.update(node(state, deps))
        for layer in LAYER_NAMES:
            started = time.perf_counter()
            try:
                call_layer(LAYERS[layer], state, deps)
            except LLMError:
                invalid[layer] += 1
            per_layer[layer].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        record = run_cascade(graph, ticker)
        decisions.append((time.perf_counter() - started) * 1000)
        calls.append(sum(1 for r in record["layers"] if r["provider"] not in ("code",)))
    return {"provider": deps.provider.name, "models": dict(deps.provider.models), "tickers": tickers,
            "layer_ms_mean": {k: statistics.mean(v) for k, v in per_layer.items()},
            "all_five_layers_ms_per_ticker": sum(statistics.mean(v) for v in per_layer.values()),
            "invalid_outputs": invalid, "decision_ms": dict(zip(tickers, decisions)),
            "llm_calls_per_decision": statistics.mean(calls)}


# ------------------------------------------------------------------ scheduling and hosts (Ollama stubs)

STUB_TICKERS = ["PETR4", "VALE3", "ITUB4", "BBDC4", "ABEV3", "WEGE3", "BBAS3", "B3SA3", "SUZB3", "GGBR4",
                "RENT3", "LREN3", "MGLU3", "RADL3", "CSNA3", "USIM5", "CYRE3", "MRVE3", "VIVT3", "UGPA3"]


def _stub_settings(hosts: list[str], parallel: int = 1):
    return load_settings(None, env_file=None, environ={}, overrides={
        **LOOSE_RISK, ("llm", "provider"): "ollama", ("ollama", "host"): hosts[0],
        ("ollama", "hosts"): hosts if len(hosts) > 1 else None, ("ollama", "parallel"): parallel,
        ("market", "source"): "sim"})


def _passing_stub(**kw):
    settings = load_settings(None, env_file=None, environ={})
    content = {settings.layers.model_for(layer): json.dumps(PASS[layer]) for layer in LAYER_NAMES}
    return OllamaStub(models=list(content), content=content, **kw)


def _cycle(settings, tickers: list[str], layer_major: bool) -> tuple[float, list[dict]]:
    from agent.deps import build_deps
    from agent.graph import build_graph
    from agent.scheduler import LayerMajorScheduler, decide_ticker_major

    deps = build_deps(settings, sink=False)
    started = time.perf_counter()
    results = (LayerMajorScheduler(deps).run(tickers) if layer_major
               else decide_ticker_major(build_graph(deps), tickers, None))
    records = [r for r in results.values() if isinstance(r, dict)]
    return time.perf_counter() - started, records


def bench_scheduling(n: int, load_s: float, infer_s: float) -> dict[str, Any]:
    """Model loads per cycle on one host that keeps 3 models in memory, ticker-major against layer-major."""
    out: dict[str, Any] = {"tickers": n, "load_s": load_s, "inference_s": infer_s}
    for mode in ("ticker_major", "layer_major"):
        with _passing_stub(max_loaded=3, load_delay_s=load_s, delay_s=infer_s) as stub:
            wall, records = _cycle(_stub_settings([stub.url]), STUB_TICKERS[:n], mode == "layer_major")
            llm_ms = sum(lr["latency_ms"] for r in records for lr in r["layers"] if lr["provider"] == "ollama")
            out[mode] = {"model_loads": stub.loads, "wall_s": wall, "decisions": len(records),
                         "overhead_share": max(0.0, 1 - llm_ms / 1000 / wall)}
    out["loads_ratio"] = out["ticker_major"]["model_loads"] / max(out["layer_major"]["model_loads"], 1)
    return out


def bench_hosts(n: int, infer_s: float, counts: tuple[int, ...] = (1, 2, 4)) -> dict[str, Any]:
    """Decisions per minute with 1, 2 and 4 stub hosts (layer-major, one request at a time per host)."""
    out: dict[str, Any] = {"tickers": n, "inference_s": infer_s}
    for k in counts:
        stubs = [_passing_stub(delay_s=infer_s).start() for _ in range(k)]
        try:
            wall, records = _cycle(_stub_settings([s.url for s in stubs]), STUB_TICKERS[:n], True)
        finally:
            for stub in stubs:
                stub.stop()
        out[f"{k}_hosts"] = {"decisions_per_min": len(records) / wall * 60, "wall_s": wall}
    base = out[f"{counts[0]}_hosts"]["decisions_per_min"]
    for k in counts:
        out[f"{k}_hosts"]["speedup"] = out[f"{k}_hosts"]["decisions_per_min"] / base
    return out


# ------------------------------------------------------------------ output

def print_results(results: dict[str, Any]) -> None:
    sch = results.get("scheduling")
    if sch:
        tm, lm = sch["ticker_major"], sch["layer_major"]
        print(f"scheduling ({sch['tickers']} tickers, stub host keeping 3 models, {sch['load_s']}s per load): "
              f"ticker-major {tm['model_loads']} model loads in {tm['wall_s']:.1f}s, layer-major {lm['model_loads']} "
              f"in {lm['wall_s']:.1f}s -> {sch['loads_ratio']:.1f}x fewer loads, "
              f"{tm['wall_s'] / lm['wall_s']:.1f}x faster")
        print(f"  framework overhead (share of a cycle outside the layers' LLM calls): ticker-major "
              f"{tm['overhead_share']:.0%}, layer-major {lm['overhead_share']:.0%}")
    hosts = results.get("hosts")
    if hosts:
        print(f"hosts ({hosts['tickers']} tickers, {hosts['inference_s']}s per call): " + ", ".join(
            f"{k.split('_')[0]} host(s) {v['decisions_per_min']:,.0f} decisions/min ({v['speedup']:.1f}x)"
            for k, v in hosts.items() if k.endswith("_hosts")))
    ind = results.get("indicators")
    if ind:
        print(f"indicators ({ind['bars']} bars): ours {ind['ours_bars_per_s']:,.0f} bars/s, "
              f"pandas reference {ind['reference_bars_per_s']:,.0f} bars/s -> ours takes "
              f"{ind['ours_over_reference_time']:.1f}x the reference's time")
    bt = results.get("backtest")
    if bt:
        print(f"backtest ({bt['ticker']}, {bt['bars']} bars): quant mode {bt['quant_bars_per_s']:,.0f} bars/s "
              f"(graph + broker per bar), backtesting.py SMA cross {bt['backtesting_py_bars_per_s']:,.0f} bars/s -> "
              f"backtesting.py is {bt['backtesting_py_over_quant_speed']:.0f}x faster per bar")
    cas = results.get("cascade")
    if cas:
        print(f"cascade ({cas['provider']}): per layer " + ", ".join(
            f"{k} {v:,.0f} ms" for k, v in cas["layer_ms_mean"].items())
              + f"; all five layers {cas['all_five_layers_ms_per_ticker']:,.0f} ms per ticker")
        print("  one decision: " + ", ".join(f"{t} {ms:,.0f} ms" for t, ms in cas["decision_ms"].items())
              + f"; LLM calls per decision {cas['llm_calls_per_decision']:.2f} "
              f"(the cascade stops at the first discard); invalid outputs {cas['invalid_outputs']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.eval.bench", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="daily CSVs (default ../shared/data/b3/daily)")
    p.add_argument("--tickers", default="PETR4,VALE3,ITUB4", help="tickers for the cascade latency")
    p.add_argument("--profiles", default="tiny", help="embedded profiles timed besides the default (comma-separated)")
    p.add_argument("--provider", default="embedded", choices=["auto", "ollama", "embedded"])
    p.add_argument("--skip", action="append", default=[],
                   choices=["indicators", "backtest", "cascade", "scheduling", "hosts"])
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format=STDERR_FORMAT)
    if not args.data_dir.is_dir():
        print(f"error: no daily CSVs at {args.data_dir} (use --data-dir)", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"machine": {"python": sys.version.split()[0]}}
    frame = CsvProvider(args.data_dir).get_bars("PETR4", lookback=1_000_000).frame
    if "indicators" not in args.skip:
        results["indicators"] = bench_indicators(frame, repeats=5)
    if "backtest" not in args.skip:
        results["backtest"] = bench_backtest(args.data_dir, "PETR4", date(2021, 1, 1), date(2025, 12, 31))
    if "scheduling" not in args.skip:
        results["scheduling"] = bench_scheduling(20, load_s=0.3, infer_s=0.02)
    if "hosts" not in args.skip:
        results["hosts"] = bench_hosts(20, infer_s=0.1)
    tickers = [t.strip() for t in args.tickers.split(",") if t.strip()]
    if "cascade" not in args.skip and args.provider != "embedded":
        results["cascade"] = bench_cascade(tickers, args.provider)
    print_results(results)
    if "cascade" not in args.skip and args.provider == "embedded":  # the speed bars, per profile
        from agent.eval.speed_bars import bench_profile, print_bars

        default = load_settings().embedded.profile
        profiles = list(dict.fromkeys([default, *args.profiles.split(",")]))
        results["bars"] = [bench_profile(profile, tickers) for profile in profiles if profile]
        print_bars(results["bars"], default, "tiny")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
