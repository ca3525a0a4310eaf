"""Validation of folder options shared by the benchmarks."""

from __future__ import annotations

from pathlib import Path


def require_dir(value: str | Path | None, option: str, meaning: str) -> Path:
    """``value`` as an existing folder; ``ValueError`` when unset, ``FileNotFoundError`` when absent.

    Both messages name the ``option`` and what it should point to (``meaning``).
    """
    if value is None or str(value) == "":
        raise ValueError(f"{option} is not set: it should point to {meaning}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{option}={path} is not a folder: it should point to {meaning}")
    return path
