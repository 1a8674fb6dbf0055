"""The chart the final layer sees when its model takes images (the guide's multimodal layer 5).

Candles with volume and the indicators the technical layer cited, drawn from the decision's own
bars (the state's ``market.bars``) with matplotlib, as a PNG for Ollama's ``images`` field. It is
saved under LOG_DIR/charts and linked from the record. A model without Ollama's ``vision``
capability (and the embedded model, which is text-only) gets the text prompt, and the record says so.

The LLM cache keys the image by ``digest``: a hash of everything drawn (the bars shown, the
indicators, the levels, CHART_VERSION), so a replay needs no rendering and a different chart is
never answered from another chart's reply.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from loguru import logger

from tools.indicators import indicator_columns

if TYPE_CHECKING:
    from agent.deps import CascadeDeps
    from agent.state import CascadeState

CHART_VERSION = "chart-v1"  # bump when the drawing changes: cached answers to the old chart are not replayed
CHART_BARS = 90  # the last bars drawn: about four months of sessions
WIDTH_PX, HEIGHT_PX, DPI = 1024, 768, 100
PRICE_LINES = ("sma_20", "sma_50", "sma_200", "ema_9", "ema_21", "bb_upper", "bb_middle", "bb_lower")
PANELS = {"rsi": ("rsi",), "macd": ("macd", "macd_signal", "macd_hist")}
DEFAULT_INDICATORS = ("sma_20", "sma_50", "bb_upper", "bb_lower", "rsi")
LEVELS = (("stop", "#d73027"), ("entry", "#4575b4"), ("take_profit", "#1a9850"))
BAR_KEYS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class ChartPlan:
    """What the chart shows, decided before drawing it; ``digest`` keys the LLM cache and names the file."""

    ticker: str
    bars: dict[str, list]  # the whole window the indicators warm up on (date + OHLCV)
    indicators: tuple[str, ...]
    levels: dict[str, float]

    @property
    def shown(self) -> int:
        return min(CHART_BARS, len(self.bars["date"]))

    @property
    def digest(self) -> str:
        blob = json.dumps({"v": CHART_VERSION, "ticker": self.ticker, "bars": self.bars,
                           "indicators": self.indicators, "levels": self.levels}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def meta(self) -> dict[str, Any]:
        dates = self.bars["date"]
        return {"bars": self.shown, "first_bar": str(dates[-self.shown]), "last_bar": str(dates[-1]),
                "indicators": list(self.indicators), "digest": self.digest}


def chart_indicators(cited: Sequence[str]) -> tuple[str, ...]:
    """The drawable indicators among those cited, in order (a default set when none is drawable)."""
    drawable = set(PRICE_LINES) | {n for names in PANELS.values() for n in names}
    chosen = tuple(dict.fromkeys(n for n in cited if n in drawable))
    return chosen or DEFAULT_INDICATORS


def plan_chart(state: CascadeState) -> ChartPlan | None:
    """The chart of this decision: its bars, the technical layer's cited indicators, the risk levels."""
    bars = (state.get("market") or {}).get("bars") or {}
    if not bars.get("date") or any(k not in bars for k in BAR_KEYS):
        return None
    technical = next((r for r in state.get("layers", []) if r.get("layer") == "technical"), None)
    cited = list(((technical or {}).get("output") or {}).get("cited") or {})
    risk = state.get("risk") or {}
    levels = {k: float(risk[k]) for k, _ in LEVELS if isinstance(risk.get(k), (int, float))}
    return ChartPlan(state.get("ticker", "?"), {k: list(bars[k]) for k in ("date", *BAR_KEYS)},
                     chart_indicators(cited), levels)


