"""The human-readable validation report (``validation.md``) from the validation dict."""

from __future__ import annotations

import math
from typing import Any


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, fmt)


def render_validation_markdown(v: dict[str, Any]) -> str:
    """Render the validation of one training run as Markdown."""
    s = v["settings"]
    lines = [
        "# Model validation",
        "",
    ]
    if v.get("synthetic"):
        lines += ["**SYNTHETIC DATA** — generated prices, not a real market.", ""]
    lines += [
        f"Symbols {', '.join(s['symbols'])}, timeframe {s['timeframe']}, horizon "
        f"{s['horizon']} bars, {v['rows']:,} labelled rows. Walk-forward with purging "
        f"(embargo {s['embargo_bars'] if s['embargo_bars'] is not None else s['horizon']} bars); "
        f"every figure below is out of sample. The shipped model was trained on "
        f"{v['model_training_range'][0]} – {v['model_training_range'][1]}"
        + (" (refitted on every row: its own backtest would be in-sample)." if v["refit"] else "."),
        "",
        "## Out-of-sample classification",
        "",
        "| model | n | accuracy | log loss | Brier | test up-rate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in v["metrics"].items():
        lines.append(
            f"| {name} | {m['n']:,} | {_num(m['accuracy'], '.4f')} | {_num(m['log_loss'], '.4f')} "
            f"| {_num(m['brier'], '.4f')} | {_num(m['base_rate'], '.4f')} |"
        )
    c = v["confident"]
    lines += [
        "",
        f"Predictions with confidence ≥ {c['min_confidence']:g}: {c['coverage']:.1%} of rows, "
        f"accuracy {_num(c['accuracy'], '.4f')} (n = {c['n']:,}).",
        "",
        "## Folds",
        "",
        "| fold | train | test | train rows | purged | test rows | accuracy | log loss |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for f in v["folds"]:
        m = f["metrics"]
        lines.append(
            f"| {f['fold']} | {f['train'][0]} – {f['train'][1]} | {f['test'][0]} – {f['test'][1]} "
            f"| {f['train_rows']:,} | {f['purged_rows']:,} | {f['test_rows']:,} "
            f"| {_num(m['accuracy'], '.4f')} | {_num(m['log_loss'], '.4f')} |"
        )
    lines += [
        "",
        "## Calibration (reliability)",
        "",
        "| predicted P(up) | rows | mean prediction | observed up-rate |",
        "|---|---:|---:|---:|",
    ]
    for row in v["calibration"]:
        lines.append(
            f"| {row['low']:.1f}–{row['high']:.1f} | {row['count']:,} | {row['mean_prob']:.4f} "
            f"| {row['frac_up']:.4f} |"
        )
    lines += [
        "",
        "## Backtests over the out-of-sample span (fees and funding included)",
        "",
        "| strategy | trades | total return | max drawdown | sharpe | fees | funding |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for b in v["backtests"].values():
        r = b["summary"]
        lines.append(
            f"| {b['strategy']} | {r['trades']:,} | {_num(r['total_return'], '+.2%')} "
            f"| {_num(r['max_drawdown'], '.2%')} | {_num(r['sharpe'], '.2f')} "
            f"| {_num(r['fees'], ',.2f')} | {_num(r['funding'], '+,.2f')} |"
        )
    lines += ["", "## Feature importance (LightGBM gain share)", ""]
    ranked = sorted(v["feature_importance"].items(), key=lambda kv: -kv[1])
    lines += [f"- {name}: {share:.1%}" for name, share in ranked]
    lines.append("")
    return "\n".join(lines)
