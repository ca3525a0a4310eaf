"""68-point facial landmarks: dlib's shape predictor (offline default) and FAN (``face-alignment``).

A :class:`Landmarker` maps a uint8 RGB image ``[H, W, 3]`` to a list of :class:`FaceDetection` (box,
score, ``[68, 2]`` float32 landmarks in pixels, iBUG-68 order, the centre of pixel (row i, column j) at
(x=j, y=i)). Point 36 is the outer corner of the subject's right eye, seen on the image's left.

FAN (2D-FAN-4, Bulat & Tzimiropoulos 2017) needs ``face-alignment``'s weights file
:data:`FAN_WEIGHTS_FILENAME`: an explicit path, or face-alignment's own cache
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``). Nothing is downloaded.
FAN is run on a 256x256 crop framed from the detector's box as face-alignment frames it; its
``[68, 64, 64]`` heatmaps come with each detection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import numpy as np
import torch
from torch import Tensor, nn

from fastganfit.perception.crop import apply_transform, invert_transform, warp_image
from fastganfit.perception.detection import (
    FaceBox,
    FaceDetector,
    box_rectangle,
    build_detector,
    check_image,
    dlib_model_path,
)

NUM_LANDMARKS = 68
PREDICTOR_FILENAME = "shape_predictor_68_face_landmarks.dat"
#: face-alignment 1.5's 2D-FAN-4 weights (``face_alignment.api.models_urls["2DFAN-4"]``).
FAN_WEIGHTS_FILENAME = "2DFAN4-11f355bf06.pth.tar"
FAN_WEIGHTS_URL = f"https://www.adrianbulat.com/downloads/python-fan/{FAN_WEIGHTS_FILENAME}"
FAN_INPUT_SIZE = 256
FAN_HEATMAP_SIZE = 64
#: face-alignment's framing: crop side ``200 * (w + h) / 195`` around the box centre moved up by 0.12 h.
FAN_REFERENCE_SCALE = 195.0
FAN_SCALE_FACTOR = 200.0
FAN_CENTRE_SHIFT = 0.12
#: iBUG-68 index of each point's mirror image (left-right flip).
IBUG68_MIRROR: tuple[int, ...] = (
    *range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)  # fmt: skip


@dataclass(frozen=True)
class FaceDetection:
    """One face: ``box`` ``[4]`` float32 ``(x0, y0, x1, y1)`` (pixel edges), detector ``score``, ``landmarks``
    ``[68, 2]`` float32 pixels; FAN also gives its ``heatmaps`` ``[68, 64, 64]`` and ``heatmap_transform``
    ``[2, 3]`` (heatmap pixels -> image pixels)."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    heatmaps: np.ndarray | None = None
    heatmap_transform: np.ndarray | None = None

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


def largest_face(detections: list[FaceDetection]) -> FaceDetection | None:
    """The detection with the largest box (``None`` for none)."""
    return max(detections, key=lambda detection: detection.area, default=None)


class Landmarker(ABC):
    """Detects faces and their 68 landmarks: ``detect(image uint8 [H, W, 3]) -> list[FaceDetection]``.

    ``name`` is what shards record as their ``landmarker`` (``dlib68``, ``fan``).
    """

    name: str

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces (best detector score first) in a uint8 RGB image ``[H, W, 3]``."""


def _detector(detector: FaceDetector | str, options: dict[str, Any]) -> FaceDetector:
    if isinstance(detector, FaceDetector):
        if options:
            raise ValueError(f"detector options {sorted(options)} only apply to a detector given by name")
        return detector
    return build_detector(detector, **options)


class DlibLandmarker(Landmarker):
    """dlib: a face detector (``hog`` or ``cnn``, see :mod:`fastganfit.perception.detection`; ``detector_options``
    go to it) and the iBUG 300-W ``shape_predictor_68_face_landmarks.dat`` (``predictor_path``, default
    from ``face-recognition-models``)."""

    name = "dlib68"

    def __init__(
        self, detector: FaceDetector | str = "hog", predictor_path: str | Path | None = None, **detector_options: Any
    ) -> None:
        self.detector = _detector(detector, detector_options)
        self.predictor = dlib.shape_predictor(str(dlib_model_path(PREDICTOR_FILENAME, predictor_path)))

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``[68, 2]`` float32 landmarks of the face in ``box`` (pixel edges) of a uint8 ``[H, W, 3]`` image."""
        shape = self.predictor(check_image(image), box_rectangle(box))
        return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float32)

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        image = check_image(image)
        faces = self.detector.detect(image)
        return [FaceDetection(face.box, face.score, self.landmarks(image, face.box)) for face in faces]


