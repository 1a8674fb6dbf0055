"""The environment variables the agent reads (and ``.env``), each mapped to its config key."""

from __future__ import annotations

import io
import re
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from agent.errors import ConfigError

# Environment variable -> config key path. The env name is quoted in errors for keys it set.
ENV_KEYS: dict[str, tuple[str, ...]] = {
    "SIMULATION_MODE": ("simulation_mode",),
    "ENABLE_REAL_TRADING": ("enable_real_trading",),
    "B3_TICKERS": ("tickers",),
    "ANALYSIS_INTERVAL": ("analysis_interval_s",),
    "LLM_PROVIDER": ("llm", "provider"),
    "OLLAMA_HOST": ("ollama", "host"),
    "OLLAMA_TIMEOUT": ("ollama", "timeout_s"),
    "OLLAMA_NUM_PARALLEL": ("ollama", "parallel"),
    "OLLAMA_HOSTS": ("ollama", "hosts"),
    "EMBEDDED_PROFILE": ("embedded", "profile"),
    "EMBEDDED_MODEL_SENTIMENT": ("embedded", "models", "sentiment"),
    "EMBEDDED_MODEL_TECHNICAL": ("embedded", "models", "technical"),
    "EMBEDDED_MODEL_RISK": ("embedded", "models", "risk"),
    "EMBEDDED_MODEL_DATA_VALIDATION": ("embedded", "models", "data_validation"),
    "EMBEDDED_MODEL_FINAL_SCORE": ("embedded", "models", "final_score"),
    "MODELS_DIR": ("embedded", "models_dir"),
    # the original guide's model variables: FAST is layer 1 (the fast filter), SENTIMENT layer 5 (the final score)
    "OLLAMA_MODEL_FAST": ("layers", "sentiment", "model"),
    "OLLAMA_MODEL_STANDARD": ("layers", "technical", "model"),
    "OLLAMA_MODEL_REASONING": ("layers", "risk", "model"),
    "OLLAMA_MODEL_CODER": ("layers", "data_validation", "model"),
    "OLLAMA_MODEL_SENTIMENT": ("layers", "final_score", "model"),
    "MIN_CONFIDENCE": ("decision", "min_confidence"),
    "CAPITAL": ("risk", "capital"),
    "MAX_POSITION_SIZE": ("risk", "max_position_size"),
    "MAX_LOSS_PER_TRADE": ("risk", "max_loss_per_trade"),
    "PROFIT_TARGET": ("risk", "profit_target"),
    "MAX_POSITION_FRACTION": ("risk", "max_position_fraction"),
    "MAX_LOSS_FRACTION": ("risk", "max_loss_fraction"),
    "PROFIT_TARGET_FRACTION": ("risk", "profit_target_fraction"),
    "MARKET_SOURCE": ("market", "source"),
    "MARKET_DATA_DIR": ("market", "data_dir"),
    "BRAPI_BASE_URL": ("market", "brapi_base_url"),
    "TIMEFRAME_PRIMARY": ("market", "timeframes", "primary"),
    "TIMEFRAME_SECONDARY": ("market", "timeframes", "secondary"),
    "TIMEFRAME_TERTIARY": ("market", "timeframes", "tertiary"),
    "NEWS_PROVIDER": ("news", "provider"),
    "NEWS_FEEDS": ("news", "feeds"),
    "NEWS_FILE": ("news", "file"),
    "LOG_LEVEL": ("logging", "level"),
    "LOG_DIR": ("logging", "dir"),
    "LOG_RETENTION_DAYS": ("logging", "retention_days"),
    "DATABASE_PATH": ("database_path",),
    "DATABASE_URL": ("database_url",),
    "METRICS_ENABLED": ("metrics", "enabled"),
    "ENABLE_METRICS": ("metrics", "enabled"),
    "GRAFANA_PORT": ("metrics", "grafana_port"),
    "PROMETHEUS_BIND": ("metrics", "bind"),
    "PROMETHEUS_PORT": ("metrics", "port"),
    "TELEGRAM_CHAT_ID": ("alerts", "telegram_chat_id"),
    "SLACK_WEBHOOK_URL": ("alerts", "slack_webhook_url"),
    "SLACK_WEBHOOK": ("alerts", "slack_webhook_url"),
    "SMTP_HOST": ("alerts", "smtp_host"),
    "SMTP_PORT": ("alerts", "smtp_port"),
    "SMTP_USER": ("alerts", "smtp_user"),
    "ALERT_EMAIL_TO": ("alerts", "email_to"),
    "ALERT_EMAIL_FROM": ("alerts", "email_from"),
    "EMAIL_SENDER": ("alerts", "email_from"),
    "LOOP_MARKET_HOURS": ("loop", "market_hours"),
    "LOOP_SCHEDULING": ("loop", "scheduling"),
    "SLIPPAGE_BPS": ("broker", "slippage_bps"),
    "B3_FEE_BPS": ("broker", "fee_bps"),
    "BROKER_COMMISSION": ("broker", "commission"),
    "ALLOW_PYRAMIDING": ("broker", "allow_pyramiding"),
    "MAX_DAILY_LOSS": ("kill_switch", "max_daily_loss"),
    "MAX_PORTFOLIO_DRAWDOWN": ("kill_switch", "max_drawdown"),
    "MAX_OPEN_POSITIONS": ("kill_switch", "max_open_positions"),
    "LLM_CACHE_PATH": ("backtest", "cache_path"),
    "BACKUP_DIR": ("backup", "dir"),
    "BACKUP_KEEP_DAYS": ("backup", "keep_days"),
    "DASHBOARD_ENABLED": ("dashboard", "enabled"),
    "DASHBOARD_BIND": ("dashboard", "bind"),
    "DASHBOARD_PORT": ("dashboard", "port"),
    "BACKTEST_REPORTS_DIR": ("dashboard", "reports_dir"),
    "DASHBOARD_ALLOWED_HOSTS": ("dashboard", "allowed_hosts"),
    "BRAPI_TOKEN": ("secrets", "brapi_token"),
    "TELEGRAM_TOKEN": ("secrets", "telegram_token"),
    "SMTP_PASSWORD": ("secrets", "smtp_password"),
    "EMAIL_PASSWORD": ("secrets", "smtp_password"),
    "APPRISE_URLS": ("secrets", "apprise_urls"),
    "DASHBOARD_TOKEN": ("secrets", "dashboard_token"),
}
SECRET_ENV_KEYS = frozenset({"BRAPI_TOKEN", "TELEGRAM_TOKEN", "SMTP_PASSWORD", "SLACK_WEBHOOK_URL", "DATABASE_URL",
                             "DASHBOARD_TOKEN", "SLACK_WEBHOOK", "EMAIL_PASSWORD", "APPRISE_URLS"})
