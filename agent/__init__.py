"""B3 cascade agent: a LangGraph cascade of local LLMs that decides BUY or HOLD on B3 stocks."""

__version__ = "0.1.0"
