"""The faces of a photo: each detected face (or only the largest), its 68 landmarks and its aligned crop."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from fastganfit.data.prepare import UnusableInputError, align_largest_face
from fastganfit.perception.crop import align_face
from fastganfit.perception.crop_template import crop_template
from fastganfit.perception.landmarks import FaceDetection, Landmarker
from fastganfit.reconstruction.graph import FaceReconstructionGraph

#: ``faces=``: reconstruct only the largest face of a photo, or every face found.
FACE_CHOICES = ("largest", "all")
#: Faces whose box side is below this many pixels are reconstructed with a note (``small_face``).
SMALL_FACE = 64.0


@dataclass(frozen=True)
class FaceCrop:
    """The aligned crop of one face of a photo: ``crop`` uint8 ``[S, S, 3]``, ``landmarks`` ``[68, 2]`` in
    crop pixels, ``transform`` ``[2, 3]`` (photo pixels -> crop pixels), the detector's ``box`` ``[4]`` and
    ``score``, the ``photo_landmarks`` ``[68, 2]``, the number of ``faces`` found, ``notes`` and the face's
    ``index`` among those reconstructed from the photo (0: the largest)."""

    crop: np.ndarray
    landmarks: np.ndarray
    transform: np.ndarray
    box: np.ndarray
    score: float
    photo_landmarks: np.ndarray
    faces: int
    notes: tuple[str, ...]
    index: int = 0

    @property
    def label(self) -> str:
        """``face<index>_<x0>-<y0>-<x1>-<y1>``: the face's index and its box (whole photo pixels)."""
        x0, y0, x1, y1 = (round(float(value)) for value in self.box)
        return f"face{self.index}_{x0}-{y0}-{x1}-{y1}"


def graph_crop_template(graph: FaceReconstructionGraph, crop_size: int) -> np.ndarray:
    """``[68, 2]`` template of a graph's crops: its mean face seen by its camera at zero (``crop_template``)."""
    model, camera = graph.model, graph.renderer.camera
    with torch.no_grad():
        return crop_template(crop_size, model, camera).detach().double().cpu().numpy()


def small_face_note(box: np.ndarray, transform: np.ndarray, small_face: float) -> list[str]:
    """``[note]`` when the face in ``box [4]`` is smaller than ``small_face`` pixels, with the scale of its crop
    (photo -> crop ``transform [2, 3]``; above 1: upsampled); ``[]`` otherwise."""
    width, height = float(box[2] - box[0]), float(box[3] - box[1])
    if min(width, height) >= small_face:
        return []
    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(transform, np.float64)[:, :2]))))
    return [f"small face ({width:.0f}x{height:.0f} px, below small_face={small_face:g}): reconstructed from a crop "
            f"scaled {scale:.1f}x from the photo; fine detail comes from the model, not the photo"]


def crop_largest_face(
    image: np.ndarray, landmarker: Landmarker, template: np.ndarray, crop_size: int, min_face: float,
    small_face: float = SMALL_FACE,
) -> FaceCrop:  # fmt: skip
    """Detect the faces of a uint8 RGB ``image`` ``[H, W, 3]`` and align the largest onto ``template``; a face
    below ``small_face`` pixels gets a note (:func:`small_face_note`).

    Raises :class:`~fastganfit.data.prepare.UnusableInputError` (no face found, face too small, ...).
    """
    found = align_largest_face(image, landmarker, template, crop_size, min_face)
    face = found.detection
    notes = []
    if found.faces > 1:
        width, height = face.box[2] - face.box[0], face.box[3] - face.box[1]
        notes.append(
            f"{found.faces} faces found, the largest ({width:.0f}x{height:.0f} px) taken (faces=all takes all)"
        )
    notes += small_face_note(face.box, found.aligned.transform, small_face)
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


def crop_faces(
    image: np.ndarray, landmarker: Landmarker, template: np.ndarray, crop_size: int, min_face: float,
    faces: str = "all", small_face: float = SMALL_FACE,
) -> list[FaceCrop]:  # fmt: skip
    """The aligned crops of a uint8 RGB ``image`` ``[H, W, 3]``: every detected face at least ``min_face`` pixels
    (``faces="all"``, largest first, ``index`` 0, 1, ...) or only the largest (``faces="largest"``); faces below
    ``small_face`` pixels get a note (:func:`small_face_note`).

    Raises :class:`~fastganfit.data.prepare.UnusableInputError` when no face is usable.
    """
    if faces not in FACE_CHOICES:
        raise ValueError(f"faces must be one of {FACE_CHOICES}, got {faces!r}")
    if faces == "largest":
        return [crop_largest_face(image, landmarker, template, crop_size, min_face, small_face)]
    detections = sorted(landmarker.detect(image), key=lambda detection: -detection.area)
    if not detections:
        raise UnusableInputError("no face found")
    usable = [detection for detection in detections if min(_box_size(detection)) >= min_face]
    if not usable:
        width, height = _box_size(detections[0])
        raise UnusableInputError(f"face too small ({width:.0f}x{height:.0f} px, min_face={min_face:g})")
    notes = []
    if len(usable) < len(detections):
        skipped = len(detections) - len(usable)
        notes.append(f"{skipped} of {len(detections)} faces smaller than min_face={min_face:g} px skipped")
    crops = []
    for detection in usable:
        try:
            aligned = align_face(image, detection.landmarks, template, crop_size)
        except ValueError as error:
            notes.append(f"a face at {np.round(detection.box).astype(int).tolist()} could not be aligned ({error})")
            continue
        crops.append(FaceCrop(
            crop=aligned.image, landmarks=aligned.landmarks, transform=aligned.transform,
            box=np.asarray(detection.box, np.float32), score=float(detection.score),
            photo_landmarks=np.asarray(detection.landmarks, np.float32), faces=len(detections),
            notes=tuple(small_face_note(detection.box, aligned.transform, small_face)),
            index=len(crops),
        ))  # fmt: skip
    if not crops:
        raise UnusableInputError("alignment failed for every face found")
    if len(crops) > 1:
        notes.append(f"{len(crops)} faces reconstructed, one result folder each")
    crops[0] = replace(crops[0], notes=(*notes, *crops[0].notes))
    return crops


def _box_size(detection: FaceDetection) -> tuple[float, float]:
    box = detection.box
    return float(box[2] - box[0]), float(box[3] - box[1])
