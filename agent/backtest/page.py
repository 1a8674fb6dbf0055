"""The report's self-contained HTML page: warnings first, then the comparison, charts, funnel and trades.

A person opens ``report.html`` offline (no JS, CSS or fonts from the network). Every string that reaches
the page (tickers, warnings, meta values, baseline names) is untrusted and goes through ``html.escape``;
every number goes through ``fmt_metric`` so ``None`` and NaN read "n/a".
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from agent.backtest.sanitize import as_float

# Metrics that are fractions (0.12 = 12 %); everything else is a ratio, a count or money.
PERCENT_KEYS = frozenset({"total_return", "cagr", "max_drawdown", "win_rate", "exposure", "cache_hit_rate"})
SIGNED_PERCENT_KEYS = frozenset({"total_return", "cagr"})
# The strategy-versus-baselines table, in reading order: (metrics key, column header).
COMPARISON = (
    ("total_return", "Total return"), ("cagr", "CAGR"), ("sharpe", "Sharpe"), ("sortino", "Sortino"),
    ("calmar", "Calmar"), ("max_drawdown", "Max drawdown"), ("max_drawdown_duration_bars", "DD duration (bars)"),
    ("trades", "Trades"), ("win_rate", "Win rate"), ("profit_factor", "Profit factor"), ("exposure", "Exposure"),
)
ACTION_LABELS = {"open": "BUY (open)", "close_stop": "SELL (stop)", "close_take_profit": "SELL (take-profit)",
                 "close_end": "SELL (end of test)"}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt_metric(key: str, value: Any) -> str:
    """A metric as the page shows it: None/NaN 'n/a', fractions as percentages, ratios with 2 decimals."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        if key in PERCENT_KEYS:
            return fmt_metric(key, float(value))
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if key in PERCENT_KEYS:
            return f"{v:+.2%}" if key in SIGNED_PERCENT_KEYS else f"{v:.2%}"
        return f"{v:,.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={fmt_metric(str(k), v)}" for k, v in value.items()) or "n/a"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(fmt_metric(key, v) for v in value) or "n/a"
    return str(value)


def _money(value: Any) -> str:
    f = as_float(value)
    return "n/a" if f is None else f"{f:,.2f}"


def _sign_class(value: Any) -> str:
    f = as_float(value)
    return "" if f is None or f == 0 else (" class=\"pos\"" if f > 0 else " class=\"neg\"")


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], *, empty: str, cls: str = "") -> str:
    """An HTML table; header cells are escaped here, row cells must arrive already escaped/marked up."""
    rows = list(rows)
    if not rows:
        return f"<p class=\"muted\">{esc(empty)}</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    # a cell that already is a <td>/<th> element keeps its attributes; escaped text never starts with "<"
    body = "\n".join("<tr>" + "".join(cell if cell.startswith("<t") else f"<td>{cell}</td>" for cell in row)
                     + "</tr>" for row in rows)
    cls_attr = f" class=\"{esc(cls)}\"" if cls else ""
    return (f"<div class=\"scroll\"><table{cls_attr}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n"
            f"</tbody></table></div>")


def _comparison(metrics: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]]) -> str:
    runs = [("strategy", metrics), *baselines.items()]
    rows = []
    for i, (name, m) in enumerate(runs):
        m = m or {}
        cls = " class=\"strategy\"" if i == 0 else ""
        cells = [f"<th scope=\"row\"{cls}>{esc(name)}</th>"]
        for key, _ in COMPARISON:
            value = m.get(key)
            cls = _sign_class(value) if key in SIGNED_PERCENT_KEYS else ""
            cells.append(f"<td{cls}>{esc(fmt_metric(key, value))}</td>")
        rows.append(cells)
    return _table(["run", *(h for _, h in COMPARISON)], rows, empty="no runs", cls="num")


