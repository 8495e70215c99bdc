#!/usr/bin/env python3
"""The two commands of the README, with nothing but Python 3.11 and pip needed beforehand.

    python3 tasks.py workflow [snakemake arguments]   install, then run the default workflow
    python3 tasks.py test [pytest arguments]          install, then lint (ruff) and run the whole test suite

Both create (once) a virtual environment in ``.venv`` and install this project into it with
the extras it needs; later calls reuse it and reinstall only when ``pyproject.toml`` changed.
Set ``FLOWSIM_VENV`` to use another location.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("FLOWSIM_VENV", ROOT / ".venv"))
EXTRAS = {"workflow": "workflow", "test": "test"}
_SIZING_OPTIONS = {"-c", "--cores", "-j", "--jobs", "--profile", "-n", "--dry-run", "--lint"}


def _python() -> Path:
    return VENV / ("Scripts" if os.name == "nt" else "bin") / "python"


def _run(*args: str | os.PathLike[str]) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT)


def ensure_installed(extra: str) -> Path:
    """Create the venv and install the project with ``extra``, unless already done."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".flowsim-{extra}-{digest}"
    if stamp.exists():
        return _python()
    if not _python().exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    _run(_python(), "-m", "pip", "install", "--upgrade", "pip")
    _run(_python(), "-m", "pip", "install", "-e", f".[{extra}]")
    stamp.touch()
    return _python()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_installed(EXTRAS[command])
    if command == "workflow":
        # snakemake wants a number of cores unless a profile or a dry run says otherwise
        sized = any(a.split("=")[0] in _SIZING_OPTIONS for a in rest)
        args = rest if sized else ["--cores", "all", *rest]
        return subprocess.call([str(python), "-m", "snakemake", *args], cwd=ROOT)
    # the linter first: it takes a second and names what the tests would trip over later
    lint = subprocess.call([str(python), "-m", "ruff", "check", "."], cwd=ROOT)
    tests = subprocess.call([str(python), "-m", "pytest", *rest], cwd=ROOT)
    return tests or lint


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
