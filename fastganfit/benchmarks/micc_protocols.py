"""The error of one reconstruction against one ground-truth face mesh, under three protocols.

``ganfit`` (default): GANFit's released MICC script (github.com/barisgecer/GANFit, ``micc_evaluation.py``),
step by step. Both meshes share the template's topology (the ground truth is the template registered
to the scan). For each direction, ``moving -> fixed``: crop the moving mesh to the vertices strictly
inside a sphere (95 mm; 60 mm for MICC subject 28) around its own nose tip, in its own frame, keeping
the triangles whose three vertices are kept (and only their vertices); start from the same vertices of
the fixed mesh as partners (dense correspondences) and run :func:`icp_from_correspondences`
(norm-ratio similarity, continue while the mean distance drops by more than 0.001 mm, keep the last
step); the direction's distance is the mean of the moved crop vertices' exact distances to the whole
fixed surface, in the fixed mesh's units. The error is the average of ``ground truth -> reconstruction``
(the ground truth scaled onto the reconstruction) and ``reconstruction -> ground truth``.

``deep3dface``: the variant of Deng et al. 2019 (Deep3DFaceReconstruction) and followers: crop the
ground truth to 95 mm around its nose tip, align the reconstruction by its 68 landmarks (least-squares
similarity), least-squares ICP with isotropic scale (stopping on the RMSE) moving the reconstruction so
that the cropped ground-truth vertices lie on it, and report the RMSE of those vertices' point-to-surface
distances (ground-truth mm).

``any_topology``: for a reconstruction whose topology differs from the ground truth's (e.g. the
synthetic benchmark's other face models): landmark similarity alignment, crop both meshes to the
sphere around the ground truth's nose tip, similarity ICP of the reconstruction's crop onto the ground
truth, symmetric mean point-to-surface distance. Not comparable with published numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastganfit.geometry.alignment import SimilarityTransform, check_points, similarity_alignment
from fastganfit.geometry.closest_point import TriangleMesh, check_faces
from fastganfit.geometry.icp import icp_from_correspondences, icp_points_to_surface, icp_surface_to_points
from fastganfit.geometry.mesh_crop import sphere_crop_mask

NUM_LANDMARKS = 68
NOSE_TIP = 30
PROTOCOLS = ("ganfit", "deep3dface", "any_topology")
#: The published protocol's constants (GANFit's ``micc_evaluation.py``): crop radius around the nose tip (mm),
CROP_RADIUS_MM = 95.0
#: the subjects it crops with another radius (mm; subject 28's scan is cut closer to the face),
SUBJECT_CROP_RADII_MM = {28: 60.0}
#: and the ICP's stopping gain of the mean distance (mm).
ICP_TOLERANCE_MM = 1e-3


def crop_radius_of(subject: int, overrides: dict[int, float] | None = None) -> float:
    """Crop radius (mm) of MICC ``subject``: ``overrides`` (default :data:`SUBJECT_CROP_RADII_MM`), else 95 mm."""
    table = SUBJECT_CROP_RADII_MM if overrides is None else overrides
    return float(table.get(int(subject), CROP_RADIUS_MM))


@dataclass(frozen=True)
class FaceMesh:
    """A face mesh with its 68 iBUG landmarks (index 30: the nose tip), all in one frame.

    Attributes:
        vertices: ``[V, 3]`` float64 vertices.
        faces: ``[F, 3]`` int64 triangles.
        landmarks: ``[68, 3]`` landmark positions (for a reconstruction in the template's topology,
            the vertices at the template's landmark indices; for a registered scan, the scan's
            hand-labelled landmarks in the registration's frame).
    """

    vertices: np.ndarray
    faces: np.ndarray
    landmarks: np.ndarray

    @staticmethod
    def of(value: FaceMesh | tuple, name: str) -> FaceMesh:
        """``value`` as a checked :class:`FaceMesh`; a tuple ``(vertices, faces, landmarks)`` is accepted."""
        if not isinstance(value, FaceMesh):
            if not isinstance(value, tuple | list) or len(value) != 3:
                raise TypeError(f"{name} must be a FaceMesh or a (vertices, faces, landmarks) tuple")
            value = FaceMesh(*value)
        vertices = check_points(value.vertices, f"{name} vertices")
        faces = check_faces(value.faces, vertices.shape[0], f"{name} faces")
        landmarks = check_points(value.landmarks, f"{name} landmarks", NUM_LANDMARKS)
        return FaceMesh(vertices, faces, landmarks)

    @staticmethod
    def with_landmark_vertices(vertices: np.ndarray, faces: np.ndarray, indices: np.ndarray) -> FaceMesh:
        """A mesh whose landmarks are its vertices at ``indices [68]``."""
        vertices = check_points(vertices, "vertices")
        return FaceMesh(vertices, faces, vertices[np.asarray(indices, dtype=np.int64)])


@dataclass(frozen=True)
class PairError:
    """Error of one reconstruction against one ground-truth mesh (mm).

    Attributes:
        error: the protocol's error (GANFit, any_topology: symmetric mean; deep3dface: RMSE).
        reconstruction_to_gt: mean distance of the reconstruction's crop to the ground truth (``None``
            for deep3dface, which measures one direction).
        gt_to_reconstruction: mean distance of the ground truth's crop to the reconstruction.
        transform: the final transform of the reconstruction onto the ground truth's frame.
        reconstruction_iterations: steps of the ICP moving the reconstruction onto the ground truth.
        gt_iterations: steps of the ICP moving the ground truth onto the reconstruction (GANFit's
            second direction; ``None`` for the protocols with one ICP).
        gt_transform: that ICP's final transform of the ground truth onto the reconstruction's frame
            (``None`` likewise).
    """

    error: float
    reconstruction_to_gt: float | None
    gt_to_reconstruction: float
    transform: SimilarityTransform
    reconstruction_iterations: int
    gt_iterations: int | None = None
    gt_transform: SimilarityTransform | None = None

    @property
    def icp_iterations(self) -> int:
        """ICP steps of both directions together."""
        return self.reconstruction_iterations + (self.gt_iterations or 0)

    def summary(self) -> dict[str, float | int | None]:
        """The numbers, each ICP's steps and scale (``gt_scale``: the ground truth's, GANFit only), for JSON."""
        numbers = {name: value for name, value in vars(self).items() if not name.endswith("transform")}
        gt_scale = None if self.gt_transform is None else self.gt_transform.scale
        return {**numbers, "icp_iterations": self.icp_iterations, "scale": self.transform.scale, "gt_scale": gt_scale}


def _directed_ganfit(
    moving: FaceMesh, fixed: FaceMesh, radius: float, tolerance: float, unit_mm: float
) -> tuple[float, int, SimilarityTransform]:
    """One direction of GANFit's protocol: mean distance (mm), ICP steps, final transform of ``moving``."""
    mask = sphere_crop_mask(moving.vertices, moving.faces, moving.landmarks[NOSE_TIP], radius / unit_mm)
    if mask.sum() < 3:
        raise ValueError(f"fewer than 3 vertices lie within {radius} mm of the nose tip: check the units (unit_mm)")
    result = icp_from_correspondences(
        moving.vertices[mask], fixed.vertices[mask], TriangleMesh(fixed.vertices, fixed.faces), tolerance, unit_mm
    )
    return result.mean_distance, result.iterations, result.transform


