"""Walk-forward backtests of the cascade and their reports (python -m agent.backtest)."""
