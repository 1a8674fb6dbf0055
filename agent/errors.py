"""The exception hierarchy. Each class maps to exactly one action, as in freqtrade.

- ``ConfigError``: stop the program at start-up (the message names the key).
- ``ProviderError``: stop; the LLM provider cannot be used as configured (e.g. a model is not pulled).
- ``DataError``: skip this ticker for this cycle; the reason goes into the HOLD record.
- ``LLMError``: discard at the layer that raised it; the reason is recorded and counted.
  ``LLMTransientError`` is the retryable kind (connection refused, host down).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


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

    ``kind`` is a short machine-readable label used for counting (e.g. ``invalid_json``);
    ``cached``: the failing answer was a replay from the LLM cache (the record says so).
    """

    cached = False

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class LLMTransientError(LLMError):
    """A retryable LLM failure (connection refused or reset). Action: retry, then discard."""



class DataSourceUnavailable(DataError):
    """The data source could not be reached or failed on its side (network, timeout, HTTP 5xx).

    Action: retry later. Being a ``DataError``, a caller without a retry policy skips the ticker.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(DataSourceUnavailable):
    """The source refused the request for its rate limit (HTTP 429). Action: retry after ``retry_after`` s."""


class BrapiAuthError(ConfigError):
    """brapi rejected the token or asked for one (HTTP 401). Action: stop and fix BRAPI_TOKEN."""


class FeedError(AgentError):
    """A news feed or file could not be fetched or parsed. Action: skip that feed; the others go on."""


class NaiveDateError(ValueError):
    """A date with no timezone: refused, because guessing UTC or Brasília is off by three hours."""


class BackupError(AgentError):
    """A backup or restore cannot go on. Action: print the one-line message and exit 1."""


class NoLedger(Exception):
    """The ledger cannot answer this view: not created yet, unreachable, or made by an older version.
    The message says which, for the page to show."""


class LedgerUnreachable(NoLedger):
    """The database is there but cannot be read now (e.g. Postgres is down)."""


class AlertSendError(Exception):
    """An endpoint refused an alert. ``kind`` labels the failure metric; ``retryable`` says if a retry may help.

    Its message never holds the request URL, since the Telegram token and the Slack webhook are in it.
    """

    def __init__(self, kind: str, detail: str = "", retryable: bool = False):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind, self.retryable = kind, retryable


def describe_exception(exc: BaseException) -> str:
    """The exception with its traceback, as text, so the log's secret masking covers it too."""
    import traceback

    return "".join(traceback.format_exception(exc)).rstrip()


def validation_problems(exc: "ValidationError", *, limit: int | None = None, label=None, show_input=None,
                        unknown_key: str = "unknown key", on_clip=None) -> list[str]:
    """A pydantic ``ValidationError`` as short ``where = value: message`` lines: the one formatter of
    validation errors, for config, LLM answers, headlines and market payloads alike.

    ``label(loc)`` names the place (default: the dotted path, ``<root>`` when empty); ``show_input(err)``
    says whether the offending value may be quoted (never for secrets; by default, unless it is
    missing or an unknown key), clipped so a huge value is never echoed whole; ``on_clip()`` is called for
    each value clipped (where a cut must be counted). A cut list ends with ``... and N more``.
    """
    errors = exc.errors()
    shown = errors if limit is None else errors[:limit]
    lines = []
    for err in shown:
        where = label(err["loc"]) if label else (".".join(str(p) for p in err["loc"]) or "<root>")
        msg = unknown_key if err["type"] == "extra_forbidden" else err["msg"]
        quote = show_input(err) if show_input else err["type"] not in ("missing", "extra_forbidden")
        shown_value = ""
        if quote:
            value = repr(err.get("input"))
            if len(value) > ECHO_CHARS and on_clip:
                on_clip()
            shown_value = f" = {_clip(value)}"
        lines.append(f"{where}{shown_value}: {msg}")
    if len(errors) > len(shown):
        lines.append(f"... and {len(errors) - len(shown)} more")
    return lines


ECHO_CHARS = 120  # the most of a bad value a validation error quotes back


def _clip(text: str, most: int = ECHO_CHARS) -> str:
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} chars)"
