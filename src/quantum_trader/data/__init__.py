"""Market data: load, validate, repair, resample; the synthetic generator."""
