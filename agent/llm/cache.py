"""A persistent cache of LLM answers, keyed by a hash of everything that shapes the answer.

The key covers the provider, the model, the layer, the prompt version, the rendered prompt (so the
inputs), the chart shown with it (by its digest), the answer schema and the sampling settings. Same key, same question: with temperature 0
the answer is the model's, replayed. A rerun of a backtest therefore makes no LLM call at all,
which makes cascade backtests cheap and reproducible (the ai-hedge-fund approach).
Only an answer that passed validation is cached (its raw text, so a replay goes through the same
checks); a cached one that fails them (stored by an older version) is dropped after its replay.
Token counts sit in a table of their own (older cache files need no migration), so a replay can
report what the answer cost.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from pydantic import SecretStr

from agent.llm.reply import Reply
from agent.ops.metrics import COUNTERS
from agent.store.db import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_cache (
    key TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, layer TEXT NOT NULL,
    prompt_version TEXT NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_cache_tokens (key TEXT PRIMARY KEY, tokens_in INTEGER, tokens_out INTEGER);
"""


def cache_key(*, provider: str, model: str, layer: str, prompt_version: str, system: str, user: str,
              schema: dict, temperature: float, max_tokens: int, image: str | None = None) -> str:
    """``image``: the digest of the chart sent with the prompt (layers/chart.py), so an answer about one
    chart is never replayed for another; a text-only question keeps the key it always had."""
    fields = {"provider": provider, "model": model, "layer": layer, "prompt_version": prompt_version,
              "system": system, "user": user, "schema": schema, "temperature": temperature, "max_tokens": max_tokens}
    if image is not None:
        fields["image"] = image
    blob = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class LLMCache:
    def __init__(self, target: Path | str | SecretStr):
        """``target``: the SQLite file (backtest.cache_path) or a Postgres URL (DATABASE_URL)."""
        self._lock = threading.Lock()
        self._db = open_database(target, key="LLM_CACHE_PATH")
        self._db.script(SCHEMA)
        self.hits = self.misses = 0

    def get(self, key: str, layer: str) -> Reply | None:
        with self._lock:
            row = self._db.execute("SELECT c.text, t.tokens_in, t.tokens_out FROM llm_cache c LEFT JOIN "
                                   "llm_cache_tokens t ON t.key = c.key WHERE c.key=?", (key,)).fetchone()
            if row is None:
                self.misses += 1
            else:
                self.hits += 1
        COUNTERS.inc("llm_cache_total", layer=layer, result="hit" if row else "miss")
        return Reply(row["text"], row["tokens_in"], row["tokens_out"]) if row else None

    def put(self, key: str, reply: Reply, *, provider: str, model: str, layer: str, prompt_version: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO llm_cache VALUES (?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET "
                             "text = excluded.text, created_at = excluded.created_at",
                             (key, provider, model, layer, prompt_version, reply.text,
                              datetime.now(timezone.utc).isoformat(timespec="seconds")))
            self._db.execute("INSERT INTO llm_cache_tokens VALUES (?,?,?) ON CONFLICT (key) DO UPDATE SET "
                             "tokens_in = excluded.tokens_in, tokens_out = excluded.tokens_out",
                             (key, reply.tokens_in, reply.tokens_out))

    def forget(self, key: str) -> None:
        """Drop one answer, so the question is asked afresh next time."""
        with self._lock:
            self._db.execute("DELETE FROM llm_cache WHERE key=?", (key,))
            self._db.execute("DELETE FROM llm_cache_tokens WHERE key=?", (key,))

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
