"""Shipped test helpers: builders of market data and small strategies for scenarios."""
