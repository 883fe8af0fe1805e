"""Write the catalogue as Markdown: ``python -m quantum_trader.observability.metrics [PATH]``.

PATH defaults to ``docs/metrics.md`` (relative to the current directory, so run it from the
repository root); ``-`` prints to standard output instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from quantum_trader.observability.metrics.catalogue import render_catalogue_markdown


def main(argv: list[str]) -> int:
    """Write the catalogue to the path in ``argv`` (default ``docs/metrics.md``)."""
    target = argv[0] if argv else "docs/metrics.md"
    text = render_catalogue_markdown()
    if target == "-":
        sys.stdout.write(text)
        return 0
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
