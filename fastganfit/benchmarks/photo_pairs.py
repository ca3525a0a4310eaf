"""A set of same-person photo pairs: ``A/<id>.<ext>`` and ``B/<id>.<ext>`` under a folder, or the pairs of a
``manifest.json`` (``{"pairs": [{"id", "A", "B", "same_photo_score"}, ...]}``, paths relative to the folder, as
the shared portraits' manifest). Pairs that are one photograph twice (``same_photo_score`` above
:data:`SAME_PHOTO_SCORE`) are left out and listed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: A pair whose ``same_photo_score`` (grey-level correlation after a landmark alignment) is above this is one photo.
SAME_PHOTO_SCORE = 0.9
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class PhotoPairs:
    """``ids [N]`` of the persons with their photos ``a [N]`` and ``b [N]``; ``left_out``: ids of pairs left out
    (the same photograph twice, or only one of the two photos present) with the reason."""

    root: Path
    ids: list[str]
    a: list[Path]
    b: list[Path]
    left_out: dict[str, str]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, count: int | None) -> PhotoPairs:
        """The first ``count`` pairs (all when ``None``)."""
        if count is None:
            return self
        return PhotoPairs(self.root, self.ids[:count], self.a[:count], self.b[:count], self.left_out)


def images_by_stem(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the image files directly in ``folder``."""
    return {path.stem: path for path in sorted(folder.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES}


def read_manifest_pairs(root: Path, manifest: Path) -> PhotoPairs:
    """The pairs listed in ``manifest`` (see the module docstring)."""
    try:
        entries = json.loads(manifest.read_text())["pairs"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{manifest}: expected a JSON object with a 'pairs' list ({error})") from error
    ids, a, b, left_out = [], [], [], {}
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"id", "A", "B"} <= set(entry):
            raise ValueError(f"{manifest}: pairs[{number}] needs 'id', 'A' and 'B', got {entry!r}")
        score = entry.get("same_photo_score")
        if score is not None and score > SAME_PHOTO_SCORE:
            left_out[str(entry["id"])] = f"one photograph (same_photo_score {score:.3f} > {SAME_PHOTO_SCORE})"
            continue
        paths = [root / entry["A"], root / entry["B"]]
        absent = [str(path) for path in paths if not path.is_file()]
        if absent:
            raise FileNotFoundError(f"{manifest}: pair {entry['id']}: no file {', '.join(absent)}")
        ids.append(str(entry["id"]))
        a.append(paths[0])
        b.append(paths[1])
    return PhotoPairs(root, ids, a, b, left_out)


def read_photo_pairs(root: str | Path) -> PhotoPairs:
    """The pairs under ``root``: its ``manifest.json`` when there is one, else its ``A/`` and ``B/`` folders (a
    photo without its other photo is left out and listed). ``FileNotFoundError`` / ``ValueError`` say what is
    wrong; no pair at all is an error."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"pairs root {root}: not a folder (expected A/ and B/, or a manifest.json)")
    manifest = root / "manifest.json"
    if manifest.is_file():
        pairs = read_manifest_pairs(root, manifest)
    else:
        folders = [root / "A", root / "B"]
        if not all(folder.is_dir() for folder in folders):
            raise FileNotFoundError(f"pairs root {root}: needs a manifest.json or both A/ and B/ photo folders")
        a_photos, b_photos = (images_by_stem(folder) for folder in folders)
        ids = sorted(set(a_photos) & set(b_photos))
        left_out = {stem: f"only in {side}/" for side, own, other in (("A", a_photos, b_photos),
                                                                       ("B", b_photos, a_photos))
                    for stem in sorted(set(own) - set(other))}  # fmt: skip
        pairs = PhotoPairs(root, ids, [a_photos[i] for i in ids], [b_photos[i] for i in ids], left_out)
    if not pairs.ids:
        raise ValueError(f"pairs root {root}: no photo pair found ({len(pairs.left_out)} left out)")
    return pairs