def _funnel(funnel: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for layer, counts in funnel.items():
        passed, discarded = as_float((counts or {}).get("pass")), as_float((counts or {}).get("discard"))
        total = (passed or 0) + (discarded or 0)
        rate = f"{(discarded or 0) / total:.1%}" if total else "n/a"
        rows.append([f"<th scope=\"row\">{esc(layer)}</th>", esc(fmt_metric("n", (counts or {}).get("pass"))),
                     esc(fmt_metric("n", (counts or {}).get("discard"))), esc(rate)])
    return _table(["layer", "pass", "discard", "discard rate"], rows, empty="no funnel recorded (quant mode has no "
                  "LLM layers, or the run made no decisions)", cls="num")


def _key_values(values: Mapping[str, Any]) -> str:
    rows = [[f"<th scope=\"row\">{esc(k)}</th>", esc(fmt_metric(str(k), v))] for k, v in values.items()]
    return _table(["", "value"], rows, empty="nothing recorded")


def _trades(trades: list[dict]) -> str:
    rows = []
    for t in trades:
        action = str(t.get("action") or "")
        profit = t.get("profit")
        rows.append([esc(t.get("ticker", "")), esc(str(t.get("bar_date") or "")[:10]),
                     f"<td title=\"{esc(action)}\">{esc(ACTION_LABELS.get(action, action))}</td>",
                     esc(fmt_metric("qty", t.get("qty"))), esc(_money(t.get("price"))), esc(_money(t.get("fees"))),
                     f"<td{_sign_class(profit)}>{esc(_money(profit))}</td>"])
    return _table(["ticker", "date", "action", "qty", "price", "fees", "profit"], rows, empty="no trades",
                  cls="num")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
padding:0 1rem;color:#222;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.muted,.sub{color:#666}.sub{margin-top:0}
.warnings{background:#fff4e5;border:2px solid #e69500;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.warnings h2{border:0;margin:.2rem 0;color:#8a4b00}.warnings li{margin:.3rem 0;font-weight:600}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
thead th{background:#f3f3f3}table.num td{text-align:right;font-variant-numeric:tabular-nums}
th.strategy{background:#eef5ff}.pos{color:#11703a}.neg{color:#b3261e}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5rem 0}
footer{margin-top:3rem;font-size:.85rem;color:#666}
"""


def render_html(*, title: str, metrics: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]],
                trades: list[dict], funnel: Mapping[str, Mapping[str, Any]], warnings: list[str],
                meta: Mapping[str, Any], trade_charts: list[tuple[str, str]]) -> str:
    """The page: warnings first (they change how every number below should be read), then the numbers."""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
             f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>"]
    facts = [str(meta[k]) for k in ("mode", "data_source", "created_at") if meta.get(k) not in (None, "")]
    parts.append(f"<p class=\"sub\">{esc(' · '.join(['paper trading only', *facts]))}</p>")
    if warnings:
        items = "\n".join(f"<li>{esc(w)}</li>" for w in warnings)
        parts.append(f"<section class=\"warnings\" role=\"alert\"><h2>&#9888; Warnings ({len(warnings)})</h2>"
                     f"\n<ul>\n{items}\n</ul></section>")
    parts.append("<h2>Strategy against baselines</h2>")
    parts.append(_comparison(metrics, baselines))
    if metrics.get("annualised") is False or metrics.get("why_not_annualised"):
        why = metrics.get("why_not_annualised") or "the window is too short"
        parts.append(f"<p class=\"muted\">Not annualised: {esc(why)}.</p>")
    parts.append("<p class=\"muted\">Returns, drawdowns, win rate and exposure are percentages; drawdown duration "
                 "is in bars (B3 sessions); n/a means the metric is undefined for this run.</p>")
    parts.append("<h2>Equity</h2>\n<img src=\"equity.png\" alt=\"equity curve of the strategy and the baselines, "
                 "normalised to 1.0\">")
    parts.append("<h2>Drawdown</h2>\n<img src=\"drawdown.png\" alt=\"drawdown of the strategy and the baselines\">")
    if trade_charts:
        parts.append("<h2>Trades on the price</h2>")
        parts.extend(f"<h3>{esc(ticker)}</h3>\n<img src=\"{esc(name)}\" alt=\"{esc(ticker)}: close price with buy "
                     f"and exit markers\">" for ticker, name in trade_charts)
    parts.append("<h2>Cascade funnel</h2>\n<p class=\"muted\">How often each layer let a candidate through or "
                 "discarded it.</p>")
    parts.append(_funnel(funnel))
    parts.append("<h2>All strategy metrics</h2>")
    parts.append(_key_values(metrics))
    parts.append("<h2>Run</h2>")
    parts.append(_key_values(meta))
    parts.append(f"<h2>Trades ({len(trades)})</h2>")
    parts.append(_trades(trades))
    parts.append("<footer>The numbers above are also in <a href=\"metrics.json\">metrics.json</a>. "
                 "Simulated paper trading: not investment advice.</footer>\n</body>\n</html>\n")
    return "\n".join(parts)
