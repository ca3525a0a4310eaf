"""The same-person benchmark's core: does a reconstruction of one photo of a person find their other photo?

For N persons with two photos each (:class:`~fastganfit.benchmarks.pair_faces.PairFaces`), every method
(``(crops [B, 3, S, S], landmarks [B, 68, 2]) -> FaceParams``) reconstructs all 2N faces; each reconstruction is
described by (a) its identity (shape) coefficients ``[Ks]`` and (b) its neutral mesh (identity only, expression
zero), the vertices of the face region (within ``crop_radius`` mm of the mean face's nose tip, as MICC crops)
similarity-aligned onto the mean face's (Umeyama), compared by their RMS vertex distance (mm). Baselines need no
3D model: the 68 detected landmarks after a 2D similarity (Procrustes) alignment onto the crop template, and
dlib's 128-D face descriptor. Each descriptor is scored by :mod:`fastganfit.benchmarks.retrieval` (rank-1, top-5,
median rank, ROC AUC); persons with a photo where no face was found are missing from every row and counted.

From a script, with any reconstruction::

    pairs = read_photo_pairs("/path/to/portraits")
    faces = detect_pair_faces(pairs, landmarker, graph_crop_template(graph, size), size, cache_dir="cache")
    result = evaluate_pairs(faces, {"mine": my_method}, graph.model)
    result.scores[("mine", MESH)].rank1
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from skimage.transform import SimilarityTransform
from tqdm import tqdm

from fastganfit.benchmarks.micc_protocols import NOSE_TIP
from fastganfit.benchmarks.pair_faces import PairFaces
from fastganfit.benchmarks.retrieval import RetrievalScores, euclidean_distances, query_ranks, retrieval_scores
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.geometry.alignment import similarity_alignment
from fastganfit.params import FaceParams, ParamSizes

Method = Callable[[torch.Tensor, torch.Tensor], FaceParams]
#: Descriptor names: the rows of a method, and the baselines'.
COEFFICIENTS, MESH = "identity coefficients", "neutral mesh (aligned)"
LANDMARKS_2D, DLIB = "68 landmarks (2D, Procrustes)", "dlib descriptor (128-D)"
#: The baselines' row names.
DETECTED = "detected landmarks"
FACE_RECOGNITION = "face recognition (dlib)"


def face_region(model: MorphableModel, radius: float = 95.0) -> np.ndarray:
    """``[V]`` bool: the mean face's vertices within ``radius`` mm of its nose tip (landmark 31)."""
    mean = model.mean.detach().double().cpu().numpy()
    nose = mean[model.landmark_indices[NOSE_TIP].item()]
    return np.linalg.norm(mean - nose, axis=1) <= radius


def aligned_neutral_meshes(model: MorphableModel, shape: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``[M, R * 3]``: the neutral meshes of ``shape [M, Ks]`` coefficients (expression zero), their ``region [V]``
    vertices similarity-aligned onto the mean face's and scaled by ``1 / sqrt(R)`` (so Euclidean distances are RMS
    vertex distances in mm); rows of ``NaN`` coefficients stay ``NaN``."""
    reference = model.mean.detach().double().cpu().numpy()[region]
    basis = model.shape_basis.detach().double().cpu().numpy()[:, region]
    rows = np.full((len(shape), region.sum() * 3), np.nan)
    for index, coefficients in enumerate(np.asarray(shape, np.float64)):
        if np.isnan(coefficients).any():
            continue
        vertices = reference + np.einsum("k,kvc->vc", coefficients, basis)
        rows[index] = similarity_alignment(vertices, reference).apply(vertices).ravel()
    return rows / np.sqrt(region.sum())


def procrustes_landmarks(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[M, 136]``: each of ``landmarks [M, 68, 2]`` after the 2D similarity (least squares, no reflection) onto
    ``reference [68, 2]``; rows with ``NaN`` stay ``NaN``."""
    rows = np.full((len(landmarks), landmarks.shape[1] * 2), np.nan)
    for index, points in enumerate(np.asarray(landmarks, np.float64)):
        if np.isnan(points).any():
            continue
        transform = SimilarityTransform.from_estimate(points, reference)
        if not transform:
            raise ValueError(f"landmarks[{index}]: no similarity onto the reference ({transform})")
        rows[index] = transform(points).ravel()
    return rows


