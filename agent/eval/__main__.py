"""``python -m agent.eval``: ``sentiment`` (one data set), ``scenarios`` (labelled cascade situations) and
``scorecard`` (``make eval``: every embedded model on both sentiment sets, then the scenarios)."""

import sys

if len(sys.argv) > 1 and sys.argv[1] in ("scorecard", "scenarios"):
    if sys.argv[1] == "scorecard":
        from agent.eval.scorecard import main
    else:
        from agent.eval.scenarios import main
    sys.exit(main(sys.argv[2:]))

from agent.eval.cli import main  # noqa: E402

sys.exit(main())
