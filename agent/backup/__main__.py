"""``python -m agent.backup``."""

import sys

from agent.backup.cli import main

sys.exit(main())
