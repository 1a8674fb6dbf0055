"""Walk-forward backtests: no look-ahead, the LLM cache on rerun, baselines against the CSV, the CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from agent.backtest.baselines import buy_and_hold
from agent.backtest.cli import main
from agent.backtest.engine import quant_deps, walk_forward
from agent.backtest.run import training_overlap
from agent.config import LAYER_NAMES
from agent.eval.passing import LOOSE_RISK, PASS
from agent.llm.cache import LLMCache
from agent.llm.providers import ProviderChoice
from agent.market.csv_files import CsvProvider
from tests.conftest import (
    DAILY_DIR,
    FakeFactory,
    make_deps,
    make_settings,
    require_shared_data,
)

START, END = date(2024, 1, 2), date(2024, 6, 28)  # quant mode trades PETR4 several times here


def csv_settings(data_dir: Path, **extra):
    return make_settings({("market", "source"): "csv", ("market", "data_dir"): data_dir, **extra})


def test_altering_future_bars_never_changes_past_decisions_or_trades(tmp_path):
    require_shared_data()
    cut = pd.Timestamp("2024-04-01")
    original = pd.read_csv(DAILY_DIR / "PETR4.SA.csv")
    altered = original.copy()
    future = pd.to_datetime(altered["Date"]) > cut
    for col in ("Open", "High", "Low", "Close"):
        altered.loc[future, col] *= 3.0  # a crash-and-triple the past must never see
    runs = {}
    for name, frame in (("original", original), ("altered", altered)):
        data = tmp_path / name
        data.mkdir()
        frame.to_csv(data / "PETR4.SA.csv", index=False)
        settings = csv_settings(data)
        market = CsvProvider(data, max_jump=settings.market.max_jump)
        from agent.store.jsonl import DecisionSink

        deps = quant_deps(settings, market, DecisionSink(tmp_path / f"{name}-records"))
        runs[name] = (walk_forward(deps, ["PETR4"], START, END, tmp_path / f"{name}-work"),
                      list(DecisionSink(tmp_path / f"{name}-records").records()))

    def past(records):
        return [(r["decision_id"], r["decision"], r["confidence"], r["discarded_at"]) for r in records
                if pd.Timestamp(r["bar_date"]) <= cut]

    (run_a, rec_a), (run_b, rec_b) = runs["original"], runs["altered"]
    assert past(rec_a) == past(rec_b) and len(past(rec_a)) > 50
    assert run_a.equity.loc[:cut].equals(run_b.equity.loc[:cut])
    assert not run_a.closes["PETR4"].equals(run_b.closes["PETR4"])  # the future really was different
    trades = lambda run: [t for t in run.trades if pd.Timestamp(t["bar_date"]) <= cut]  # noqa: E731
    assert len(trades(run_a)) >= 2 and trades(run_a) == trades(run_b)


def test_decisions_on_day_t_fill_at_the_next_days_open(tmp_path):
    require_shared_data()
    settings = csv_settings(DAILY_DIR)
    deps = quant_deps(settings, CsvProvider(DAILY_DIR), None)
    run = walk_forward(deps, ["PETR4", "VALE3"], START, END, tmp_path)
    opens = [t for t in run.trades if t["action"] == "open"]
    assert opens, "the quant rules bought nothing in the window"
    for trade in opens:
        decided = trade["decision_id"].split("-", 1)[1][:10]
        assert decided < trade["bar_date"]  # never the decision's own bar
        frame = CsvProvider(DAILY_DIR).get_bars(trade["ticker"], end=date.fromisoformat(trade["bar_date"]),
                                                lookback=5).frame
        assert frame.index[-1].date().isoformat() == trade["bar_date"]
        assert trade["price"] == pytest.approx(frame["open"].iloc[-1] * (1 + settings.broker.slippage_bps / 1e4),
                                               abs=1e-4)  # the broker rounds prices to 4 decimals
        previous_session = frame.index[-2].date().isoformat()
        assert decided == previous_session  # the very next session, not later


def test_a_cascade_rerun_is_served_from_the_cache_with_zero_llm_calls(tmp_path, stores):
    settings = make_settings(LOOSE_RISK)
    results = []
    for attempt in range(2):
        factory = FakeFactory(PASS)
        deps = make_deps(tmp_path, settings=settings, factory=factory)
        deps.llm_cache = LLMCache(stores.new("cache"))
        deps.market.today = date(2025, 3, 31)
        run = walk_forward(deps, ["PETR4"], date(2025, 3, 3), date(2025, 3, 31), tmp_path / f"run{attempt}")
        results.append((run, list(factory.calls)))
        deps.llm_cache.close()
    (first, first_calls), (second, second_calls) = results
    assert first_calls and first.llm_calls_made == len(first_calls) and first.cache_hits == 0
    assert second_calls == [] and second.llm_calls_made == 0
    assert second.cache_hits == second.llm_layer_calls == first.llm_layer_calls
    assert second.trades == first.trades and second.equity.equals(first.equity)


def test_a_model_pulled_again_under_the_same_tag_is_asked_again_not_replayed(tmp_path):
    """The cache keys an Ollama model by its weights' digest: new weights under the same tag are another model."""
    settings = make_settings(LOOSE_RISK)
    models = {layer: settings.layers.model_for(layer) for layer in LAYER_NAMES}
    calls = []
    for digest in ("a" * 64, "a" * 64, "b" * 64):
        factory = FakeFactory(PASS)
        deps = make_deps(tmp_path, settings=settings, factory=factory)
        deps.provider = ProviderChoice("ollama", "tests", models, {layer: digest for layer in LAYER_NAMES})
        deps.llm_cache = LLMCache(tmp_path / "cache.db")
        deps.market.today = date(2025, 3, 31)
        walk_forward(deps, ["PETR4"], date(2025, 3, 24), date(2025, 3, 31), tmp_path / f"run-{len(calls)}")
        deps.llm_cache.close()
        calls.append(len(factory.calls))
    assert calls[0] > 0 and calls[1] == 0 and calls[2] == calls[0]


