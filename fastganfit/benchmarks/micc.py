"""MICC Florence: template registration to the scans, then per-reconstruction errors (docs/evaluation.md).

Ground truth: each frontal scan ``data_dir/subject_XX/Model/frontal{1,2}/obj/<scan>.obj`` with its 68
hand-labelled landmarks ``landmarks_dir/subject_XX/Model/frontal{1,2}/obj/<scan>.ljson`` (scan frame, mm).
Registration, as GANFit's ``micc_registration.py``: the scan is aligned onto the template's 68 landmarks by
a norm-ratio similarity (menpo's ``AlignmentSimilarity``), then the template is registered to it by
non-rigid ICP; the registered template stays in the template's frame (the scan scaled to the template's
size), with the scan's landmarks mapped there. Registrations are cached in ``cache_dir``.

Errors per reconstruction and scan: :func:`~fastganfit.benchmarks.micc_protocols.micc_pair_error` with
``protocol=ganfit`` (default; template frame), ``deep3dface`` or ``any_topology`` (the registered template
mapped back to the scan's millimetres). Per subject and setting the minimum over the two frontal scans is
kept (the mean over several reconstructions of one setting, if given); per setting the mean and
population standard deviation over subjects. Pairs run in parallel over scans (``workers``), and each
pair's result is cached in ``cache_dir`` so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fastganfit.benchmarks.landmarks_io import landmark_points, read_ljson, read_vertex_indices
from fastganfit.benchmarks.mesh_files import MESH_SUFFIXES, read_mesh
from fastganfit.benchmarks.micc_protocols import (
    CROP_RADIUS_MM,
    ICP_TOLERANCE_MM,
    NOSE_TIP,
    NUM_LANDMARKS,
    PROTOCOLS,
    SUBJECT_CROP_RADII_MM,
    FaceMesh,
    PairError,
    micc_pair_error,
)
from fastganfit.benchmarks.paths import require_dir
from fastganfit.benchmarks.report import EvaluationReport
from fastganfit.geometry.alignment import SimilarityTransform, check_points, norm_ratio_similarity
from fastganfit.geometry.closest_point import check_faces
from fastganfit.geometry.nicp import nonrigid_icp
from fastganfit.io.atomic import atomic_write

__all__ = ["NOSE_TIP", "FaceMesh", "MiccBenchmark", "PairError", "micc_pair_error", "register_scan"]

SETTINGS = ("Indoor-Cooperative", "PTZ-Indoor", "PTZ-Outdoor")
FRONTAL_SCANS = ("frontal1", "frontal2")
SUBJECT_PATTERN = re.compile(r"^subject_(\d+)$")
#: NICP drops correspondences farther than this (mm).
NICP_MAX_DISTANCE_MM = 10.0


@dataclass(frozen=True)
class Registration:
    """A scan's ground truth: the registered template in the template's frame and the scan -> template map.

    Attributes:
        mesh: registered template ``vertices [V, 3]``, template ``faces`` and the scan's landmarks, all in
            the template's frame.
        scan_to_template: the norm-ratio similarity taking the scan's landmarks onto the template's.
    """

    mesh: FaceMesh
    scan_to_template: SimilarityTransform

    def in_scan_frame(self) -> FaceMesh:
        """The registered template and landmarks mapped back to the scan's frame (mm)."""
        back = self.scan_to_template.inverse()
        return FaceMesh(back.apply(self.mesh.vertices), self.mesh.faces, back.apply(self.mesh.landmarks))


def register_scan(
    scan_vertices: np.ndarray,
    scan_faces: np.ndarray,
    scan_landmarks: np.ndarray,
    template: tuple[np.ndarray, np.ndarray, np.ndarray],
    unit_mm: float = 1.0,
) -> Registration:
    """Register the template ``(vertices [V,3], faces [F,3], landmark indices [68])`` to a scan (mm).

    The scan is aligned onto the template's landmarks (norm-ratio similarity), then the template is
    deformed onto it by non-rigid ICP (``unit_mm``: millimetres per template unit).
    """
    template_vertices, template_faces, indices = template
    scan_landmarks = check_points(scan_landmarks, "scan landmarks", NUM_LANDMARKS)
    to_template = norm_ratio_similarity(scan_landmarks, template_vertices[indices])
    landmarks = to_template.apply(scan_landmarks)
    registered = nonrigid_icp(
        template_vertices, template_faces, to_template.apply(scan_vertices), scan_faces, indices, landmarks,
        max_distance=NICP_MAX_DISTANCE_MM / unit_mm,
    )  # fmt: skip
    return Registration(FaceMesh(registered, template_faces, landmarks), to_template)


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


