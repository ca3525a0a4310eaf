"""The MICC Florence protocol: template registration to the scans, then per-reconstruction errors.

Ground truth: each frontal scan ``data_dir/subject_XX/Model/frontal{1,2}/obj/<scan>.obj`` with its 68
hand-labelled landmarks ``landmarks_dir/subject_XX/Model/frontal{1,2}/obj/<scan>.ljson`` (scan frame, mm).
A template mesh is registered to each scan (landmark similarity alignment, then non-rigid ICP) and
the registered template, kept in the scan frame so distances stay in mm, is the ground-truth surface.

Per reconstruction and scan: similarity alignment of the reconstruction's 68 landmarks onto the scan's,
crop to a sphere (95 mm; 60 mm for subject 28) around the scan's nose tip (landmark 30), similarity ICP
of the reconstruction's vertices inside the sphere onto the ground-truth surface (stop when the mean
distance improves by less than 0.001 mm), then the symmetric error: the average of the mean distance of
the reconstruction's vertices inside the sphere to the ground-truth surface and of the ground truth's
vertices inside the sphere to the reconstruction's surface. The crop selects the measured vertices;
distances are taken to the whole other surface, so the jagged edge of a cropped mesh adds no error.
Per subject and setting the minimum over the two frontal scans is kept (the mean over several
reconstructions of one setting, if given); per setting the mean and standard deviation over subjects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fastganfit.benchmarks.landmarks_io import landmark_points, read_ljson, read_vertex_indices
from fastganfit.benchmarks.paths import require_dir
from fastganfit.benchmarks.report import EvaluationReport
from fastganfit.evaluation.alignment import SimilarityTransform, check_points, similarity_alignment
from fastganfit.evaluation.closest_point import TriangleMesh, check_faces
from fastganfit.evaluation.icp import icp_points_to_surface
from fastganfit.evaluation.mesh_io import MESH_SUFFIXES, read_mesh
from fastganfit.evaluation.nicp import nonrigid_icp

SETTINGS = ("Indoor-Cooperative", "PTZ-Indoor", "PTZ-Outdoor")
FRONTAL_SCANS = ("frontal1", "frontal2")
NUM_LANDMARKS = 68
NOSE_TIP = 30
SUBJECT_PATTERN = re.compile(r"^subject_(\d+)$")


@dataclass(frozen=True)
class PairError:
    """Error of one reconstruction against one ground-truth mesh (mm).

    Attributes:
        symmetric: average of the two directed means below (the MICC error).
        reconstruction_to_gt: mean distance of the cropped reconstruction's vertices to the ground truth.
        gt_to_reconstruction: mean distance of the cropped ground truth's vertices to the reconstruction.
        scale: scale of the final similarity transform applied to the reconstruction.
        icp_iterations: accepted ICP updates.
        transform: the final similarity transform, reconstruction frame -> ground-truth frame.
    """

    symmetric: float
    reconstruction_to_gt: float
    gt_to_reconstruction: float
    scale: float
    icp_iterations: int
    transform: SimilarityTransform

    def summary(self) -> dict[str, float | int]:
        """The numbers (every field but the transform), for JSON results."""
        return {name: value for name, value in vars(self).items() if name != "transform"}


def micc_pair_error(
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    gt_landmarks: np.ndarray,
    reconstruction_vertices: np.ndarray,
    reconstruction_faces: np.ndarray,
    reconstruction_landmarks: np.ndarray,
    crop_radius: float = 95.0,
    icp_tolerance: float = 1e-3,
    icp_max_iterations: int = 100,
) -> PairError:
    """MICC error of one reconstruction against one ground-truth mesh.

    Args:
        gt_vertices: ``[V, 3]`` ground-truth vertices (mm), e.g. the registered template.
        gt_faces: ``[F, 3]`` ground-truth triangles.
        gt_landmarks: ``[68, 3]`` ground-truth landmarks (iBUG-68 order; index 30 is the nose tip).
        reconstruction_vertices: ``[R, 3]`` reconstruction vertices, any frame and unit.
        reconstruction_faces: ``[G, 3]`` reconstruction triangles.
        reconstruction_landmarks: ``[68, 3]`` reconstruction landmarks in the reconstruction's frame.
        crop_radius: radius (mm) of the sphere around the nose tip selecting the measured vertices.
        icp_tolerance: ICP stops when the mean distance improves by less than this (mm).
        icp_max_iterations: maximum ICP updates.
    """
    gt_landmarks = check_points(gt_landmarks, "gt_landmarks", NUM_LANDMARKS)
    reconstruction_landmarks = check_points(reconstruction_landmarks, "reconstruction_landmarks", NUM_LANDMARKS)
    if not crop_radius > 0:
        raise ValueError(f"crop_radius must be positive (mm), got {crop_radius}")
    nose_tip = gt_landmarks[NOSE_TIP]
    gt = TriangleMesh(gt_vertices, gt_faces)
    gt_points = gt.vertices[np.linalg.norm(gt.vertices - nose_tip, axis=1) <= crop_radius]
    if gt_points.shape[0] < 3:
        raise ValueError(f"fewer than 3 ground-truth vertices lie within {crop_radius} mm of the nose tip")
    reconstruction = TriangleMesh(reconstruction_vertices, reconstruction_faces)
    initial = similarity_alignment(reconstruction_landmarks, gt_landmarks)
    inside = np.linalg.norm(initial.apply(reconstruction.vertices) - nose_tip, axis=1) <= crop_radius
    if inside.sum() < 3:
        raise ValueError(
            f"after landmark alignment only {int(inside.sum())} reconstruction vertices lie within "
            f"{crop_radius} mm of the nose tip: check the reconstruction's landmarks"
        )
    result = icp_points_to_surface(
        reconstruction.vertices[inside],
        gt,
        scale=True,
        init=initial,
        tolerance=icp_tolerance,
        max_iterations=icp_max_iterations,
    )
    transform = result.transform
    moved = transform.apply(reconstruction.vertices)
    reconstruction_points = moved[np.linalg.norm(moved - nose_tip, axis=1) <= crop_radius]
    if reconstruction_points.shape[0] == 0:
        raise ValueError(f"after ICP no reconstruction vertex lies within {crop_radius} mm of the nose tip")
    to_gt = float(gt.distances(reconstruction_points).mean())
    to_reconstruction = float(transform.scale * reconstruction.distances(transform.inverse().apply(gt_points)).mean())
    return PairError(
        0.5 * (to_gt + to_reconstruction), to_gt, to_reconstruction, transform.scale, result.iterations, transform
    )


@dataclass(frozen=True)
class GroundTruthScan:
    """A frontal scan of a subject and its landmark file."""

    subject: int
    name: str
    mesh_path: Path
    landmarks_path: Path


def subject_folders(root: Path) -> dict[int, Path]:
    """Subject number -> folder, for the ``subject_XX`` folders of ``root``."""
    found = {}
    for child in sorted(root.iterdir()):
        match = SUBJECT_PATTERN.match(child.name)
        if child.is_dir() and match:
            found[int(match.group(1))] = child
    return found


def find_scans(data_dir: Path, landmarks_dir: Path) -> dict[int, list[GroundTruthScan]]:
    """Frontal scans per subject: ``data_dir/subject_XX/Model/frontal{1,2}/obj/*.obj`` with their LJSON.

    The landmark file of ``<scan>.obj`` is ``landmarks_dir/subject_XX/Model/frontalK/obj/<scan>.ljson``,
    or any ``<scan>.ljson`` under ``landmarks_dir/subject_XX``. A frontal folder whose scans all lack
    landmarks raises ``FileNotFoundError``.
    """
    scans: dict[int, list[GroundTruthScan]] = {}
    for subject, folder in subject_folders(data_dir).items():
        for frontal in FRONTAL_SCANS:
            obj_dir = folder / "Model" / frontal / "obj"
            meshes = sorted(obj_dir.glob("*.obj")) if obj_dir.is_dir() else []
            candidates = []
            for mesh in meshes:
                exact = landmarks_dir / folder.name / "Model" / frontal / "obj" / f"{mesh.stem}.ljson"
                anywhere = sorted((landmarks_dir / folder.name).rglob(f"{mesh.stem}.ljson"))
                landmark_file = exact if exact.is_file() else (anywhere[0] if anywhere else None)
                if landmark_file is not None:
                    candidates.append(GroundTruthScan(subject, f"{folder.name}/{frontal}", mesh, landmark_file))
            if meshes and not candidates:
                raise FileNotFoundError(
                    f"no landmark file for the scan(s) {[m.name for m in meshes]} of {obj_dir}: expected "
                    f"{landmarks_dir / folder.name / 'Model' / frontal / 'obj' / (meshes[0].stem + '.ljson')}"
                )
            scans.setdefault(subject, []).extend(candidates[:1])
    return {subject: items for subject, items in scans.items() if items}


def find_reconstructions(reconstructions_dir: Path, settings: Sequence[str]) -> dict[tuple[int, str], list[Path]]:
    """Reconstruction meshes per (subject, setting).

    Layout: ``reconstructions_dir/subject_XX/<Setting>.{obj,ply,npz}`` (one mesh) or
    ``reconstructions_dir/subject_XX/<Setting>/*.{obj,ply,npz}`` (several frames, averaged).
    """
    found: dict[tuple[int, str], list[Path]] = {}
    for subject, folder in subject_folders(reconstructions_dir).items():
        for setting in settings:
            files = [folder / f"{setting}{suffix}" for suffix in MESH_SUFFIXES]
            meshes = [path for path in files if path.is_file()]
            if (folder / setting).is_dir():
                meshes += sorted(p for p in (folder / setting).iterdir() if p.suffix.lower() in MESH_SUFFIXES)
            if meshes:
                found[(subject, setting)] = meshes
    return found


def reconstruction_landmark_points(
    mesh_path: Path, vertices: np.ndarray, shared_landmarks: np.ndarray | None
) -> np.ndarray:
    """Landmarks ``[68, 3]`` of a reconstruction: a sidecar ``<mesh>.ljson|.npy|.txt`` or shared indices."""
    for suffix in (".ljson", ".npy", ".txt"):
        sidecar = mesh_path.with_suffix(suffix)
        if sidecar.is_file():
            return landmark_points(sidecar, vertices, NUM_LANDMARKS, f"landmarks {sidecar}")
    if shared_landmarks is None:
        raise FileNotFoundError(
            f"no landmarks for reconstruction {mesh_path}: add {mesh_path.with_suffix('.ljson')} (or .npy/.txt "
            "with 68 points or 68 vertex indices), or set reconstruction_landmarks to a file of 68 vertex indices"
        )
    return landmark_points(shared_landmarks, vertices, NUM_LANDMARKS, f"reconstruction_landmarks for {mesh_path}")


def load_template(
    template_mesh: str | Path | None, template_landmarks: str | Path | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Template ``vertices [V, 3]`` (mm), ``faces [F, 3]`` and 68 landmark vertex indices ``[68]``.

    ``template_mesh=None`` selects the mean face of the project's ICT-FaceKit model
    (``fastganfit/assets/ict_face.npz``); an NPZ template may hold ``vertices`` or ``mean``, ``faces``
    and ``landmark_indices``, so ``template_landmarks`` is needed only for other meshes.
    """
    if template_mesh is None:
        from fastganfit.facemodel.morphable import default_ict_path

        template_mesh = default_ict_path()
    template_mesh = Path(template_mesh)
    if template_mesh.suffix.lower() == ".npz" and template_mesh.is_file():
        with np.load(template_mesh) as data:
            if "mean" in data.files and "vertices" not in data.files:
                vertices = check_points(data["mean"], f"mean of {template_mesh}")
                faces = np.asarray(data["faces"], dtype=np.int64)
            else:
                vertices, faces = read_mesh(template_mesh)
            if template_landmarks is None and "landmark_indices" in data.files:
                template_landmarks = template_mesh
    else:
        vertices, faces = read_mesh(template_mesh)
    if template_landmarks is None:
        raise ValueError(
            f"template_landmarks is not set: it should point to a file of the 68 landmark vertex indices of "
            f"template_mesh={template_mesh} (.txt, .npy, or .npz with 'landmark_indices')"
        )
    indices = read_vertex_indices(template_landmarks, NUM_LANDMARKS, "template_landmarks")
    landmark_points(indices, vertices, NUM_LANDMARKS, f"template_landmarks={template_landmarks}")
    return vertices, check_faces(faces, vertices.shape[0], f"faces of {template_mesh}"), indices


class MiccBenchmark:
    """MICC Florence evaluation of a folder of reconstructions (see the module docstring).

    Args:
        data_dir: MICC Florence root holding ``subject_01`` ... ``subject_53``.
        landmarks_dir: root of the published 68-point LJSON files, same layout as ``data_dir``.
        reconstructions_dir: reconstructions, ``subject_XX/<Setting>.obj`` (see :func:`find_reconstructions`).
        template_mesh: template mesh registered to every scan (``.obj``/``.ply``/``.npz``, mm); ``None``
            uses the ICT-FaceKit mean face (see :func:`load_template`).
        template_landmarks: file of the template's 68 landmark vertex indices (``.txt``/``.npy``/``.npz``).
        registration: ``"nicp"`` (the protocol) or ``"none"`` (compare with the raw scans).
        reconstruction_landmarks: file of 68 vertex indices shared by all reconstructions without a sidecar.
        crop_radius: crop radius around the nose tip (mm).
        radius_overrides: per-subject crop radius (the published script uses 60 mm for subject 28).
        settings: video settings to evaluate.
        cache_dir: folder where registered templates are stored and reused (``None``: no cache).
        icp_tolerance: ICP stopping tolerance (mm).
        icp_max_iterations: maximum ICP updates per pair.
        progress: show a progress bar.
    """

    name = "MICC Florence"

    def __init__(
        self,
        data_dir: str | Path | None = None,
        landmarks_dir: str | Path | None = None,
        reconstructions_dir: str | Path | None = None,
        template_mesh: str | Path | None = None,
        template_landmarks: str | Path | None = None,
        registration: str = "nicp",
        reconstruction_landmarks: str | Path | None = None,
        crop_radius: float = 95.0,
        radius_overrides: Mapping[int, float] | None = None,
        settings: Sequence[str] = SETTINGS,
        cache_dir: str | Path | None = None,
        icp_tolerance: float = 1e-3,
        icp_max_iterations: int = 100,
        progress: bool = True,
    ) -> None:
        self.data_dir = require_dir(data_dir, "data_dir", "the MICC Florence folder holding subject_01 ... subject_53")
        self.landmarks_dir = require_dir(
            landmarks_dir, "landmarks_dir", "the folder of 68-point .ljson files (subject_XX/Model/frontalK/obj/)"
        )
        self.reconstructions_dir = require_dir(
            reconstructions_dir, "reconstructions_dir", "the reconstructions, one subject_XX/<Setting>.obj per video"
        )
        if registration not in ("nicp", "none"):
            raise ValueError(f"registration must be 'nicp' or 'none', got {registration!r}")
        self.registration = registration
        self.template = load_template(template_mesh, template_landmarks) if registration == "nicp" else None
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; MICC settings are {list(SETTINGS)}")
        self.settings = tuple(settings)
        self.shared_landmarks = None
        if reconstruction_landmarks is not None:
            self.shared_landmarks = read_vertex_indices(
                reconstruction_landmarks, NUM_LANDMARKS, "reconstruction_landmarks"
            )
        self.crop_radius = float(crop_radius)
        self.radius_overrides = {int(k): float(v) for k, v in (radius_overrides or {}).items()}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.icp_tolerance = float(icp_tolerance)
        self.icp_max_iterations = int(icp_max_iterations)
        self.progress = progress

    def ground_truth(self, scan: GroundTruthScan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ground-truth ``vertices [V, 3]``, ``faces [F, 3]`` and landmarks ``[68, 3]`` of a scan (mm)."""
        scan_vertices, scan_faces = read_mesh(scan.mesh_path)
        landmarks = check_points(read_ljson(scan.landmarks_path), f"landmarks {scan.landmarks_path}", NUM_LANDMARKS)
        if self.template is None:
            return scan_vertices, scan_faces, landmarks
        template_vertices, template_faces, indices = self.template
        cache = None
        if self.cache_dir is not None:
            cache = self.cache_dir / f"{scan.name.replace('/', '_')}_{scan.mesh_path.stem}.npz"
            if cache.is_file():
                with np.load(cache) as data:
                    if data["vertices"].shape == template_vertices.shape:
                        return data["vertices"], template_faces, landmarks
        aligned = similarity_alignment(template_vertices[indices], landmarks).apply(template_vertices)
        registered = nonrigid_icp(aligned, template_faces, scan_vertices, scan_faces, indices, landmarks)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, vertices=registered)
        return registered, template_faces, landmarks

    def run(self) -> EvaluationReport:
        """Evaluate every reconstruction found; returns the per-setting table and per-subject details."""
        scans = find_scans(self.data_dir, self.landmarks_dir)
        if not scans:
            raise FileNotFoundError(f"no frontal scans found under {self.data_dir}/subject_XX/Model/frontal1/obj/")
        reconstructions = find_reconstructions(self.reconstructions_dir, self.settings)
        if not reconstructions:
            raise FileNotFoundError(
                f"no reconstructions found under {self.reconstructions_dir}: expected subject_XX/<Setting>.obj "
                f"with <Setting> one of {list(self.settings)}"
            )
        missing_gt = sorted({subject for subject, _ in reconstructions} - set(scans))
        if missing_gt:
            raise FileNotFoundError(f"reconstructions given for subjects {missing_gt} without frontal scans")
        jobs = [
            (subject, setting, mesh)
            for (subject, setting), meshes in sorted(reconstructions.items())
            for mesh in meshes
        ]
        ground_truth: dict[Path, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        per_mesh: list[dict] = []
        for subject, setting, mesh_path in tqdm(jobs, desc="MICC", unit="mesh", disable=not self.progress):
            vertices, faces = read_mesh(mesh_path)
            landmarks = reconstruction_landmark_points(mesh_path, vertices, self.shared_landmarks)
            radius = self.radius_overrides.get(subject, self.crop_radius)
            errors = {}
            for scan in scans[subject]:
                if scan.mesh_path not in ground_truth:
                    ground_truth[scan.mesh_path] = self.ground_truth(scan)
                errors[scan.name] = micc_pair_error(
                    *ground_truth[scan.mesh_path],
                    vertices,
                    faces,
                    landmarks,
                    radius,
                    self.icp_tolerance,
                    self.icp_max_iterations,
                ).summary()
            best = min(errors, key=lambda name: errors[name]["symmetric"])
            per_mesh.append(
                {
                    "subject": subject,
                    "setting": setting,
                    "mesh": str(mesh_path),
                    "crop_radius": radius,
                    "error": errors[best]["symmetric"],
                    "best_scan": best,
                    "scans": errors,
                }
            )
        return self._report(per_mesh)

    def _report(self, per_mesh: list[dict]) -> EvaluationReport:
        """Aggregate per-mesh errors: mean per subject and setting, then mean/std over subjects."""
        rows, per_setting = [], {}
        for setting in self.settings:
            subjects = sorted({item["subject"] for item in per_mesh if item["setting"] == setting})
            values = [
                float(
                    np.mean(
                        [
                            item["error"]
                            for item in per_mesh
                            if item["setting"] == setting and item["subject"] == subject
                        ]
                    )
                )
                for subject in subjects
            ]
            if values:
                rows.append([setting, float(np.mean(values)), float(np.std(values)), len(values)])
                per_setting[setting] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values)),
                    "subjects": dict(zip([f"subject_{s:02d}" for s in subjects], values, strict=True)),
                }
        notes = [
            f"registration: {self.registration}; crop radius {self.crop_radius} mm around the nose tip"
            + (f", overrides {self.radius_overrides}" if self.radius_overrides else ""),
            f"similarity ICP tolerance {self.icp_tolerance} mm; error = symmetric mean point-to-surface "
            "distance (mm), minimum over the frontal scans; std is the population std over subjects",
        ]
        return EvaluationReport(
            benchmark=self.name,
            columns=["Setting", "Mean (mm)", "Std (mm)", "Subjects"],
            rows=rows,
            notes=notes,
            details={"settings": per_setting, "meshes": per_mesh},
        )
