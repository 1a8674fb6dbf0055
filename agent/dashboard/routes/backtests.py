"""The backtests page's API: the reports ``python -m agent.backtest --report DIR`` left under
dashboard.reports_dir. (The report files themselves are served by create_app's /reports mount.)"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from agent.dashboard import schemas as S
from agent.dashboard.deps import ReportsDir
from agent.market.calendar import B3_TZ

router = APIRouter(tags=["backtests"])


@router.get("/backtests", response_model=S.Backtests)
def backtests(reports_dir: ReportsDir):
    """Reports under dashboard.reports_dir (python -m agent.backtest --report DIR), newest first."""
    out = []
    if reports_dir.is_dir():
        for folder in reports_dir.iterdir():
            try:
                folder.name.encode("utf-8")
                if folder.is_dir() and (folder / "metrics.json").is_file():
                    out.append(report_summary(folder))
            except (UnicodeError, OSError):  # a name the page cannot carry, or a folder gone meanwhile
                continue
    out.sort(key=lambda r: r["modified"], reverse=True)
    return {"reports_dir": str(reports_dir.resolve()), "reports": out}


def report_summary(folder: Path) -> dict[str, Any]:
    modified = datetime.fromtimestamp((folder / "metrics.json").stat().st_mtime, B3_TZ).isoformat(timespec="seconds")
    html = f"/reports/{folder.name}/report.html" if (folder / "report.html").is_file() else None
    try:
        summary = S.ReportSummary.from_payload(json.loads((folder / "metrics.json").read_text(encoding="utf-8")))
        return {"name": folder.name, "modified": modified, "html": html, "metrics": summary.model_dump(), "note": None}
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, not JSON, or not a report's shape
        return {"name": folder.name, "modified": modified, "html": html, "metrics": None,
                "note": f"metrics.json unreadable: {type(exc).__name__}"}
