"""Persistence: the database interface (SQLite or Postgres) and append-only JSONL."""
