"""Logging with loguru. Secret values from the config are masked in every message."""

from __future__ import annotations

import re
import sys

from loguru import logger
from pydantic import SecretStr

from agent.config import Settings

MASK = "***"


def secret_values(settings: Settings) -> list[str]:
    values = [settings.secrets.brapi_token, settings.secrets.telegram_token, settings.secrets.smtp_password,
              settings.alerts.slack_webhook_url]
    return [v.get_secret_value() for v in values if v is not None and len(v.get_secret_value()) >= 4]


_TOKEN_PARAM = re.compile(r"(?i)\b(token|apikey|api_key)=([^&\s\"']+)")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")


def redact(text: str, *secrets: SecretStr | str | None) -> str:
    """``text`` with each secret, any ``token=`` query value and any Bearer credential masked."""
    for secret in secrets:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if value:
            text = text.replace(value, MASK)
    text = _TOKEN_PARAM.sub(rf"\1={MASK}", text)
    return _BEARER.sub(rf"\1 {MASK}", text)


def setup_logging(settings: Settings, *, to_file: bool = True) -> None:
    """stderr at LOG_LEVEL, plus ``LOG_DIR/trading-agent.log`` (rotating) unless ``to_file`` is off."""
    secrets = secret_values(settings)

    def patch(record: dict) -> None:
        record["message"] = redact(record["message"], *secrets)

    logger.remove()
    logger.configure(patcher=patch)
    fmt = "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}"
    logger.add(sys.stderr, level=settings.logging.level, format=fmt, backtrace=False, diagnose=False)
    if to_file:
        settings.logging.dir.mkdir(parents=True, exist_ok=True)
        logger.add(settings.logging.dir / "trading-agent.log", level=settings.logging.level, rotation="20 MB",
                   retention=f"{settings.logging.retention_days} days", backtrace=False, diagnose=False,
                   enqueue=False, encoding="utf-8")
