"""Geometric conventions shared by the face-model loaders and the ICT asset builder."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

# Depth of the rotation pivot behind the mean landmark depth, in mm (close to the head's centre).
PIVOT_DEPTH_BEHIND_LANDMARKS_MM = 85.0


def symmetry_map(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """Index of each vertex's mirror image across x = 0, ``[V]``, and the largest mirror mismatch (mm)."""
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    distance, index = cKDTree(vertices).query(mirrored)
    return index.astype(np.int64), float(distance.max())
