"""``python -m agent.backtest``."""

import sys

from agent.backtest.cli import main

sys.exit(main())
