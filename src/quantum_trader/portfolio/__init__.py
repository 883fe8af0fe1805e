"""Accounting: positions, PnL, fees, funding, margin, equity, liquidation."""
