"""The tamper-evident audit trail: hash-chained JSON Lines, one file per UTC day."""
