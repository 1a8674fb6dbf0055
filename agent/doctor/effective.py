"""The configuration as the agent will run it: every environment key's effective value with its unit,
secrets masked (only whether they are set is shown)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from agent.config import ENV_KEYS, SECRET_ENV_KEYS, Settings

# Units of the keys that have one (a bare number is a count or a 0-1 score).
UNITS = {
    "ANALYSIS_INTERVAL": "s", "OLLAMA_TIMEOUT": "s", "CAPITAL": "BRL", "MAX_POSITION_SIZE": "shares",
    "MAX_LOSS_PER_TRADE": "BRL", "PROFIT_TARGET": "BRL", "MAX_POSITION_FRACTION": "of CAPITAL",
    "MAX_LOSS_FRACTION": "of CAPITAL", "PROFIT_TARGET_FRACTION": "of the entry price", "MIN_CONFIDENCE": "0-1",
    "SLIPPAGE_BPS": "bps", "B3_FEE_BPS": "bps", "BROKER_COMMISSION": "BRL per order",
    "MAX_DAILY_LOSS": "of the day's opening equity", "MAX_PORTFOLIO_DRAWDOWN": "of peak equity",
    "LOG_RETENTION_DAYS": "days", "BACKUP_KEEP_DAYS": "days", "SMTP_PORT": "port", "PROMETHEUS_PORT": "port",
    "GRAFANA_PORT": "port", "DASHBOARD_PORT": "port",
}


def _value(settings: Settings, path: tuple[str, ...]) -> Any:
    node: Any = settings
    for key in path:
        node = getattr(node, key, None)
    return node


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "(none)"
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def effective_values(settings: Settings) -> list[tuple[str, str]]:
    """(key, value with unit) for every setting an environment variable sets, in ENV_KEYS' order; a setting
    with two names (the project's first, then the original guide's) is listed once as "SLACK_WEBHOOK_URL /
    SLACK_WEBHOOK"."""
    names: dict[tuple[str, ...], list[str]] = {}
    for env, path in ENV_KEYS.items():
        names.setdefault(path, []).append(env)
    rows = []
    for path, envs in names.items():
        value = _value(settings, path)
        if any(env in SECRET_ENV_KEYS for env in envs) or isinstance(value, SecretStr):
            shown = "(unset)" if value is None else "*** (set)"
        else:
            shown = _shown(value)
            unit = UNITS.get(envs[0])
            if unit and value is not None:
                shown = f"{shown} {unit}"
        rows.append((" / ".join(envs), shown))
    return rows
