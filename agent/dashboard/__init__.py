"""The web dashboard: decisions, the cascade funnel, portfolio and equity, loop health, backtests."""
