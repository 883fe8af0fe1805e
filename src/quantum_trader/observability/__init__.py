"""Observability: reports now; audit log and metrics join here."""
