"""Evaluation: mesh distances, alignment, ICP and the MICC / NoW / synthetic protocols."""

from fastganfit.evaluation.alignment import SimilarityTransform, rigid_alignment, similarity_alignment
from fastganfit.evaluation.closest_point import ClosestPoints, TriangleMesh
from fastganfit.evaluation.icp import IcpResult, icp_points_to_surface, icp_surface_to_points
from fastganfit.evaluation.micc import MiccBenchmark, micc_pair_error
from fastganfit.evaluation.now import NowBenchmark, now_distances
from fastganfit.evaluation.report import EvaluationReport, write_report

__all__ = [
    "ClosestPoints",
    "EvaluationReport",
    "IcpResult",
    "MiccBenchmark",
    "NowBenchmark",
    "SimilarityTransform",
    "TriangleMesh",
    "icp_points_to_surface",
    "icp_surface_to_points",
    "micc_pair_error",
    "now_distances",
    "rigid_alignment",
    "similarity_alignment",
    "write_report",
]
