"""The guide's troubleshooting steps as checks: Ollama and its models, each layer's latency, memory,
disk, the market source and the alert channels. Each check gives lines that say OK or the fix.

A FAIL is something that stops a run (``make run`` would refuse to start or decide nothing);
a WARN runs, but not as configured (e.g. the embedded fallback instead of Ollama).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from agent.config import ENV_KEYS, LAYER_NAMES, Settings
from agent.errors import AgentError, ConfigError, ProviderError
from agent.llm.catalogue import ModelSpec
from agent.llm.gguf_files import ensure
from agent.llm.providers import (
    canonical_model,
    embedded_problem,
    embedded_specs,
    ollama_tags,
    vision_layers,
)

Status = Literal["ok", "info", "warn", "fail"]
GIB = 1024 ** 3
# The guide's latency per layer (its upper figure, in seconds): 300-500 ms for the fast filter, 1-2 s for
# the technical and data layers, 2-3 s for reasoning and 800 ms for the final layer; 5-10 s in all.
LATENCY_BUDGET_S = {"sentiment": 0.5, "technical": 2.0, "risk": 3.0, "data_validation": 2.0, "final_score": 0.8}
MIN_FREE_DISK = 200 * 1024 ** 2  # below this a run fails: records, ledger and logs are written every cycle
LOW_FREE_DISK = 2 * GIB
MEMORY_HEADROOM = 1.2  # a loaded model needs about its file size plus context and runtime


@dataclass(frozen=True)
class Line:
    status: Status
    check: str
    message: str
    fix: str | None = None


def model_env(layer: str) -> str:
    """The environment variable that sets ``layer``'s model (OLLAMA_MODEL_...)."""
    return next((env for env, path in ENV_KEYS.items() if path == ("layers", layer, "model")), f"layers.{layer}.model")


def is_local(host: str) -> bool:
    return (urlsplit(host).hostname or "") in ("127.0.0.1", "localhost", "::1")


def _gb(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (what ``free -h`` shows as available), or None off Linux."""
    try:
        for row in Path("/proc/meminfo").read_text().splitlines():
            if row.startswith("MemAvailable:"):
                return int(row.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# ---------------------------------------------------------------- Ollama

@dataclass
class OllamaView:
    """What the Ollama checks found, for the latency and memory checks after them."""

    host: str
    up: bool
    sizes: dict[str, int]  # pulled model -> bytes
    wanted: dict[str, str]  # layer -> model
    missing: list[str]


def check_ollama(settings: Settings) -> tuple[list[Line], OllamaView | None]:
    """Ollama answers and every layer's model is pulled (the guide's `curl .../api/tags` and `ollama list`)."""
    requested = settings.llm.provider
    wanted = {layer: settings.layers.model_for(layer) for layer in LAYER_NAMES}
    if requested == "embedded":
        return [Line("info", "ollama", "LLM_PROVIDER=embedded: Ollama is not used")], None
    host = (list(settings.ollama.hosts) or [settings.ollama.host])[0]
    blocking: Status = "fail" if requested == "ollama" else "warn"
    fallback = "" if requested == "ollama" else "; the agent runs on the embedded models instead"
    try:
        entries = ollama_tags(host, settings.ollama.probe_timeout_s)
    except ProviderError as exc:
        line = Line(blocking, "ollama", f"{exc}{fallback}",
                    f"start it with `ollama serve` on that machine, or set OLLAMA_HOST (now {host})")
        return [line], OllamaView(host, False, {}, wanted, list(dict.fromkeys(wanted.values())))
    sizes = {canonical_model(e["name"]): int(e.get("size") or 0) for e in entries}
    missing = [m for m in dict.fromkeys(wanted.values()) if canonical_model(m) not in sizes]
    lines = [Line("ok", "ollama", f"{host} answers with {len(sizes)} model(s) pulled")]
    for model in missing:
        layers = ", ".join(f"{layer} ({model_env(layer)})" for layer, m in wanted.items() if m == model)
        lines.append(Line(blocking, "ollama", f"model {model} for {layers} is not pulled{fallback}",
                          f"ollama pull {model}"))
    if not missing:
        lines.append(Line("ok", "ollama", "every layer's model is pulled: "
                                          + ", ".join(f"{layer}={m}" for layer, m in wanted.items())))
    return lines, OllamaView(host, True, sizes, wanted, missing)


def one_token_call(host: str, model: str, timeout_s: float, keep_alive: str) -> tuple[float, float]:
    """(seconds of a one-token answer, seconds Ollama spent loading the model first) - the guide's
    `time ollama run MODEL "2+2"`, cut to one token."""
    started = time.perf_counter()
    resp = httpx.post(f"{host}/api/chat", timeout=timeout_s, json={
        "model": model, "messages": [{"role": "user", "content": "2+2="}], "stream": False,
        "keep_alive": keep_alive, "options": {"num_predict": 1, "temperature": 0}})
    wall = time.perf_counter() - started
    resp.raise_for_status()
    load_ns = resp.json().get("load_duration") or 0
    return wall, min(wall, load_ns / 1e9)


def check_latency(settings: Settings, view: OllamaView, budgets: dict[str, float] | None = None) -> list[Line]:
    """Each pulled layer model answers one token within its layer's budget; the fix names a smaller model."""
    budgets = budgets or LATENCY_BUDGET_S
    timed: dict[str, tuple[float, float] | str] = {}
    for model in dict.fromkeys(view.wanted.values()):
        if model in view.missing:
            continue
        try:
            timed[model] = one_token_call(view.host, model, settings.ollama.timeout_s, settings.ollama.keep_alive)
        except (httpx.HTTPError, ValueError) as exc:
            timed[model] = f"{type(exc).__name__}: {exc}"
    lines = []
    for layer, model in view.wanted.items():
        result = timed.get(model)
        if result is None:
            continue
        if isinstance(result, str):
            lines.append(Line("fail", "latency", f"{layer} ({model}) did not answer a one-token call: {result}",
                              f"check `ollama run {model} \"2+2\"` on the Ollama host; OLLAMA_TIMEOUT is "
                              f"{settings.ollama.timeout_s:g} s"))
            continue
        wall, load = result
        warm, budget = wall - load, budgets[layer]
        loaded = f" (+{load:.1f} s loading it)" if load >= 0.05 else ""
        if warm <= budget:
            lines.append(Line("ok", "latency", f"{layer} ({model}): {warm:.2f} s{loaded}, budget {budget:g} s"))
            continue
        lines.append(Line("warn", "latency", f"{layer} ({model}): {warm:.2f} s{loaded} for one token, over the "
                          f"{budget:g} s budget: a full answer will be slower still",
                          f"use a smaller model for this layer: {model_env(layer)}="
                          f"{_smaller_model(model, view, timed, budgets[layer])}"))
    return lines


