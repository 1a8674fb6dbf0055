"""Answers that pass every layer's gate, and risk limits no simulated bar breaks: a cascade that runs all five layers.

``make bench`` serves these answers from its Ollama stub so every decision costs five LLM calls; the
tests build their fake models and settings from the same two tables.
"""

from __future__ import annotations

from typing import Any

# Answers that pass every gate with the default thresholds.
PASS: dict[str, dict[str, Any]] = {
    "sentiment": {"sentiment": "positive", "score": 0.9, "reason": "constructive news flow"},
    "technical": {"trend": "bullish", "score": 0.8, "reason": "MACD above signal", "cited": {}},
    "risk": {"risk": 0.2, "approve": True, "size_factor": 1.0, "reason": "contained risk"},
    "data_validation": {"valid": True, "score": 0.9, "issues": [], "reason": "consistent"},
    "final_score": {"score": 0.9, "reason": "all layers agree"},
}
# Risk limits loose enough that no deterministic rule blocks on the simulated bars, and no LLM retries.
LOOSE_RISK = {
    ("risk", "min_reward_risk"): 0.0,
    ("risk", "max_volatility"): 10.0,
    ("risk", "max_drawdown"): 1.0,
    ("risk", "capital"): 10_000_000.0,
    ("llm", "retries"): 0,
}
