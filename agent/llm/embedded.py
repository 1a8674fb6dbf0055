"""The embedded LLMs: llama.cpp in-process, one model per layer from the catalogue, no network.

Models load lazily, on a layer's first call, after ``gguf_files.ensure`` has verified the file.
Each (model file, layer) pair keeps its own llama.cpp context and is never reset between calls:
a layer's prompt starts with its unchanging instructions, so every call after the first
evaluates only the new tail (the ticker's inputs). The weights are memory-mapped once per file
and shared by the contexts; a context costs its KV cache and compute buffers (about 140 MB for
the 1.5B model at n_ctx 2048).

Answers are generated freely and validated by the caller; a model whose free answers are not
JSON (``grammar="always"`` in the catalogue, SmolLM2) or an answer that is not a JSON object
at all is generated again under the JSON-schema grammar, which is slower per token on a CPU.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from agent.errors import LLMError

_ROLE = {"system": "system", "human": "user", "ai": "assistant"}
_LOCK = threading.Lock()  # llama.cpp contexts are not thread-safe; one call at a time in this process
_LOADED: dict[tuple, Any] = {}


def llama_cpp_available() -> str | None:
    """None when llama.cpp can run here, otherwise why not."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (run `make setup`)"
    return None


def _close_all() -> None:
    """Free the models before the interpreter tears down the modules llama.cpp's destructor needs."""
    with _LOCK:
        for llama in _LOADED.values():
            llama.close()
        _LOADED.clear()


@contextmanager
def _plain_cpu_buffers() -> Iterator[None]:
    """Load weights into plain CPU buffers (llama.cpp's ``use_extra_bufts`` off).

    The "extra" buffer types repack weights for AMX/AVX-512 kernels; on some virtual machines
    those kernels die with a general protection fault as soon as a prompt of more than one token
    is evaluated. Plain buffers also let every context of a file share its memory-mapped weights.
    """
    import llama_cpp
    import llama_cpp.llama as llama_module

    original = llama_cpp.llama_model_default_params

    def params():
        p = original()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    llama_module.llama_cpp.llama_model_default_params = params
    try:
        yield
    finally:
        llama_module.llama_cpp.llama_model_default_params = original


def load_llama(model_path: Path, layer: str, n_ctx: int, n_threads: int, seed: int) -> Any:
    """Load (once per process and layer) and return the llama.cpp model."""
    key = (str(model_path), layer, n_ctx, n_threads, seed)
    with _LOCK:
        if key not in _LOADED:
            from llama_cpp import Llama

            if not _LOADED:
                atexit.register(_close_all)
            with _plain_cpu_buffers():
                _LOADED[key] = Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads or None,
                                     seed=seed, verbose=False)
        return _LOADED[key]


def loaded_contexts() -> int:
    return len(_LOADED)


class EmbeddedChatModel(BaseChatModel):
    """A LangChain chat model over one llama.cpp context, answering in JSON."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: Path
    model_name: str
    layer: str = "default"
    response_schema: dict | None = None
    grammar: str = "fallback"  # "fallback" | "always"
    temperature: float = 0.0
    max_tokens: int = 96
    n_ctx: int = 2048
    n_threads: int = 0
    seed: int = 42

    @property
    def _llm_type(self) -> str:
        return "embedded-llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _complete(self, llama: Any, chat: list[dict], stop: list[str] | None, constrained: bool) -> dict:
        request: dict[str, Any] = {"messages": chat, "temperature": self.temperature, "max_tokens": self.max_tokens,
                                   "seed": self.seed, "stop": stop}
        if constrained and self.response_schema is not None:
            request["response_format"] = {"type": "json_object", "schema": self.response_schema}
        with _LOCK:  # no reset(): llama.cpp keeps the longest common prefix of the last prompt
            return llama.create_chat_completion(**request)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        try:
            llama = load_llama(self.model_path, self.layer, self.n_ctx, self.n_threads, self.seed)
        except (ValueError, OSError) as exc:  # llama.cpp refuses the file
            raise LLMError("llm_error", f"llama.cpp could not load {self.model_path}: {exc}") from exc
        chat = [{"role": _ROLE.get(m.type, "user"), "content": str(m.content)} for m in messages]
        constrained = self.grammar == "always"
        out = self._complete(llama, chat, stop, constrained)
        tokens_in, tokens_out = _usage(out)
        text, finish = _text(out)
        if not constrained and self.response_schema is not None and not _looks_like_json(text):
            out = self._complete(llama, chat, stop, True)  # the grammar as a fallback: one more call
            more_in, more_out = _usage(out)
            tokens_in, tokens_out = tokens_in + more_in, tokens_out + more_out
            text, finish = _text(out)
            constrained = True
        message = AIMessage(
            content=text,
            response_metadata={"model_name": self.model_name, "finish_reason": finish, "grammar": constrained},
            usage_metadata={"input_tokens": tokens_in, "output_tokens": tokens_out,
                            "total_tokens": tokens_in + tokens_out},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _usage(out: dict) -> tuple[int, int]:
    usage = out.get("usage") or {}
    return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))


def _text(out: dict) -> tuple[str, str | None]:
    choice = out["choices"][0]
    return choice["message"].get("content") or "", choice.get("finish_reason")


def _looks_like_json(text: str) -> bool:
    """An answer worth validating: it opens a JSON object (a reason cut at max_tokens is repaired later)."""
    start = text.find("{")
    if start == -1:
        return False
    try:
        json.loads(text[start:text.rfind("}") + 1])
        return True
    except ValueError:
        return '"reason"' in text  # cut inside the reason: the decision fields are there


def forget_prefixes() -> None:
    """Clear every context's KV cache, so the next call evaluates its whole prompt (``make bench`` compares)."""
    with _LOCK:
        for llama in _LOADED.values():
            llama.reset()
