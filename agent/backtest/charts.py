"""The report's PNG charts: equity against the baselines, drawdown, and each ticker's trades on its price.

Charts are drawn on ``matplotlib.figure.Figure`` objects (Agg canvas, no pyplot), so there is no global
figure registry to leak, no display is needed and two reports can be drawn from two threads.
The drawdown is ``tools.performance.drawdown_series``, the one the metrics and the dashboard use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from agent.backtest.sanitize import as_float, trade_date
from tools.performance import drawdown_series

# Trade markers on the price charts: action -> (marker, colour, legend label).
MARKERS = {"open": ("^", "tab:green", "buy (open)"), "close_stop": ("X", "tab:red", "stop"),
           "close_take_profit": ("v", "tab:red", "take-profit"), "close_end": ("s", "tab:red", "end of test")}
OTHER_EXIT = ("v", "darkred", "other exit")
FIGSIZE = (10.0, 4.5)
DPI = 100


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


def underwater(series: pd.Series) -> pd.Series:
    """``drawdown_series`` of a cleaned curve (0.2 at 20 % below its peak); empty when a value is not positive."""
    if series.empty or (series.to_numpy() <= 0).any():
        return series.iloc[0:0]
    return drawdown_series(series)


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
    """The strategy under water (filled) and the baselines' drawdowns as thin lines behind it.

    Depths are positive fractions, as in the metrics table, on a y axis that grows downwards, so the
    chart still hangs below the zero line and its legend's maximum is the table's "Max drawdown".
    """
    fig, ax = _figure("Drawdown (fraction below the running peak)")
    dates = _plot_baselines(ax, strategy, baselines, underwater, lw=0.9, alpha=0.5)
    dd = underwater(strategy)
    if not dd.empty:
        ax.fill_between(dd.index, dd.to_numpy(), 0.0, color="tab:red", alpha=0.35, zorder=4)
        ax.plot(dd.index, dd.to_numpy(), color="tab:red", lw=1.5, marker=_marker(dd),
                label=_mpl_text(f"strategy (max {dd.max():.1%})"), zorder=5)
        dates.extend(dd.index)
    if dates:
        ax.invert_yaxis()
        ax.legend(loc="lower left", fontsize=8)
        _date_axis(ax, dates)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylabel("drawdown (below the peak)")
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
