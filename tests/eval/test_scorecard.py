"""The scorecard's parts that need no model: the held-out split, the lexicon baseline, and the labelled
scenarios built from the real bars (with fake models answering)."""

from __future__ import annotations

from agent.eval.dataset import Example, dev_eval_split
from agent.eval.lexicon import lexicon_label
from agent.eval.scenarios import DEV_DAYS, build_cases, case_state, run_case
from agent.market.csv_files import CsvProvider
from tests.conftest import FakeFactory, make_deps, require_shared_data


def test_the_split_is_balanced_disjoint_and_fixed():
    examples = [Example(i, f"t{i}", "positive" if i % 3 else "negative") for i in range(1, 301)]
    dev, held_out = dev_eval_split(examples, dev_per_class=10, eval_per_class=20)
    assert sorted(e.label for e in dev).count("negative") == 10 and len(dev) == 20
    assert sorted(e.label for e in held_out).count("positive") == 20 and len(held_out) == 40
    assert not {e.row for e in dev} & {e.row for e in held_out}
    assert dev_eval_split(examples, dev_per_class=10, eval_per_class=20) == (dev, held_out)
    # a larger evaluation sample extends the same held-out part; the development part never moves
    dev2, more = dev_eval_split(examples, dev_per_class=10, eval_per_class=30)
    assert dev2 == dev and set(held_out) <= set(more)


def test_the_lexicon_baseline_counts_words_in_both_languages():
    assert lexicon_label("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn") == "positive"
    assert lexicon_label("Net sales fell 15% and the company announced layoffs") == "negative"
    assert lexicon_label("The annual general meeting will be held in Helsinki") == "neutral"
    assert lexicon_label("gol registra prejuizo e queda nas vendas") == "negative"
    assert lexicon_label("lucro do banco cresce e bate recorde") == "positive"


def test_the_scenarios_are_labelled_by_rule_from_the_real_bars():
    require_shared_data()
    cases = build_cases()
    assert cases == build_cases()  # same data, same cases
    layers = {c.layer for c in cases}
    assert layers == {"sentiment", "technical", "risk", "data_validation", "final_score"}
    assert not {(c.ticker, c.day) for c in cases} & DEV_DAYS  # never a day the prompts were written against
    assert {c.expect for c in cases if c.kind == "clearly bad news"} == {"discard"}
    assert all(c.headlines for c in cases if c.kind == "clearly bad news")
    assert any(c.kind == "downtrend before a large fall" for c in cases)


def test_a_scenario_state_carries_its_broken_part_and_the_gate_scores_agreement(tmp_path):
    daily = require_shared_data()
    cases = {c.kind: c for c in build_cases()}
    deps = make_deps(tmp_path, market=CsvProvider(daily), factory=FakeFactory({
        "risk": {"approve": False, "risk": 0.9, "size_factor": 0.0, "reason": "reward/risk far too low"},
        "data_validation": {"valid": True, "score": 0.9, "issues": [], "reason": "looks fine"}}))
    low = case_state(cases["reward/risk 0.3"], deps)
    assert low["risk"]["reward_risk"] == 0.3 and low["risk"]["take_profit"] < low["risk"]["entry"] * 1.01
    assert [v["layer"] for v in low["layers"]] == ["sentiment", "technical"]
    broken = case_state(cases["bars 25 sessions stale"], deps)
    assert broken["market"]["sessions_behind"] == 25
    assert run_case(cases["reward/risk 0.3"], deps)["got"] == "discard"  # agrees with the label
    missed = run_case(cases["bars 25 sessions stale"], deps)  # the fake says valid: a miss, recorded
    assert (missed["expect"], missed["got"], missed["error"]) == ("discard", "pass", None)
