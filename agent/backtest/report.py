"""The backtest report: ``metrics.json``, PNG charts and a self-contained ``report.html`` in one folder.

The folder is the deliverable: the PNGs are linked by relative paths, so it can be zipped, moved or
mailed. The charts are drawn by ``charts``, the page by ``page``, from inputs cleaned by ``sanitize``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from agent.backtest.charts import plot_drawdown, plot_equity, plot_trades
from agent.backtest.page import render_html
from agent.backtest.sanitize import chart_names, clean_series, to_jsonable


def write_report(out_dir: Path, *, title: str, metrics: dict, baselines: dict[str, dict], equity: pd.Series,
                 baseline_equity: dict[str, pd.Series], trades: list[dict], prices: dict[str, pd.Series],
                 funnel: dict[str, dict[str, int]] | None = None, warnings: list[str] | None = None,
                 meta: dict | None = None) -> dict[str, Path]:
    """Write metrics.json, the charts and report.html into ``out_dir``; return file name -> path.

    metrics.json is written first, so a chart that fails still leaves the numbers behind.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    warnings, funnel, meta, trades = list(warnings or []), dict(funnel or {}), dict(meta or {}), list(trades or [])
    files: dict[str, Path] = {}

    payload = {"meta": meta, "warnings": warnings, "metrics": metrics, "baselines": baselines, "funnel": funnel}
    files["metrics.json"] = out_dir / "metrics.json"
    files["metrics.json"].write_text(
        json.dumps(to_jsonable(payload), allow_nan=False, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    strategy = clean_series(equity)
    baseline_curves = {name: clean_series(curve) for name, curve in (baseline_equity or {}).items()}
    files["equity.png"] = plot_equity(out_dir / "equity.png", strategy, baseline_curves)
    files["drawdown.png"] = plot_drawdown(out_dir / "drawdown.png", strategy, baseline_curves)

    trade_charts: list[tuple[str, str]] = []  # (ticker, file name)
    for ticker, name in chart_names(prices or {}).items():
        ticker_trades = [t for t in trades if str(t.get("ticker")) == str(ticker)]
        files[name] = plot_trades(out_dir / name, str(ticker), clean_series(prices[ticker]), ticker_trades)
        trade_charts.append((str(ticker), name))

    page = render_html(title=title, metrics=metrics, baselines=baselines, trades=trades, funnel=funnel,
                       warnings=warnings, meta=meta, trade_charts=trade_charts)
    files["report.html"] = out_dir / "report.html"
    files["report.html"].write_text(page, encoding="utf-8")
    return files
