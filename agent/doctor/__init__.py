"""``make doctor``: the original guide's troubleshooting (Ollama, models, latency, memory, disk, market
data) as one command whose every line says OK or the fix. ``python -m agent.doctor``."""
