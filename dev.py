#!/usr/bin/env python3
"""Set up the project's virtual environment and run its main jobs. Needs only Python >= 3.11.

    python3 dev.py backtest [qtrader backtest options]   # the quick-start backtest
    python3 dev.py test [pytest options]                 # lint, type-check, every test
    python3 dev.py qtrader ARGS...                       # any qtrader command

The environment lives in .venv and is rebuilt only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".qt-installed"


def _run(*cmd: str | Path) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)  # noqa: S603 - our own tools


def ensure_venv() -> None:
    """Create .venv and install the project with its dev extras, once per pyproject change."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs on whatever python3 is
        sys.exit(f"Python >= 3.11 is needed, this is {sys.version.split()[0]}")
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing quantum-trader and its dev tools into .venv ...", flush=True)
    pip = [BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if _run(*pip, "--upgrade", "pip") or _run(*pip, "-e", f"{ROOT}[dev]"):
        sys.exit("installing the project failed (see pip's message above)")
    STAMP.write_text(want)


def cmd_backtest(args: list[str]) -> int:
    """The main job: a backtest (the built-in synthetic market unless --data is given)."""
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args = [*args, "--out", "runs/quickstart"]
    return _run(BIN / "qtrader", "backtest", *args)


def ensure_system_tools() -> None:
    """Install the Debian packages the tests use when they are missing and apt is usable.

    promtool (package ``prometheus``) checks the metrics exposition; ``redis-server`` backs the
    Redis contract tests, which start their own server; ``chromium`` and ``chromedriver``
    (packages ``chromium``, ``chromium-driver``) run the dashboard's end-to-end test headless.
    Without them those tests skip with the reason, unless QT_REQUIRE_PROMTOOL=1 /
    QT_REQUIRE_REDIS=1 / QT_REQUIRE_CHROMIUM=1 make that a failure (CI).
    """
    wanted = {
        "promtool": "prometheus",
        "redis-server": "redis-server",
        "chromium": "chromium",
        "chromedriver": "chromium-driver",
    }
    missing = [pkg for tool, pkg in wanted.items() if not shutil.which(tool)]
    if not missing or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    print(f"installing {', '.join(missing)} (Debian packages) ...", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["install", "-y", "-q", "--no-install-recommends", *missing]
    ok = all(
        subprocess.call(["apt-get", *step], env=env, **quiet) == 0  # noqa: S603, S607 - system apt
        for step in (["update", "-q"], install)
    )
    if not ok:
        print(f"could not install {', '.join(missing)}; their tests will skip", file=sys.stderr)


def cmd_test(args: list[str]) -> int:
    """Lint, type-check, check the layer contracts, then run every test."""
    ensure_system_tools()
    steps: list[tuple[str, list[str | Path]]] = [
        ("ruff", [BIN / "ruff", "check", "src", "tests", "bench", "dev.py"]),
        ("mypy", [BIN / "mypy"]),
        ("import-linter", [BIN / "lint-imports"]),
    ]
    for name, cmd in steps:
        print(f"== {name}", flush=True)
        if _run(*cmd):
            print(f"{name} failed", file=sys.stderr)
            return 1
    print("== pytest", flush=True)
    return _run(BIN / "python", "-m", "pytest", *args)


def main() -> int:
    """Dispatch the sub-command."""
    if len(sys.argv) < 2 or sys.argv[1] not in ("backtest", "test", "qtrader"):
        print(__doc__)
        return 2
    ensure_venv()
    command, args = sys.argv[1], sys.argv[2:]
    if command == "backtest":
        return cmd_backtest(args)
    if command == "test":
        return cmd_test(args)
    return _run(BIN / "qtrader", *args)


if __name__ == "__main__":
    sys.exit(main())
