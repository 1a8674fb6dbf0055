"""The five LLM layers of the cascade, one module each (mirroring prompts/), in cascade order.

Each module holds its layer's answer schema, the inputs it sees, its deterministic precheck, its
gate and the rule that replaces the LLM in ``quant`` mode; ``LAYERS`` lists them in order.
"""

from agent.layers import data_validation, final_score, risk, sentiment, technical
from agent.layers.spec import LayerSpec

LAYERS: dict[str, LayerSpec] = {m.SPEC.name: m.SPEC for m in (sentiment, technical, risk, data_validation, final_score)}
