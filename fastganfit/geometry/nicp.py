"""Non-rigid registration of a template mesh to a target surface (optimal-step non-rigid ICP).

Each template vertex gets its own affine transform ``X_i [4, 3]``. For a decreasing sequence of stiffness
weights ``alpha`` the energy

    alpha^2 |(M kron G) X|^2 + |W (D X - U)|^2 + beta^2 |D_L X - U_L|^2

is minimised by sparse least squares, where ``M`` is the edge-vertex incidence matrix (neighbouring
transforms alike), ``D X`` the deformed vertices, ``U`` their closest target points (weight 0 when the
closest point lies on the target's boundary, is farther than ``max_distance`` or faces away), and
``D_L X - U_L`` the landmark residuals (Amberg, Romdhani and Vetter, CVPR 2007).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import SuperLU, splu

from fastganfit.geometry.alignment import check_points
from fastganfit.geometry.closest_point import ClosestPoints, TriangleMesh, check_faces
from fastganfit.render.face_renderer import vertex_normals as mesh_vertex_normals

DEFAULT_STIFFNESS = (50.0, 20.0, 5.0, 2.0, 0.8, 0.5, 0.35, 0.2)
DEFAULT_LANDMARK_WEIGHTS = (5.0, 2.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``[V, 3]`` (float64) of a mesh ``vertices [V, 3]``, ``faces [F, 3]``: the
    renderer's :func:`fastganfit.render.face_renderer.vertex_normals` on one mesh."""
    points = torch.from_numpy(np.asarray(vertices, np.float64))[None]
    return mesh_vertex_normals(points, torch.from_numpy(np.asarray(faces, np.int64)))[0].numpy()


def unique_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges ``[E, 2]`` (sorted pairs) and how many faces use each ``[E]``."""
    pairs = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    edges, counts = np.unique(pairs, axis=0, return_counts=True)
    return edges, counts


def boundary_of(faces: np.ndarray, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Boundary vertices ``[V]`` (bool) and sorted keys ``a * V + b`` of the boundary edges ``a < b``."""
    edges, counts = unique_edges(faces)
    boundary_edges = edges[counts == 1]
    boundary_vertex = np.zeros(num_vertices, dtype=bool)
    boundary_vertex[boundary_edges.ravel()] = True
    return boundary_vertex, boundary_edges[:, 0] * num_vertices + boundary_edges[:, 1]