# ---------------------------------------------------------------------------------------------- FAN


def fan_cache_dir() -> Path:
    """face-alignment's weight cache: ``torch.hub.get_dir() / "checkpoints"``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fan_weights_path(weights: str | Path | None = None) -> Path:
    """The FAN weights file: ``weights`` if given, else face-alignment's cached :data:`FAN_WEIGHTS_FILENAME`.

    Raises ``FileNotFoundError`` saying which file is expected and where to put it.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"FAN weights file {path} does not exist; it should be face-alignment's {FAN_WEIGHTS_FILENAME} "
                f"(download it from {FAN_WEIGHTS_URL})"
            )
        return path
    path = fan_cache_dir() / FAN_WEIGHTS_FILENAME
    if not path.is_file():
        raise FileNotFoundError(
            f"FAN weights not found: expected {path} (face-alignment's cache). Download {FAN_WEIGHTS_URL} and put "
            f"it there (the folder follows $TORCH_HOME), or pass its path as weights=PATH "
            f"(landmarks.weights / heatmaps.weights in the configs). FAN is optional: landmarks=dlib works offline."
        )
    return path


def load_fan(weights: str | Path | None = None) -> nn.Module:
    """face-alignment's 2D-FAN-4 network with weights from :func:`fan_weights_path` (eval mode, frozen, CPU)."""
    path = fan_weights_path(weights)
    from face_alignment.models import FAN  # imported here: face-alignment pulls in OpenCV and numba

    network = FAN(4)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        network.load_state_dict(state.get("state_dict", state))
    except Exception as error:
        raise ValueError(f"{path}: not a 2D-FAN-4 state dict ({type(error).__name__}: {error})") from error
    return network.requires_grad_(False).eval()


def fan_box_frame(box: np.ndarray) -> np.ndarray:
    """``[2, 3]`` map from FAN input pixels (256x256) to image pixels, framed on a detector ``box`` as
    face-alignment frames it (``box``: ``[4]`` pixel edges)."""
    x0, y0, x1, y1 = (float(value) for value in box)
    width, height = x1 - x0, y1 - y0
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2 - FAN_CENTRE_SHIFT * height])
    step = FAN_SCALE_FACTOR * (width + height) / FAN_REFERENCE_SCALE / FAN_INPUT_SIZE
    return np.array([[step, 0.0, centre[0] - (FAN_INPUT_SIZE / 2 - 0.5) * step],
                     [0.0, step, centre[1] - (FAN_INPUT_SIZE / 2 - 0.5) * step]])  # fmt: skip


