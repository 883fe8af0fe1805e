"""Quantum Trader: an autonomous trading system for crypto perpetual futures."""

__version__ = "0.1.0"
