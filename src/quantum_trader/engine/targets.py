"""From a strategy's target to an order: the one rule the backtest and the workers share.

A target is a signed fraction of equity (or a signed base quantity) to hold. ``rebalance``
turns it into the order that moves the held position there, on the instrument's lot grid:
quantities round down (never more than asked), a change smaller than half a lot is no order,
and an order that only shrinks a position (or closes it) is reduce-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from quantum_trader.domain.instruments import Instrument
from quantum_trader.strategies.base import TargetUnit


@dataclass(frozen=True, slots=True)
class Rebalance:
    """The order that moves a position to its target.

    Attributes:
        quantity: Signed order quantity on the lot grid; 0.0 when no order is needed.
        reduce_only: The order only shrinks or closes the position.
        below_lot: The target asked for a position, but it rounds to less than one lot.
    """

    quantity: float
    reduce_only: bool = False
    below_lot: bool = False


_NOTHING = Rebalance(0.0)
_BELOW_LOT = Rebalance(0.0, below_lot=True)


def rebalance(
    target: float,
    unit: TargetUnit,
    equity: float,
    price: float,
    held: float,
    inst: Instrument,
) -> Rebalance:
    """Return the order taking ``held`` to ``target`` (in ``unit``) at ``price``."""
    want = target if unit is TargetUnit.QUANTITY else target * equity / price
    want = math.copysign(inst.round_qty_down(want), want) if want else 0.0
    delta = want - held
    if abs(delta) < inst.lot_size * 0.5:
        return _BELOW_LOT if want == 0.0 and target != 0.0 else _NOTHING
    qty = inst.round_qty_down(delta)
    reduce_only = want == 0.0 or (want * held > 0 and abs(want) < abs(held))
    return Rebalance(math.copysign(qty, delta), reduce_only)
