"""Face detection: dlib's frontal HOG detector (default), its CNN (MMOD) detector, and the two in cascade (HOG,
then the CNN on images where HOG finds no face).

Detectors take a uint8 RGB image ``[H, W, 3]`` and return :class:`FaceBox` es in pixels, with the
centre of pixel (row i, column j) at (x=j, y=i): a box ``[x0, y0, x1, y1]`` spans the pixels' outer
edges, so dlib's rectangle ``left..right`` (inclusive) becomes ``x0 = left - 0.5``, ``x1 = right + 0.5``.

Large images are detected on a copy whose longer side is at most ``max_side`` (boxes are mapped back),
which bounds the detector's cost; faces are still found down to about 80 pixels in that copy, or about
40 pixels when it is upsampled once (see ``upsample``). An image (or copy) whose shorter side is below
:data:`MIN_DETECTION_SIDE` holds no detectable face: the detectors return no face without running dlib, whose CNN
detector fails on such images ("Filter windows must be small enough...", at times a crash of the process).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import dlib
import numpy as np
from PIL import Image

PACKAGE = "face_recognition_models"
CNN_DETECTOR_FILENAME = "mmod_human_face_detector.dat"
#: The shorter side below which no detector runs (dlib's CNN detector fails on images of 9 px or less).
MIN_DETECTION_SIDE = 16


@dataclass(frozen=True)
class FaceBox:
    """A detected face: ``box`` ``[4]`` float32 ``(x0, y0, x1, y1)`` (pixel edges) and the detector's ``score``."""

    box: np.ndarray
    score: float


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """``image`` as a C-contiguous uint8 ``[H, W, 3]`` array, or ``ValueError`` naming ``name``."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{name}: expected a uint8 RGB array [H, W, 3], got {array.dtype} {list(array.shape)}")
    if min(array.shape[:2]) < 1:
        raise ValueError(f"{name}: empty image {list(array.shape)}")
    return np.ascontiguousarray(array)


def dlib_model_path(filename: str, path: str | Path | None = None) -> Path:
    """``path`` if given, else ``filename`` from the ``face-recognition-models`` package; it must exist."""
    if path is None:
        try:
            path = Path(str(resources.files(PACKAGE) / "models" / filename))
        except ModuleNotFoundError as error:
            raise FileNotFoundError(
                f"{filename} not found: install it with `pip install face-recognition-models==0.3.0` "
                "or pass its path explicitly"
            ) from error
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"dlib model file {path} does not exist (`pip install face-recognition-models==0.3.0` provides {filename})"
        )
    return path


def too_small_to_detect(image: np.ndarray) -> bool:
    """Whether ``image`` ``[H, W, 3]`` is below :data:`MIN_DETECTION_SIDE` on a side (no face can be found)."""
    return min(image.shape[:2]) < MIN_DETECTION_SIDE


def shrink_for_detection(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """A copy of ``image`` whose longer side is at most ``max_side`` (area-averaged) and its scale factor."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image, 1.0
    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
    return small, size[0] / width


def rectangle_box(left: int, top: int, right: int, bottom: int, factor: float) -> np.ndarray:
    """dlib's inclusive rectangle in an image scaled by ``factor`` -> box edges in the original image."""
    edges = np.array([left - 0.5, top - 0.5, right + 0.5, bottom + 0.5], dtype=np.float64)
    return ((edges + 0.5) / factor - 0.5).astype(np.float32)


def box_rectangle(box: np.ndarray) -> Any:
    """A box ``(x0, y0, x1, y1)`` (pixel edges) -> ``dlib.rectangle`` (inclusive pixel indices)."""
    x0, y0, x1, y1 = (float(value) for value in box)
    return dlib.rectangle(round(x0 + 0.5), round(y0 + 0.5), round(x1 - 0.5), round(y1 - 0.5))


