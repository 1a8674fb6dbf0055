"""Talking to LLMs: providers (Ollama, embedded llama.cpp), the host pool, the call, output checks, the cache."""
