"""The backtest report: ``metrics.json``, PNG charts and a self-contained ``report.html`` in one folder.

The folder is the deliverable: a person opens ``report.html`` offline (no JS, CSS or fonts from the
network) and the PNGs are linked by relative paths, so the folder can be zipped, moved or mailed.
Charts are drawn on ``matplotlib.figure.Figure`` objects (Agg canvas, no pyplot), so there is no global
figure registry to leak, no display is needed and two reports can be drawn from two threads.
Every string that reaches the page (tickers, warnings, meta values, baseline names) is untrusted and
goes through ``html.escape``; every number goes through ``fmt_metric`` so ``None`` and NaN read "n/a".
"""

from __future__ import annotations

import html
import json
import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

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
# Trade markers on the price charts: action -> (marker, colour, legend label).
MARKERS = {"open": ("^", "tab:green", "buy (open)"), "close_stop": ("X", "tab:red", "stop"),
           "close_take_profit": ("v", "tab:red", "take-profit"), "close_end": ("s", "tab:red", "end of test")}
OTHER_EXIT = ("v", "darkred", "other exit")
FIGSIZE = (10.0, 4.5)
DPI = 100


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


# ------------------------------------------------------------------ data hygiene

def to_jsonable(value: Any) -> Any:
    """A strict-JSON copy: NaN/inf become null, numpy and pandas scalars plain Python, dates ISO strings."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series)):
        return [to_jsonable(v) for v in (sorted(value, key=str) if isinstance(value, (set, frozenset)) else value)]
    if value is pd.NaT or value is pd.NA:
        return None
    return str(value)


def clean_series(series: pd.Series | None) -> pd.Series:
    """Float values on a tz-naive, sorted, unique DatetimeIndex, without NaN/inf (charts need nothing else)."""
    if series is None or len(series) == 0:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([]))
    s = pd.to_numeric(pd.Series(series), errors="coerce").astype(float)
    index = pd.DatetimeIndex(pd.to_datetime(s.index, errors="coerce"))
    if index.tz is not None:
        index = index.tz_localize(None)
    s.index = index
    s = s[s.index.notna() & np.isfinite(s.to_numpy())]
    s = s[~s.index.duplicated(keep="last")].sort_index()
    return s


def chart_names(prices: Mapping[Any, Any]) -> dict[Any, str]:
    """ticker -> a safe, unique PNG file name (tickers are untrusted: no path separators, no quotes)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for ticker in prices:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(ticker)).strip(".") or "ticker"
        name, n = f"trades_{stem}.png", 2
        while name.lower() in used:  # case-insensitive file systems
            name, n = f"trades_{stem}_{n}.png", n + 1
        used.add(name.lower())
        names[ticker] = name
    return names


def trade_date(trade: Mapping[str, Any]) -> pd.Timestamp | None:
    try:
        ts = pd.Timestamp(str(trade.get("bar_date") or "")[:10])
    except (ValueError, TypeError):
        return None
    return None if pd.isna(ts) else ts


def as_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ------------------------------------------------------------------ charts

def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.91, bottom=0.1)  # fixed: constrained layout doubles draw time
    ax = fig.add_subplot()
    ax.set_title(_mpl_text(title))
    ax.grid(True, alpha=0.3)
    return fig, ax


def _mpl_text(text: Any) -> str:
    """Plain text for matplotlib: ``$`` would start mathtext, a leading ``_`` hides a legend entry."""
    s = str(text).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _date_axis(ax: Axes, dates: Iterable[pd.Timestamp]) -> None:
    """Readable dates (``Jan 15 Feb``, year once); a lone date gets a week around it, not matplotlib's years."""
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    unique = pd.DatetimeIndex(list(dates)).unique()
    if len(unique) == 1:
        ax.set_xlim(unique[0] - pd.Timedelta(days=3), unique[0] + pd.Timedelta(days=3))


def _note(ax: Axes, text: str, *, empty: bool = True) -> None:
    """A grey note: centred on an empty chart (whose meaningless ticks go), at the top of one with data."""
    if empty:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.text(0.5, 0.5 if empty else 0.93, text, transform=ax.transAxes, ha="center", va="center", color="gray",
            fontsize=12)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png")
    fig.clear()  # a pyplot-free Figure is not registered anywhere; clearing frees its artists now
    return path


def _marker(series: pd.Series) -> str | None:
    return "o" if len(series) == 1 else None  # a lone point is invisible as a line


def normalise(series: pd.Series) -> pd.Series:
    """The curve divided by its first value (growth of 1.0); empty when it cannot start at a positive value."""
    if series.empty or series.iloc[0] <= 0:
        return series.iloc[0:0]
    return series / series.iloc[0]