def render_png(plan: ChartPlan) -> bytes:
    """Draw ``plan`` (Agg backend, fixed size, no timestamp in the file: the same plan gives the same bytes)."""
    from matplotlib.figure import Figure

    b = plan.bars
    o, h, lo, c, v = (np.asarray(b[k], dtype=float) for k in BAR_KEYS)
    series = indicator_columns(h, lo, c, v)  # on the whole window, so the drawn part is warmed up
    start = len(c) - plan.shown
    x = np.arange(plan.shown)
    panels = [p for p, members in PANELS.items() if any(n in plan.indicators for n in members)]
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    axes = fig.subplots(2 + len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [4, 1] + [1.3] * len(panels), "hspace": 0.06})[:, 0]
    price, volume = axes[0], axes[1]
    colors = np.where(c[start:] >= o[start:], "#1a9850", "#d73027")
    price.vlines(x, lo[start:], h[start:], colors=colors, linewidth=0.8)
    doji = max(float((h[start:] - lo[start:]).max()) * 0.002, 1e-9)  # an open == close body stays visible
    price.bar(x, np.maximum(np.abs(c[start:] - o[start:]), doji), bottom=np.minimum(o[start:], c[start:]),
              width=0.7, color=colors, linewidth=0)
    for name in plan.indicators:
        if name in PRICE_LINES:
            price.plot(x, series[name][start:], linewidth=1.0, label=name)
    for name, color in LEVELS:
        if name in plan.levels:
            price.axhline(plan.levels[name], color=color, linewidth=0.8, linestyle="--",
                          label=f"{name} {plan.levels[name]:.2f}")
    price.legend(loc="upper left", fontsize=8, frameon=False)
    price.set_title(f"{plan.ticker} daily, {b['date'][start]} to {b['date'][-1]} ({plan.shown} bars)", fontsize=10)
    volume.bar(x, v[start:] / 1e6, width=0.7, color=colors, linewidth=0)
    volume.set_ylabel("volume (M)", fontsize=8)
    for ax, panel in zip(axes[2:], panels):
        for name in PANELS[panel]:
            if name not in plan.indicators:
                continue
            if name == "macd_hist":
                ax.bar(x, series[name][start:], width=0.7, color="#999999", label=name)
            else:
                ax.plot(x, series[name][start:], linewidth=1.0, label=name)
        if panel == "rsi":
            for level in (30, 70):
                ax.axhline(level, color="#888888", linewidth=0.6, linestyle="--")
            ax.set_ylim(0, 100)
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    ticks = x[:: max(1, plan.shown // 8)]
    axes[-1].set_xticks(ticks, [str(b["date"][start + i])[:10] for i in ticks])
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.95, bottom=0.06)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def chart_file(plan: ChartPlan) -> str:
    """Where the chart goes, relative to LOG_DIR: charts/YYYY-MM/<ticker>-<bar date>-<digest>.png."""
    last = str(plan.bars["date"][-1])[:10]
    return f"charts/{last[:7]}/{plan.ticker}-{last}-{plan.digest[:12]}.png"


@dataclass(frozen=True)
class ChartAttachment:
    """The final layer's image, or why it gets none; ``note()`` is what the record keeps."""

    sent: bool
    reason: str
    plan: ChartPlan | None = None
    file: str | None = None  # relative to LOG_DIR, when saved
    _png: bytes | None = None

    @property
    def digest(self) -> str | None:
        return self.plan.digest if self.plan is not None else None

    def image_b64(self) -> str:
        """The PNG for Ollama's ``images`` field (drawn now if it was not yet)."""
        png = self._png if self._png is not None else render_png(self.plan)
        return base64.b64encode(png).decode()

    def note(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sent": self.sent, "reason": self.reason}
        if self.plan is not None:
            out.update(self.plan.meta(), file=self.file)
        return out


def vision_note(deps: CascadeDeps, layer: str) -> str | None:
    """Why ``layer``'s model gets no image, or None when it takes one."""
    if deps.provider.name == "embedded":
        return "the embedded model is text-only: text prompt"
    if layer in deps.provider.vision:
        return None
    model = deps.provider.models.get(layer, "?")
    if deps.provider.name == "ollama":
        return f"{model} has no vision capability (Ollama /api/show): text prompt"
    return f"provider {deps.provider.name} takes no images: text prompt"


def attach_chart(state: CascadeState, deps: CascadeDeps, layer: str) -> ChartAttachment:
    """The chart for ``layer`` if its model takes images, saved under LOG_DIR when records are written.

    Drawn at most once per plan: a saved chart is read back, and with no records (a backtest) it is drawn
    only if the LLM is asked (a cache replay needs only the digest). A chart that cannot be drawn fails
    the call (``call_layer``), so the layer discards with the reason, as for any other failure.
    """
    why_not = vision_note(deps, layer)
    if why_not is not None:
        return ChartAttachment(False, why_not)
    plan = plan_chart(state)
    if plan is None:
        return ChartAttachment(False, "no bars in the state to draw: text prompt")
    sent = "chart of the decision's bars sent"
    log_dir: Path | None = getattr(deps.sink, "log_dir", None)
    if log_dir is None:
        return ChartAttachment(True, sent, plan)
    rel = chart_file(plan)
    path = log_dir / rel
    try:
        if path.is_file():  # the same plan drew the same bytes before
            return ChartAttachment(True, sent, plan, rel, path.read_bytes())
        png = render_png(plan)
    except (OSError, ValueError, RuntimeError):
        return ChartAttachment(True, sent, plan)  # drawn again by the call, which then fails with the reason
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(png)
        tmp.replace(path)
    except OSError as exc:
        logger.warning("chart {} not saved: {}", rel, exc)
        return ChartAttachment(True, f"{sent} (not saved: {type(exc).__name__})", plan, None, png)
    return ChartAttachment(True, sent, plan, rel, png)
