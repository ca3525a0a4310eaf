"""Whether results can be written to a folder, said before any work is done."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def output_folder_problem(folder: str | os.PathLike) -> str | None:
    """Why no file can be written into ``folder`` (created when missing): ``"... is not writable (...)"``, or
    ``None`` when a probe file can be created and removed there. A full disk shows up later, as each write fails."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        return f"output folder {folder} is not writable ({reason})"
    return None