def ganfit_error(
    reconstruction: FaceMesh, ground_truth: FaceMesh, crop_radius: float, tolerance: float, unit_mm: float
) -> PairError:
    """GANFit's protocol (module docstring); both meshes in the template's topology."""
    if reconstruction.vertices.shape != ground_truth.vertices.shape or not np.array_equal(
        reconstruction.faces, ground_truth.faces
    ):
        raise ValueError(
            "protocol=ganfit needs the reconstruction and the registered ground truth in one topology (same "
            f"vertex count and triangles), got {reconstruction.vertices.shape[0]} and "
            f"{ground_truth.vertices.shape[0]} vertices; use protocol=deep3dface or any_topology otherwise"
        )
    gt_to_rec, gt_steps, gt_transform = _directed_ganfit(ground_truth, reconstruction, crop_radius, tolerance, unit_mm)
    rec_to_gt, rec_steps, transform = _directed_ganfit(reconstruction, ground_truth, crop_radius, tolerance, unit_mm)
    return PairError(0.5 * (gt_to_rec + rec_to_gt), rec_to_gt, gt_to_rec, transform, rec_steps, gt_steps, gt_transform)


def _crop_and_landmark_alignment(
    reconstruction: FaceMesh, ground_truth: FaceMesh, crop_radius: float, unit_mm: float
) -> tuple[np.ndarray, SimilarityTransform]:
    """Ground-truth vertices ``[N, 3]`` within ``crop_radius`` mm of its nose tip, and the landmark similarity."""
    gt_points = ground_truth.vertices[
        np.linalg.norm(ground_truth.vertices - ground_truth.landmarks[NOSE_TIP], axis=1) < crop_radius / unit_mm
    ]
    if gt_points.shape[0] < 3:
        raise ValueError(f"fewer than 3 ground-truth vertices lie within {crop_radius} mm of the nose tip")
    return gt_points, similarity_alignment(reconstruction.landmarks, ground_truth.landmarks)


