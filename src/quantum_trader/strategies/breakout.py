"""Donchian channel breakout (the Turtle rule), long and short."""

from __future__ import annotations

import numpy as np

from quantum_trader.domain.errors import ConfigError
from quantum_trader.strategies.base import Bars, Signals, TargetUnit
from quantum_trader.strategies.indicators import rolling_max, rolling_min, shift


class DonchianBreakout:
    """Enter on a close beyond the prior ``lookback`` channel; exit on the ``exit_lookback`` one.

    Long when close breaks above the highest high of the previous ``lookback`` bars, short when
    it breaks below the lowest low. A long exits (flat) when close falls below the lowest low of
    the previous ``exit_lookback`` bars, a short when it rises above the highest high. The
    channels exclude the current bar, so a bar never breaks out of a range that contains itself.
    """

    name = "breakout"

    def __init__(
        self,
        lookback: int = 55,
        exit_lookback: int = 20,
        fraction: float = 0.2,
        qty: float | None = None,
    ) -> None:
        if not isinstance(lookback, int) or not isinstance(exit_lookback, int):
            raise ConfigError("breakout: lookback and exit_lookback must be integers")
        if lookback < 2 or not 1 <= exit_lookback <= lookback:
            raise ConfigError(
                f"breakout: need lookback >= 2 and 1 <= exit_lookback <= lookback, "
                f"got {lookback}, {exit_lookback}"
            )
        if not 0 < fraction <= 10:
            raise ConfigError(f"breakout: fraction must be in (0, 10], got {fraction}")
        if qty is not None and not qty > 0:
            raise ConfigError(f"breakout: qty must be > 0, got {qty}")
        self.lookback = lookback
        self.exit_lookback = exit_lookback
        self.fraction = fraction
        self.qty = qty

    @property
    def warmup_bars(self) -> int:
        """The entry channel plus the bar that breaks it."""
        return self.lookback + 1

    def params(self) -> dict[str, float | int | str]:
        """Parameters as given."""
        p: dict[str, float | int | str] = {
            "lookback": self.lookback,
            "exit_lookback": self.exit_lookback,
        }
        if self.qty is not None:
            p["qty"] = self.qty
        else:
            p["fraction"] = self.fraction
        return p

    def signals(self, bars: Bars) -> Signals:
        """Direction +1/-1 on entries, 0 on exits, NaN while nothing happens."""
        close = bars.close
        upper = shift(rolling_max(bars.high, self.lookback))
        lower = shift(rolling_min(bars.low, self.lookback))
        exit_upper = shift(rolling_max(bars.high, self.exit_lookback))
        exit_lower = shift(rolling_min(bars.low, self.exit_lookback))
        entry = np.where(close > upper, 1.0, np.where(close < lower, -1.0, np.nan))
        # The state before each bar decides which exit applies; derive it by forward-filling
        # entries and exits in one pass (entries win over exits on the same bar).
        long_exit = close < exit_lower
        short_exit = close > exit_upper
        state = _run_state(entry, long_exit, short_exit)
        size = self.qty if self.qty is not None else self.fraction
        unit = TargetUnit.QUANTITY if self.qty is not None else TargetUnit.EQUITY_FRACTION
        return Signals(state * size, unit)


def _run_state(entry: np.ndarray, long_exit: np.ndarray, short_exit: np.ndarray) -> np.ndarray:
    """Position state per bar from entry signals and exit conditions (causal).

    Exits depend on the state held, so this is inherently sequential; it loops only over the
    bars where an entry or an exit condition is true, not over every bar.
    """
    n = len(entry)
    out = np.full(n, np.nan)
    events = np.flatnonzero(~np.isnan(entry) | long_exit | short_exit)
    state = 0.0
    for i in events:
        e = entry[i]
        if not np.isnan(e):
            if e != state:
                state = e
                out[i] = state
        elif (state > 0 and long_exit[i]) or (state < 0 and short_exit[i]):
            state = 0.0
            out[i] = 0.0
    return out
