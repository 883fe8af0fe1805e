"""Store ports and their backends: in-memory (tests), SQLite (embedded default), Redis (later)."""
