"""The NoW protocol: scan-to-mesh distances after landmark and ICP alignment (Sanyal et al., CVPR 2019).

Per image: the scan (``scans/<subject>/*.obj``) is cropped to a sphere around the face centre computed
from its 7 landmarks (``scans_lmks_onlypp/<subject>/*.pp``); the predicted mesh is aligned to the scan
by its 7 landmarks (order: outer and inner eye corners, inner and outer eye corners of the other eye,
nose bottom, mouth corners; iBUG-68 indices 36, 39, 42, 45, 33, 48, 54), then by ICP minimising the
distance from the cropped scan's vertices to the predicted surface. The errors are those distances
(mm); the summary is their median, mean and std pooled over all images (and per challenge).

The official evaluation estimates a scale in both alignment steps; ``scale=False`` gives strictly
rigid alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fastganfit.benchmarks.landmarks_io import landmark_points, read_picked_points
from fastganfit.benchmarks.mesh_files import read_mesh
from fastganfit.benchmarks.paths import require_dir
from fastganfit.benchmarks.report import EvaluationReport
from fastganfit.geometry.alignment import check_points, umeyama
from fastganfit.geometry.closest_point import TriangleMesh
from fastganfit.geometry.icp import icp_surface_to_points

NUM_LANDMARKS = 7
IBUG68_TO_NOW = (36, 39, 42, 45, 33, 48, 54)
CHALLENGES = ("multiview_neutral", "multiview_expressions", "multiview_occlusions", "selfie")
IMAGE_LISTS = {"val": "imagepathsvalidation.txt", "test": "imagepathstest.txt"}


def face_crop_sphere(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre ``[3]`` and radius (mm) of NoW's face crop from the scan's 7 landmarks ``[7, 3]``.

    The centre lies 30% of the way from the nose bottom to the midpoint of the inner eye corners; the
    radius is 1.4 times the mean of the outer-eye-corner distance and that nose length.
    """
    landmarks = check_points(landmarks, "scan landmarks", NUM_LANDMARKS)
    nose_bottom = landmarks[4]
    nose_bridge = 0.5 * (landmarks[1] + landmarks[2])
    centre = nose_bottom + 0.3 * (nose_bridge - nose_bottom)
    outer_eyes = float(np.linalg.norm(landmarks[0] - landmarks[3]))
    nose = float(np.linalg.norm(nose_bridge - nose_bottom))
    return centre, 1.4 * 0.5 * (outer_eyes + nose)


def now_distances(
    scan_vertices: np.ndarray,
    scan_landmarks: np.ndarray,
    predicted_vertices: np.ndarray,
    predicted_faces: np.ndarray,
    predicted_landmarks: np.ndarray,
    scale: bool = True,
    icp_tolerance: float = 1e-3,
    icp_max_iterations: int = 100,
) -> np.ndarray:
    """Scan-to-mesh distances ``[N]`` (mm) of the cropped scan's vertices after alignment.

    Args:
        scan_vertices: ``[V, 3]`` scan vertices (mm); only the vertices are measured.
        scan_landmarks: ``[7, 3]`` scan landmarks (NoW order).
        predicted_vertices: ``[P, 3]`` predicted mesh vertices (any frame and unit when ``scale``).
        predicted_faces: ``[G, 3]`` predicted triangles.
        predicted_landmarks: ``[7, 3]`` predicted landmarks in the prediction's frame.
        scale: estimate a scale in the landmark and ICP alignments (as the official evaluation does).
        icp_tolerance: ICP stops when the mean distance improves by less than this (mm).
        icp_max_iterations: maximum ICP updates.
    """
    scan_landmarks = check_points(scan_landmarks, "scan_landmarks", NUM_LANDMARKS)
    predicted_landmarks = check_points(predicted_landmarks, "predicted_landmarks", NUM_LANDMARKS)
    centre, radius = face_crop_sphere(scan_landmarks)
    scan_vertices = check_points(scan_vertices, "scan_vertices")
    cropped_vertices = scan_vertices[np.linalg.norm(scan_vertices - centre, axis=1) <= radius]
    if cropped_vertices.shape[0] < 3:
        raise ValueError(f"only {cropped_vertices.shape[0]} scan vertices lie within the face crop ({radius:.1f} mm)")
    predicted = TriangleMesh(predicted_vertices, predicted_faces)
    initial = umeyama(predicted_landmarks, scan_landmarks, scale=scale)
    result = icp_surface_to_points(
        predicted,
        cropped_vertices,
        scale=scale,
        init=initial,
        tolerance=icp_tolerance,
        max_iterations=icp_max_iterations,
    )
    transform = result.transform
    return transform.scale * predicted.distances(transform.inverse().apply(cropped_vertices))


