"""Atomic file writes: a file is either fully written or left as it was, never half-written.

Data goes to a temporary file in the destination's folder, is flushed and fsynced, and then
``os.replace``-d over the destination (an atomic rename on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

WRITE_MODES = ("w", "wb")


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _open_temporary(path: Path) -> tuple[Path, int]:
    """Create a fresh temporary file beside ``path`` (mode 0o666 less the umask, like ``open``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_path(path)
    return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _sync_folder(folder: Path) -> None:
    """Make renames inside ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open ``path`` for writing through a temporary file that replaces ``path`` only on success.

    ``mode`` is ``"wb"`` (bytes) or ``"w"`` (text; ``encoding`` defaults to UTF-8). If the ``with``
    block raises, the temporary file is removed and ``path`` keeps its old content (or stays absent).
    Missing parent folders are created.
    """
    if mode not in WRITE_MODES:
        raise ValueError(f"atomic_write({path}): mode must be one of {WRITE_MODES}, got {mode!r}")
    path = Path(path)
    temporary, descriptor = _open_temporary(path)
    try:
        text_kwargs = {"encoding": encoding or "utf-8", "newline": ""} if mode == "w" else {}
        with os.fdopen(descriptor, mode, **text_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise
    _sync_folder(path.parent)


def write_files_atomically(files: Mapping[str | os.PathLike, bytes | str]) -> None:
    """Write several files as one unit: ``{path: content}`` (``str`` content is written as UTF-8).

    Every file is first written and fsynced to a temporary file; only when all of them succeeded are
    they renamed over their destinations. A failure while writing leaves every destination untouched.
    (The final renames are individually atomic but not as a group; they do not fail in practice.)
    """
    pending: list[tuple[Path, Path]] = []
    try:
        for name, content in files.items():
            path = Path(name)
            temporary, descriptor = _open_temporary(path)
            pending.append((temporary, path))
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        for temporary, _ in pending:
            _remove_quietly(temporary)
        raise
    for done, (temporary, path) in enumerate(pending):
        try:
            os.replace(temporary, path)
        except BaseException:
            for leftover, _ in pending[done:]:
                _remove_quietly(leftover)
            raise
    for folder in {path.parent for _, path in pending}:
        _sync_folder(folder)
