"""The metric catalogue: every metric Quantum Trader exports, as data.

``CATALOGUE`` is the single source of truth. ``MetricsLogger`` creates its metrics from it,
``MetricsAggregator`` validates against it, ``docs/metrics.md`` is rendered from it and the
deploy tests check the Grafana dashboard against it. Names exclude the ``quantum_trader_``
namespace prefix that the exposition adds.

Label values are bounded so a label can never explode into one series per event: each label
is a fixed choice, a code (a StrEnum member or a lowercase ``snake_case`` word of at most
``CODE_MAX_LENGTH`` characters) or an exchange symbol. Free text (an error message, an order
id) is rejected with ValueError.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

from quantum_trader.domain.orders import OrderSide, OrderType
from quantum_trader.domain.trading import Liquidity
from quantum_trader.observability.audit.records import AuditEventType

NAMESPACE = "quantum_trader"
CODE_MAX_LENGTH = 64
_CODE = re.compile(r"[a-z][a-z0-9_]*")
_SYMBOL = re.compile(r"[A-Z0-9]{2,20}")
_METRIC_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")

RISK_MODES = ("safe", "normal", "aggressive", "critical")
TRADING_STATES = ("active", "reducing", "halted")
ACTOR_KINDS = ("human", "ai_hfos", "system")
DIRECTIONS = ("up", "down", "flat")
ORDER_OUTCOMES = ("filled", "canceled", "rejected", "expired")

# Latency: 1 µs .. 10 s in 1-2.5-5 steps, so p50/p99 stay meaningful from an in-memory
# risk check (microseconds) to an exchange round trip (seconds).
LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    1e-6,
    2.5e-6,
    5e-6,
    1e-5,
    2.5e-5,
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Confidence of a direction call: coarse below 0.5 (rarely acted on), fine above it.
CONFIDENCE_BUCKETS: tuple[float, ...] = (
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.55,
    0.6,
    0.65,
    0.7,
    0.75,
    0.8,
    0.85,
    0.9,
    0.95,
    1.0,
)


class MetricKind(StrEnum):
    """The Prometheus metric types the catalogue uses."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class LabelKind(StrEnum):
    """How a label's values are bounded."""

    CHOICE = "choice"
    CODE = "code"
    SYMBOL = "symbol"


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """One label: its name, what it means and how its values are bounded."""

    name: str
    meaning: str
    kind: LabelKind
    choices: tuple[str, ...] = ()

    def check(self, value: object) -> str:
        """Return ``value`` as the label string, or raise ValueError if it is not allowed."""
        if isinstance(value, Enum):
            text = value.value
            if self.kind is LabelKind.CODE and isinstance(value, StrEnum):
                return str(text)  # an enum is a closed set, so its values are bounded
        else:
            text = value
        if not isinstance(text, str):
            raise ValueError(f"label {self.name!r} needs a string, got {type(value).__name__}")
        if self.kind is LabelKind.CHOICE:
            if text in self.choices:
                return text
            raise ValueError(f"label {self.name!r} must be one of {self.choices}, got {text!r}")
        if self.kind is LabelKind.SYMBOL:
            if _SYMBOL.fullmatch(text):
                return text
            raise ValueError(
                f"label {self.name!r} must be an exchange symbol like BTCUSDT, got {text!r}"
            )
        if len(text) <= CODE_MAX_LENGTH and _CODE.fullmatch(text):
            return text
        raise ValueError(
            f"label {self.name!r} must be a code (StrEnum member or snake_case word of at most "
            f"{CODE_MAX_LENGTH} characters), not free text: {text[:80]!r}"
        )

    def describe_values(self) -> str:
        """Describe the allowed values in one line, for the docs."""
        if self.kind is LabelKind.CHOICE:
            return ", ".join(f"`{choice}`" for choice in self.choices)
        if self.kind is LabelKind.SYMBOL:
            return "exchange symbol matching `^[A-Z0-9]{2,20}$`"
        return (
            f"code: a StrEnum member or `^[a-z][a-z0-9_]*$`, at most {CODE_MAX_LENGTH} characters"
        )


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: name without namespace, type, labels in order, meaning, histogram buckets."""

    name: str
    kind: MetricKind
    meaning: str
    labels: tuple[LabelSpec, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def full_name(self) -> str:
        """The exported name, with the namespace prefix."""
        return f"{NAMESPACE}_{self.name}"

    @property
    def label_names(self) -> tuple[str, ...]:
        """The label names in the order helpers pass their values."""
        return tuple(label.name for label in self.labels)

    def check_labels(self, values: tuple[object, ...]) -> tuple[str, ...]:
        """Return the label strings for ``values`` (in label order), or raise ValueError."""
        if len(values) != len(self.labels):
            raise ValueError(
                f"{self.name} takes labels {self.label_names}, got {len(values)} values"
            )
        return tuple(label.check(value) for label, value in zip(self.labels, values, strict=True))


def _choice(name: str, meaning: str, choices: Iterable[str]) -> LabelSpec:
    return LabelSpec(name, meaning, LabelKind.CHOICE, tuple(choices))


SYMBOL = LabelSpec("symbol", "exchange symbol", LabelKind.SYMBOL)
SIDE = _choice("side", "order or entry side", (side.value for side in OrderSide))
ORDER_TYPE = _choice("order_type", "how the order executes", (kind.value for kind in OrderType))
OUTCOME = _choice("outcome", "final status of the order", ORDER_OUTCOMES)
LIQUIDITY = _choice("liquidity", "maker or taker fill", (kind.value for kind in Liquidity))
REASON = LabelSpec("reason", "reason code", LabelKind.CODE)
OPERATION = LabelSpec("operation", "timed operation", LabelKind.CODE)
MODEL = LabelSpec("model", "model name", LabelKind.CODE)
DIRECTION = _choice("direction", "predicted price direction", DIRECTIONS)
MODE = _choice("mode", "risk mode", RISK_MODES)
FROM_MODE = _choice("from_mode", "risk mode before the transition", RISK_MODES)
TO_MODE = _choice("to_mode", "risk mode after the transition", RISK_MODES)
STATE = _choice("state", "trading state", TRADING_STATES)
EVENT_TYPE = _choice("event_type", "audit event type", (kind.value for kind in AuditEventType))
ACTOR_KIND = _choice("actor_kind", "who changed the policy", ACTOR_KINDS)

_C, _G, _H = MetricKind.COUNTER, MetricKind.GAUGE, MetricKind.HISTOGRAM

CATALOGUE: tuple[MetricSpec, ...] = (
    # Trading
    MetricSpec(
        "trades_total", _C, "Round-trip trades opened, by symbol and entry side.", (SYMBOL, SIDE)
    ),
    MetricSpec(
        "orders_total",
        _C,
        "Orders that reached a final status, by symbol, side, type and outcome.",
        (SYMBOL, SIDE, ORDER_TYPE, OUTCOME),
    ),
    MetricSpec(
        "order_rejections_total", _C, "Orders the venue rejected, by reason code.", (REASON,)
    ),
    MetricSpec(
        "fills_total", _C, "Fills (executions), by symbol and liquidity.", (SYMBOL, LIQUIDITY)
    ),
    MetricSpec("fees_usdt_total", _C, "Trading fees paid, in USDT."),
    MetricSpec("funding_paid_usdt_total", _C, "Funding payments paid, in USDT."),
    MetricSpec("funding_received_usdt_total", _C, "Funding payments received, in USDT."),
    # Account
    MetricSpec(
        "realized_pnl_usdt", _G, "Realized PnL since start, in USDT, before fees and funding."
    ),
    MetricSpec("unrealized_pnl_usdt", _G, "Unrealized PnL of open positions at mark, in USDT."),
    MetricSpec("equity_usdt", _G, "Mark-to-market equity (wallet + unrealized PnL), in USDT."),
    MetricSpec("drawdown_ratio", _G, "Drawdown from the equity peak: (peak - equity) / peak."),
    MetricSpec(
        "position_quantity", _G, "Signed position size in contracts; short is negative.", (SYMBOL,)
    ),
    # Latency and models
    MetricSpec(
        "latency_seconds",
        _H,
        "Duration of an operation, in seconds (monotonic clock).",
        (OPERATION,),
        LATENCY_BUCKETS_SECONDS,
    ),
    MetricSpec(
        "model_predictions_total",
        _C,
        "Model predictions, by model and direction.",
        (MODEL, DIRECTION),
    ),
    MetricSpec(
        "model_confidence",
        _H,
        "Calibrated confidence of each model prediction (0..1).",
        buckets=CONFIDENCE_BUCKETS,
    ),
    MetricSpec(
        "sizing_fallbacks_total",
        _C,
        "Times the rule-based sizer replaced the RL sizing agent, by reason code.",
        (REASON,),
    ),
    # Risk and safety
    MetricSpec(
        "risk_denials_total", _C, "Order intents the RiskGuard denied, by reason code.", (REASON,)
    ),
    MetricSpec(
        "emergency_stops_total", _C, "Emergency stop activations, by reason code.", (REASON,)
    ),
    MetricSpec("emergency_stop_active", _G, "1 while the emergency stop is latched, else 0."),
    MetricSpec("risk_mode", _G, "1 for the active risk mode, 0 for the others.", (MODE,)),
    MetricSpec(
        "risk_mode_transitions_total",
        _C,
        "Risk mode changes, by previous and new mode.",
        (FROM_MODE, TO_MODE),
    ),
    MetricSpec("trading_state", _G, "1 for the current trading state, 0 for the others.", (STATE,)),
    MetricSpec("subsystems_critical", _G, "Subsystems the coordinator scores CRITICAL."),
    MetricSpec("subsystems_degraded", _G, "Subsystems the coordinator scores DEGRADED."),
    MetricSpec(
        "policy_changes_total", _C, "Policy document changes, by kind of actor.", (ACTOR_KIND,)
    ),
    # Audit
    MetricSpec("audit_records_total", _C, "Audit records written, by event type.", (EVENT_TYPE,)),
    MetricSpec(
        "audit_write_failures_total", _C, "Failed audit writes (trading stops while failing)."
    ),
    MetricSpec(
        "audit_healthy",
        _G,
        "1 while the audit log can be written; 0 when writes fail or before it reports.",
    ),
    # Backtest
    MetricSpec("bars_processed_total", _C, "Market data bars processed by the engine."),
    MetricSpec(
        "backtest_bars_per_second", _G, "Throughput of the last backtest, in bars per second."
    ),
)

CATALOGUE_BY_NAME: Mapping[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}


def check_catalogue(catalogue: Iterable[MetricSpec] = CATALOGUE) -> None:
    """Raise ValueError if a spec breaks the naming rules (run by the tests and at import)."""
    seen: set[str] = set()
    for spec in catalogue:
        if spec.name in seen:
            raise ValueError(f"metric {spec.name} is defined twice")
        seen.add(spec.name)
        if not _METRIC_NAME.fullmatch(spec.name):
            raise ValueError(f"metric {spec.name} is not snake_case")
        if (spec.kind is MetricKind.COUNTER) != spec.name.endswith("_total"):
            raise ValueError(f"metric {spec.name}: counters, and only counters, end in _total")
        if (spec.kind is MetricKind.HISTOGRAM) != bool(spec.buckets):
            raise ValueError(f"metric {spec.name}: histograms, and only histograms, have buckets")
        if list(spec.buckets) != sorted(spec.buckets) or not all(map(math.isfinite, spec.buckets)):
            raise ValueError(f"metric {spec.name}: buckets must be finite and ascending")
        if len(set(spec.label_names)) != len(spec.labels):
            raise ValueError(f"metric {spec.name} repeats a label")


check_catalogue()


def kind_error(name: str, wanted: MetricKind) -> Exception:
    """Return the error for using metric ``name`` as a ``wanted``: KeyError if it is unknown."""
    spec = CATALOGUE_BY_NAME.get(name)
    if spec is None:
        return KeyError(f"no metric {name!r} in the catalogue")
    return ValueError(f"metric {name!r} is a {spec.kind}, not a {wanted}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_catalogue_markdown(catalogue: Iterable[MetricSpec] = CATALOGUE) -> str:
    """Render the catalogue as the Markdown of ``docs/metrics.md``."""
    specs = tuple(catalogue)
    lines = [
        "# Metrics",
        "",
        "<!-- Generated from quantum_trader.observability.metrics.catalogue; do not edit.",
        "     Regenerate with: python -m quantum_trader.observability.metrics docs/metrics.md -->",
        "",
        f"Every metric is exported with the `{NAMESPACE}_` prefix on `/metrics`; `qtrader serve`",
        "listens on <http://127.0.0.1:9108/metrics> by default. Counters only grow: chart them",
        "with `rate(...[5m])`. Histograms export `_bucket`, `_sum` and `_count` series: chart",
        "quantiles with `histogram_quantile`. `deploy/` holds the Prometheus scrape configuration",
        "and a Grafana dashboard.",
        "",
        "| name | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    for spec in specs:
        labels = ", ".join(f"`{name}`" for name in spec.label_names) or "-"
        lines.append(f"| `{spec.full_name}` | {spec.kind} | {labels} | {_cell(spec.meaning)} |")
    lines += [
        "",
        "## Labels",
        "",
        "Label values are bounded; anything else raises ValueError where it is recorded.",
        "",
        "| label | meaning | values |",
        "|---|---|---|",
    ]
    labels_by_name: dict[str, LabelSpec] = {}
    for spec in specs:
        for label in spec.labels:
            labels_by_name.setdefault(label.name, label)
    for label in labels_by_name.values():
        lines.append(f"| `{label.name}` | {label.meaning} | {_cell(label.describe_values())} |")
    lines += ["", "## Histogram buckets", "", "| name | upper bounds |", "|---|---|"]
    for spec in specs:
        if spec.buckets:
            bounds = ", ".join(f"{bound:g}" for bound in spec.buckets)
            lines.append(f"| `{spec.full_name}` | {bounds}, +Inf |")
    return "\n".join(lines) + "\n"