@dataclass(frozen=True)
class MiccJob:
    """One scan and the reconstructions of its subject to score against it."""

    scan: GroundTruthScan
    meshes: tuple[tuple[str, Path], ...]  # (setting, mesh path)


def _mesh_key(path: Path, *settings: float | str) -> str:
    """Cache key of one pair's result: the mesh file (path, size, modification time) and the settings."""
    stat = path.stat()
    return "|".join([str(path), str(stat.st_size), str(stat.st_mtime_ns), *map(str, settings)])


class MiccBenchmark:
    """MICC Florence evaluation of a folder of reconstructions (see the module docstring).

    Args:
        data_dir: MICC Florence root holding ``subject_01`` ... ``subject_53``.
        landmarks_dir: root of the published 68-point LJSON files, same layout as ``data_dir``.
        reconstructions_dir: reconstructions, ``subject_XX/<Setting>.obj`` (see :func:`find_reconstructions`).
        protocol: ``ganfit`` (GANFit's script), ``deep3dface`` or ``any_topology``.
        template_mesh: template mesh registered to every scan (``.obj``/``.ply``/``.npz``); ``None``
            uses the ICT-FaceKit mean face (see :func:`load_template`).
        template_landmarks: file of the template's 68 landmark vertex indices (``.txt``/``.npy``/``.npz``).
        registration: ``"nicp"`` (the protocol) or ``"none"`` (raw scans; not with ``protocol=ganfit``).
        reconstruction_landmarks: 68 vertex indices for reconstructions without a landmark sidecar (not
            used by ``ganfit``: its reconstructions are in the template's topology and use its indices).
        unit_mm: millimetres per unit of the template and of the reconstructions (GANFit's template: 100).
        crop_radius: crop radius around the nose tip (mm; the published script's 95 by default).
        radius_overrides: per-subject crop radius (mm); ``None``: the published script's
            (:data:`~fastganfit.benchmarks.micc_protocols.SUBJECT_CROP_RADII_MM`: 60 mm for subject 28);
            ``{}``: none.
        settings: video settings to evaluate.
        cache_dir: folder for registered templates and per-pair results, reused by later runs (``None``: none).
        icp_tolerance: ICP stopping tolerance (mm).
        icp_max_iterations: ICP cap of ``deep3dface``/``any_topology`` (``ganfit`` has none).
        workers: processes scoring scans in parallel (``None``: one per CPU core).
        progress: show a progress bar.
    """

    name = "MICC Florence"

    def __init__(
        self,
        data_dir: str | Path | None = None,
        landmarks_dir: str | Path | None = None,
        reconstructions_dir: str | Path | None = None,
        protocol: str = "ganfit",
        template_mesh: str | Path | None = None,
        template_landmarks: str | Path | None = None,
        registration: str = "nicp",
        reconstruction_landmarks: str | Path | None = None,
        unit_mm: float = 1.0,
        crop_radius: float = CROP_RADIUS_MM,
        radius_overrides: Mapping[int, float] | None = None,
        settings: Sequence[str] = SETTINGS,
        cache_dir: str | Path | None = None,
        icp_tolerance: float = ICP_TOLERANCE_MM,
        icp_max_iterations: int = 100,
        workers: int | None = 1,
        progress: bool = True,
    ) -> None:
        self.data_dir = require_dir(
            data_dir, "data_dir", "the MICC Florence folder holding subject_01 ... subject_53 (evaluate.py: paths.micc)"
        )
        self.landmarks_dir = require_dir(
            landmarks_dir,
            "landmarks_dir",
            "the folder of 68-point .ljson files (subject_XX/Model/frontalK/obj/; evaluate.py: paths.micc_landmarks)",
        )
        self.reconstructions_dir = require_dir(
            reconstructions_dir, "reconstructions_dir", "the reconstructions, one subject_XX/<Setting>.obj per video"
        )
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
        if registration not in ("nicp", "none"):
            raise ValueError(f"registration must be 'nicp' or 'none', got {registration!r}")
        if protocol == "ganfit" and registration == "none":
            raise ValueError("protocol=ganfit needs registration=nicp: it compares meshes in the template's topology")
        self.protocol = protocol
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
        if not unit_mm > 0:
            raise ValueError(f"unit_mm must be positive (millimetres per template unit), got {unit_mm}")
        self.unit_mm = float(unit_mm)
        self.crop_radius = float(crop_radius)
        if radius_overrides is None:
            radius_overrides = SUBJECT_CROP_RADII_MM
        self.radius_overrides = {int(k): float(v) for k, v in radius_overrides.items()}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.icp_tolerance = float(icp_tolerance)
        self.icp_max_iterations = int(icp_max_iterations)
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 or null (one per CPU core), got {workers}")
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress

    def registration_of(self, scan: GroundTruthScan) -> Registration:
        """The scan's :class:`Registration`, read from or written to ``cache_dir`` when set."""
        landmarks = check_points(read_ljson(scan.landmarks_path), f"landmarks {scan.landmarks_path}", NUM_LANDMARKS)
        if self.template is None:
            return Registration(FaceMesh(*read_mesh(scan.mesh_path), landmarks), SimilarityTransform.identity())
        cache = None
        if self.cache_dir is not None:
            cache = self.cache_dir / "registrations" / f"{scan.name.replace('/', '_')}_{scan.mesh_path.stem}.npz"
            if cache.is_file():
                with np.load(cache) as data:
                    if data["vertices"].shape == self.template[0].shape:
                        transform = SimilarityTransform(float(data["scale"]), data["rotation"], data["translation"])
                        return Registration(FaceMesh(data["vertices"], self.template[1], data["landmarks"]), transform)
        registration = register_scan(*read_mesh(scan.mesh_path), landmarks, self.template, self.unit_mm)
        if cache is not None:
            with atomic_write(cache) as handle:
                transform = registration.scan_to_template
                np.savez(
                    handle, vertices=registration.mesh.vertices, landmarks=registration.mesh.landmarks,
                    scale=transform.scale, rotation=transform.rotation, translation=transform.translation,
                )  # fmt: skip
        return registration

    def reconstruction(self, mesh_path: Path) -> FaceMesh:
        """A reconstruction and its 68 landmarks (``ganfit``: the template's landmark vertices)."""
        vertices, faces = read_mesh(mesh_path)
        if self.protocol == "ganfit":
            indices = self.template[2]
            if vertices.shape[0] != self.template[0].shape[0]:
                raise ValueError(
                    f"{mesh_path}: protocol=ganfit needs reconstructions in the template's topology "
                    f"({self.template[0].shape[0]} vertices), got {vertices.shape[0]} vertices"
                )
            return FaceMesh.with_landmark_vertices(vertices, faces, indices)
        shared = self.shared_landmarks
        if shared is None and self.template is not None and vertices.shape[0] == self.template[0].shape[0]:
            shared = self.template[2]  # the template's topology: its landmark vertices
        return FaceMesh(vertices, faces, reconstruction_landmark_points(mesh_path, vertices, shared))

    def score_scan(self, job: MiccJob) -> dict[str, dict]:
        """Errors of a scan's reconstructions: ``{mesh path: PairError.summary()}``, resumed from the cache."""
        radius = self.radius_overrides.get(job.scan.subject, self.crop_radius)
        cache = None
        done: dict[str, dict] = {}
        if self.cache_dir is not None:
            cache = self.cache_dir / f"results_{self.protocol}" / f"{job.scan.name.replace('/', '_')}.json"
            if cache.is_file():
                done = json.loads(cache.read_text())
        settings = (radius, self.protocol, self.unit_mm, self.icp_tolerance, self.icp_max_iterations)
        keys = {str(path): _mesh_key(path, *settings) for _, path in job.meshes}
        results = {str(path): done[keys[str(path)]] for _, path in job.meshes if keys[str(path)] in done}
        if len(results) == len(job.meshes):
            return results
        registration = self.registration_of(job.scan)
        ground_truth = registration.mesh if self.protocol == "ganfit" else registration.in_scan_frame()
        unit = self.unit_mm if self.protocol == "ganfit" else 1.0
        for _, path in job.meshes:
            if str(path) in results:
                continue
            pair = micc_pair_error(
                self.reconstruction(path), ground_truth, self.protocol, radius, self.icp_tolerance, unit,
                self.icp_max_iterations,
            )  # fmt: skip
            results[str(path)] = {**pair.summary(), "crop_radius": radius}
            done[keys[str(path)]] = results[str(path)]
            if cache is not None:
                with atomic_write(cache, "w") as handle:
                    json.dump(done, handle, indent=1)
        return results

    def jobs(self) -> list[MiccJob]:
        """One job per frontal scan with reconstructions of its subject."""
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
        return [
            MiccJob(scan, tuple(
                (setting, mesh)
                for (subject, setting), meshes in sorted(reconstructions.items())
                if subject == scan.subject
                for mesh in meshes
            ))
            for subject_scans in scans.values()
            for scan in subject_scans
            if any(subject == scan.subject for subject, _ in reconstructions)
        ]  # fmt: skip

    def run(self) -> EvaluationReport:
        """Evaluate every reconstruction found; returns the per-setting table and per-subject details."""
        jobs = self.jobs()
        scored: dict[str, dict] = {}
        bar = tqdm(total=sum(len(job.meshes) for job in jobs), desc="MICC pairs", disable=not self.progress)
        if self.workers == 1 or len(jobs) == 1:
            for job in jobs:
                scored[job.scan.name] = self.score_scan(job)
                bar.update(len(job.meshes))
        else:
            with ProcessPoolExecutor(min(self.workers, len(jobs))) as pool:
                futures = {pool.submit(self.score_scan, job): job for job in jobs}
                for future in as_completed(futures):
                    scored[futures[future].scan.name] = future.result()
                    bar.update(len(futures[future].meshes))
        bar.close()
        per_mesh = []
        for (subject, setting, mesh), errors in self._per_mesh(jobs, scored).items():
            best = min(errors, key=lambda name: errors[name]["error"])
            per_mesh.append({
                "subject": subject, "setting": setting, "mesh": mesh, "crop_radius": errors[best]["crop_radius"],
                "error": errors[best]["error"], "best_scan": best, "scans": errors,
            })  # fmt: skip
        return self._report(per_mesh)

    @staticmethod
    def _per_mesh(jobs: list[MiccJob], scored: dict[str, dict]) -> dict[tuple[int, str, str], dict[str, dict]]:
        """``{(subject, setting, mesh): {scan name: result}}`` from the per-scan results."""
        grouped: dict[tuple[int, str, str], dict[str, dict]] = {}
        for job in jobs:
            for setting, path in job.meshes:
                key = (job.scan.subject, setting, str(path))
                grouped.setdefault(key, {})[job.scan.name] = scored[job.scan.name][str(path)]
        return dict(sorted(grouped.items()))

    def _report(self, per_mesh: list[dict]) -> EvaluationReport:
        """Aggregate per-mesh errors: mean per subject and setting, then mean/std over subjects."""
        rows, per_setting = [], {}
        for setting in self.settings:
            by_subject: dict[int, list[float]] = {}
            for item in per_mesh:
                if item["setting"] == setting:
                    by_subject.setdefault(item["subject"], []).append(item["error"])
            if not by_subject:
                continue
            subjects = sorted(by_subject)
            values = [float(np.mean(by_subject[subject])) for subject in subjects]
            rows.append([setting, float(np.mean(values)), float(np.std(values)), len(values)])
            per_setting[setting] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "subjects": dict(zip([f"subject_{s:02d}" for s in subjects], values, strict=True)),
            }
        measure = "symmetric mean point-to-surface distance"
        if self.protocol == "deep3dface":
            measure = "RMSE of the cropped ground truth's point-to-surface distances"
        notes = [
            f"protocol: {self.protocol}; registration: {self.registration}; crop radius {self.crop_radius:g} mm "
            "around the nose tip" + (f", overrides {self.radius_overrides}" if self.radius_overrides else ""),
            f"error (mm) = {measure}; ICP tolerance {self.icp_tolerance} mm; minimum over the frontal scans per "
            "subject; std is the population std over subjects",
        ]
        return EvaluationReport(
            benchmark=f"{self.name} ({self.protocol} protocol)",
            columns=["Setting", "Mean (mm)", "Std (mm)", "Subjects"],
            rows=rows,
            notes=notes,
            details={"protocol": self.protocol, "settings": per_setting, "meshes": per_mesh},
        )