def _on_boundary(
    found: ClosestPoints, faces: np.ndarray, num_vertices: int, boundary: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Whether each closest point lies on a boundary edge or vertex (``boundary``: :func:`boundary_of`) ``[N]``."""
    boundary_vertex, boundary_keys = boundary
    corners = faces[found.face_ids]
    zero = found.barycentric <= 1e-9
    result = np.zeros(found.face_ids.shape[0], dtype=bool)
    at_vertex = zero.sum(1) == 2
    result[at_vertex] = boundary_vertex[corners[at_vertex][~zero[at_vertex]]]
    on_edge = zero.sum(1) == 1
    ends = np.sort(corners[on_edge][~zero[on_edge]].reshape(-1, 2), axis=1)
    result[on_edge] = np.isin(ends[:, 0] * num_vertices + ends[:, 1], boundary_keys)
    return result


def factorise(matrix: sp.csr_matrix) -> SuperLU:
    """Sparse LU of the symmetric positive definite ``matrix [4V, 4V]`` (minimum-degree ordering of
    ``A + A^T``, no pivoting: symmetric mode, what a Cholesky factorisation would do; scipy has none)."""
    return splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})


def solve_with_factor(
    matrix: sp.csr_matrix, rhs: np.ndarray, start: np.ndarray, factor: SuperLU, max_iterations: int = 200
) -> np.ndarray:
    """Solve ``matrix [4V, 4V] @ X = rhs [4V, 3]`` from ``start`` by conjugate gradients preconditioned by
    ``factor``, the factorisation of a nearby matrix (this stage's first one: the same stiffness, a few
    correspondence weights changed), to ``|residual| <= 1e-10 |rhs|`` per column, as scipy's ``cg`` with
    ``rtol=1e-10``; a fresh factorisation solves it should CG not get there.

    Hand-written rather than scipy's ``cg`` (one column at a time) so that the three columns share each
    iteration's triangular solves: a registration's solves took 9.3 CPU s with ``cg``, mostly in 572
    one-column SuperLU solves (ICT template, 9,409 vertices, onto a 73,840-triangle scan; one thread).
    The factorisation brings CG to 12-40 iterations, against about 600 with block Jacobi before.
    """
    solution = np.array(start, dtype=np.float64)
    residual = rhs - matrix @ solution
    goal = 1e-10 * np.linalg.norm(rhs, axis=0)
    preconditioned = factor.solve(residual)
    direction = preconditioned.copy()
    product = (residual * preconditioned).sum(0)
    for _ in range(max_iterations):
        if (np.linalg.norm(residual, axis=0) <= goal).all():
            return solution
        image = matrix @ direction
        curvature = (direction * image).sum(0)
        step = np.divide(product, curvature, out=np.zeros_like(product), where=curvature > 0)
        solution += step * direction
        residual -= step * image
        preconditioned = factor.solve(residual)
        updated = (residual * preconditioned).sum(0)
        ratio = np.divide(updated, product, out=np.zeros_like(updated), where=product > 0)
        direction = preconditioned + ratio * direction
        product = updated
    return factorise(matrix).solve(rhs)


def nonrigid_icp(
    template_vertices: np.ndarray,
    template_faces: np.ndarray,
    target_vertices: np.ndarray,
    target_faces: np.ndarray,
    template_landmarks: np.ndarray,
    target_landmarks: np.ndarray,
    stiffness: tuple[float, ...] = DEFAULT_STIFFNESS,
    landmark_weights: tuple[float, ...] = DEFAULT_LANDMARK_WEIGHTS,
    iterations_per_stage: int = 3,
    max_distance: float = 10.0,
    max_normal_angle: float = 60.0,
    gamma: float = 1.0,
) -> np.ndarray:
    """Deform a template onto a target surface; the template should already be roughly aligned.

    Args:
        template_vertices: ``[V, 3]`` template vertices (mm), e.g. after landmark similarity alignment.
        template_faces: ``[F, 3]`` template triangles.
        target_vertices: ``[T, 3]`` target (scan) vertices (mm).
        target_faces: ``[G, 3]`` target triangles.
        template_landmarks: ``[L]`` int template vertex indices of the landmarks.
        target_landmarks: ``[L, 3]`` corresponding target landmark positions (mm).
        stiffness: stiffness weights ``alpha``, one stage each, decreasing.
        landmark_weights: landmark weights ``beta``, one per stage.
        iterations_per_stage: closest-point updates per stage.
        max_distance: correspondences farther than this (mm) get weight 0.
        max_normal_angle: correspondences whose normals differ by more (degrees) get weight 0.
        gamma: weight of the translation part in the stiffness term.

    Returns:
        Registered template vertices ``[V, 3]`` (mm, target frame), same topology as the template.
    """
    template_vertices = check_points(template_vertices, "template_vertices")
    template_faces = check_faces(template_faces, template_vertices.shape[0], "template_faces")
    target_vertices = check_points(target_vertices, "target_vertices")
    target_faces = check_faces(target_faces, target_vertices.shape[0], "target_faces")
    template_landmarks = np.asarray(template_landmarks, dtype=np.int64)
    target_landmarks = check_points(target_landmarks, "target_landmarks", template_landmarks.shape[0])
    if len(stiffness) != len(landmark_weights):
        raise ValueError(
            f"stiffness ({len(stiffness)}) and landmark_weights ({len(landmark_weights)}) must have equal lengths"
        )

    centre = template_vertices.mean(0)
    unit = float(np.sqrt(((template_vertices - centre) ** 2).sum(1).mean()))
    template = (template_vertices - centre) / unit
    target = TriangleMesh((target_vertices - centre) / unit, target_faces)
    landmarks = (target_landmarks - centre) / unit
    n = template.shape[0]

    edges, _ = unique_edges(template_faces)
    rows = np.repeat(np.arange(edges.shape[0]), 2)
    incidence = sp.csr_matrix((np.tile([-1.0, 1.0], edges.shape[0]), (rows, edges.ravel())), shape=(len(edges), n))
    stiffness_matrix = sp.kron(incidence, sp.diags([1.0, 1.0, 1.0, gamma])).tocsr()
    homogeneous = np.hstack([template, np.ones((n, 1))])
    columns = np.arange(4 * n).reshape(n, 4)
    data_matrix = sp.csr_matrix((homogeneous.ravel(), columns.ravel(), np.arange(0, 4 * n + 1, 4)), shape=(n, 4 * n))
    landmark_matrix = data_matrix[template_landmarks]
    transforms = np.tile(np.vstack([np.eye(3), np.zeros((1, 3))]), (n, 1))
    cos_limit = np.cos(np.radians(max_normal_angle))
    target_corners = target.vertices[target.faces]
    target_normals = np.cross(target_corners[:, 1] - target_corners[:, 0], target_corners[:, 2] - target_corners[:, 0])
    target_normals /= np.maximum(np.linalg.norm(target_normals, axis=1, keepdims=True), 1e-30)
    boundary = boundary_of(target.faces, target.vertices.shape[0])

    for alpha, beta in zip(stiffness, landmark_weights, strict=True):
        factor = None
        for _ in range(iterations_per_stage):
            deformed = data_matrix @ transforms
            found = target.closest_points(deformed)
            normals = vertex_normals(deformed, template_faces)
            weights = (
                (found.distances * unit <= max_distance)
                & ~_on_boundary(found, target.faces, target.vertices.shape[0], boundary)
                & ((normals * target_normals[found.face_ids]).sum(1) >= cos_limit)
            ).astype(np.float64)
            weighted = sp.diags(weights) @ data_matrix
            blocks = [alpha * stiffness_matrix, weighted]
            rhs = [np.zeros((stiffness_matrix.shape[0], 3)), weights[:, None] * found.points]
            if beta > 0:
                blocks.append(beta * landmark_matrix)
                rhs.append(beta * landmarks)
            system = sp.vstack(blocks).tocsr()
            normal_matrix = (system.T @ system).tocsr()
            right_side = np.asarray(system.T @ np.vstack(rhs))
            if factor is None:
                factor = factorise(normal_matrix)
                updated = factor.solve(right_side)
            else:
                updated = solve_with_factor(normal_matrix, right_side, transforms, factor)
            change = float(np.abs(updated - transforms).max())
            transforms = updated
            if change < 1e-6:
                break
    return (data_matrix @ transforms) * unit + centre
