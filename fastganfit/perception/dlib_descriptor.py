"""dlib's 128-D face descriptor (``dlib_face_recognition_resnet_model_v1.dat`` from ``face-recognition-models``),
computed by dlib itself from a photo and its 68 landmarks: the reference the PyTorch port
(:mod:`fastganfit.perception.dlib_resnet`) is checked against, and a measure of how much identity a photo carries."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np

from fastganfit.perception.detection import box_rectangle, check_image, dlib_model_path
from fastganfit.perception.dlib_resnet import MODEL_FILENAME


class DlibFaceDescriptor:
    """``descriptor(image, box, landmarks) -> [128]`` float32: dlib's face chip (150 px, padding 0.25) of the face
    with ``landmarks [68, 2]`` (photo pixels) in ``box [4]`` (x0, y0, x1, y1), through dlib's ResNet.
    ``model_path``: the network file (default: face-recognition-models')."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        self.network = dlib.face_recognition_model_v1(str(dlib_model_path(MODEL_FILENAME, model_path)))

    def __call__(self, image: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        landmarks = np.asarray(landmarks, np.float64)
        if landmarks.shape != (68, 2):
            raise ValueError(f"landmarks: expected [68, 2] photo pixels, got {list(landmarks.shape)}")
        points = [dlib.point(round(x), round(y)) for x, y in landmarks]
        shape = dlib.full_object_detection(box_rectangle(box), points)
        return np.asarray(self.network.compute_face_descriptor(check_image(image), shape), np.float32)
