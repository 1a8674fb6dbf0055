"""The embedded chat model's contract, with a fake llama.cpp: no reset between calls (the prompt prefix is
reused), free answers first and the JSON grammar only as a fallback, token counts summed; and the
prompts put each layer's unchanging text first."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from agent.config import LAYER_NAMES
from agent.layers import LAYERS
from agent.llm import embedded
from agent.llm.call import render
from agent.llm.compact import answer_template, compact_json
from tests.conftest import make_deps


class FakeLlama:
    def __init__(self, texts):
        self.texts, self.requests = list(texts), []

    def reset(self):
        pytest.fail("the context must keep its KV cache between calls")

    def create_chat_completion(self, **request):
        self.requests.append(request)
        return {"choices": [{"message": {"content": self.texts.pop(0)}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 200, "completion_tokens": 25}}


def model(monkeypatch, texts, grammar="fallback"):
    fake = FakeLlama(texts)
    monkeypatch.setattr(embedded, "load_llama", lambda *a, **k: fake)
    chat = embedded.EmbeddedChatModel(model_path="x.gguf", model_name="Fake", layer="sentiment",
                                      response_schema={"type": "object"}, grammar=grammar, max_tokens=64)
    return chat, fake


def test_a_json_answer_is_taken_as_generated_freely(monkeypatch):
    chat, fake = model(monkeypatch, ['{"sentiment":"positive","score":0.8,"reason":"x"}'])
    message = chat.invoke([SystemMessage("s"), HumanMessage("u")])
    assert "response_format" not in fake.requests[0] and fake.requests[0]["max_tokens"] == 64
    assert message.usage_metadata["input_tokens"] == 200 and message.usage_metadata["output_tokens"] == 25
    assert message.response_metadata["grammar"] is False


def test_prose_is_asked_again_under_the_grammar_and_both_calls_are_counted(monkeypatch):
    chat, fake = model(monkeypatch, ["The sentiment is positive.", '{"sentiment":"positive","score":0.8,"reason":"x"}'])
    message = chat.invoke([SystemMessage("s"), HumanMessage("u")])
    assert [("response_format" in r) for r in fake.requests] == [False, True]
    assert message.content.startswith("{") and message.response_metadata["grammar"] is True
    assert (message.usage_metadata["input_tokens"], message.usage_metadata["output_tokens"]) == (400, 50)


def test_a_reason_cut_by_max_tokens_is_not_asked_again(monkeypatch):
    chat, fake = model(monkeypatch, ['{"sentiment":"negative","score":0.1,"reason":"sales fell and the'])
    chat.invoke([SystemMessage("s"), HumanMessage("u")])
    assert len(fake.requests) == 1  # the decision is there; the parser closes the reason


def test_a_model_that_needs_the_grammar_always_gets_it(monkeypatch):
    chat, fake = model(monkeypatch, ['{"sentiment":"neutral","score":0.5,"reason":"x"}'], grammar="always")
    chat.invoke([SystemMessage("s"), HumanMessage("u")])
    assert fake.requests[0]["response_format"]["schema"] == {"type": "object"}


def test_each_layer_sends_its_unchanging_text_first_and_the_inputs_last(tmp_path):
    """The system message (instructions, template, examples) is the same for every ticker and day, so llama.cpp
    reuses its KV cache; the inputs are compact JSON at the end of the user message."""
    deps = make_deps(tmp_path)
    base = {"layers": [], "headlines": [], "size_factor": 1.0,
            "indicators": {"close": 31.234567, "rsi": 55.55555, "change_5d": 0.0123, "sma_20": 30.0},
            "risk": {"entry": 31.234567, "stop": 30.0, "take_profit": 33.1}, "market": {"bar_date": "2025-06-30"}}
    for layer in LAYER_NAMES:
        s1, u1, schema, _ = render(LAYERS[layer], {**base, "ticker": "VALE3"}, deps)
        s2, u2, _, _ = render(LAYERS[layer], {**base, "ticker": "ITUB4", "market": {"bar_date": "2025-07-01"}}, deps)
        assert s1 == s2, f"{layer}: the system prefix must not depend on the ticker or the day"
        assert u1 != u2 and u1.startswith("VALE3, 2025-06-30: {")
        assert answer_template(schema) in s1
    assert '"close":31.2' in compact_json(base["indicators"]) and "31.234567" not in compact_json(base["indicators"])


def test_the_template_shows_decision_fields_first_and_the_reason_last():
    from agent.llm.call import request_schema

    templates = {layer: answer_template(request_schema(LAYERS[layer])) for layer in LAYER_NAMES}
    # layer 1's score comes before its label: written after "negative", small models write their confidence
    assert templates["sentiment"].startswith('{"score":<number 0 to 1>,"sentiment":"positive"|"neutral"|"negative"')
    assert templates["risk"].startswith('{"approve":true|false,"risk":<number 0 to 1>,"size_factor":<number 0 to 1>')
    for template in templates.values():
        assert template.endswith('"reason":"<at most 15 words>"}')
        assert "cited" not in template  # allowed and checked, never asked of a small model
