"""Safety core: policy logic, RiskGuard, drawdown monitor, emergency stop, coordinator."""
