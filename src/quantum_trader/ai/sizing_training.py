"""Offline training of the sizing agent from backtest trades.

**Episodes.** Every closed trade of a backtest is one episode: the state known when it was
decided (the bars *before* its entry fill: daily volatility over ``vol_window_bars``, its usual
level over ``regime_window_bars``, the account drawdown at the last close, and a confidence) and
what the trade then did: its net return on notional after fees and funding, and its maximum
adverse excursion (how far price went against it before the exit). Strategies without a model
have no confidence, so the episode uses a causal proxy: the share of the last
``confidence_window_bars`` bar returns that point the trade's way.

**Reward.** For a size action ``(multiplier m, leverage L)`` in risk mode ``mode``, the sized
fraction is the rule-based fraction times ``m`` times the mode's ``size_scale``, capped as at run
time (risk per trade ``f / L``, symbol and gross exposure); the trade is liquidated when its
adverse excursion reaches ``1 / L - maintenance_margin_rate`` and then loses its margin ``f /
L``; otherwise it earns ``f × net_return``. The reward is ``log(1 + pnl)`` as a fraction of
equity: log growth, which punishes variance and ruin (a risk-adjusted PnL). Because the reward
of *every* action is known for every episode, training is full-information: no exploration.

**Learning.** Per mode and discrete state, the action with the best lower bootstrap quantile of
mean reward wins (seeded; ties go to the smaller size); states with fewer than ``min_samples``
episodes back off to coarser states (dropping drawdown, then confidence, then regime) and are
left untrained when even the pool is too small. ``holdout`` keeps the latest episodes out of
training and reports the agent's reward there next to the rule-based sizer's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from quantum_trader.ai.sizing import (
    CAP_SAFETY,
    CONFIDENCE_EDGES,
    DRAWDOWN_EDGES,
    HIGH_REGIME_RATIO,
    LOW_REGIME_RATIO,
    MIN_VOLATILITY,
    BanditSizingAgent,
    RuleBasedSizer,
    SizingAction,
    TableEntry,
    VolatilityRegime,
)
from quantum_trader.domain.errors import ConfigError
from quantum_trader.domain.policy import ModeLimits, Policy, RiskMode
from quantum_trader.observability.reports.result import BacktestResult

FloatArray = npt.NDArray[np.float64]
EPISODE_COLUMNS = (
    "symbol",
    "entry_time",
    "net_return",
    "adverse_excursion",
    "volatility",
    "reference_volatility",
    "confidence",
    "drawdown",
)


@dataclass(frozen=True, slots=True)
class EpisodeSettings:
    """How episodes are read from a backtest (windows in bars of the backtest's timeframe)."""

    bars_per_day: int = 1440
    vol_window_bars: int = 240
    regime_window_bars: int = 1440 * 3
    confidence_window_bars: int = 20

    def __post_init__(self) -> None:
        for name in (
            "bars_per_day",
            "vol_window_bars",
            "regime_window_bars",
            "confidence_window_bars",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigError(f"episode setting {name} must be an integer >= 2, got {value!r}")


@dataclass(frozen=True, slots=True)
class SizerTrainingConfig:
    """Settings of the bandit's training."""

    multipliers: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0)
    leverages: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0)
    min_samples: int = 30
    n_bootstrap: int = 200
    quantile: float = 0.2
    seed: int = 0
    maintenance_margin_rate: float = 0.005
    holdout: float = 0.3

    def __post_init__(self) -> None:
        if not self.multipliers or any(not 0.0 < m <= 2.0 for m in self.multipliers):
            raise ConfigError("multipliers must be within (0, 2]")
        if not self.leverages or any(not 1.0 <= lev <= 125.0 for lev in self.leverages):
            raise ConfigError("leverages must be within [1, 125]")
        if self.min_samples < 1 or self.n_bootstrap < 10:
            raise ConfigError("min_samples must be >= 1 and n_bootstrap >= 10")
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"quantile must be within (0, 1), got {self.quantile}")
        if not 0.0 <= self.holdout < 1.0:
            raise ConfigError(f"holdout must be within [0, 1), got {self.holdout}")
        if not 0.0 <= self.maintenance_margin_rate < 0.5:
            raise ConfigError("maintenance_margin_rate must be within [0, 0.5)")


