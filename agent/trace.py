"""Rich rendering: the start-up banners (embedded defaults, each layer's model) and the layer-by-layer trace.

Everything except the trace itself goes to stderr, so ``--json`` keeps stdout pure JSON.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from agent.config import ENV_KEYS, LAYER_NAMES
from agent.deps import CascadeDeps

console_out = Console()
console_err = Console(stderr=True)


def print_error(message: object) -> None:
    """A start-up error on stderr, unwrapped so that commands in it can be copied."""
    console_err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def announce_defaults(deps: CascadeDeps) -> None:
    """Say loudly which embedded defaults this run uses and why (on stderr)."""
    lines = []
    if deps.provider.name == "embedded":
        e = deps.settings.embedded
        per_layer = "\n".join(f"    {layer:<16} {model}" for layer, model in deps.provider.models.items())
        tiny = any(model.startswith("SmolLM2") for model in deps.provider.models.values())
        lines.append(
            f"[bold]LLM: EMBEDDED[/] (llama.cpp, in-process), profile {e.profile}"
            + (f", overrides {e.models}" if e.models else "") + ":\n" + per_layer + "\n"
            f"  why: {deps.provider.reason}\n"  # may wrap; the facts below never do
            + ("  SmolLM2-135M cannot judge markets: its scores are NOT meaningful.\n" if tiny else
               "  Small models: they filter and explain, they do not forecast (docs/cascade.md).\n")
            + "  For larger models, point OLLAMA_HOST at an Ollama server\n"
            "  that has the configured models pulled.")
    if "market:sim" in deps.defaults_in_use():
        lines.append("[bold]MARKET DATA: SIMULATED[/] (seeded synthetic bars, not real prices).\n"
                     "  Use --source csv --data-dir DIR for real daily bars.")
    if lines:
        console_err.print(Panel("\n".join(lines), title="embedded defaults in use", border_style="bold yellow",
                                expand=False))


def announce_models(deps: CascadeDeps) -> None:
    """The start-up banner (stderr): each cascade layer, the model that answers it and the variable that sets it."""
    env_for = {path[1]: name for name, path in ENV_KEYS.items() if path[0] == "layers" and path[-1] == "model"}
    where = deps.llm_host if deps.provider.name == "ollama" else deps.provider.name
    lines = [f"cascade models ({deps.provider.name}: {where})"]
    for i, layer in enumerate(LAYER_NAMES, start=1):
        configured = deps.settings.layers.model_for(layer)
        used = deps.provider.models.get(layer, configured)
        note = "" if used == configured else f"  (configured: {configured})"
        lines.append(f"  layer {i} {layer:<16} {used}  [{env_for.get(layer, '-')}]{note}")
    console_err.print("\n".join(lines), highlight=False, soft_wrap=True)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_trace(record: dict[str, Any], console: Console | None = None) -> None:
    """The decision, layer by layer: model, score, pass/discard, latency, reason."""
    console = console or console_out
    head = (f"[bold]{record['ticker']}[/]  bar {record['bar_date']}  source [cyan]{record['data_source']}[/]"
            f"  llm [cyan]{record['llm_provider']}[/]  mode {record['mode']}")
    console.print(head, highlight=False)
    ind, risk = record.get("indicators") or {}, record.get("risk") or {}
    if ind:
        console.print(
            f"  close {_fmt(ind.get('close'))}  RSI {_fmt(ind.get('rsi'), 1)}  MACD hist {_fmt(ind.get('macd_hist'), 3)}"
            f"  ADX {_fmt(ind.get('adx'), 1)}  ATR {_fmt(ind.get('atr'), 3)}  vol ratio {_fmt(ind.get('volume_ratio'))}",
            highlight=False)
    if risk:
        console.print(
            f"  stop {_fmt(risk.get('stop'))}  target {_fmt(risk.get('take_profit'))}  R/R {_fmt(risk.get('reward_risk'))}"
            f"  Sharpe {_fmt(risk.get('sharpe'))}  max DD {_fmt(risk.get('max_drawdown'))}"
            f"  vol {_fmt(risk.get('volatility'))}  size {risk.get('shares')} sh"
            + (f"  [red]blocks: {'; '.join(risk['blocks'])}[/]" if risk.get("blocks") else ""),
            highlight=False)
    news = record.get("news") or {}
    if news:
        dropped = news.get("dropped") or []
        console.print(f"  news: {news.get('summary', '-')}"
                      + (f"  [red]dropped {len(dropped)}: {dropped[0]['reason']}[/]" if dropped else ""), highlight=False)
    frames = (record.get("timeframes") or [])[1:]
    if frames:
        console.print("  timeframes: " + "  ".join(
            f"{t['timeframe']} {t.get('trend', 'n/a')}" + (f" RSI {_fmt(t.get('rsi'), 0)}" if t.get("rsi") else "")
            if "unavailable" not in t else f"{t['timeframe']} unavailable" for t in frames), highlight=False)
    table = Table(show_lines=False, header_style="bold")
    for col in ("#", "layer", "model", "score", "result", "latency", "reason"):
        table.add_column(col, overflow="fold", max_width=70 if col == "reason" else None)
    for i, layer in enumerate(record["layers"], start=1):
        result = "[green]pass[/]" if layer["passed"] else "[red]discard[/]"
        reason = layer["reason"] + (f" [yellow]flags: {'; '.join(layer['flags'])}[/]" if layer.get("flags") else "")
        table.add_row(str(i), layer["layer"], f"{layer['model']} ({layer['provider']})", _fmt(layer["score"]),
                      result, f"{layer['latency_ms']:.0f} ms", reason)
    console.print(table)
    colour = "green" if record["decision"] == "BUY" else "yellow"
    where = f" (discarded at {record['discarded_at']})" if record["discarded_at"] else ""
    console.print(Panel(f"[bold {colour}]{record['decision']}[/]{where}  confidence {_fmt(record['confidence'])}\n"
                        f"{record['reason']}\n[dim]{record['decision_id']}[/]",
                        title="decision", border_style=colour, expand=False), highlight=False)
