"""``python -m agent.eval``."""

import sys

from agent.eval.cli import main

sys.exit(main())
