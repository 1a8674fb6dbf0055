"""What each layer shows its model: facts in words and signed distances a small model reads right, with
no value lost or invented (the 1.5B model called "+4.9%" a close "below SMA 50" when shown a table)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agent.layers.data_validation import bars_summary, levels_view
from agent.layers.data_validation import inputs as data_inputs
from agent.layers.final_score import inputs as final_inputs
from agent.layers.risk import RiskAnswer, readable_risk
from agent.layers.risk import inputs as risk_inputs
from agent.layers.sentiment import SentimentAnswer
from agent.layers.sentiment import inputs as sentiment_inputs
from agent.layers.spec import move_words
from agent.layers.technical import chart_signals, timeframe_trends

UPTREND = {"close": 10.0, "sma_20": 9.6, "sma_50": 9.5, "sma_200": 8.3, "macd_hist": 0.03, "rsi": 59.0,
           "change_20d": 0.168, "change_5d": 0.012, "adx": 27.0, "bb_percent": 0.66, "volume_ratio": 0.85}


def test_an_uptrend_is_all_bullish_facts_with_their_numbers():
    facts = chart_signals(UPTREND)
    assert facts["bullish"] == ("close above SMA 20, 50 and 200; MACD above its signal line; RSI 59: momentum up; "
                                "up 16.8% in 20 days")  # a 1.2% week is under the 2% that counts as a move
    assert facts["bearish"] == "none" and facts["context"] == "ADX 27: strong trend"


def test_a_falling_chart_is_bearish_and_extremes_are_named():
    ind = {"close": 8.0, "sma_20": 8.9, "sma_50": 9.1, "sma_200": 8.4, "macd_hist": -0.04, "rsi": 27.0,
           "change_20d": -0.147, "change_5d": -0.047, "adx": 14.0, "bb_percent": -0.2, "volume_ratio": 1.7}
    facts = chart_signals(ind, {"1h": "down", "5m": "unavailable"})
    assert facts["bullish"] == "none"
    assert facts["bearish"].startswith("close below SMA 20, 50 and 200; MACD below its signal line; "
                                       "RSI 27: momentum down, oversold; down 14.7% in 20 days; down 4.7% in 5 days")
    assert facts["bearish"].endswith("1h chart trending down") and "5m" not in json.dumps(facts)
    assert facts["context"] == "ADX 14: weak trend; close below the lower Bollinger band; volume 1.7x its 20-day average"


def test_overbought_counts_against_an_entry_and_mixed_averages_split():
    ind = {"close": 10.0, "sma_20": 10.2, "sma_50": 9.0, "rsi": 74.0}
    facts = chart_signals(ind)
    assert facts["bullish"] == "close above SMA 50"
    assert facts["bearish"] == "close below SMA 20; RSI 74: overbought"


def test_warming_up_indicators_make_no_facts():
    assert chart_signals({"close": 10.0}) == {"bullish": "none", "bearish": "none", "context": "none"}


def test_the_daily_timeframe_is_left_out_and_an_unavailable_one_says_so():
    state = {"market": {"timeframes": [{"timeframe": "1d", "trend": "up"}, {"timeframe": "1h", "trend": "flat"},
                                       {"timeframe": "5m", "unavailable": "no intraday source"}]}}
    assert timeframe_trends(state) == {"1h": "flat", "5m": "unavailable"}


@given(st.floats(min_value=-0.9, max_value=5.0, allow_nan=False))
def test_a_move_in_words_keeps_its_sign_and_size(change):
    words = move_words(change)
    if abs(change) < 0.0005:
        assert words == "flat"
    else:
        direction, size = words.split(" ")
        assert direction == ("up" if change > 0 else "down")
        assert abs(float(size.rstrip("%")) - abs(change) * 100) <= 0.05 + 1e-9


def test_with_headlines_layer_1_sees_the_news_alone():
    state = {"headlines": ["Profit falls 40%"], "indicators": {"rsi": 60.0, "change_1d": 0.01}}
    assert sentiment_inputs(state) == {"headlines": ["Profit falls 40%"]}
    no_news = sentiment_inputs({"headlines": [], "indicators": {"rsi": 60.0, "change_1d": 0.01, "change_5d": -0.02,
                                                                "change_20d": 0.0}})
    # the moves the prompt's rule reads, in words; the day's move and RSI are the technical layer's
    assert no_news == {"price_action": {"5_days": "down 2.0%", "20_days": "flat"}}


def test_the_risk_view_shows_distances_and_notes_a_target_nearer_than_the_stop():
    snap = {"entry": 10.0, "atr": 0.2, "stop": 9.6, "take_profit": 10.12, "reward_risk": 0.3, "sharpe": 0.9,
            "max_drawdown": 0.47, "volatility": 0.526, "shares": 1400, "max_loss": 396.0}
    view = readable_risk(snap)
    assert view == {"reward_risk": 0.3, "stop_vs_entry": "-4.0%", "target_vs_entry": "+1.2%", "volatility": "53% a year",
                    "max_drawdown": "47%", "sharpe": 0.9, "note": "the target is nearer than the stop"}
    assert "note" not in readable_risk({**snap, "take_profit": 10.6, "reward_risk": 1.5})


def test_the_levels_show_a_stop_above_the_entry_as_a_positive_distance():
    view = levels_view({"entry": 14.7, "stop": 15.1, "take_profit": 15.5, "shares": 600})
    assert view == {"stop_vs_entry": "+2.7%", "target_vs_entry": "+5.4%"}


def test_a_fact_falls_in_the_band_of_the_number_it_shows():
    assert chart_signals({"rsi": 69.6})["bearish"] == "RSI 70: overbought"
    assert chart_signals({"rsi": 49.6})["bullish"] == "RSI 50: momentum up"
    assert chart_signals({"change_20d": 0.01996})["bullish"] == "up 2.0% in 20 days"
    assert chart_signals({"change_20d": 0.0194})["bullish"] == "none"


def test_a_timeframe_without_a_trend_makes_no_fact():
    state = {"market": {"timeframes": [{"timeframe": "1d"}, {"timeframe": "1h"}]}}
    assert timeframe_trends(state) == {"1h": "unknown"}
    assert chart_signals({}, timeframe_trends(state))["bullish"] == "none"
    assert timeframe_trends({"market": {"timeframes": None}}) == {}


def test_levels_that_are_not_numbers_get_no_distance():
    assert levels_view({"entry": 0.0, "stop": 1.0, "take_profit": 2.0}) == {}
    assert "stop_vs_entry" not in readable_risk({"entry": 10.0, "stop": True, "reward_risk": 2.0})


def test_the_bar_report_is_counts_in_a_few_words():
    report = {"rows_in": 650, "rows_out": 649, "dropped": {"flat_zero_volume": 1},
              "repaired": {"range_widened_to_open_close": 3, "high_below_close": 1}, "first_bar": "2020-01-02"}
    assert bars_summary(report) == "649 of 650 usable (1 dropped, 4 repaired)"
    assert bars_summary({"rows_in": 300, "rows_out": 300, "dropped": {}, "repaired": {}}) == "300 of 300 usable"
    assert bars_summary({"notes": []}) is None


def test_the_final_layer_reads_each_model_s_own_reason_and_the_risk_in_words():
    risk = {"entry": 10.0, "stop": 9.6, "take_profit": 10.6, "reward_risk": 1.5, "sharpe": 0.9, "max_drawdown": 0.2,
            "volatility": 0.3, "shares": 100, "blocks": []}
    layers = [{"layer": "sentiment", "score": 0.85, "reason": "positive sentiment, score 0.85 >= 0.6: rising",
               "output": {"score": 0.85, "sentiment": "positive", "reason": "rising"}},
              {"layer": "risk", "score": None, "reason": "risk rule: daily loss limit reached"}]
    shown = final_inputs({"layers": layers, "risk": risk, "indicators": {"rsi": 60.0}})
    # the gate's sentence repeats score and threshold; a layer decided by code keeps the code's reason
    assert shown["earlier_layers"] == {"sentiment": "0.85: rising", "risk": "risk rule: daily loss limit reached"}
    assert shown["risk"] == {"reward_risk": 1.5, "volatility": "30% a year", "max_drawdown": "20%"}
    assert "indicators" not in shown


def test_the_risk_layer_sees_the_snapshot_alone():
    state = {"risk": {"entry": 10.0, "stop": 9.6, "take_profit": 10.6, "reward_risk": 1.5, "blocks": []},
             "layers": [{"layer": "sentiment", "score": 0.9, "reason": "good"}]}
    assert risk_inputs(state) == {"reward_risk": 1.5, "stop_vs_entry": "-4.0%", "target_vs_entry": "+6.0%"}


def test_the_recorded_score_of_a_risk_answer_is_its_safety():
    assert RiskAnswer(approve=True, risk=0.25, size_factor=1.0, reason="ok").recorded_score() == 0.75
    assert SentimentAnswer(score=0.2, sentiment="negative", reason="bad").recorded_score() == 0.2


def test_the_data_layer_sees_the_feed_s_doubts_only_when_there_are_some():
    market = {"source": "brapi", "sessions_behind": 0, "missing_sessions": 0,
              "report": {"rows_in": 300, "rows_out": 300, "notes": ["brapi sent no adjustedClose: prices are not "
                                                                    "adjusted for dividends"]}}
    risk = {"entry": 10.0, "stop": 9.6, "take_profit": 10.6}
    shown = data_inputs({"market": market, "risk": risk})
    assert shown == {"data_source": "brapi", "bars": "300 of 300 usable",
                     "bar_notes": ["brapi sent no adjustedClose: prices are not adjusted for dividends"],
                     "calendar": {"sessions_behind": 0, "missing_sessions": 0},
                     "levels": {"stop_vs_entry": "-4.0%", "target_vs_entry": "+6.0%"}}
    assert "bar_notes" not in data_inputs({"market": {**market, "report": {"rows_in": 1, "rows_out": 1, "notes": []}},
                                           "risk": risk})
