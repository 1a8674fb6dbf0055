"""Market data: providers, bar validation, the B3 calendar and the bar cache."""
