"""The backtest report folder: files exist, PNGs are real images, JSON is strict, the HTML is escaped and offline."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from agent.backtest.page import fmt_metric
from agent.backtest.report import write_report
from agent.backtest.sanitize import clean_series, to_jsonable

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"
WARNING = "the window overlaps the LLM's training period: look-ahead through the model's memory"


def _metrics(total_return: float | None, **extra: object) -> dict:
    base = {"start": "2024-01-01", "end": "2024-03-22", "years": 0.23, "total_return": total_return, "cagr": None,
            "sharpe": 1.234, "sortino": float("nan"), "calmar": None, "max_drawdown": 0.0712,
            "max_drawdown_duration_bars": 17, "trades": 2, "win_rate": 0.5, "profit_factor": 1.8,
            "avg_trade": 12.5, "exposure": 0.41, "annualised": False,
            "why_not_annualised": "0.23 years is under the 1-year minimum"}
    return {**base, **extra}


def _run(n: int = 60, *, with_trades: bool = True, evil: bool = False) -> dict:
    """A small synthetic backtest: n business days, two tickers (or one hostile one), two baselines."""
    dates = pd.bdate_range("2024-01-01", periods=n)
    rng = np.random.default_rng(7)
    equity = pd.Series(100_000 * np.cumprod(1 + rng.normal(0.001, 0.01, n)), index=dates)
    ibov = pd.Series(120_000 + np.cumsum(rng.normal(0, 500, n)), index=dates)
    petr_bh = pd.Series(100_000 * np.cumprod(1 + rng.normal(0, 0.015, n)), index=dates).iloc[5:]  # fewer dates
    second = EVIL if evil else "VALE3"
    prices = {"PETR4": pd.Series(np.linspace(30, 36, n), index=dates),
              second: pd.Series(np.linspace(60, 55, n), index=dates)}
    trades = []
    if with_trades and n >= 40:
        d = lambda i: dates[i].strftime("%Y-%m-%d")  # noqa: E731
        trades = [
            {"action": "open", "ticker": "PETR4", "qty": 300, "price": 30.61, "fees": 2.98, "profit": None,
             "decision_id": "PETR4-a", "bar_date": d(3)},
            {"action": "close_take_profit", "ticker": "PETR4", "qty": 300, "price": 33.47, "fees": 3.26,
             "profit": 851.76, "decision_id": "PETR4-a", "bar_date": d(30)},
            {"action": "open", "ticker": second, "qty": 100, "price": 59.9, "fees": 1.95, "profit": None,
             "decision_id": "VALE3-b", "bar_date": d(10)},
            {"action": "close_stop", "ticker": second, "qty": 100, "price": 57.13, "fees": 1.86,
             "profit": -280.81, "decision_id": "VALE3-b", "bar_date": d(25)},
            {"action": "open", "ticker": "PETR4", "qty": 200, "price": 35.0, "fees": 2.28, "profit": None,
             "decision_id": "PETR4-c", "bar_date": d(40)},
            {"action": "close_end", "ticker": "PETR4", "qty": 200, "price": 35.9, "fees": 2.33, "profit": 175.39,
             "decision_id": "PETR4-c", "bar_date": d(n - 1)},
        ]
    return dict(
        title="Backtest quant: PETR4, VALE3 2024-01-01 to 2024-03-22",
        metrics=_metrics(0.0834, llm_calls_per_decision=None, cache_hit_rate=0.75),
        baselines={"buy_and_hold:PETR4": _metrics(0.12), "buy_and_hold:IBOV": _metrics(-0.031)},
        equity=equity, baseline_equity={"buy_and_hold:PETR4": petr_bh, "buy_and_hold:IBOV": ibov},
        trades=trades, prices=prices,
        funnel={"sentiment": {"pass": 40, "discard": 20}, "technical": {"pass": 12, "discard": 28}},
        warnings=[WARNING],
        meta={"mode": "quant", "tickers": ["PETR4", second], "provider": "quant", "data_source": "csv",
              "costs": {"slippage_bps": 5.0, "fee_bps": 3.25, "commission": 0.0},
              "command": "python -m agent.backtest --tickers PETR4,VALE3", "created_at": "2024-03-23T10:00:00-03:00"},
    )


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 5_000, (path, len(data))  # a real chart, not an empty canvas
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 600, image.shape
    assert image.std() > 0.01  # not a blank single-colour picture


def _has_colour(path: Path, rgb: tuple[float, float, float], tol: float = 0.06) -> bool:
    image = imread(path)[..., :3]
    return bool((np.abs(image - np.array(rgb)).max(axis=-1) < tol).any())


GREEN, RED = (0.173, 0.627, 0.173), (0.839, 0.153, 0.157)  # matplotlib's tab:green and tab:red


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """One report of the synthetic run, shared (charts cost ~0.2 s each); its meta holds a URL as plain text."""
    out = tmp_path_factory.mktemp("full") / "nested" / "report"  # created if missing
    run = _run()
    run["meta"]["ollama_host"] = "http://localhost:11434"
    return out, write_report(out, **run)


def test_full_report_files_json_and_html(full: tuple[Path, dict[str, Path]]) -> None:
    out, files = full

    expected = {"metrics.json", "equity.png", "drawdown.png", "trades_PETR4.png", "trades_VALE3.png", "report.html"}
    assert set(files) == expected
    for name, path in files.items():
        assert path == out / name and path.is_file()
    for name in expected - {"metrics.json", "report.html"}:
        _assert_png(files[name])
    assert _has_colour(files["trades_PETR4.png"], GREEN) and _has_colour(files["trades_VALE3.png"], RED)  # markers
    assert _has_colour(files["drawdown.png"], RED)

    text = files["metrics.json"].read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert set(doc) == {"meta", "warnings", "metrics", "baselines", "funnel"}
    assert doc["metrics"]["sortino"] is None  # NaN became null
    assert doc["metrics"]["total_return"] == pytest.approx(0.0834)
    assert doc["warnings"] == [WARNING]
    assert set(doc["baselines"]) == {"buy_and_hold:PETR4", "buy_and_hold:IBOV"}
    assert doc["funnel"]["technical"] == {"pass": 12, "discard": 28}

    page = files["report.html"].read_text(encoding="utf-8")
    escaped_warning = WARNING.replace("'", "&#x27;")
    assert escaped_warning in page
    assert page.index(escaped_warning) < page.index("Strategy against baselines")  # warnings on top
    for name in ("buy_and_hold:PETR4", "buy_and_hold:IBOV"):
        assert name in page
    for src in ("equity.png", "drawdown.png", "trades_PETR4.png", "trades_VALE3.png"):
        assert f'<img src="{src}"' in page
    trades_table = page[page.index("<h2>Trades (6)</h2>"):]
    for text_ in ("PETR4", "VALE3", "30.61", "33.47", "851.76", "-280.81", "SELL (stop)", "SELL (take-profit)",
                  "BUY (open)", "300"):
        assert text_ in trades_table, text_
    assert "+8.34%" in page and ">7.12%<" in page and "50.00%" in page  # fractions shown as percentages
    assert "sentiment" in page and "33.3%" in page  # funnel: 20 discards of 60
    assert "slippage_bps=5.00" in page  # meta table


def test_html_injection_is_escaped(tmp_path: Path) -> None:
    run = _run(evil=True)
    run["warnings"] = [f"bad news for {EVIL}"]
    run["baselines"][f"buy_and_hold:{EVIL}"] = _metrics(0.01)
    files = write_report(tmp_path, **run)
    page = files["report.html"].read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    evil_png = [name for name in files if name.startswith("trades_") and "PETR4" not in name]
    assert len(evil_png) == 1 and re.fullmatch(r"trades_[A-Za-z0-9._-]+\.png", evil_png[0])
    assert files[evil_png[0]].parent == tmp_path  # no path escape through the ticker
    assert f'<img src="{evil_png[0]}"' in page
    _assert_png(files[evil_png[0]])


def test_html_is_offline(full: tuple[Path, dict[str, Path]]) -> None:
    out, files = full
    page = files["report.html"].read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"<(?:script|link|iframe|object|embed)\b", page, re.I)
    assert "url(" not in page and "@import" not in page
    refs = re.findall(r"""(?:src|href)\s*=\s*"([^"]*)\"""", page)
    assert "equity.png" in refs
    for ref in refs:
        assert (out / ref).is_file(), ref  # every reference is a file in the folder: portable
    # the meta URL is shown as text; nothing else on the page mentions http
    assert "http" not in page.replace("<td>http://localhost:11434</td>", "", 1).lower()


def test_none_metrics_render_as_na(tmp_path: Path) -> None:
    run = _run()
    run["metrics"] = {key: None for key in run["metrics"]}
    run["baselines"], run["prices"] = {"quant": {}}, {}
    page = write_report(tmp_path, **run)["report.html"].read_text(encoding="utf-8")
    comparison = page[page.index("Strategy against baselines"):page.index("<h2>Equity</h2>")]
    row = comparison[comparison.index("<th scope=\"row\" class=\"strategy\">strategy</th>"):]
    row = row[:row.index("</tr>")]
    assert row.count("<td>n/a</td>") == 11, row
    assert "None" not in comparison and "nan" not in comparison.lower()
    assert "quant" in comparison
    assert fmt_metric("sharpe", None) == "n/a" and fmt_metric("sharpe", float("nan")) == "n/a"
    assert fmt_metric("max_drawdown", 0.25) == "25.00%" and fmt_metric("total_return", 0.1) == "+10.00%"
    assert fmt_metric("trades", 3) == "3" and fmt_metric("sharpe", np.float64(1.005)) == "1.00"


def test_empty_trades_and_one_point_series_do_not_crash(tmp_path: Path) -> None:
    run = _run(n=1, with_trades=False)
    run["funnel"], run["warnings"], run["meta"] = None, None, None
    files = write_report(tmp_path, **run)
    for name in ("equity.png", "drawdown.png", "trades_PETR4.png", "trades_VALE3.png"):
        data = files[name].read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 2_000
    assert not _has_colour(files["trades_PETR4.png"], GREEN)  # no trades, no buy markers
    page = files["report.html"].read_text(encoding="utf-8")
    assert "no trades" in page and "<h2>Trades (0)</h2>" in page
    assert "Warnings" not in page
    doc = json.loads(files["metrics.json"].read_text())
    assert doc["warnings"] == [] and doc["funnel"] == {} and doc["meta"] == {}


def test_empty_series_do_not_crash(tmp_path: Path) -> None:
    empty = pd.Series(dtype=float)
    files = write_report(tmp_path, title="empty", metrics={}, baselines={}, equity=empty,
                         baseline_equity={"buy_and_hold:IBOV": empty}, trades=[],
                         prices={"PETR4": empty})
    for name in ("equity.png", "drawdown.png", "trades_PETR4.png"):
        assert files[name].read_bytes()[:8] == PNG_SIGNATURE


def test_strict_json_helpers() -> None:
    value = {"a": float("inf"), "b": np.float64("nan"), "c": np.int64(3), "d": pd.Timestamp("2024-01-02"),
             "e": (1, np.bool_(True)), "f": pd.NaT, 7: Path("x/y")}
    out = to_jsonable(value)
    assert out == {"a": None, "b": None, "c": 3, "d": "2024-01-02T00:00:00", "e": [1, True], "f": None, "7": "x/y"}
    json.dumps(out, allow_nan=False)
    s = clean_series(pd.Series([1.0, float("nan"), 3.0, float("inf")],
                               index=pd.DatetimeIndex(["2024-01-03", "2024-01-02", "2024-01-01", "2024-01-04"],
                                                      tz="America/Sao_Paulo")))
    assert list(s.to_numpy()) == [3.0, 1.0] and s.index.tz is None and all(not math.isnan(v) for v in s)
