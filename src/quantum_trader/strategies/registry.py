"""Build a strategy by name from string parameters (CLI) or typed ones (config files)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from quantum_trader.domain.errors import ConfigError
from quantum_trader.strategies.ai_ensemble import AiEnsemble
from quantum_trader.strategies.base import Strategy
from quantum_trader.strategies.breakout import DonchianBreakout
from quantum_trader.strategies.sma_cross import SmaCross

STRATEGIES: dict[str, Callable[..., Strategy]] = {
    SmaCross.name: SmaCross,
    DonchianBreakout.name: DonchianBreakout,
    AiEnsemble.name: AiEnsemble,
}


def create_strategy(name: str, params: Mapping[str, object]) -> Strategy:
    """Return the strategy ``name`` built with ``params``; ConfigError names any bad parameter."""
    factory = STRATEGIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}")
    sig = inspect.signature(factory)
    kwargs: dict[str, object] = {}
    for key, raw in params.items():
        p = sig.parameters.get(key)
        if p is None:
            valid = ", ".join(sig.parameters)
            raise ConfigError(f"strategy {name!r} has no parameter {key!r}; valid: {valid}")
        kwargs[key] = _coerce(name, key, raw, p.default)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from exc


def _coerce(strategy: str, key: str, raw: object, default: object) -> object:
    """Turn a CLI string into the type of the parameter's default (int stays int)."""
    if isinstance(default, str):
        return raw  # a text parameter (a path, a name) stays as given
    if not isinstance(raw, str):
        if isinstance(default, int) and isinstance(raw, float) and raw.is_integer():
            return int(raw)
        return raw
    try:
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(raw)
        return float(raw)
    except ValueError:
        raise ConfigError(
            f"strategy {strategy!r}: parameter {key}={raw!r} is not a number"
        ) from None