def summarise(distances: np.ndarray) -> dict[str, float]:
    """Median, mean and std (mm) of pooled distances ``[N]``."""
    return {"median": float(np.median(distances)), "mean": float(np.mean(distances)), "std": float(np.std(distances))}


@dataclass(frozen=True)
class NowImage:
    """One line of a NoW image list: ``<subject>/<challenge>/<image>.jpg``."""

    subject: str
    challenge: str
    stem: str


def read_image_list(path: Path) -> list[NowImage]:
    """Entries of a NoW image list file (one relative image path per line)."""
    images = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.strip().split("/")
        if not line.strip():
            continue
        if len(parts) < 3:
            raise ValueError(f"{path}:{number}: expected <subject>/<challenge>/<image>, got {line.strip()!r}")
        images.append(NowImage(parts[-3], parts[-2], Path(parts[-1]).stem))
    if not images:
        raise ValueError(f"{path}: the image list is empty")
    return images


def _single_file(folder: Path, pattern: str, what: str) -> Path:
    """The first file matching ``pattern`` in ``folder``, or ``FileNotFoundError`` naming ``what``."""
    matches = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if not matches:
        raise FileNotFoundError(f"no {what} found: expected {folder / pattern}")
    return matches[0]


class NowBenchmark:
    """NoW evaluation of a folder of predictions (see the module docstring).

    Args:
        data_dir: NoW dataset root with ``scans/``, ``scans_lmks_onlypp/`` and the image lists.
        reconstructions_dir: predictions ``<subject>/<challenge>/<image>.{obj,ply,npz}`` with 7 landmarks
            ``<image>.npy`` or ``<image>.txt`` (``[7, 3]``, or 7 vertex indices).
        split: ``"val"`` or ``"test"``; picks the image list in ``data_dir``.
        image_list: explicit image list file (overrides ``split``).
        scans_dir: scans folder (default ``data_dir/scans``).
        landmarks_dir: scan landmark folder (default ``data_dir/scans_lmks_onlypp``).
        challenge: evaluate only one challenge (``None``: all).
        scale: estimate scale in the alignments (official protocol) or align rigidly.
        icp_tolerance: ICP stopping tolerance (mm).
        icp_max_iterations: maximum ICP updates per image.
        progress: show a progress bar.
    """

    name = "NoW"

    def __init__(
        self,
        data_dir: str | Path | None = None,
        reconstructions_dir: str | Path | None = None,
        split: str = "val",
        image_list: str | Path | None = None,
        scans_dir: str | Path | None = None,
        landmarks_dir: str | Path | None = None,
        challenge: str | None = None,
        scale: bool = True,
        icp_tolerance: float = 1e-3,
        icp_max_iterations: int = 100,
        progress: bool = True,
    ) -> None:
        meaning = (
            "the NoW dataset folder holding scans/, scans_lmks_onlypp/, imagepathsvalidation.txt"
            " (evaluate.py: paths.now)"
        )
        self.data_dir = require_dir(data_dir, "data_dir", meaning)
        self.reconstructions_dir = require_dir(
            reconstructions_dir, "reconstructions_dir", "the predictions, <subject>/<challenge>/<image>.obj + .npy"
        )
        if image_list is None:
            if split not in IMAGE_LISTS:
                raise ValueError(f"split must be one of {list(IMAGE_LISTS)}, got {split!r}")
            image_list = self.data_dir / IMAGE_LISTS[split]
        self.image_list = Path(image_list)
        if not self.image_list.is_file():
            raise FileNotFoundError(f"image list not found: {self.image_list} (set image_list or split)")
        self.scans_dir = require_dir(scans_dir or self.data_dir / "scans", "scans_dir", "the NoW scans/ folder")
        self.landmarks_dir = require_dir(
            landmarks_dir or self.data_dir / "scans_lmks_onlypp", "landmarks_dir", "the scans_lmks_onlypp/ folder"
        )
        if challenge is not None and challenge not in CHALLENGES:
            raise ValueError(f"challenge must be one of {list(CHALLENGES)} or null, got {challenge!r}")
        self.challenge = challenge
        self.scale = scale
        self.icp_tolerance = float(icp_tolerance)
        self.icp_max_iterations = int(icp_max_iterations)
        self.progress = progress

    def _prediction(self, image: NowImage) -> tuple[Path, Path] | None:
        """Predicted mesh and landmark files of an image, or ``None`` when either is missing."""
        folder = self.reconstructions_dir / image.subject / image.challenge
        meshes = [folder / f"{image.stem}{suffix}" for suffix in (".obj", ".ply", ".npz")]
        landmarks = [folder / f"{image.stem}{suffix}" for suffix in (".npy", ".txt")]
        mesh = next((path for path in meshes if path.is_file()), None)
        landmark_file = next((path for path in landmarks if path.is_file()), None)
        return (mesh, landmark_file) if mesh is not None and landmark_file is not None else None

    def run(self) -> EvaluationReport:
        """Evaluate every listed image; missing predictions are counted and reported."""
        images = [i for i in read_image_list(self.image_list) if self.challenge in (None, i.challenge)]
        scans: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        distances: dict[str, list[np.ndarray]] = {}
        per_image, missing = [], []
        for image in tqdm(images, desc="NoW", unit="mesh", disable=not self.progress):
            prediction = self._prediction(image)
            if prediction is None:
                missing.append(f"{image.subject}/{image.challenge}/{image.stem}")
                continue
            if image.subject not in scans:
                scan_path = _single_file(self.scans_dir / image.subject, "*.obj", f"scan of {image.subject}")
                pp_path = _single_file(self.landmarks_dir / image.subject, "*.pp", f"landmarks of {image.subject}")
                scans[image.subject] = (read_mesh(scan_path)[0], read_picked_points(pp_path))
            vertices, faces = read_mesh(prediction[0])
            landmarks = landmark_points(prediction[1], vertices, NUM_LANDMARKS, f"landmarks {prediction[1]}")
            found = now_distances(
                *scans[image.subject],
                vertices,
                faces,
                landmarks,
                self.scale,
                self.icp_tolerance,
                self.icp_max_iterations,
            )
            distances.setdefault(image.challenge, []).append(found)
            per_image.append({"image": f"{image.subject}/{image.challenge}/{image.stem}", **summarise(found)})
        if not per_image:
            raise FileNotFoundError(
                f"no predictions found under {self.reconstructions_dir} for the {len(images)} images of "
                f"{self.image_list}: expected <subject>/<challenge>/<image>.obj with <image>.npy landmarks"
            )
        rows = []
        for challenge in CHALLENGES:
            if challenge in distances:
                stats = summarise(np.concatenate(distances[challenge]))
                rows.append([challenge, stats["median"], stats["mean"], stats["std"], len(distances[challenge])])
        overall = summarise(np.concatenate([d for values in distances.values() for d in values]))
        rows.append(["all", overall["median"], overall["mean"], overall["std"], len(per_image)])
        notes = [
            f"alignment: {'similarity' if self.scale else 'rigid'} (landmarks, then ICP); "
            f"ICP tolerance {self.icp_tolerance} mm; distances from the cropped scan to the prediction"
        ]
        if missing:
            notes.append(f"{len(missing)} of {len(images)} predictions missing: results are not comparable")
        return EvaluationReport(
            benchmark=self.name,
            columns=["Challenge", "Median (mm)", "Mean (mm)", "Std (mm)", "Images"],
            rows=rows,
            notes=notes,
            details={"overall": overall, "images": per_image, "missing": missing},
        )