def _smaller_model(model: str, view: OllamaView, timed: dict[str, Any], budget: float) -> str:
    """A pulled model smaller than ``model`` that answered within ``budget``, else a hint."""
    size = view.sizes.get(canonical_model(model), 0)
    fast = [m for m, t in timed.items() if not isinstance(t, str) and t[0] - t[1] <= budget
            and 0 < view.sizes.get(canonical_model(m), 0) < size]
    if fast:
        return min(fast, key=lambda m: view.sizes[canonical_model(m)])
    return "<a smaller or more quantised tag, e.g. smollm2:1.7b-instruct-q4_K_M>"


def check_vision(settings: Settings, view: OllamaView) -> list[Line]:
    """Layer 5 gets the chart only when its model accepts images (Ollama's capabilities)."""
    model = view.wanted["final_score"]
    if model in view.missing:
        return []
    if "final_score" in vision_layers(view.wanted, view.host, settings.ollama.probe_timeout_s):
        return [Line("ok", "chart", f"final_score ({model}) takes images: it gets the decision's chart")]
    return [Line("info", "chart", f"final_score ({model}) has no vision capability: text-only prompt "
                                  f"(a vision model such as gemma3:4b gets the chart)")]


# ---------------------------------------------------------------- the embedded model

def check_embedded(settings: Settings, why: str, timed: bool = True) -> list[Line]:
    """The embedded fallback: each layer's model installed, their sizes against free memory, and (``timed``)
    a one-token answer from each distinct model. They are text-only."""
    problem = embedded_problem(settings)
    if problem:
        return [Line("fail", "embedded", f"{why}, and the embedded models cannot run: {problem}", "run `make setup`")]
    specs = embedded_specs(settings)
    per_layer = ", ".join(f"{layer} {spec.name}" for layer, spec in specs.items())
    distinct = list(dict.fromkeys(specs.values()))
    need = sum(spec.ram_mb for spec in distinct) * 1024 * 1024
    lines = [Line("ok", "embedded", f"the embedded models serve the cascade ({why}): {per_layer}; "
                                    "text-only (layer 5 gets no chart)")]
    free = available_memory()
    if free is not None and need * MEMORY_HEADROOM > free:
        lines.append(Line("fail", "memory", f"{_gb(free)} available, the embedded models need about "
                                            f"{_gb(need * MEMORY_HEADROOM)}", "free memory (`free -h`), or "
                                            "EMBEDDED_PROFILE=tiny"))
        return lines
    if free is not None:
        lines.append(Line("ok", "memory", f"{_gb(free)} available for about {_gb(need)} of embedded models"))
    return lines + ([line for spec in distinct for line in embedded_latency(settings, spec, specs)] if timed else [])