@dataclass
class PairsEvaluation:
    """Scores per ``(row, descriptor)`` (a method's name or a baseline's), the per-photo descriptors
    ``[2N, D]`` behind them (``NaN`` rows: no face) and each method's per-photo parameters ``[2N, P]`` (flattened
    :class:`FaceParams`, ``NaN`` rows: no face) with their group sizes and the seconds each took per face."""

    faces: PairFaces
    scores: dict[tuple[str, str], RetrievalScores] = field(default_factory=dict)
    descriptors: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    sizes: dict[str, ParamSizes] = field(default_factory=dict)
    seconds_per_face: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.faces.complete().any():
            raise ValueError(f"pairs: no person of {self.faces.pairs.root} has a face found in both photos "
                             f"({len(self.faces.reasons)} photos without a face)")

    def add(self, row: str, descriptor: str, values: np.ndarray) -> None:
        """Score per-photo descriptors ``values [2N, D]`` as ``(row, descriptor)``."""
        a, b = self.faces.pair_rows(values)
        self.descriptors[(row, descriptor)] = values
        self.scores[(row, descriptor)] = retrieval_scores(a, b)

    def pair_ranks(self, row: str, descriptor: str) -> np.ndarray:
        """``[N]``: each person's expected rank (A->B and B->A averaged; 1 is best), ``NaN`` for a missing person."""
        a, b = self.faces.pair_rows(self.descriptors[(row, descriptor)])
        complete = ~(np.isnan(a).any(1) | np.isnan(b).any(1))
        distances = euclidean_distances(a[complete], b[complete])
        ranks = np.full(len(a), np.nan)
        ranks[complete] = (query_ranks(distances)[2] + query_ranks(distances.T)[2]) / 2.0
        return ranks

    def face_params(self, method: str, indices: np.ndarray) -> FaceParams:
        """``method``'s parameters of photos ``indices`` (all found) as a :class:`FaceParams`."""
        flat = torch.from_numpy(self.params[method][indices]).float()
        return FaceParams.unflatten(flat, self.sizes[method])


def reconstruct_faces(
    method: Method, faces: PairFaces, device: torch.device, batch_size: int = 8, progress: bool = True,
    name: str = "method",
) -> tuple[np.ndarray, ParamSizes]:  # fmt: skip
    """``method``'s flattened parameters ``[2N, P]`` of every face found (``NaN`` rows elsewhere) and their sizes."""
    indices = np.flatnonzero(faces.found)
    flat, sizes = None, None
    bar = tqdm(total=len(indices), desc=f"pairs: {name}", unit="face", file=sys.stderr, disable=not progress)
    with bar:
        for start in range(0, len(indices), batch_size):
            batch = indices[start : start + batch_size]
            params = method(*faces.inputs(batch, device)).detach()
            if flat is None:
                sizes = params.sizes
                flat = np.full((len(faces.found), sizes.total), np.nan)
            flat[batch] = params.flatten().double().cpu().numpy()
            bar.update(len(batch))
    if flat is None:
        raise ValueError("pairs: no face was found in any photo, nothing to reconstruct")
    return flat, sizes


def evaluate_baselines(faces: PairFaces, template: np.ndarray, evaluation: PairsEvaluation | None = None
                       ) -> PairsEvaluation:  # fmt: skip
    """The rows that need no reconstruction: the detected landmarks aligned onto ``template [68, 2]`` and dlib's
    descriptors, added to ``evaluation`` (a new one when ``None``)."""
    evaluation = evaluation or PairsEvaluation(faces)
    evaluation.add(DETECTED, LANDMARKS_2D, procrustes_landmarks(faces.photo_landmarks, template))
    evaluation.add(FACE_RECOGNITION, DLIB, faces.descriptors.astype(np.float64))
    return evaluation


def evaluate_pairs(
    faces: PairFaces, methods: Mapping[str, Method], model: MorphableModel, crop_radius: float = 95.0,
    batch_size: int = 8, device: torch.device | str = "cpu", progress: bool = True,
    evaluation: PairsEvaluation | None = None,
) -> PairsEvaluation:  # fmt: skip
    """Reconstruct every face of ``faces`` with each of ``methods`` (name -> ``(crops [B, 3, S, S] in [0, 1],
    landmarks [B, 68, 2] crop pixels) -> FaceParams``) and score its identity coefficients and its aligned
    neutral meshes (``model``'s face region within ``crop_radius`` mm of the nose tip); added to ``evaluation``
    (a new one when ``None``)."""
    evaluation = evaluation or PairsEvaluation(faces)
    region = face_region(model, crop_radius)
    device = torch.device(device)
    for name, method in methods.items():
        started = time.perf_counter()
        flat, sizes = reconstruct_faces(method, faces, device, batch_size, progress, name)
        evaluation.seconds_per_face[name] = (time.perf_counter() - started) / max(int(faces.found.sum()), 1)
        evaluation.params[name], evaluation.sizes[name] = flat, sizes
        shape = flat[:, : sizes.shape]
        evaluation.add(name, COEFFICIENTS, shape)
        evaluation.add(name, MESH, aligned_neutral_meshes(model, shape, region))
    return evaluation
