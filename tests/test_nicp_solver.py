"""The registration's linear solver: CG preconditioned by a nearby matrix's factorisation equals a direct solve."""

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from fastganfit.geometry.nicp import factorise, solve_with_factor, unique_edges
from fastganfit.geometry.procedural_meshes import icosphere


def registration_matrix(vertices: np.ndarray, faces: np.ndarray, alpha: float, weights: np.ndarray) -> sp.csr_matrix:
    """``alpha^2 (M kron I4)^T (M kron I4) + D^T W D``: the normal matrix of a non-rigid ICP step ``[4V, 4V]``."""
    edges, _ = unique_edges(faces)
    n = vertices.shape[0]
    rows = np.repeat(np.arange(len(edges)), 2)
    incidence = sp.csr_matrix((np.tile([-1.0, 1.0], len(edges)), (rows, edges.ravel())), shape=(len(edges), n))
    stiffness = sp.kron(incidence, sp.eye(4)).tocsr()
    homogeneous = np.hstack([vertices, np.ones((n, 1))])
    data = sp.csr_matrix((homogeneous.ravel(), np.arange(4 * n), np.arange(0, 4 * n + 1, 4)), shape=(n, 4 * n))
    weighted = sp.diags(weights) @ data
    return (alpha**2 * stiffness.T @ stiffness + weighted.T @ weighted).tocsr()


def test_preconditioned_solve_equals_direct_solve():
    vertices, faces = icosphere(3)
    rng = np.random.default_rng(0)
    weights = (rng.uniform(size=len(vertices)) > 0.1).astype(float)
    factored = registration_matrix(vertices, faces, 0.5, weights)
    changed = weights.copy()
    changed[rng.choice(len(vertices), 20, replace=False)] = 0.0  # a few correspondences dropped
    matrix = registration_matrix(vertices, faces, 0.5, changed)
    rhs = rng.normal(size=(matrix.shape[0], 3))
    direct = np.column_stack([spsolve(matrix.tocsc(), rhs[:, k]) for k in range(3)])
    start = factorise(factored).solve(rhs)
    solved = solve_with_factor(matrix, rhs, start, factorise(factored))
    assert np.abs(matrix @ solved - rhs).max() < 1e-8 * np.abs(rhs).max()
    assert np.abs(solved - direct).max() < 1e-8 * np.abs(direct).max()
    assert np.abs(start - direct).max() > 1e-4 * np.abs(direct).max()  # the preconditioner alone is not the answer
