"""Which files to reconstruct: ``image=`` a file, a folder (recursive), a glob pattern or a list of those."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fastganfit.data.prepare import find_inputs, sample_key


@dataclass(frozen=True)
class InputImage:
    """One file to reconstruct: its ``path``, the output folder name ``key`` (unique in the run, from the path
    relative to the folder it was found in) and its ``folder`` (for grouping images by subject)."""

    path: Path
    key: str
    folder: Path


@dataclass(frozen=True)
class Problem:
    """An input that gave no result, or a note on one that did: ``source`` and the ``reason``."""

    source: str
    reason: str


@dataclass
class ResolvedInputs:
    """``images`` to reconstruct; ``failed`` entries (missing paths); ``skipped`` files of a folder whose names
    are not image names; ``collection`` is true for a folder, a glob or several entries (an index is written)."""

    images: list[InputImage] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    collection: bool = False


def resolve_inputs(image: str | os.PathLike | Sequence[str | os.PathLike]) -> ResolvedInputs:
    """Expand ``image`` (one entry or a list) into files; a missing entry is listed in ``failed``, not raised.

    Folders are searched recursively for image file names (other files go to ``skipped``, hidden ones are
    ignored); a glob pattern gives every file it matches.
    """
    entries = [image] if isinstance(image, str | os.PathLike) else list(image)
    resolved = ResolvedInputs(collection=len(entries) != 1)
    used: set[str] = set()
    for entry in entries:
        text = str(entry)
        if not text:
            resolved.failed.append(Problem(text, "empty path"))
            continue
        root = Path(text).expanduser()
        try:
            files, skipped = find_inputs(root)
        except FileNotFoundError as error:
            resolved.failed.append(Problem(text, str(error)))
            continue
        if not files and not skipped:
            resolved.failed.append(Problem(text, "the folder holds no files"))
            continue
        is_folder = root.is_dir()
        resolved.collection = resolved.collection or is_folder or glob.has_magic(text)
        resolved.skipped += [Problem(skip.source, skip.reason) for skip in skipped]
        for path in files:
            key = sample_key(path, root if is_folder else None, used)
            resolved.images.append(InputImage(path, key, path.parent))
    return resolved
