"""AI signals: features from candles, a calibrated direction ensemble, walk-forward validation.

The package works on plain arrays and frames (numpy, pandas), never on a strategy's or the
engine's types: ``strategies`` and ``engine`` build on it, not the other way round.

- ``features``: causal features per bar (``compute_features``).
- ``labels``: direction labels over a horizon, and the time each label becomes known.
- ``validation``: purged, embargoed walk-forward splits.
- ``models``: the ensemble (LightGBM + regularised logistic regression, Platt-calibrated).
- ``evaluation``: out-of-sample metrics, calibration table, naive baselines.
- ``artifact``: the versioned model artifact on disk (save, load, validate).
"""