def embedded_latency(settings: Settings, spec: ModelSpec, specs: dict[str, ModelSpec]) -> list[Line]:
    """One embedded model's one-token answer, timed after loading it, against the budgets of its layers."""
    from langchain_core.messages import HumanMessage

    from agent.llm.embedded import EmbeddedChatModel

    e = settings.embedded
    try:
        model = EmbeddedChatModel(model_path=ensure(spec, e.models_path), model_name=spec.name, max_tokens=1,
                                  temperature=0.0, n_ctx=e.n_ctx, n_threads=e.n_threads, seed=e.seed)
        started = time.perf_counter()
        model.invoke([HumanMessage("2+2=")])  # loads the model
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        model.invoke([HumanMessage("2+2=")])
        warm = time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - any runtime failure is the finding
        return [Line("fail", "embedded", f"{spec.name} did not answer: {type(exc).__name__}: {exc}",
                     "reinstall it with `make setup`")]
    layers = [layer for layer, s in specs.items() if s == spec]
    slow = [layer for layer in layers if warm > LATENCY_BUDGET_S[layer]]
    return [Line("warn" if slow else "ok", "latency",
                 f"embedded {spec.name}: {warm:.2f} s for one token (+{loaded:.1f} s loading it)"
                 + (f", over the budget of {', '.join(slow)}" if slow else ""),
                 "EMBEDDED_PROFILE=tiny is faster; run Ollama with the configured models for real analysis"
                 if slow else None)]


# ---------------------------------------------------------------- memory, disk, market, alerts

def check_memory(view: OllamaView) -> list[Line]:
    """The guide's out-of-memory step (`free -h`): the largest layer model must fit, ideally all of them."""
    sizes = {m: view.sizes.get(canonical_model(m), 0) for m in dict.fromkeys(view.wanted.values())}
    sizes = {m: s for m, s in sizes.items() if s}
    if not sizes:
        return []
    biggest = max(sizes, key=sizes.get)
    total = sum(sizes.values())
    if not is_local(view.host):
        return [Line("info", "memory", f"Ollama runs on {view.host}: its models need {_gb(sizes[biggest])} "
                                       f"(largest, {biggest}) to {_gb(total)} (all); check `free -h` there")]
    free = available_memory()
    if free is None:
        return [Line("info", "memory", "available memory unknown on this system")]
    if sizes[biggest] * MEMORY_HEADROOM > free:
        layers = [layer for layer, m in view.wanted.items() if m == biggest]
        return [Line("fail", "memory", f"{_gb(free)} available, {biggest} needs about "
                                       f"{_gb(sizes[biggest] * MEMORY_HEADROOM)}",
                     f"use a smaller model: {model_env(layers[0])}=smollm2:1.7b-instruct-q4_K_M")]
    if total * MEMORY_HEADROOM > free:
        return [Line("warn", "memory", f"{_gb(free)} available: the largest model fits, not all {len(sizes)} "
                                       f"({_gb(total)}); Ollama reloads models between layers",
                     "keep LOOP_SCHEDULING=layer_major (one load per layer per cycle) or use smaller models")]
    return [Line("ok", "memory", f"{_gb(free)} available for {_gb(total)} of models")]


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_storage(settings: Settings) -> list[Line]:
    """What the loop checks before it starts: LOG_DIR a writable folder, the ledger a usable database (the
    SQLite file opened read-only, never created here; Postgres connected). A failure here stops ``make run``."""
    import sqlite3
    from contextlib import closing

    from agent.store.checks import check_sqlite_file, storage_error, writable_dir
    from agent.store.db import open_database

    lines = []
    try:
        writable_dir(settings.logging.dir, "LOG_DIR")
    except ConfigError as exc:
        lines.append(Line("fail", "storage", str(exc), "point LOG_DIR at a writable folder"))
    try:
        if settings.database_url is not None:
            open_database(settings.database_url).execute("SELECT 1")
            lines.append(Line("ok", "storage", "DATABASE_URL: Postgres answers"))
        elif settings.ledger_path.is_file():
            writable_dir(settings.ledger_path.parent, "DATABASE_PATH")  # the ledger's journal is written beside it
            with closing(sqlite3.connect(f"file:{settings.ledger_path}?mode=ro", uri=True)) as con:
                con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            lines.append(Line("ok", "storage", f"DATABASE_PATH: ledger {settings.ledger_path} opens"))
        else:
            check_sqlite_file(settings.ledger_path, "DATABASE_PATH")
            lines.append(Line("info", "storage", f"DATABASE_PATH: no ledger yet; the first run creates "
                                                 f"{settings.ledger_path}"))
    except sqlite3.DatabaseError as exc:
        err = storage_error("DATABASE_PATH", settings.ledger_path, exc)
        lines.append(Line("fail", "storage", str(err), "restore the ledger from a backup, or move it away"))
    except ConfigError as exc:
        key = "DATABASE_URL" if settings.database_url is not None else "DATABASE_PATH"
        lines.append(Line("fail", "storage", str(exc), f"fix {key}"))
    return lines


