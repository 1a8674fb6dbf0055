"""``python -m agent.backtest``."""

import sys

from agent.backtest.engine import main

sys.exit(main())