def test_buy_and_hold_matches_a_direct_computation_from_the_csv(tmp_path):
    require_shared_data()
    raw = pd.read_csv(DAILY_DIR / "VALE3.SA.csv", parse_dates=["Date"], index_col="Date")
    window = raw.loc[str(START):str(END), "Close"]
    expected = window.iloc[-1] / window.iloc[0] - 1
    settings = csv_settings(DAILY_DIR)
    run = walk_forward(quant_deps(settings, CsvProvider(DAILY_DIR), None), ["VALE3"], START, END, tmp_path)
    curve = buy_and_hold(run.closes["VALE3"], 100_000.0)
    assert curve.iloc[-1] / curve.iloc[0] - 1 == pytest.approx(expected, rel=1e-9)


def test_the_training_period_warning_names_each_model(tmp_path):
    deps = make_deps(tmp_path)
    deps.provider.models.update({"sentiment": "smollm2:1.7b", "technical": "mistral:7b"})
    warnings = training_overlap(deps, date(2021, 1, 1))
    assert any("smollm2:1.7b" in w and "2024-11-01" in w for w in warnings)
    assert any("unknown" in w and "fake-risk" in w for w in warnings)
    assert not [w for w in training_overlap(deps, date(2026, 1, 1)) if "mistral" in w]