def check_disk(settings: Settings) -> list[Line]:
    """LOG_DIR and DATABASE_PATH have room to grow (whether they can be written is ``check_storage``'s)."""
    lines = []
    for key, path in (("LOG_DIR", settings.logging.dir), ("DATABASE_PATH", settings.database_path)):
        where = _existing_parent(Path(path))
        folder = where if where.is_dir() else where.parent
        free = shutil.disk_usage(folder).free
        status: Status = "fail" if free < MIN_FREE_DISK else "warn" if free < LOW_FREE_DISK else "ok"
        lines.append(Line(status, "disk", f"{key}={path}: {_gb(free)} free",
                          None if status == "ok" else f"free space on the disk of {folder}"))
    return lines


def check_market(settings: Settings) -> list[Line]:
    """The configured market source returns validated daily bars for the first ticker."""
    from agent.market.sources import make_market_provider

    ticker = settings.tickers[0]
    started = time.perf_counter()
    try:
        provider = make_market_provider(settings)
        bars = provider.get_bars(ticker, settings.market.timeframes.primary, lookback=settings.market.min_bars)
    except (AgentError, ValueError, KeyError, OSError, httpx.HTTPError) as exc:
        return [Line("fail", "market", f"MARKET_SOURCE={settings.market.source} gave no bars for {ticker}: {exc}",
                     "check the source (BRAPI_TOKEN, network, MARKET_DATA_DIR) or set MARKET_SOURCE=sim")]
    took = time.perf_counter() - started
    last = bars.frame.index[-1].date() if len(bars) else "none"
    status: Status = "ok" if len(bars) >= settings.market.min_bars else "fail"
    sim = " (simulated bars, not the market)" if bars.source == "sim" else ""
    return [Line(status, "market", f"MARKET_SOURCE={settings.market.source}: {len(bars)} {ticker} bars from "
                                   f"{bars.source}{sim}, last {last}, in {took:.1f} s",
                 None if status == "ok" else f"the source has fewer than MIN_BARS={settings.market.min_bars}")]


def check_alerts(settings: Settings) -> list[Line]:
    """Which alert channels are on (nothing is sent), and those configured that apprise refused."""
    from agent.ops.alert_channels import alert_urls, channels_from_settings

    channels = channels_from_settings(settings)
    lines = [Line("warn", "alerts", f"{name} is configured but apprise does not recognise its settings: it is off",
                  "check the variables of that channel (a Telegram token looks like 123456:ABC..., a Slack "
                  "webhook like https://hooks.slack.com/services/T.../B.../...)")
             for name, _ in alert_urls(settings) if name not in {c.name for c in channels}]
    if not channels:
        return lines + [Line("info", "alerts", "no alert channel on (TELEGRAM_*, SLACK_WEBHOOK, EMAIL_*, APPRISE_URLS)")]
    described = []
    for channel in channels:
        host = getattr(channel.plugin(), "smtp_host", None) if channel.name.startswith("email") else None
        described.append(f"{channel.name} (SMTP {host})" if host else channel.name)
        sender = settings.alerts.email_from or ""
        if host and not settings.alerts.smtp_host and host == sender.rpartition("@")[2]:
            lines.append(Line("warn", "alerts", f"e-mail: {host} is not a provider apprise knows, so its SMTP server "
                                                f"is guessed to be {host} itself", "set SMTP_HOST (and SMTP_PORT)"))
    return [Line("ok", "alerts", "alerts go to " + ", ".join(described))] + lines
