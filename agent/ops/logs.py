"""Logging with loguru. Secret values from the config are masked in every message.

Under LOG_DIR: ``trading-agent.log`` (everything), ``errors.log`` (ERROR and above) and
``performance.log`` (one line per layer call and per cycle, written through ``perf_log()``),
each rotated and kept LOG_RETENTION_DAYS days.
"""

from __future__ import annotations

import re
import sys

from loguru import logger
from pydantic import SecretStr

from agent.config import Settings

MASK = "***"


def secret_values(settings: Settings) -> list[str]:
    values = [settings.secrets.brapi_token, settings.secrets.telegram_token, settings.secrets.smtp_password,
              settings.secrets.dashboard_token, settings.secrets.apprise_urls, settings.alerts.slack_webhook_url,
              settings.database_url]
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


def perf_log():
    """The logger for latency lines: they go to ``performance.log`` only, never to the console."""
    return logger.bind(perf=True)


def _is_perf(record: dict) -> bool:
    return bool(record["extra"].get("perf"))


def _not_perf(record: dict) -> bool:
    return not record["extra"].get("perf")


STDERR_FORMAT = "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}"  # every command's stderr


def setup_logging(settings: Settings, *, to_file: bool = True) -> None:
    """stderr at LOG_LEVEL, plus the files under LOG_DIR (rotating) unless ``to_file`` is off."""
    secrets = secret_values(settings)

    def patch(record: dict) -> None:
        record["message"] = redact(record["message"], *secrets)

    logger.remove()
    logger.configure(patcher=patch)
    logger.add(sys.stderr, level=settings.logging.level, format=STDERR_FORMAT, backtrace=False, diagnose=False, filter=_not_perf)
    if to_file:
        log_dir = settings.logging.dir
        log_dir.mkdir(parents=True, exist_ok=True)
        keep = dict(rotation="20 MB", retention=f"{settings.logging.retention_days} days", backtrace=False,
                    diagnose=False, encoding="utf-8")
        logger.add(log_dir / "trading-agent.log", level=settings.logging.level, filter=_not_perf, **keep)
        logger.add(log_dir / "errors.log", level="ERROR", filter=_not_perf, **keep)
        logger.add(log_dir / "performance.log", level="INFO", filter=_is_perf,
                   format="{time:YYYY-MM-DDTHH:mm:ss.SSSZZ} {message}", **keep)
