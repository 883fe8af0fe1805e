"""``python -m quantum_trader`` runs the ``qtrader`` command (how ``qtrader run`` starts its
processes with the same interpreter)."""

from quantum_trader.cli.app import main

main()
