"""The environment variables the agent reads (and ``.env``), each mapped to its config key."""

from __future__ import annotations

from pathlib import Path

from dotenv import dotenv_values

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
    "OLLAMA_MODEL_SENTIMENT": ("layers", "sentiment", "model"),
    "OLLAMA_MODEL_STANDARD": ("layers", "technical", "model"),
    "OLLAMA_MODEL_REASONING": ("layers", "risk", "model"),
    "OLLAMA_MODEL_CODER": ("layers", "data_validation", "model"),
    "OLLAMA_MODEL_FAST": ("layers", "final_score", "model"),
    "MIN_CONFIDENCE": ("decision", "min_confidence"),
    "CAPITAL": ("risk", "capital"),
    "MAX_POSITION_SIZE": ("risk", "max_position_size"),
    "MAX_LOSS_PER_TRADE": ("risk", "max_loss_per_trade"),
    "PROFIT_TARGET": ("risk", "profit_target"),
    "MARKET_SOURCE": ("market", "source"),
    "MARKET_DATA_DIR": ("market", "data_dir"),
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
    "PROMETHEUS_BIND": ("metrics", "bind"),
    "PROMETHEUS_PORT": ("metrics", "port"),
    "TELEGRAM_CHAT_ID": ("alerts", "telegram_chat_id"),
    "SLACK_WEBHOOK_URL": ("alerts", "slack_webhook_url"),
    "SMTP_HOST": ("alerts", "smtp_host"),
    "SMTP_PORT": ("alerts", "smtp_port"),
    "SMTP_USER": ("alerts", "smtp_user"),
    "ALERT_EMAIL_TO": ("alerts", "email_to"),
    "ALERT_EMAIL_FROM": ("alerts", "email_from"),
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
    "DASHBOARD_TOKEN": ("secrets", "dashboard_token"),
}
SECRET_ENV_KEYS = frozenset({"BRAPI_TOKEN", "TELEGRAM_TOKEN", "SMTP_PASSWORD", "SLACK_WEBHOOK_URL", "DATABASE_URL",
                             "DASHBOARD_TOKEN"})
# Keys .env may hold that belong to other tools (LangGraph Studio, LangSmith); accepted silently.
FOREIGN_ENV_PREFIXES = ("LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_", "OLLAMA_NUM_", "REDIS_")


def env_overrides(env_file: Path | None, environ: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Merge .env and the environment (environment wins). Returns (values, unknown .env keys)."""
    merged: dict[str, str] = {}
    unknown: list[str] = []
    if env_file is not None and env_file.is_file():
        for key, value in dotenv_values(env_file).items():
            if key in ENV_KEYS:
                merged[key] = value or ""
            elif not key.startswith(FOREIGN_ENV_PREFIXES):
                unknown.append(key)
    for key in ENV_KEYS:
        if key in environ:
            merged[key] = environ[key]
    # An empty value means "not set" (as in .env.example), never "empty string".
    return {k: v.strip() for k, v in merged.items() if v is not None and v.strip() != ""}, unknown
