"""Where audit loggers are made: one place reads the chain's HMAC key from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from quantum_trader.domain.clock import Clock
from quantum_trader.observability.audit.logger import AuditLogger
from quantum_trader.observability.audit.records import Durability

AUDIT_KEY_ENV = "QT_AUDIT_KEY"


def audit_key_from_env(name: str = AUDIT_KEY_ENV) -> bytes | None:
    """The HMAC key for the audit chain from ``$name`` (UTF-8), or None when it is unset.

    The key never comes from a flag or a config file, so it is not in shell history or in a
    repository; with it, someone who can edit the files cannot rebuild a valid chain.
    """
    value = os.environ.get(name, "")
    return value.encode("utf-8") if value else None


def open_audit_logger(
    directory: Path,
    clock: Clock,
    *,
    durability: Durability,
    retention_days: int | None = None,
) -> AuditLogger:
    """An AuditLogger on ``directory`` keyed with ``$QT_AUDIT_KEY`` when it is set."""
    return AuditLogger(
        directory,
        clock,
        durability=durability,
        retention_days=retention_days,
        key=audit_key_from_env(),
    )
