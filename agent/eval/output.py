"""The evaluation on a terminal: the report's tables (rich) and a progress line while it runs."""

from __future__ import annotations

from typing import Any, Callable, TextIO

from rich.console import Console
from rich.table import Table

from agent.eval.dataset import INVALID
from agent.eval.metrics import Outcome


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} ms"


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    sel = report["selection"]
    how = {"all": "all rows", "first rows": f"first {sel.get('n')} rows",
           "stratified sample": f"stratified sample of {sel.get('n')}, seed {sel.get('seed')}"}[sel["mode"]]
    console.print(f"[bold]layer 1 (sentiment)[/] on {report['dataset']}", highlight=False)
    console.print(f"  columns text={report['text_column']!r} label={report['label_column']!r}; "
                  f"{report['examples']} of {report['dataset_rows']} labelled rows ({how})"
                  + (f"; {report['skipped_rows']} rows without text or label skipped" if report["skipped_rows"] else "")
                  + (f"; [red]INTERRUPTED after {report['examples']} of {report['examples_planned']}: partial "
                     f"results[/]" if report["interrupted"] else ""), highlight=False)
    console.print(f"  model {report['model']} ({report['provider']}), prompt {report['prompt_version']}; "
                  f"each text is the one headline of {report['ticker']} (no price action shown)", highlight=False)
    console.print(f"  texts cut to {report['max_chars']} characters: {report['truncated']} of {report['examples']} "
                  f"were longer"
                  + (f" (the live agent keeps {report['agent_headline_max_chars']})"
                     if report["max_chars"] != report["agent_headline_max_chars"] else "")
                  + (f"; {report['screened']} screened out as prompt injection (counted wrong)"
                     if report["screened"] else ""), highlight=False)

    base = report["majority_baseline"]
    head = Table(show_header=False, box=None, padding=(0, 2))
    head.add_row("accuracy", _pct(report["accuracy"]),
                 f"majority baseline ({base['label']}) {_pct(base['accuracy'])}")
    head.add_row("macro-F1", f"{report['macro_f1']:.3f}" if report["macro_f1"] is not None else "-",
                 f"over {', '.join(report['labels'])}")
    inv = report["invalid"]
    head.add_row("invalid outputs", f"{inv['count']} ({_pct(inv['rate'])})",
                 ", ".join(f"{k} {v['count']}" for k, v in inv["by_kind"].items()))
    lat = report["latency_ms"]
    head.add_row("latency", f"mean {_ms(lat['mean'])}", f"p50 {_ms(lat['p50'])}  p95 {_ms(lat['p95'])}  "
                 f"max {_ms(lat['max'])}  (wall {report['wall_s']:.1f} s)")
    scores = report.get("mean_score_by_gold") or {}
    if scores:
        head.add_row("mean score", "by gold label", "  ".join(f"{g} {'-' if v is None else f'{v:.2f}'}"
                                                                for g, v in scores.items()))
    console.print(head)

    per = Table(title="per class", header_style="bold")
    for col in ("gold label", "precision", "recall", "F1", "support"):
        per.add_column(col, justify="left" if col == "gold label" else "right")
    for label, m in report["per_class"].items():
        per.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(per)

    conf = report["confusion"]
    cm = Table(title="confusion matrix (rows gold, columns predicted)", header_style="bold")
    cm.add_column("gold \\ predicted")
    for col in conf["columns"]:
        cm.add_column(col, justify="right")
    for gold, row in conf["matrix"].items():
        cm.add_row(gold, *(f"[bold]{row[c]}[/]" if c == gold else str(row[c]) for c in conf["columns"]))
    console.print(cm)


def progress_printer(stream: TextIO, every: int | None = None) -> Callable[[int, int, list[Outcome], float], None]:
    """One line on ``stream`` every ``every`` examples (about 20 lines a run) and at the end."""

    def report(done: int, total: int, outcomes: list[Outcome], elapsed: float) -> None:
        step = every or max(1, total // 20)
        if done % step and done != total:
            return
        right = sum(o.gold == o.predicted for o in outcomes)
        invalid = sum(o.predicted == INVALID for o in outcomes)
        per = elapsed / done
        stream.write(f"[{done:>{len(str(total))}}/{total}] accuracy so far {right / done:.1%}, invalid {invalid}, "
                     f"{per:.2f} s/example, about {per * (total - done):.0f} s left\n")
        stream.flush()

    return report
