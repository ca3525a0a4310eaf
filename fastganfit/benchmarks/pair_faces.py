"""The faces of a set of photo pairs, found once and shared by every method: each photo's largest face, its
aligned crop (the reconstruction's input), its 68 landmarks and dlib's 128-D descriptor. A photo where no face is
found keeps its reason; nothing is dropped silently. The result can be cached in a ``.npz`` keyed by the photos,
the landmarker and the crop template, so repeated benchmark runs detect once."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fastganfit.benchmarks.photo_pairs import PhotoPairs
from fastganfit.data.prepare import UnusableInputError
from fastganfit.fitting.faces import crop_largest_face
from fastganfit.fitting.photos import load_photo
from fastganfit.io.atomic import atomic_write
from fastganfit.perception.dlib_descriptor import DlibFaceDescriptor
from fastganfit.perception.landmarks import Landmarker

#: Photos are decoded at this longer side at most (as fit.py's default).
MAX_SIDE = 2048
CACHE_FORMAT = 1


@dataclass
class PairFaces:
    """Faces of ``pairs`` (N persons): photo ``k < N`` is ``pairs.a[k]``, photo ``N + k`` is ``pairs.b[k]``.

    ``found [2N]`` bool; ``crops [2N, S, S, 3]`` uint8 aligned crops; ``landmarks [2N, 68, 2]`` in crop pixels;
    ``photo_landmarks [2N, 68, 2]`` in photo pixels; ``boxes [2N, 4]`` detector boxes (photo pixels);
    ``descriptors [2N, 128]`` dlib's face descriptors (float rows are NaN where no face was found);
    ``reasons``: photo index -> why no face was found.
    """

    pairs: PhotoPairs
    found: np.ndarray
    crops: np.ndarray
    landmarks: np.ndarray
    photo_landmarks: np.ndarray
    boxes: np.ndarray
    descriptors: np.ndarray
    reasons: dict[int, str]

    @property
    def crop_size(self) -> int:
        return int(self.crops.shape[1])

    def photo(self, index: int) -> Path:
        """The path of photo ``index`` (A photos first, then B)."""
        count = len(self.pairs)
        return self.pairs.a[index] if index < count else self.pairs.b[index - count]

    def missing(self) -> dict[str, str]:
        """``{photo path: reason}`` of the photos without a face."""
        return {str(self.photo(index)): reason for index, reason in sorted(self.reasons.items())}

    def complete(self) -> np.ndarray:
        """``[N]`` bool: the persons with a face found in both photos."""
        a, b = self.pair_rows(self.found)
        return a & b

    def pair_rows(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-photo ``values [2N, ...]`` split into the A rows and the B rows ``[N, ...]``."""
        count = len(self.pairs)
        return values[:count], values[count:]

    def inputs(self, indices: np.ndarray, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """The reconstruction inputs of photos ``indices`` (B of them): ``crops [B, 3, S, S]`` in [0, 1] and
        ``landmarks [B, 68, 2]`` in crop pixels."""
        crops = torch.from_numpy(self.crops[indices]).permute(0, 3, 1, 2).float().div(255.0)
        return crops.to(device), torch.from_numpy(self.landmarks[indices]).float().to(device)

    def subset(self, count: int | None) -> PairFaces:
        """The faces of the first ``count`` pairs (all when ``None`` or at least N)."""
        total = len(self.pairs)
        if count is None or count >= total:
            return self
        keep = np.r_[0:count, total : total + count]
        position = {int(index): new for new, index in enumerate(keep)}
        moved = {position[index]: reason for index, reason in self.reasons.items() if index in position}
        return PairFaces(self.pairs.subset(count), self.found[keep], self.crops[keep], self.landmarks[keep],
                         self.photo_landmarks[keep], self.boxes[keep], self.descriptors[keep], moved)  # fmt: skip


def settings_summary(value: object, depth: int = 2) -> str:
    """The plain settings (numbers, strings, flags) of an object and of its attributes' (``depth`` levels), e.g. a
    landmarker's detector options: what a cached detection depends on, without memory addresses."""
    attributes = getattr(value, "__dict__", None)
    if not isinstance(attributes, dict):
        return type(value).__name__
    parts = []
    for name, item in sorted(attributes.items()):
        if isinstance(item, (bool, int, float, str)) or item is None:
            parts.append(f"{name}={item!r}")
        elif depth > 0 and isinstance(getattr(item, "__dict__", None), dict):
            parts.append(f"{name}={settings_summary(item, depth - 1)}")
    return f"{type(value).__name__}({', '.join(parts)})"


def cache_key(pairs: PhotoPairs, landmarker: Landmarker, template: np.ndarray, crop_size: int) -> str:
    """A digest of what the faces depend on: the photos (paths, sizes, times), the landmarker and the template."""
    digest = hashlib.sha256(f"{CACHE_FORMAT} {crop_size} {settings_summary(landmarker)}".encode())
    digest.update(np.ascontiguousarray(template, np.float64).tobytes())
    for path in [*pairs.a, *pairs.b]:
        stat = path.stat()
        digest.update(f"{path.resolve()} {stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def save_pair_faces(faces: PairFaces, path: Path) -> None:
    """Write ``faces``' arrays to ``path`` (``.npz``) atomically."""
    reasons = np.array([f"{index}\t{reason}" for index, reason in sorted(faces.reasons.items())], dtype=str)
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, found=faces.found, crops=faces.crops, landmarks=faces.landmarks,
                            photo_landmarks=faces.photo_landmarks, boxes=faces.boxes, descriptors=faces.descriptors,
                            reasons=reasons)  # fmt: skip


def load_pair_faces(pairs: PhotoPairs, path: Path) -> PairFaces:
    """The faces of ``pairs`` saved at ``path`` by :func:`save_pair_faces`."""
    with np.load(path) as arrays:
        reasons = dict(line.split("\t", 1) for line in arrays["reasons"].tolist())
        return PairFaces(pairs, arrays["found"], arrays["crops"], arrays["landmarks"], arrays["photo_landmarks"],
                         arrays["boxes"], arrays["descriptors"], {int(k): v for k, v in reasons.items()})  # fmt: skip


def detect_pair_faces(
    pairs: PhotoPairs, landmarker: Landmarker, template: np.ndarray, crop_size: int,
    cache_dir: str | Path | None = None, progress: bool = True,
) -> PairFaces:  # fmt: skip
    """Find the largest face of every photo of ``pairs`` with ``landmarker``, align it onto ``template [68, 2]``
    (crop pixels) in a ``crop_size`` crop and compute its dlib descriptor. Faces of any size are taken (a small
    face's crop is upsampled). With ``cache_dir``, the result is read from / written to
    ``<cache_dir>/pair_faces_<key>.npz`` (:func:`cache_key`)."""
    cache = Path(cache_dir) / f"pair_faces_{cache_key(pairs, landmarker, template, crop_size)}.npz" if cache_dir \
        else None  # fmt: skip
    if cache is not None and cache.is_file():
        return load_pair_faces(pairs, cache)
    paths = [*pairs.a, *pairs.b]
    count = len(paths)
    found = np.zeros(count, bool)
    crops = np.zeros((count, crop_size, crop_size, 3), np.uint8)
    landmarks = np.full((count, 68, 2), np.nan, np.float32)
    photo_landmarks = landmarks.copy()
    boxes, descriptors = np.full((count, 4), np.nan, np.float32), np.full((count, 128), np.nan, np.float32)
    reasons: dict[int, str] = {}
    descriptor = DlibFaceDescriptor()
    for index, path in enumerate(tqdm(paths, desc="pairs: faces", unit="photo", file=sys.stderr, disable=not progress)):
        try:
            image = load_photo(path, MAX_SIDE).image
            face = crop_largest_face(image, landmarker, template, crop_size, min_face=0.0)
        except UnusableInputError as error:
            reasons[index] = str(error)
            continue
        found[index] = True
        crops[index], landmarks[index], boxes[index] = face.crop, face.landmarks, face.box
        photo_landmarks[index] = face.photo_landmarks
        descriptors[index] = descriptor(image, face.box, face.photo_landmarks)
    faces = PairFaces(pairs, found, crops, landmarks, photo_landmarks, boxes, descriptors, reasons)
    if cache is not None:
        save_pair_faces(faces, cache)
    return faces
