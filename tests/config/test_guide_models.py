"""The original guide's model variables: OLLAMA_MODEL_FAST is layer 1 (the fast filter), STANDARD 2,
REASONING 3, CODER 4 and SENTIMENT layer 5 (the final score); the start-up banner says which model
answers each layer."""

from __future__ import annotations

import pytest

from agent.config import LAYER_NAMES
from agent.trace import announce_models
from tests.conftest import make_deps, make_settings

GUIDE_ORDER = ("OLLAMA_MODEL_FAST", "OLLAMA_MODEL_STANDARD", "OLLAMA_MODEL_REASONING", "OLLAMA_MODEL_CODER",
               "OLLAMA_MODEL_SENTIMENT")


def test_each_model_variable_sets_the_guides_layer():
    s = make_settings(environ={name: f"model-{i}" for i, name in enumerate(GUIDE_ORDER, start=1)})
    assert [s.layers.model_for(layer) for layer in LAYER_NAMES] == [f"model-{i}" for i in range(1, 6)]


@pytest.mark.parametrize(("name", "layer"), [("OLLAMA_MODEL_FAST", "sentiment"),
                                             ("OLLAMA_MODEL_SENTIMENT", "final_score")])
def test_fast_is_the_filter_and_sentiment_the_final_score(name, layer):
    assert make_settings(environ={name: "picked:1b"}).layers.model_for(layer) == "picked:1b"


def test_the_start_up_banner_lists_each_layers_model_and_its_variable(tmp_path, capsys):
    deps = make_deps(tmp_path, settings=make_settings(environ={"OLLAMA_MODEL_FAST": "smollm2:1.7b-instruct-q4_K_M"}))
    capsys.readouterr()
    announce_models(deps)
    err = capsys.readouterr().err
    for i, (layer, name) in enumerate(zip(LAYER_NAMES, GUIDE_ORDER), start=1):
        line = next(line for line in err.splitlines() if f"layer {i} {layer}" in line)
        assert name in line and deps.provider.models[layer] in line
        assert f"configured: {deps.settings.layers.model_for(layer)}" in line  # the fake provider answers instead
