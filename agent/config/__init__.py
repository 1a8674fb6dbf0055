"""Configuration: ``config.yaml`` defaults, overridden by ``.env`` and then the environment.

Validated once at start-up with pydantic. Unknown keys are rejected, and every error names the key
(and the environment variable that set it) with the allowed values. The sections live in
``sections.py``, the root model in ``settings.py``, the environment table in ``env.py`` and the
loading in ``load.py``; what the rest of the agent uses is importable from here.
"""

from agent.config.env import ENV_KEYS, SECRET_ENV_KEYS
from agent.config.load import (
           DEFAULT_CONFIG_PATH,
           DEFAULT_ENV_PATH,
           PROJECT_ROOT,
           load_settings,
)
from agent.config.sections import LOOPBACK, KillSwitchSettings, comma_list
from agent.config.settings import LAYER_NAMES, TICKER_RE, Settings, normalize_ticker

__all__ = ["DEFAULT_CONFIG_PATH", "DEFAULT_ENV_PATH", "ENV_KEYS", "LAYER_NAMES", "LOOPBACK", "PROJECT_ROOT",
           "SECRET_ENV_KEYS", "TICKER_RE", "KillSwitchSettings", "Settings", "comma_list", "load_settings",
           "normalize_ticker"]
