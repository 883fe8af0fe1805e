"""Execution: the exchange port, the simulated perpetuals exchange and the live adapter."""
