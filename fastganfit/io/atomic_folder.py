"""Atomic folders: a folder of results appears complete, or not at all.

Files are written into a hidden temporary folder beside the destination; only when the ``with`` block
succeeds is it renamed to the destination (an existing destination is first moved aside, then removed).
A failure removes the temporary folder and leaves the destination as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def _sibling(path: Path, label: str) -> Path:
    return path.with_name(f".{path.name}.{label}-{uuid.uuid4().hex[:12]}")


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder that replaces the folder ``path`` when the ``with`` block succeeds.

    Missing parent folders are created. If the block raises, the temporary folder is removed and ``path``
    keeps its old content (or stays absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _sibling(path, "tmp")
    temporary.mkdir()
    try:
        yield temporary
        if path.exists():
            old = _sibling(path, "old")
            os.replace(path, old)
            try:
                os.replace(temporary, path)
            except BaseException:
                os.replace(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