def deep3dface_error(
    reconstruction: FaceMesh,
    ground_truth: FaceMesh,
    crop_radius: float,
    tolerance: float,
    unit_mm: float,
    max_iterations: int = 100,
) -> PairError:
    """Deep3DFace's variant (module docstring): RMSE of the cropped ground truth to the reconstruction."""
    gt_points, initial = _crop_and_landmark_alignment(reconstruction, ground_truth, crop_radius, unit_mm)
    surface = TriangleMesh(reconstruction.vertices, reconstruction.faces)
    result = icp_surface_to_points(
        surface,
        gt_points,
        scale=True,
        init=initial,
        tolerance=tolerance / unit_mm,
        max_iterations=max_iterations,
        rmse=True,
    )
    transform = result.transform
    distances = transform.scale * surface.distances(transform.inverse().apply(gt_points)) * unit_mm
    rmse = float(np.sqrt((distances**2).mean()))
    return PairError(rmse, None, float(distances.mean()), transform, result.iterations)


def any_topology_error(
    reconstruction: FaceMesh,
    ground_truth: FaceMesh,
    crop_radius: float,
    tolerance: float,
    unit_mm: float,
    max_iterations: int = 100,
) -> PairError:
    """Landmark-initialised symmetric error for meshes of different topologies (module docstring)."""
    radius = crop_radius / unit_mm
    nose_tip = ground_truth.landmarks[NOSE_TIP]
    gt_points, initial = _crop_and_landmark_alignment(reconstruction, ground_truth, crop_radius, unit_mm)
    gt = TriangleMesh(ground_truth.vertices, ground_truth.faces)
    rec = TriangleMesh(reconstruction.vertices, reconstruction.faces)
    inside = np.linalg.norm(initial.apply(rec.vertices) - nose_tip, axis=1) <= radius
    if inside.sum() < 3:
        raise ValueError(
            f"after landmark alignment only {int(inside.sum())} reconstruction vertices lie within "
            f"{crop_radius} mm of the nose tip: check the reconstruction's landmarks"
        )
    result = icp_points_to_surface(
        rec.vertices[inside], gt, scale=True, init=initial, tolerance=tolerance / unit_mm,
        max_iterations=max_iterations,
    )  # fmt: skip
    transform = result.transform
    moved = transform.apply(rec.vertices)
    rec_points = moved[np.linalg.norm(moved - nose_tip, axis=1) <= radius]
    if rec_points.shape[0] == 0:
        raise ValueError(f"after ICP no reconstruction vertex lies within {crop_radius} mm of the nose tip")
    to_gt = unit_mm * float(gt.distances(rec_points).mean())
    to_rec = unit_mm * float(transform.scale * rec.distances(transform.inverse().apply(gt_points)).mean())
    return PairError(0.5 * (to_gt + to_rec), to_gt, to_rec, transform, result.iterations)


ERRORS: dict[str, Callable[..., PairError]] = {
    "ganfit": ganfit_error,
    "deep3dface": deep3dface_error,
    "any_topology": any_topology_error,
}


def micc_pair_error(
    reconstruction: FaceMesh | tuple,
    registered_ground_truth: FaceMesh | tuple,
    protocol: str = "ganfit",
    crop_radius: float = CROP_RADIUS_MM,
    tolerance: float = ICP_TOLERANCE_MM,
    unit_mm: float = 1.0,
    max_iterations: int = 100,
) -> PairError:
    """MICC error of one reconstruction against one (registered) ground-truth mesh.

    Args:
        reconstruction: :class:`FaceMesh` or ``(vertices [V,3], faces [F,3], landmarks [68,3])``.
        registered_ground_truth: the same for the ground truth (for ``ganfit``: the template registered
            to the scan, so the topology is the reconstruction's; its landmarks: the scan's, in its frame).
        protocol: ``ganfit`` (GANFit's script), ``deep3dface`` or ``any_topology`` (module docstring).
        crop_radius: crop radius (mm); GANFit's script uses 60 mm for MICC subject 28: pass
            ``crop_radius_of(subject)`` (:data:`SUBJECT_CROP_RADII_MM`).
        tolerance: ICP continues while the mean distance improves by more than this (mm).
        unit_mm: millimetres per unit of the meshes' coordinates (GANFit's template is in units of
            100 mm: ``unit_mm=100``); crops and reported distances are in mm.
        max_iterations: ICP cap of ``deep3dface`` and ``any_topology`` (``ganfit`` has none, as its script).
    """
    if protocol not in ERRORS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    if not crop_radius > 0:
        raise ValueError(f"crop_radius must be positive (mm), got {crop_radius}")
    if not unit_mm > 0:
        raise ValueError(f"unit_mm must be positive, got {unit_mm}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 mm, got {tolerance}")
    if max_iterations < 1:
        raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
    rec = FaceMesh.of(reconstruction, "reconstruction")
    gt = FaceMesh.of(registered_ground_truth, "registered_ground_truth")
    if protocol == "ganfit":
        return ganfit_error(rec, gt, crop_radius, tolerance, unit_mm)
    return ERRORS[protocol](rec, gt, crop_radius, tolerance, unit_mm, max_iterations)