@dataclass(frozen=True, slots=True)
class TrainingReport:
    """What training used and how the agent did on the held-out episodes."""

    episodes: int
    train_episodes: int
    holdout_episodes: int
    trained_states: int
    holdout_agent_reward: float
    holdout_rule_reward: float
    per_level: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able figures."""
        return {
            "episodes": self.episodes,
            "train_episodes": self.train_episodes,
            "holdout_episodes": self.holdout_episodes,
            "trained_states": self.trained_states,
            "holdout_agent_mean_log_growth": _finite(self.holdout_agent_reward),
            "holdout_rule_mean_log_growth": _finite(self.holdout_rule_reward),
            "states_per_level": self.per_level,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------- episodes


def episodes_from_backtest(
    result: BacktestResult, settings: EpisodeSettings | None = None
) -> pd.DataFrame:
    """Return one row per closed trade of ``result`` with ``EPISODE_COLUMNS``, by entry time."""
    cfg = settings or EpisodeSettings()
    trades = result.trades
    if trades.empty:
        return pd.DataFrame(columns=list(EPISODE_COLUMNS))
    closed = trades[trades["status"] != "open"]
    frames = []
    for symbol, group in closed.groupby("symbol", sort=True):
        candles = result.prices.get(str(symbol))
        if candles is None or candles.empty:
            continue
        frames.append(_symbol_episodes(str(symbol), group, candles, result.equity, cfg))
    if not frames:
        return pd.DataFrame(columns=list(EPISODE_COLUMNS))
    out = pd.concat(frames, ignore_index=True)
    out = out.dropna().sort_values(["entry_time", "symbol"], kind="mergesort")
    return out.reset_index(drop=True)


def _symbol_episodes(
    symbol: str,
    trades: pd.DataFrame,
    candles: pd.DataFrame,
    equity: pd.DataFrame,
    cfg: EpisodeSettings,
) -> pd.DataFrame:
    dates = candles["date"].to_numpy(dtype="datetime64[ns]")
    close = candles["close"].to_numpy(np.float64)
    high = candles["high"].to_numpy(np.float64)
    low = candles["low"].to_numpy(np.float64)
    log_ret = np.diff(np.log(close), prepend=np.log(close[0]))
    returns = pd.Series(log_ret)
    vol = returns.rolling(cfg.vol_window_bars).std().to_numpy() * math.sqrt(cfg.bars_per_day)
    ref = pd.Series(vol).rolling(cfg.regime_window_bars, min_periods=cfg.vol_window_bars).mean()
    up_share = (
        (returns > 0).astype(np.float64).rolling(cfg.confidence_window_bars).mean().to_numpy()
    )
    entry = trades["entry_time"].to_numpy(dtype="datetime64[ns]")
    exit_ = trades["exit_time"].to_numpy(dtype="datetime64[ns]")
    i_entry = np.searchsorted(dates, entry, side="left")
    known = i_entry - 1  # the last bar closed when the trade was decided
    i_exit = np.maximum(np.searchsorted(dates, exit_, side="left"), i_entry + 1)
    long = (trades["side"] == "long").to_numpy()
    notional = trades["quantity"].to_numpy(np.float64) * trades["entry_price"].to_numpy(np.float64)
    entry_price = trades["entry_price"].to_numpy(np.float64)
    adverse = np.empty(len(trades))
    for k, (a, b) in enumerate(zip(i_entry, i_exit, strict=True)):
        b = min(b, len(dates))
        if long[k]:
            adverse[k] = (entry_price[k] - low[a:b].min()) / entry_price[k] if b > a else 0.0
        else:
            adverse[k] = (high[a:b].max() - entry_price[k]) / entry_price[k] if b > a else 0.0
    valid = known >= 0
    safe = np.where(valid, known, 0)
    eq_index = equity.index.to_numpy(dtype="datetime64[ns]")
    eq_pos = np.searchsorted(eq_index, dates[safe], side="right") - 1
    drawdown = np.where(
        eq_pos >= 0, equity["drawdown"].to_numpy(np.float64)[np.maximum(eq_pos, 0)], 0.0
    )
    confidence = np.where(long, up_share[safe], 1.0 - up_share[safe])
    frame = pd.DataFrame(
        {
            "symbol": symbol,
            "entry_time": trades["entry_time"].to_numpy(),
            "net_return": trades["net_pnl"].to_numpy(np.float64)
            / np.where(notional > 0, notional, np.nan),
            "adverse_excursion": np.maximum(adverse, 0.0),
            "volatility": vol[safe],
            "reference_volatility": ref.to_numpy()[safe],
            "confidence": confidence,
            "drawdown": np.clip(drawdown, 0.0, 1.0),
        }
    )
    return frame[valid]


# ---------------------------------------------------------------- rewards


def _regimes(episodes: pd.DataFrame) -> npt.NDArray[np.str_]:
    ratio = episodes["volatility"].to_numpy(np.float64) / np.maximum(
        episodes["reference_volatility"].to_numpy(np.float64), MIN_VOLATILITY
    )
    return np.where(
        ratio < LOW_REGIME_RATIO,
        VolatilityRegime.LOW.value,
        np.where(
            ratio > HIGH_REGIME_RATIO, VolatilityRegime.HIGH.value, VolatilityRegime.NORMAL.value
        ),
    )


def _state_parts(episodes: pd.DataFrame) -> list[tuple[str, str, str]]:
    regimes = _regimes(episodes)
    conf = np.searchsorted(CONFIDENCE_EDGES, episodes["confidence"].to_numpy(np.float64), "right")
    dd = np.searchsorted(DRAWDOWN_EDGES, episodes["drawdown"].to_numpy(np.float64), "right")
    return [(str(r), f"c{c}", f"d{d}") for r, c, d in zip(regimes, conf, dd, strict=True)]


def action_rewards(
    episodes: pd.DataFrame,
    limits: ModeLimits,
    actions: Sequence[SizingAction],
    rule: RuleBasedSizer,
    maintenance_margin_rate: float,
) -> FloatArray:
    """Return an (episodes × actions) matrix of log-growth rewards; -inf for infeasible actions."""
    vol = np.maximum(episodes["volatility"].to_numpy(np.float64), MIN_VOLATILITY)
    raw = np.minimum(rule.target_volatility / vol, rule.max_fraction)
    ret = episodes["net_return"].to_numpy(np.float64)
    mae = episodes["adverse_excursion"].to_numpy(np.float64)
    out = np.full((len(episodes), len(actions)), -np.inf)
    for j, action in enumerate(actions):
        lev = action.leverage
        if lev > limits.max_leverage:
            continue
        caps = min(
            limits.max_risk_per_trade * lev, limits.max_symbol_exposure, limits.max_gross_exposure
        )
        f = np.minimum(raw * action.multiplier * limits.size_scale, caps) * CAP_SAFETY
        liquidated = mae >= 1.0 / lev - maintenance_margin_rate
        pnl = np.where(liquidated, -f / lev, f * ret)
        out[:, j] = np.log1p(np.maximum(pnl, -0.99))
    return out


def _rule_rewards(
    episodes: pd.DataFrame, limits: ModeLimits, rule: RuleBasedSizer, mmr: float
) -> FloatArray:
    vol = np.maximum(episodes["volatility"].to_numpy(np.float64), MIN_VOLATILITY)
    raw = np.minimum(rule.target_volatility / vol, rule.max_fraction)
    scaled = raw * limits.size_scale
    needed = (
        scaled / limits.max_risk_per_trade if limits.max_risk_per_trade > 0 else np.ones_like(raw)
    )
    safe_lev = np.maximum(1.0, 1.0 / (rule.liquidation_buffer * vol))
    lev = np.minimum(np.minimum(np.maximum(needed, 1.0), safe_lev), limits.max_leverage)
    caps = np.minimum(
        limits.max_risk_per_trade * lev, min(limits.max_symbol_exposure, limits.max_gross_exposure)
    )
    f = np.minimum(scaled, caps) * CAP_SAFETY
    ret = episodes["net_return"].to_numpy(np.float64)
    mae = episodes["adverse_excursion"].to_numpy(np.float64)
    pnl = np.where(mae >= 1.0 / lev - mmr, -f / lev, f * ret)
    return np.asarray(np.log1p(np.maximum(pnl, -0.99)), dtype=np.float64)


# ---------------------------------------------------------------- training


def _actions(config: SizerTrainingConfig) -> list[SizingAction]:
    pairs = sorted({(m, lev) for m in config.multipliers for lev in config.leverages})
    return [SizingAction(m, lev) for m, lev in pairs]


def train_sizing_agent(
    episodes: pd.DataFrame,
    policy: Policy,
    rule: RuleBasedSizer | None = None,
    config: SizerTrainingConfig | None = None,
) -> tuple[BanditSizingAgent, TrainingReport]:
    """Learn the agent's table from ``episodes`` under ``policy``'s per-mode limits.

    The latest ``config.holdout`` share of episodes (by entry time) is kept out of training and
    used for the report. Same episodes, policy and seed: the same agent.
    """
    cfg = config or SizerTrainingConfig()
    rule = rule or RuleBasedSizer()
    missing = [c for c in EPISODE_COLUMNS if c not in episodes.columns]
    if missing:
        raise ConfigError(f"episodes lack column(s): {', '.join(missing)}")
    ordered = episodes.sort_values(["entry_time", "symbol"], kind="mergesort").reset_index(
        drop=True
    )
    n_train = len(ordered) - math.floor(len(ordered) * cfg.holdout)
    train, holdout = ordered.iloc[:n_train], ordered.iloc[n_train:]
    actions = _actions(cfg)
    rng = np.random.default_rng(cfg.seed)
    parts = _state_parts(train)
    table: dict[str, TableEntry] = {}
    per_level: dict[str, int] = {}
    for mode in RiskMode:
        rewards = action_rewards(
            train, policy.limits[mode], actions, rule, cfg.maintenance_margin_rate
        )
        cache: dict[tuple[str, ...], TableEntry | None] = {}
        for regime in VolatilityRegime:
            for c in range(len(CONFIDENCE_EDGES) + 1):
                for d in range(len(DRAWDOWN_EDGES) + 1):
                    full = (regime.value, f"c{c}", f"d{d}")
                    entry = _learn_state(full, parts, rewards, actions, cfg, rng, cache)
                    if entry is not None:
                        table[f"{full[0]}|{full[1]}|{full[2]}|{mode.value}"] = entry
                        per_level[entry.level] = per_level.get(entry.level, 0) + 1
    agent = BanditSizingAgent(
        table,
        meta={
            "seed": cfg.seed,
            "min_samples": cfg.min_samples,
            "quantile": cfg.quantile,
            "n_bootstrap": cfg.n_bootstrap,
            "train_episodes": len(train),
            "actions": [[a.multiplier, a.leverage] for a in actions],
            "target_volatility": rule.target_volatility,
        },
    )
    report = TrainingReport(
        episodes=len(ordered),
        train_episodes=len(train),
        holdout_episodes=len(holdout),
        trained_states=len(table),
        holdout_agent_reward=_holdout_reward(agent, holdout, policy, actions, rule, cfg),
        holdout_rule_reward=(
            float(
                _rule_rewards(
                    holdout, policy.active_limits, rule, cfg.maintenance_margin_rate
                ).mean()
            )
            if len(holdout)
            else math.nan
        ),
        per_level=per_level,
    )
    return agent, report


def _learn_state(
    full: tuple[str, str, str],
    parts: list[tuple[str, str, str]],
    rewards: FloatArray,
    actions: list[SizingAction],
    cfg: SizerTrainingConfig,
    rng: np.random.Generator,
    cache: dict[tuple[str, ...], TableEntry | None],
) -> TableEntry | None:
    levels = ("regime+confidence+drawdown", "regime+confidence", "regime", "all")
    for depth, level in zip((3, 2, 1, 0), levels, strict=True):
        prefix = full[:depth]
        if prefix not in cache:
            rows = np.array([i for i, p in enumerate(parts) if p[:depth] == prefix], dtype=np.int64)
            cache[prefix] = (
                _best_action(rewards[rows], actions, cfg, rng, level)
                if len(rows) >= cfg.min_samples
                else None
            )
        entry = cache[prefix]
        if entry is not None:
            return entry
    return None


def _best_action(
    rewards: FloatArray,
    actions: list[SizingAction],
    cfg: SizerTrainingConfig,
    rng: np.random.Generator,
    level: str,
) -> TableEntry:
    n = len(rewards)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=cfg.n_bootstrap)
    feasible = np.all(np.isfinite(rewards), axis=0)
    finite = np.where(np.isfinite(rewards), rewards, 0.0)
    means = counts @ finite / n  # (bootstrap, actions)
    lower = np.quantile(means, cfg.quantile, axis=0)
    lower = np.where(feasible, lower, -np.inf)
    best = int(np.argmax(lower))  # first of equals: actions are sorted smallest first
    return TableEntry(
        actions[best],
        n,
        float(finite[:, best].mean()),
        float(lower[best]),
        level,
    )


def _holdout_reward(
    agent: BanditSizingAgent,
    holdout: pd.DataFrame,
    policy: Policy,
    actions: list[SizingAction],
    rule: RuleBasedSizer,
    cfg: SizerTrainingConfig,
) -> float:
    if holdout.empty:
        return math.nan
    limits = policy.active_limits
    rewards = action_rewards(holdout, limits, actions, rule, cfg.maintenance_margin_rate)
    fallback = _rule_rewards(holdout, limits, rule, cfg.maintenance_margin_rate)
    index = {(a.multiplier, a.leverage): j for j, a in enumerate(actions)}
    out = np.empty(len(holdout))
    for i, (regime, c, d) in enumerate(_state_parts(holdout)):
        entry = agent.table.get(f"{regime}|{c}|{d}|{policy.mode.value}")
        j = None if entry is None else index.get((entry.action.multiplier, entry.action.leverage))
        out[i] = fallback[i] if j is None or not math.isfinite(rewards[i, j]) else rewards[i, j]
    return float(out.mean())