def fan_heatmap_frame() -> np.ndarray:
    """``[2, 3]`` map from FAN heatmap pixels (64x64) to FAN input pixels: heatmap pixel i covers inputs 4i..4i+3."""
    stride = FAN_INPUT_SIZE / FAN_HEATMAP_SIZE
    offset = (stride - 1) / 2
    return np.array([[stride, 0.0, offset], [0.0, stride, offset]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``[2, 3]`` affine ``outer o inner`` (apply ``inner`` first)."""
    return np.concatenate([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2:]) + outer[:, 2:]], axis=1)


def heatmap_peaks(heatmaps: Tensor) -> Tensor:
    """Peak positions ``[B, K, 2]`` (x, y heatmap pixels) of ``[B, K, H, W]`` heatmaps: the argmax moved a
    quarter pixel towards the larger neighbour along each axis, unless it is on the border (as FAN's
    decoder does)."""
    batch, points, height, width = heatmaps.shape
    index = heatmaps.reshape(batch, points, -1).argmax(dim=-1)
    y, x = index // width, index % width
    flat = heatmaps.reshape(batch * points, height, width)
    rows = torch.arange(batch * points, device=heatmaps.device)
    xf, yf = x.reshape(-1), y.reshape(-1)
    peaks = torch.stack([xf, yf], dim=-1).to(heatmaps.dtype)
    inner = (xf > 0) & (xf < width - 1) & (yf > 0) & (yf < height - 1)
    dx = flat[rows, yf, (xf + 1).clamp(max=width - 1)] - flat[rows, yf, (xf - 1).clamp(min=0)]
    dy = flat[rows, (yf + 1).clamp(max=height - 1), xf] - flat[rows, (yf - 1).clamp(min=0), xf]
    peaks += 0.25 * torch.stack([torch.sign(dx), torch.sign(dy)], dim=-1) * inner[:, None]
    return peaks.reshape(batch, points, 2)


class FANPredictor(nn.Module):
    """FAN heatmaps: ``[B, 3, 256, 256]`` in [0, 1] -> ``[B, 68, 64, 64]`` (the last hourglass's output;
    with ``flip``, averaged with the mirrored image's mirrored heatmaps as face-alignment does). Frozen."""

    def __init__(self, network: nn.Module, flip: bool = True) -> None:
        super().__init__()
        self.network = network
        self.flip = flip
        self.register_buffer("mirror", torch.tensor(IBUG68_MIRROR), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FANPredictor:
        """Stay in eval mode whatever ``mode`` is."""
        return super().train(False)

    def _heatmaps(self, inputs: Tensor) -> Tensor:
        output = self.network(inputs)
        return output[-1] if isinstance(output, list | tuple) else output

    @torch.no_grad()
    def forward(self, inputs: Tensor) -> Tensor:
        if inputs.ndim != 4 or inputs.shape[1:] != (3, FAN_INPUT_SIZE, FAN_INPUT_SIZE):
            size = FAN_INPUT_SIZE
            raise ValueError(f"FAN inputs: expected [B, 3, {size}, {size}], got {list(inputs.shape)}")
        heatmaps = self._heatmaps(inputs)
        if self.flip:
            heatmaps = (heatmaps + self._heatmaps(inputs.flip(-1))[:, self.mirror].flip(-1)) / 2
        if heatmaps.shape[1:] != (NUM_LANDMARKS, FAN_HEATMAP_SIZE, FAN_HEATMAP_SIZE):
            raise ValueError(f"FAN network: expected heatmaps [B, 68, 64, 64], got {list(heatmaps.shape)}")
        return heatmaps


class FANLandmarker(Landmarker):
    """FAN landmarks and heatmaps on the faces a dlib detector finds.

    ``weights``: the 2D-FAN-4 file (default: face-alignment's cache, see :func:`fan_weights_path`), or
    ``predictor``: a ready :class:`FANPredictor`. ``detector`` / ``detector_options``: as for
    :class:`DlibLandmarker`.
    """

    name = "fan"

    def __init__(
        self,
        weights: str | Path | None = None,
        detector: FaceDetector | str = "hog",
        flip: bool = True,
        predictor: FANPredictor | None = None,
        **detector_options: Any,
    ) -> None:
        self.predictor = predictor if predictor is not None else FANPredictor(load_fan(weights), flip)
        self.detector = _detector(detector, detector_options)

    def landmarks_in_boxes(self, image: np.ndarray, faces: list[FaceBox]) -> list[FaceDetection]:
        """FAN on each face box of a uint8 ``[H, W, 3]`` image."""
        if not faces:
            return []
        frames = [fan_box_frame(face.box) for face in faces]
        crops = np.stack([warp_image(image, invert_transform(frame), FAN_INPUT_SIZE) for frame in frames])
        parameter = next(self.predictor.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        inputs = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float().div(255)
        heatmaps = self.predictor(inputs).float()
        peaks = heatmap_peaks(heatmaps).cpu().numpy()
        heatmaps = heatmaps.cpu().numpy()
        detections = []
        for face, frame, peak, heatmap in zip(faces, frames, peaks, heatmaps, strict=True):
            to_image = compose(frame, fan_heatmap_frame())
            landmarks = apply_transform(to_image, peak).astype(np.float32)
            detections.append(FaceDetection(face.box, face.score, landmarks, heatmap, to_image))
        return detections

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        image = check_image(image)
        return self.landmarks_in_boxes(image, self.detector.detect(image))


LANDMARKERS: dict[str, type[Landmarker]] = {"dlib": DlibLandmarker, "fan": FANLandmarker}


def build_landmarker(name: str = "dlib", **options: Any) -> Landmarker:
    """A landmarker by name: ``dlib`` (:class:`DlibLandmarker`) or ``fan`` (:class:`FANLandmarker`)."""
    if name not in LANDMARKERS:
        raise ValueError(f"unknown landmarker {name!r}; choose from {sorted(LANDMARKERS)}")
    return LANDMARKERS[name](**options)


__all__ = [
    "FAN_WEIGHTS_FILENAME",
    "IBUG68_MIRROR",
    "DlibLandmarker",
    "FANLandmarker",
    "FANPredictor",
    "FaceDetection",
    "Landmarker",
    "build_landmarker",
    "fan_box_frame",
    "fan_cache_dir",
    "fan_weights_path",
    "heatmap_peaks",
    "largest_face",
    "load_fan",
]
