"""The five LLM layers of the cascade: one module per layer, mirroring prompts/."""