class FaceDetector(ABC):
    """Finds faces: ``detect(image uint8 [H, W, 3]) -> list[FaceBox]`` (best score first)."""

    name: str

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces in a uint8 RGB image ``[H, W, 3]``."""


class DlibHOGDetector(FaceDetector):
    """dlib's frontal face detector (HOG + linear SVM): fast on CPU, frontal to about 45 degrees of yaw.

    It tries upsampling factors ``0, 1, ..., upsample`` (each doubles the image) and stops at the first
    that finds a face, so large faces cost one pass and small ones (down to about 40 pixels with
    ``upsample=1``) are still found. Only detections scoring at least ``threshold`` (the SVM margin)
    are kept: dlib's own 0 also fires on clothes and hands (scores around 0.1, where faces score about
    1 or more), and a false face larger than the real one would be the one a crop is made of.
    """

    name = "dlib_hog"

    def __init__(self, upsample: int = 1, threshold: float = 0.3, max_side: int | None = 1280) -> None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.upsample = upsample
        self.threshold = threshold
        self.max_side = max_side
        self.detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        small, factor = shrink_for_detection(check_image(image), self.max_side)
        if too_small_to_detect(small):
            return []
        for upsample in range(self.upsample + 1):
            rectangles, scores, _ = self.detector.run(small, upsample, self.threshold)
            if len(rectangles):
                faces = [
                    FaceBox(rectangle_box(r.left(), r.top(), r.right(), r.bottom(), factor), float(score))
                    for r, score in zip(rectangles, scores, strict=True)
                ]
                return sorted(faces, key=lambda face: -face.score)
        return []


class DlibCNNDetector(FaceDetector):
    """dlib's CNN face detector (MMOD, ``mmod_human_face_detector.dat``): more pose-robust, about 3 s per
    512x512 image on one CPU core. ``model_path`` defaults to the ``face-recognition-models`` file;
    detections with a confidence below ``threshold`` are dropped."""

    name = "dlib_cnn"

    def __init__(
        self,
        model_path: str | Path | None = None,
        upsample: int = 0,
        threshold: float = 0.3,
        max_side: int | None = 1280,
    ) -> None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.upsample = upsample
        self.threshold = threshold
        self.max_side = max_side
        self.detector = dlib.cnn_face_detection_model_v1(str(dlib_model_path(CNN_DETECTOR_FILENAME, model_path)))

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        small, factor = shrink_for_detection(check_image(image), self.max_side)
        if too_small_to_detect(small):
            return []
        found = self.detector(small, self.upsample)
        faces = [
            FaceBox(
                rectangle_box(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), factor), float(d.confidence)
            )
            for d in found
            if d.confidence >= self.threshold
        ]
        return sorted(faces, key=lambda face: -face.score)


class CascadeDetector(FaceDetector):
    """HOG first, then the CNN detector on images where HOG found no face: HOG's speed on frontal faces, the CNN's
    recall on turned, tilted and cut faces (``BENCHMARKS.md``, section ``detection``). ``options`` go to the HOG
    detector; the CNN detector gets ``max_side`` and its own defaults (no upsampling: it costs 4x per level)."""

    name = "dlib_hog+cnn"

    def __init__(self, model_path: str | Path | None = None, **options: Any) -> None:
        self.hog = DlibHOGDetector(**options)
        self.cnn = DlibCNNDetector(model_path, max_side=self.hog.max_side)

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        return self.hog.detect(image) or self.cnn.detect(image)


DETECTORS: dict[str, type[FaceDetector]] = {"hog": DlibHOGDetector, "cnn": DlibCNNDetector, "hog+cnn": CascadeDetector}


def build_detector(name: str = "hog", **options: Any) -> FaceDetector:
    """A detector by name: ``hog`` (:class:`DlibHOGDetector`), ``cnn`` (:class:`DlibCNNDetector`) or ``hog+cnn``
    (:class:`CascadeDetector`)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose from {sorted(DETECTORS)}")
    return DETECTORS[name](**options)


__all__ = [
    "MIN_DETECTION_SIDE",
    "CascadeDetector",
    "DlibCNNDetector",
    "DlibHOGDetector",
    "FaceBox",
    "FaceDetector",
    "build_detector",
    "check_image",
    "dlib_model_path",
]
