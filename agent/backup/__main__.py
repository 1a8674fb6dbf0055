"""``python -m agent.backup``."""

import sys

from agent.backup.archive import main

sys.exit(main())