def drawdown(series: pd.Series) -> pd.Series:
    """Fraction below the running peak (0 at a new high, -0.2 at 20 % under water)."""
    if series.empty:
        return series
    return series / series.cummax() - 1.0


def _baseline_window(curve: pd.Series, strategy: pd.Series) -> pd.Series:
    """A baseline on the strategy's dates: from the strategy's first date to its last, when there is one."""
    if strategy.empty or curve.empty:
        return curve
    return curve[(curve.index >= strategy.index[0]) & (curve.index <= strategy.index[-1])]


def _plot_baselines(ax: Axes, strategy: pd.Series, baselines: Mapping[str, pd.Series],
                    transform: Callable[[pd.Series], pd.Series], **style: Any) -> list[pd.Timestamp]:
    """Each baseline, on the strategy's dates and through ``transform``, as a thin line; the dates drawn."""
    dates: list[pd.Timestamp] = []
    for name, curve in baselines.items():
        line = transform(_baseline_window(curve, strategy))
        if not line.empty:
            ax.plot(line.index, line.to_numpy(), marker=_marker(line), label=_mpl_text(name), **style)
            dates.extend(line.index)
    return dates


def plot_equity(path: Path, strategy: pd.Series, baselines: Mapping[str, pd.Series]) -> Path:
    """Strategy and baselines as growth of 1.0 from the strategy's first day, so the start capital cancels."""
    fig, ax = _figure("Equity, normalised to 1.0 at the start")
    dates = _plot_baselines(ax, strategy, baselines, normalise, lw=1.0, alpha=0.8)
    norm = normalise(strategy)
    if not norm.empty:
        label = _mpl_text(f"strategy (final R$ {strategy.iloc[-1]:,.2f})")
        ax.plot(norm.index, norm.to_numpy(), lw=2.2, color="black", marker=_marker(norm), label=label, zorder=5)
        dates.extend(norm.index)
    if dates:
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.legend(loc="best", fontsize=8)
        _date_axis(ax, dates)
        ax.set_ylabel("growth of 1.0")
    if norm.empty:
        _note(ax, "no strategy equity to plot", empty=not dates)
    return _save(fig, path)


def plot_drawdown(path: Path, strategy: pd.Series, baselines: Mapping[str, pd.Series]) -> Path:
    """The strategy under water (filled) and the baselines' drawdowns as thin lines behind it."""
    fig, ax = _figure("Drawdown (fraction below the running peak)")
    dates = _plot_baselines(ax, strategy, baselines, drawdown, lw=0.9, alpha=0.5)
    dd = drawdown(strategy)
    if not dd.empty:
        ax.fill_between(dd.index, dd.to_numpy(), 0.0, color="tab:red", alpha=0.35, zorder=4)
        ax.plot(dd.index, dd.to_numpy(), color="tab:red", lw=1.5, marker=_marker(dd),
                label=_mpl_text(f"strategy (max {dd.min():.1%})"), zorder=5)
        dates.extend(dd.index)
    if dates:
        ax.legend(loc="lower left", fontsize=8)
        _date_axis(ax, dates)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylabel("drawdown")
    if dd.empty:
        _note(ax, "no strategy equity to plot", empty=not dates)
    return _save(fig, path)


def plot_trades(path: Path, ticker: str, close: pd.Series, trades: Iterable[Mapping[str, Any]]) -> Path:
    """Close price with each fill at its bar date and fill price: buys ^ green, exits red by exit kind."""
    fig, ax = _figure(f"{ticker}: close and trades")
    if not close.empty:
        ax.plot(close.index, close.to_numpy(), color="tab:blue", lw=1.2, marker=_marker(close), label="close")
    groups: dict[tuple[str, str, str], tuple[list[pd.Timestamp], list[float]]] = {}
    for trade in trades:
        when, price = trade_date(trade), as_float(trade.get("price"))
        if when is None or price is None:
            continue
        action = str(trade.get("action") or "")
        style = MARKERS.get(action, OTHER_EXIT)
        xs, ys = groups.setdefault(style, ([], []))
        xs.append(when)
        ys.append(price)
    for (marker, colour, label), (xs, ys) in groups.items():
        ax.scatter(xs, ys, marker=marker, color=colour, s=70, edgecolors="black", linewidths=0.5, label=label,
                   zorder=6)
    if close.empty and not groups:
        _note(ax, "no prices and no trades")
    else:
        if not groups:
            _note(ax, "no trades", empty=False)
        ax.legend(loc="best", fontsize=8)
        _date_axis(ax, [*close.index, *(x for xs, _ in groups.values() for x in xs)])
        ax.set_ylabel("price (BRL)")
    return _save(fig, path)


# ------------------------------------------------------------------ HTML

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
