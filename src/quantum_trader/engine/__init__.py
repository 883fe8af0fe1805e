"""Composition root: settings, and the runners that wire the parts together."""
