"""Shared console helpers: one way to print errors and progress."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from quantum_trader.domain.errors import ConfigError, QuantumTraderError

console = Console()
err_console = Console(stderr=True)


def fail(exc: QuantumTraderError) -> typer.Exit:
    """Print ``exc`` as one clear line (no traceback) and return the exit to raise.

    Exit code 2 for configuration errors (fix the command or file), 1 for everything else.
    """
    kind = "configuration error" if isinstance(exc, ConfigError) else "error"
    err_console.print(f"[bold red]{kind}:[/] {escape(str(exc))}", highlight=False)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    """A rich progress bar with elapsed and remaining time; quiet when output is not a terminal."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as progress:
        progress.add_task(description, total=1.0)
        yield progress