# Keys .env may hold that belong to other tools (LangGraph Studio and server, LangSmith); accepted silently.
# REDIS_URL (in the original guide's block) is the LangGraph server's queue, not read by the agent.
FOREIGN_ENV_PREFIXES = ("LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_", "OLLAMA_NUM_", "REDIS_")


def read_env_file(env_file: Path) -> dict[str, str | None]:
    """The ``KEY=value`` pairs of a .env file. A line that is not one stops start-up, naming the line:
    python-dotenv alone would warn on stderr and skip it, and the default would run instead."""
    try:
        text = env_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{env_file}: cannot be read: {exc}") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error or (binding.key is not None and binding.value is None):
            line = binding.original.string.strip()
            key = re.split(r"[\s:=]", line, maxsplit=1)[0]
            shown = f"{key} ..." if key in SECRET_ENV_KEYS else line[:80]  # never echo a secret's value
            hint = f" (write {key}=value)" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else ""
            raise ConfigError(f"{env_file} line {binding.original.line}: {shown!r} is not KEY=value{hint}. "
                              "Nothing was started")
    return dotenv_values(stream=io.StringIO(text))


def _plain(value: str) -> str:
    """A value as the setting reads it: ``1``, ``yes`` and ``on`` are ``true`` for a boolean."""
    v = value.strip().lower()
    return {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}.get(v, value.strip())


def _by_setting(values: dict[str, str], where: str) -> dict[tuple[str, ...], tuple[str, str]]:
    """``{config key path: (variable, value)}`` of one source. Two names of one setting (the project's and the
    original guide's) may both be set only to the same value."""
    out: dict[tuple[str, ...], tuple[str, str]] = {}
    clashes = []
    for key, value in values.items():
        path = ENV_KEYS[key]
        if path in out and _plain(out[path][1]) != _plain(value):
            first, second = sorted((out[path][0], key))
            clashes.append(f"{first} and {second} name the same setting ({'.'.join(path)})")
        out[path] = (key, value)
    if clashes:  # the values are never quoted: they may be secrets
        raise ConfigError(f"{'; '.join(clashes)}, and {where} sets them to different values: keep one name of each")
    return out


def env_overrides(env_file: Path | None, environ: dict[str, str]) -> tuple[
        dict[tuple[str, ...], tuple[str, str]], list[str], set[str]]:
    """Merge .env and the environment (the environment wins, whichever name each uses).

    Returns ``{config key path: (variable, value)}``, the unknown .env keys, and the variables whose value came
    from the .env file. An empty value means "not set" (as in .env.example), never "empty string".
    """
    from_file: dict[str, str] = {}
    unknown: list[str] = []
    if env_file is not None and env_file.is_file():
        for key, value in read_env_file(env_file).items():
            if key in ENV_KEYS:
                if value is not None and value.strip():
                    from_file[key] = value.strip()
            elif not key.startswith(FOREIGN_ENV_PREFIXES):
                unknown.append(key)
    from_env = {k: environ[k].strip() for k in ENV_KEYS if k in environ and environ[k].strip()}
    merged = {**_by_setting(from_file, str(env_file)), **_by_setting(from_env, "the environment")}
    return merged, unknown, {name for name, _ in merged.values() if name not in from_env}
