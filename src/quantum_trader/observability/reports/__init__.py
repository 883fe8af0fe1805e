"""Backtest results, their summary statistics and the files a run writes."""
