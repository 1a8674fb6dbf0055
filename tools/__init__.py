"""Deterministic tools: indicators and risk maths. No model ever computes these."""
