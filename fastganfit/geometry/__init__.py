"""Geometry for evaluation: closest points on triangle meshes, similarity/rigid alignment, ICP, non-rigid ICP.

The benchmark runners that use it (MICC Florence, NoW, synthetic) live in :mod:`fastganfit.benchmarks`.
"""

from fastganfit.geometry.alignment import SimilarityTransform, rigid_alignment, similarity_alignment
from fastganfit.geometry.closest_point import ClosestPoints, TriangleMesh
from fastganfit.geometry.icp import IcpResult, icp_points_to_surface, icp_surface_to_points

__all__ = [
    "ClosestPoints",
    "IcpResult",
    "SimilarityTransform",
    "TriangleMesh",
    "icp_points_to_surface",
    "icp_surface_to_points",
    "rigid_alignment",
    "similarity_alignment",
]
