"""``python -m agent.eval``."""

import sys

from agent.eval.sentiment import main

sys.exit(main())
