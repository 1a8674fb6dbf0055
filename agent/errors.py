"""The exception hierarchy. Each class maps to exactly one action, as in freqtrade.

- ``ConfigError``: stop the program at start-up (the message names the key).
- ``ProviderError``: stop; the LLM provider cannot be used as configured (e.g. a model is not pulled).
- ``DataError``: skip this ticker for this cycle; the reason goes into the HOLD record.
- ``LLMError``: discard at the layer that raised it; the reason is recorded and counted.
  ``LLMTransientError`` is the retryable kind (connection refused, host down).
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """Invalid configuration. Action: stop at start-up."""


class ProviderError(AgentError):
    """The chosen LLM provider cannot serve the configured models. Action: stop."""


class DataError(AgentError):
    """Market data is missing or unusable for a ticker. Action: skip the ticker (HOLD with reason)."""


class LLMError(AgentError):
    """An LLM call failed or answered garbage. Action: discard at that layer.

    ``kind`` is a short machine-readable label used for counting (e.g. ``invalid_json``).
    """

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class LLMTransientError(LLMError):
    """A retryable LLM failure (connection refused or reset). Action: retry, then discard."""
