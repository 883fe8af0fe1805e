"""The ``qtrader`` command."""