def test_cli_quant_json_on_real_data_has_metrics_and_baselines(capsys):
    require_shared_data()
    code = main(["--tickers", "PETR4,VALE3", "--start", "2023-01-02", "--end", "2023-12-29", "--source", "csv",
                 "--data-dir", str(DAILY_DIR), "--mode", "quant", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["baselines"]) == {"buy_and_hold:PETR4", "buy_and_hold:VALE3", "buy_and_hold:IBOV"}
    m = result["metrics"]
    for key in ("total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "profit_factor",
                "exposure", "trades", "llm_calls_per_decision", "decisions"):
        assert key in m
    assert m["llm_calls_per_decision"] == 0 and m["decisions"] > 400
    assert result["meta"]["mode"] == "quant" and result["warnings"] == []


def test_cli_rejects_bad_arguments_with_exit_2(capsys):
    assert main(["--tickers", "PETR4", "--start", "2023-12-01", "--end", "2023-01-01"]) == 2
    assert main(["--tickers", "NOT A TICKER", "--start", "2023-01-01", "--end", "2023-02-01"]) == 2
    assert main(["--tickers", "PETR4", "--start", "yesterday", "--end", "2023-02-01"]) == 2


@pytest.mark.slow
def test_cascade_mode_with_the_embedded_model_then_a_rerun_from_the_cache(tmp_path, monkeypatch, capsys):
    from agent.llm.providers import embedded_runtime_available

    if embedded_runtime_available() is not None:
        pytest.skip(embedded_runtime_available())
    require_shared_data()
    monkeypatch.setenv("LLM_CACHE_PATH", str(tmp_path / "cache.db"))
    args = ["--tickers", "PETR4", "--start", "2024-06-03", "--end", "2024-06-12", "--source", "csv",
            "--data-dir", str(DAILY_DIR), "--mode", "cascade", "--provider", "embedded", "--json"]
    results = []
    for run in range(2):
        assert main([*args, "--report", str(tmp_path / f"report{run}")]) == 0
        results.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    first, second = (r["metrics"] for r in results)
    assert first["decisions"] == second["decisions"] == 8
    assert first["llm_calls_made"] > 0 and first["cache_hits"] == 0
    assert second["llm_calls_made"] == 0 and second["cache_hit_rate"] == 1.0  # the rerun made no LLM call
    assert results[0]["baselines"].keys() >= {"buy_and_hold:PETR4", "buy_and_hold:IBOV", "quant"}
    assert any("qwen2.5-coder" in w.lower() for w in results[0]["warnings"])  # released after June 2024
    assert (tmp_path / "report1" / "report.html").is_file()


def test_trading_days_reach_before_the_calendar_and_skip_b3_holidays_within_it():
    from agent.backtest.engine import trading_days

    assert trading_days(date(2012, 1, 2), date(2012, 1, 8)) == [date(2012, 1, d) for d in range(2, 7)]
    late = trading_days(date(2019, 12, 23), date(2019, 12, 27))
    assert date(2019, 12, 25) not in late and date(2019, 12, 23) in late


def test_the_training_warning_uses_the_most_specific_release_date(tmp_path):
    settings = make_settings({("backtest", "model_releases"): {"mistral": date(2024, 5, 22),
                                                                "mistral-small3.1": date(2025, 3, 17)}})
    deps = make_deps(tmp_path, settings=settings)
    deps.provider.models.update({layer: "mistral-small3.1:24b" for layer in deps.provider.models})
    warnings = training_overlap(deps, date(2025, 1, 2))
    assert warnings and all("2025-03-17" in w for w in warnings)


def test_a_backtest_never_fetches_an_rss_feed_and_says_it_ran_without_news(tmp_path):
    """A feed has today's headlines only: none is dated inside a past window, so it is not fetched per day."""
    from agent.backtest.run import run_backtest
    from agent.news.feeds import RssNewsProvider

    fetched = []
    deps = make_deps(tmp_path, settings=make_settings(LOOSE_RISK))
    deps.news = RssNewsProvider(["https://example.com/feed.xml"], 1.0, fetch=lambda url, timeout: fetched.append(url))
    deps.market.today = date(2025, 3, 31)
    result = run_backtest(deps.settings, deps, ["PETR4"], date(2025, 3, 24), date(2025, 3, 31), tmp_path / "bt",
                          quant_baseline=False)
    assert fetched == [] and deps.news is None
    assert any("RSS feeds carry only current headlines" in w for w in result["warnings"])
