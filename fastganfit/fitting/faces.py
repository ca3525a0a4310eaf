"""The face of a photo: the largest detected face, its 68 landmarks and its aligned crop (prepare's code)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fastganfit.data.prepare import align_largest_face
from fastganfit.perception.crop_template import crop_template
from fastganfit.perception.landmarks import Landmarker
from fastganfit.reconstruction.graph import FaceReconstructionGraph


@dataclass(frozen=True)
class FaceCrop:
    """The aligned crop of a photo's largest face: ``crop`` uint8 ``[S, S, 3]``, ``landmarks`` ``[68, 2]`` in
    crop pixels, ``transform`` ``[2, 3]`` (photo pixels -> crop pixels), the detector's ``box`` ``[4]`` and
    ``score``, the ``photo_landmarks`` ``[68, 2]``, the number of ``faces`` found and ``notes``."""

    crop: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray
    box: np.ndarray
    score: float
    photo_landmarks: np.ndarray
    faces: int
    notes: tuple[str, ...]


def graph_crop_template(graph: FaceReconstructionGraph, crop_size: int) -> np.ndarray:
    """``[68, 2]`` template of a graph's crops: its mean face seen by its camera at zero (``crop_template``)."""
    model, camera = graph.model, graph.renderer.camera
    with torch.no_grad():
        return crop_template(crop_size, model, camera).detach().double().cpu().numpy()


def crop_largest_face(
    image: np.ndarray, landmarker: Landmarker, template: np.ndarray, crop_size: int, min_face: float
) -> FaceCrop:
    """Detect the faces of a uint8 RGB ``image`` ``[H, W, 3]`` and align the largest onto ``template``.

    Raises :class:`~fastganfit.data.prepare.UnusableInputError` (no face found, face too small, ...).
    """
    found = align_largest_face(image, landmarker, template, crop_size, min_face)
    face = found.detection
    notes = []
    if found.faces > 1:
        width, height = face.box[2] - face.box[0], face.box[3] - face.box[1]
        notes.append(f"{found.faces} faces found, the largest ({width:.0f}x{height:.0f} px) taken")
    return FaceCrop(
        crop=found.aligned.image,
        landmarks=found.aligned.landmarks,
        transform=found.aligned.transform,
        box=np.asarray(face.box, np.float32),
        score=float(face.score),
        photo_landmarks=np.asarray(face.landmarks, np.float32),
        faces=found.faces,
        notes=tuple(notes),
    )
