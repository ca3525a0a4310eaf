"""MICC's published constants apply from Python, and PairError reports each ICP direction on its own."""

import numpy as np
import pytest

from fastganfit.benchmarks.micc import MiccBenchmark
from fastganfit.benchmarks.micc_protocols import (
    CROP_RADIUS_MM,
    ICP_TOLERANCE_MM,
    FaceMesh,
    crop_radius_of,
    micc_pair_error,
)
from fastganfit.geometry.procedural_meshes import sphere_head

HEAD = sphere_head(radius=80.0, subdivisions=3)


def test_benchmark_applies_the_published_constants_without_a_config(tmp_path):
    folders = {name: tmp_path / name for name in ("data_dir", "landmarks_dir", "reconstructions_dir")}
    for folder in folders.values():
        folder.mkdir()
    benchmark = MiccBenchmark(**folders, progress=False)
    assert benchmark.radius_overrides == {28: 60.0}
    assert (benchmark.crop_radius, benchmark.icp_tolerance) == (95.0, 0.001) == (CROP_RADIUS_MM, ICP_TOLERANCE_MM)
    assert MiccBenchmark(**folders, radius_overrides={}, progress=False).radius_overrides == {}
    assert (crop_radius_of(28), crop_radius_of(1), crop_radius_of(28, {})) == (60.0, 95.0, 95.0)


def test_ganfit_pair_error_reports_each_direction():
    vertices, faces, landmarks = HEAD
    ground_truth = FaceMesh.with_landmark_vertices(vertices, faces, landmarks)
    # The reconstruction is twice the size, slightly squashed: each ICP has its own scale and steps.
    reconstruction = FaceMesh.with_landmark_vertices(2.0 * vertices * [1.0, 1.0, 0.97], faces, landmarks)
    pair = micc_pair_error(reconstruction, ground_truth, unit_mm=2.0)
    assert pair.transform.scale == pytest.approx(0.5, rel=0.02)  # the reconstruction onto the ground truth
    assert pair.gt_transform.scale == pytest.approx(2.0, rel=0.02)  # the ground truth onto the reconstruction
    assert pair.reconstruction_iterations >= 1 and pair.gt_iterations >= 1
    assert pair.icp_iterations == pair.reconstruction_iterations + pair.gt_iterations
    summary = pair.summary()
    assert summary["scale"] == pair.transform.scale and summary["gt_scale"] == pair.gt_transform.scale
    assert (summary["reconstruction_iterations"], summary["gt_iterations"]) == (
        pair.reconstruction_iterations,
        pair.gt_iterations,
    )
    single = micc_pair_error(reconstruction, ground_truth, protocol="deep3dface", unit_mm=2.0)
    assert single.gt_iterations is None and single.gt_transform is None
    assert single.summary()["gt_scale"] is None and single.icp_iterations == single.reconstruction_iterations
    assert np.isfinite(single.error)
