"""Layer-major scheduling: every ticker passes layer k before any ticker starts layer k+1.

Ollama keeps only a few models loaded (3 on a CPU host by default). Walking ticker by ticker
through five layers swaps models in and out all the time, and each reload of a 7B model costs
seconds. Here each layer's model is asked for all surviving tickers in a row, so it loads once per
cycle per host.

It is the same compiled graph, run with a checkpointer and static breakpoints: each ticker is a
thread that stops before the next layer (and before ``decide``); the scheduler resumes all threads
one stage at a time. Within a stage, tickers run concurrently up to ``ollama.parallel`` (one at a
time for the in-process embedded model). The ``decide`` nodes run last, one ticker at a time, each
followed by ``on_record``, so the portfolio guard sees every order queued before it.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from langgraph.checkpoint.memory import InMemorySaver
from loguru import logger

from agent.config import LAYER_NAMES, normalize_ticker
from agent.deps import CascadeDeps
from agent.errors import ConfigError
from agent.graph import build_graph, initial_state, run_cascade

DECIDE = "decide"


def make_checkpointer(settings):
    """Where paused tickers wait between stages: Postgres with DATABASE_URL (langgraph-checkpoint-postgres),
    else memory (the pauses last one cycle)."""
    if settings.database_url is None:
        return InMemorySaver()
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row

    try:
        conn = psycopg.connect(settings.database_url.get_secret_value(), autocommit=True, prepare_threshold=0,
                               row_factory=dict_row, connect_timeout=10)
    except psycopg.Error as exc:
        raise ConfigError(f"DATABASE_URL: cannot connect to Postgres: {type(exc).__name__}") from None
    saver = PostgresSaver(conn)
    saver.setup()
    return saver


class LayerMajorScheduler:
    def __init__(self, deps: CascadeDeps, on_record: Callable[[dict[str, Any]], None] | None = None,
                 stop: threading.Event | None = None):
        self.deps = deps
        self.on_record = on_record
        self.stop = stop or threading.Event()  # set: no further stage or decision starts (the cycle is abandoned)
        self.checkpointer = make_checkpointer(deps.settings)
        self.graph = build_graph(deps, checkpointer=self.checkpointer)
        embedded = deps.provider.name == "embedded"  # llama.cpp in-process: one call at a time
        hosts = max(1, len(deps.settings.ollama.hosts))
        self.workers = 1 if embedded else deps.settings.ollama.parallel * hosts

    def run(self, tickers: list[str], as_of: str | None = None) -> dict[str, dict[str, Any] | Exception]:
        """Decide every ticker; returns ticker -> record, or the exception that ticker raised."""
        tickers = list(dict.fromkeys(normalize_ticker(t) for t in tickers))  # one thread per ticker
        self._reconnect_if_lost()
        run_id = uuid.uuid4().hex[:8]
        configs = {t: {"configurable": {"thread_id": f"{run_id}-{normalize_ticker(t)}"}} for t in tickers}
        results: dict[str, dict[str, Any] | Exception] = {}
        try:
            self._run_stages(tickers, configs, as_of, results)
            for t in tickers:  # decide one at a time, each record acted on before the next
                if self.stop.is_set():
                    break
                if t in results or self._next(configs[t]) != (DECIDE,):
                    continue
                try:
                    record = self.graph.invoke(None, configs[t])["record"]
                except Exception as exc:  # noqa: BLE001 - reported per ticker, like a failed cascade
                    results[t] = exc
                    continue
                results[t] = record
                if self.on_record:
                    self.on_record(record)
        finally:
            for config in configs.values():
                try:
                    self.checkpointer.delete_thread(config["configurable"]["thread_id"])
                except Exception as exc:  # noqa: BLE001 - cleanup must not hide the decisions made
                    logger.warning("scheduler: could not delete checkpoint thread: {}", type(exc).__name__)
        return results

    def _run_stages(self, tickers: list[str], configs: dict[str, dict], as_of: str | None,
                    results: dict[str, dict[str, Any] | Exception]) -> None:
        """Every ticker through the tool nodes and the layers, one stage at a time, up to ``decide``.

        A stop ends it after the calls in flight: the stage's queued tickers start nothing. A second
        signal (KeyboardInterrupt while waiting) leaves even those behind: the process is exiting.
        """
        stages = [*LAYER_NAMES, DECIDE]  # stage k stops before stages[k]; stage 0 runs the tool nodes
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="layer")
        try:
            for k, stop in enumerate(stages):
                if self.stop.is_set():
                    break
                if k == 0:
                    todo = {t: initial_state(t, as_of) for t in tickers}
                else:  # the tickers waiting before the layer this stage runs (the others were discarded)
                    todo = {t: None for t in tickers
                            if t not in results and self._next(configs[t]) == (stages[k - 1],)}
                futures = {t: pool.submit(self._advance, state, configs[t], [stop, DECIDE])
                           for t, state in todo.items()}
                for t, future in futures.items():
                    if future.exception() is not None:
                        results[t] = future.exception()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # never wait for an LLM call still running
            raise
        pool.shutdown()

    def _reconnect_if_lost(self) -> None:
        """A Postgres checkpointer whose connection dropped is rebuilt before the next cycle."""
        conn = getattr(self.checkpointer, "conn", None)
        if conn is not None and getattr(conn, "closed", False):
            logger.warning("scheduler: the checkpoint database connection was lost; reconnecting")
            self.checkpointer = make_checkpointer(self.deps.settings)
            self.graph = build_graph(self.deps, checkpointer=self.checkpointer)

    def _advance(self, state: dict[str, Any] | None, config: dict, stop_before: list[str]) -> None:
        """One ticker through one stage, unless a stop came while it waited in the pool's queue."""
        if not self.stop.is_set():
            self.graph.invoke(state, config, interrupt_before=stop_before)

    def _next(self, config: dict) -> tuple[str, ...]:
        return tuple(self.graph.get_state(config).next)


def decide_ticker_major(graph, tickers: list[str], as_of: str | None,
                        on_record: Callable[[dict[str, Any]], None] | None = None,
                        stop: threading.Event | None = None) -> dict[str, dict[str, Any] | Exception]:
    """One ticker through every layer, then the next: the one-shot path, and the baseline for the benchmark."""
    results: dict[str, dict[str, Any] | Exception] = {}
    for ticker in tickers:
        if stop is not None and stop.is_set():
            break
        try:
            results[ticker] = record = run_cascade(graph, ticker, as_of=as_of)
        except Exception as exc:  # noqa: BLE001 - reported per ticker
            results[ticker] = exc
            continue
        if on_record:
            on_record(record)
    return results
