"""The Ollama host pool against several local Ollama stubs on loopback: pinning, spreading, a host that
dies mid-cycle, rejoining, and a full layer-major cycle across the pool."""

from __future__ import annotations

import json
import threading

import pytest

from agent.config import LAYER_NAMES
from agent.deps import build_deps
from agent.errors import LLMTransientError
from agent.eval.ollama_stub import OllamaStub
from agent.eval.passing import LOOSE_RISK, PASS
from agent.llm.host_pool import HostPool
from agent.ops.metrics import COUNTERS
from agent.scheduler import LayerMajorScheduler
from tests.conftest import make_settings

MODELS = {getattr(make_settings().layers, layer).model: json.dumps(PASS[layer]) for layer in LAYER_NAMES}


@pytest.fixture
def stubs():
    started = [OllamaStub(models=list(MODELS), content=MODELS).start() for _ in range(3)]
    yield started
    for stub in started:
        stub.stop()


def fake_call(host: str) -> str:
    return host


def test_models_are_pinned_to_the_hosts_that_have_them():
    with OllamaStub(models=["mistral:7b"]) as a, OllamaStub(models=["gemma3:4b"]) as b:
        pool = HostPool([a.url, b.url], parallel=1)
        assert pool.hosts_with("mistral:7b") == [a.url] and pool.hosts_with("gemma3:4b") == [b.url]
        assert pool.call("gemma3:4b", fake_call) == b.url
        with pytest.raises(LLMTransientError, match="no healthy Ollama host has qwen"):
            pool.call("qwen2.5-coder:7b", fake_call)


def test_requests_spread_across_hosts_and_respect_the_per_host_limit(stubs):
    pool = HostPool([s.url for s in stubs[:2]], parallel=1)
    inside, most, used = [0], [0], []
    lock, gate = threading.Lock(), threading.Barrier(2)

    def slow(host):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            used.append(host)
        gate.wait(timeout=5)  # both requests are in flight at once, one per host
        with lock:
            inside[0] -= 1
        return host

    threads = [threading.Thread(target=pool.call, args=("mistral:7b", slow)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(used) == sorted(s.url for s in stubs[:2]) and most[0] == 2


def test_a_dead_host_leaves_the_pool_and_the_request_moves_on(stubs):
    a, b = stubs[0], stubs[1]
    pool = HostPool([a.url, b.url], parallel=1, retry_after_s=3600)
    calls = []

    def on(host):
        calls.append(host)
        if host == a.url:
            raise LLMTransientError("connection", "connection refused")
        return host

    assert pool.call("mistral:7b", on) in (a.url, b.url)
    assert pool.call("mistral:7b", on) == b.url
    assert pool.hosts_with("mistral:7b") == [b.url]
    assert COUNTERS.get("ollama_failovers_total") == 1 and COUNTERS.get("ollama_host_failures_total", host=a.url) == 1
    assert COUNTERS.gauge("ollama_host_healthy", host=a.url) == 0.0


def test_a_host_rejoins_when_it_answers_again(stubs):
    a, b = stubs[0], stubs[1]
    now = [0.0]
    pool = HostPool([a.url, b.url], parallel=1, retry_after_s=10, monotonic=lambda: now[0])
    a.stop()
    with pytest.raises(LLMTransientError):
        pool.call("mistral:7b", lambda host: (_ for _ in ()).throw(LLMTransientError("connection", "down")))
    assert pool.hosts_with("mistral:7b") == []
    a.start()  # same port
    now[0] = 5
    pool.recheck()
    assert pool.hosts_with("mistral:7b") == []  # not probed before retry_after_s
    now[0] = 11
    pool.recheck()
    assert a.url in pool.hosts_with("mistral:7b")
    assert COUNTERS.get("ollama_host_joins_total", host=a.url) >= 2  # at start, and on rejoining


def test_a_cycle_across_the_pool_survives_a_host_dying_mid_cycle(tmp_path, stubs):
    settings = make_settings({**LOOSE_RISK, ("llm", "provider"): "ollama", ("ollama", "hosts"): [s.url for s in stubs],
                              ("ollama", "retry_after_s"): 3600, ("logging", "dir"): tmp_path / "logs"})
    deps = build_deps(settings)
    assert deps.host_pool is not None and deps.provider.name == "ollama"
    victim = stubs[0]
    seen = {"n": 0}
    original = victim.answer

    def die_after_two(body):
        seen["n"] += 1
        if seen["n"] == 2:
            threading.Thread(target=victim.stop, daemon=True).start()  # the host dies mid-cycle
        return original(body)

    victim.answer = die_after_two
    tickers = ["PETR4", "VALE3", "ITUB4", "BBDC4", "ABEV3", "WEGE3"]
    results = LayerMajorScheduler(deps).run(tickers)
    assert all(isinstance(r, dict) and r["decision"] == "BUY" for r in results.values()), results
    assert all(len(r["layers"]) == 5 and all(lr["error"] is None for lr in r["layers"]) for r in results.values())
    served = [len(s.requests) for s in stubs]
    assert served[1] > 0 and served[2] > 0  # the load was spread
    assert victim.url not in deps.host_pool.hosts_with(settings.layers.sentiment.model)
    # model switches are counted per host: at most one per layer on each host
    for stub in stubs:
        assert COUNTERS.get("model_switches_total", host=stub.url) <= len(LAYER_NAMES) - 1


def test_the_pool_is_a_start_up_choice_with_every_model_somewhere(stubs):
    settings = make_settings({("llm", "provider"): "ollama", ("ollama", "hosts"): [stubs[0].url, "http://127.0.0.1:9"]})
    deps = build_deps(settings, sink=False)
    assert "1/2 hosts up" in deps.provider.reason
    assert deps.host_pool.hosts_with(settings.layers.technical.model) == [stubs[0].url]


def test_a_host_that_keeps_timing_out_leaves_the_pool(stubs):
    from agent.errors import LLMError

    a, b = stubs[0], stubs[1]
    pool = HostPool([a.url], parallel=1, retry_after_s=3600)
    pool.hosts.append(type(pool.hosts[0])(b.url, healthy=True, models=set(pool.hosts[0].models)))

    def hung_a(host):
        if host == a.url:
            raise LLMError("timeout", "LLM call timed out")
        return host

    outcomes = []
    for _ in range(6):
        try:
            outcomes.append(pool.call("mistral:7b", hung_a))
        except LLMError:
            outcomes.append("timeout")
    assert outcomes.count("timeout") == 2  # two strikes, then only the healthy host is used
    assert pool.hosts_with("mistral:7b") == [b.url]


def test_a_reset_mid_reply_fails_over_like_a_refused_connection(tmp_path, stubs):
    import httpx

    from agent.layers import LAYERS
    from agent.llm.call import invoke_on
    from tests.conftest import make_deps

    deps = make_deps(tmp_path)

    class Resetting:
        def invoke(self, messages):
            raise httpx.ReadError("[Errno 104] Connection reset by peer")

    deps.model = lambda layer, schema, host=None: Resetting()
    with pytest.raises(LLMTransientError):
        invoke_on(deps, LAYERS["sentiment"], {}, "s", "u", None)
