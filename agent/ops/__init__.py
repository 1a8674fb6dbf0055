"""Operations: logs, metrics and their endpoint, alerts."""
