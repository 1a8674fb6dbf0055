"""B3 cascade agent: a LangGraph cascade of local LLMs that decides BUY or HOLD on B3 stocks."""

__version__ = "0.1.0"

# Where things are: every module and subpackage directly under agent/, one line each (this file aside).
# tests/test_docs.py checks it against the folder and against the README's layout table; after adding,
# moving or removing a module or subpackage here, update this map and the README table to match.
LAYOUT: dict[str, str] = {
    "graph.py": "the cascade as a LangGraph graph: the flow, its routes, and the one-shot CLI (python -m agent.graph)",
    "nodes.py": "the plain-code nodes: market data, indicators, risk, news, and the decision",
    "state.py": "the typed state the nodes pass along (plain JSON)",
    "deps.py": "what the nodes need from outside (config, market source, LLM provider, prompts, sink), built once",
    "record.py": "the decision record, its schema and its deterministic id",
    "prompts.py": "loading prompts/ (one file per layer, per-ticker overrides) and their versions",
    "scheduler.py": "layer-major scheduling: every ticker passes layer k before any starts layer k+1",
    "loop.py": "the continuous loop behind make run",
    "control.py": "the operator's kill-switch commands (python -m agent.loop --halt/--no-new-buys/--resume/--status)",
    "cli.py": "what the commands share: data and LLM flags, start-up, the one exit-code table",
    "errors.py": "the exception classes, one action each (stop, skip the ticker, discard, retry)",
    "trace.py": "the loud embedded-defaults banner and the layer-by-layer trace (rich)",
    "config/": "config.yaml, .env and the environment, validated once; ENV_KEYS maps each variable to its key",
    "layers/": "the five cascade layers, one file each: answer schema, inputs, precheck, gate, quant rule",
    "llm/": "LLM providers (Ollama, embedded llama.cpp), the host pool, the call, output checks, the answer cache",
    "market/": "market data: bars, validation, sim, CSV files, yfinance, brapi, source choice, bar cache, B3 calendar",
    "news/": "headlines for layer 1: feeds and files, ticker matching, injection screening, selection",
    "trading/": "paper trading: broker ledger, trader, kill switch, heartbeat, backoff, read queries",
    "store/": "persistence: the SQLite/Postgres interface and append-only JSONL",
    "ops/": "operations: log files, metrics and their /metrics endpoint, alerts, the watchdog",
    "backtest/": "walk-forward backtests and their HTML/PNG reports (python -m agent.backtest)",
    "backup/": "backup and restore of logs, data and .env (python -m agent.backup, make backup)",
    "eval/": "offline evaluation of the layers (python -m agent.eval) and make bench",
    "dashboard/": "the web dashboard: FastAPI routes, record index, ledger reader, static pages",
    "doctor/": "make doctor: the guide's troubleshooting (Ollama, models, latency, memory, disk, market) as checks",
}
