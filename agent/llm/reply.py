"""What a model call gives back: its raw text and what it cost in tokens."""

from __future__ import annotations

from typing import NamedTuple


class Reply(NamedTuple):
    """The model's raw text (validated later) and its token counts (None when the provider does not say)."""

    text: str
    tokens_in: int | None = None
    tokens_out: int | None = None
