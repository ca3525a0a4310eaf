"""MICC Florence: one test per step of GANFit's protocol, the Deep3DFace variant, and the benchmark loop."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastganfit.benchmarks.micc import MiccBenchmark, micc_pair_error
from fastganfit.benchmarks.micc_protocols import FaceMesh
from fastganfit.benchmarks.report import write_report
from fastganfit.geometry.alignment import norm_ratio_similarity, similarity_alignment
from fastganfit.geometry.closest_point import TriangleMesh
from fastganfit.geometry.icp import icp_from_correspondences
from fastganfit.geometry.mesh_crop import sphere_crop_mask, submesh
from fastganfit.geometry.nicp import nonrigid_icp
from fastganfit.geometry.procedural_meshes import (
    icosphere,
    offset_radially,
    quadrupole_offset,
    random_similarity,
    sphere_head,
)
from fastganfit.io.mesh_export import write_obj

HEAD = sphere_head(radius=80.0, subdivisions=4)


def expected_error(vertices: np.ndarray, offsets: np.ndarray, nose_tip: np.ndarray, radius: float) -> float:
    """Hand-computed error: vertices of both meshes are offset by |offset| along the normal."""
    return float(np.abs(offsets[np.linalg.norm(vertices - nose_tip, axis=1) < radius]).mean())


def write_ljson(path: Path, points: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    group = {"landmarks": {"points": points.tolist(), "connectivity": []}, "labels": []}
    path.write_text(json.dumps({"version": 3, "groups": {"LJSON": group}}))


def head(vertices: np.ndarray) -> FaceMesh:
    """A mesh of the HEAD topology with its landmark vertices."""
    return FaceMesh.with_landmark_vertices(vertices, HEAD[1], HEAD[2])


# Step 2: the similarity's scale is the ratio of the centred norms (menpo's AlignmentSimilarity).
def test_norm_ratio_similarity_scale_is_the_ratio_of_centred_norms():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(40, 3)) * 30
    truth = random_similarity(2, scale=1.7, max_angle_deg=120)
    exact = norm_ratio_similarity(source, truth.apply(source))
    assert exact.scale == pytest.approx(1.7, rel=1e-12) and np.allclose(exact.apply(source), truth.apply(source))
    noisy = truth.apply(source) + rng.normal(scale=20.0, size=source.shape)
    found = norm_ratio_similarity(source, noisy)
    ratio = np.linalg.norm(noisy - noisy.mean(0)) / np.linalg.norm(source - source.mean(0))
    assert found.scale == pytest.approx(ratio, rel=1e-12)
    least_squares = similarity_alignment(source, noisy).scale
    print(f"noisy target: norm ratio {found.scale:.4f}, least squares {least_squares:.4f}")
    assert least_squares < 0.97 * found.scale  # noise shrinks the least-squares scale, not the norm ratio
    assert np.allclose(found.apply(source).mean(0), noisy.mean(0))
    assert np.allclose(found.rotation, similarity_alignment(source, noisy).rotation)


# Step 3: the crop keeps the vertices strictly inside, the triangles with three kept vertices, no isolated vertex.
def test_sphere_crop_keeps_exactly_the_expected_vertices_and_triangles():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [2, 0, 0], [0, 0.5, 2], [3, 3, 0]])
    faces = np.array([[0, 1, 2], [1, 3, 2], [1, 4, 3], [0, 2, 5], [3, 4, 6]])
    mask = sphere_crop_mask(vertices, faces, np.zeros(3), 2.0)
    # |v4| = 2 is not strictly inside; v5 (|v5| > 2) drops face 3; v6 is outside.
    assert mask.tolist() == [True, True, True, True, False, False, False]
    _, kept_faces = submesh(vertices, faces, mask)
    assert kept_faces.tolist() == [[0, 1, 2], [1, 3, 2]]
    isolated = sphere_crop_mask(vertices, faces[[0, 2]], np.zeros(3), 1.9)  # v3 inside, but only in face 2 (cut)
    assert isolated.tolist() == [True, True, True, False, False, False, False]
    with pytest.raises(ValueError, match="radius must be positive"):
        sphere_crop_mask(vertices, faces, np.zeros(3), 0.0)


# Step 5: ICP runs while the mean distance gains more than the tolerance and keeps the last step.
def test_icp_from_correspondences_stops_on_gain_and_keeps_the_last_step():
    vertices, faces, _ = HEAD
    surface = TriangleMesh(vertices, faces)
    moved = random_similarity(5, scale=1.2, max_angle_deg=20).apply(vertices)
    exact = icp_from_correspondences(moved, vertices, surface)
    assert exact.history[1] < 1e-9 and exact.iterations == 2  # one step aligns, the next gains nothing
    noisy = offset_radially(vertices, quadrupole_offset(vertices, 2.0))
    start = random_similarity(6, scale=1.1, max_angle_deg=5)
    result = icp_from_correspondences(start.apply(noisy), vertices + 0.5, surface, tolerance=1e-3, unit=10.0)
    gains = -np.diff(result.history)
    print(f"ICP history (x10): {np.round(result.history, 4).tolist()}")
    assert np.all(gains[:-1] > 1e-3) and gains[-1] <= 1e-3
    assert result.mean_distance == result.history[-1]
    assert result.mean_distance == pytest.approx(
        10 * surface.distances(result.transform.apply(start.apply(noisy))).mean(), rel=1e-9
    )


# Steps 1-5 together: a copy under any similarity scores 0.
def test_ganfit_copy_under_similarity_gives_zero_in_any_unit():
    vertices = HEAD[0]
    for transform, unit in ((random_similarity(4, scale=1.0, max_angle_deg=90), 1.0),
                            (random_similarity(7, scale=0.01, max_angle_deg=90), 100.0)):  # fmt: skip
        copy = transform.apply(vertices)
        error = micc_pair_error(head(copy), head(transform.apply(vertices)), unit_mm=unit)
        assert error.error < 1e-9
        shifted = micc_pair_error(head(copy), head(vertices * transform.scale), unit_mm=unit)
        assert shifted.error < 1e-9 and shifted.icp_iterations >= 2


# Steps 3-5: a known normal offset gives the hand-computed mean |offset| over the crop, per direction.
@pytest.mark.parametrize(("amplitude", "radius"), [(1.0, 95.0), (2.0, 60.0)])
def test_ganfit_offset_gives_hand_computed_value(amplitude, radius):
    vertices, _, landmarks = HEAD
    offsets = quadrupole_offset(vertices, amplitude)
    reconstruction = random_similarity(3).apply(offset_radially(vertices, offsets))
    error = micc_pair_error(head(reconstruction), head(vertices), crop_radius=radius)
    expected = expected_error(vertices, offsets, vertices[landmarks[30]], radius)
    print(f"amplitude {amplitude} radius {radius}: got {error.error:.4f} expected {expected:.4f}")
    assert error.error == pytest.approx(expected, rel=0.02)
    assert error.reconstruction_to_gt == pytest.approx(expected, rel=0.03)
    assert error.gt_to_reconstruction == pytest.approx(expected, rel=0.03)


# Step 4: two ICPs, each direction in the units of the surface it is measured on; one ICP differs.
def test_two_icps_measure_each_direction_on_its_own_surface():
    vertices = HEAD[0]
    offsets = quadrupole_offset(vertices, 1.0)
    reconstruction = 2.0 * offset_radially(vertices, offsets)  # twice the size: the ground truth is scaled up
    expected = expected_error(vertices, offsets, vertices[HEAD[2][30]], 95.0)
    two = micc_pair_error(head(reconstruction), head(vertices), crop_radius=95.0)
    # The reconstruction's own 95-unit crop covers less of its (doubled) face than the ground truth's crop.
    rec_crop = expected_error(vertices, offsets, vertices[HEAD[2][30]], 47.5)
    print(f"two ICPs: gt->rec {two.gt_to_reconstruction:.4f} rec->gt {two.reconstruction_to_gt:.4f}")
    assert two.gt_to_reconstruction == pytest.approx(2.0 * expected, rel=0.03)  # measured on the reconstruction
    assert two.reconstruction_to_gt == pytest.approx(rec_crop, rel=0.03)  # measured on the ground truth
    one = micc_pair_error(head(reconstruction), head(vertices), protocol="any_topology")
    print(f"one ICP: {one.error:.4f}, two ICPs: {two.error:.4f}")
    assert one.error == pytest.approx(expected, rel=0.05)  # both directions in ground-truth millimetres
    assert two.error == pytest.approx(0.5 * (2.0 * expected + rec_crop), rel=0.03)
    assert abs(two.error - one.error) > 0.1 * one.error


# Step 3: the crop is centred on each mesh's own nose tip (the ground truth's: its landmark 30).
def test_ganfit_crop_follows_the_ground_truth_nose_landmark():
    vertices = HEAD[0]
    offsets = quadrupole_offset(vertices, 1.0)
    reconstruction = head(offset_radially(vertices, offsets))
    gt = head(vertices)
    moved_nose = gt.landmarks.copy()
    moved_nose[30] += [40.0, 0.0, 0.0]
    centred = micc_pair_error(reconstruction, gt, crop_radius=40.0)
    off_centre = micc_pair_error(reconstruction, FaceMesh(gt.vertices, gt.faces, moved_nose), crop_radius=40.0)
    assert off_centre.reconstruction_to_gt == pytest.approx(centred.reconstruction_to_gt, rel=1e-9)
    mask = sphere_crop_mask(vertices, gt.faces, moved_nose[30], 40.0)
    by_hand = icp_from_correspondences(
        vertices[mask], reconstruction.vertices[mask], TriangleMesh(reconstruction.vertices, gt.faces)
    )
    assert off_centre.gt_to_reconstruction == pytest.approx(by_hand.mean_distance, rel=1e-9)
    assert abs(off_centre.gt_to_reconstruction - centred.gt_to_reconstruction) > 0.01


def test_deep3dface_variant_reports_the_rmse_of_the_cropped_ground_truth():
    vertices, _, landmarks = HEAD
    offsets = quadrupole_offset(vertices, 1.5)
    reconstruction = random_similarity(9, scale=0.01).apply(offset_radially(vertices, offsets))  # metres
    error = micc_pair_error(head(reconstruction), head(vertices), protocol="deep3dface")
    inside = np.linalg.norm(vertices - vertices[landmarks[30]], axis=1) < 95.0
    rmse = float(np.sqrt((offsets[inside] ** 2).mean()))
    print(f"deep3dface: got {error.error:.4f} expected {rmse:.4f}")
    assert error.error == pytest.approx(rmse, rel=0.03)
    assert error.gt_to_reconstruction == pytest.approx(np.abs(offsets[inside]).mean(), rel=0.03)
    assert error.reconstruction_to_gt is None and error.transform.scale == pytest.approx(100.0, rel=3e-3)
    other, other_faces, other_landmarks = sphere_head(radius=80.0, subdivisions=4, rotation_z_deg=17.0)
    copy = micc_pair_error((other, other_faces, other[other_landmarks]), head(vertices), protocol="deep3dface")
    assert copy.error < 0.1  # another tessellation: twice the chord sag (~0.06 mm) at most


def test_pair_error_rejects_bad_input():
    vertices = HEAD[0]
    with pytest.raises(ValueError, match="reconstruction landmarks must have 68 points"):
        micc_pair_error((vertices, HEAD[1], vertices[:7]), head(vertices))
    with pytest.raises(ValueError, match="crop_radius"):
        micc_pair_error(head(vertices), head(vertices), crop_radius=0)
    with pytest.raises(ValueError, match="protocol must be one of"):
        micc_pair_error(head(vertices), head(vertices), protocol="genova")
    other, other_faces, other_landmarks = sphere_head(radius=80.0, subdivisions=3)
    with pytest.raises(ValueError, match="one topology"):
        micc_pair_error((other, other_faces, other[other_landmarks]), head(vertices))
    with pytest.raises(ValueError, match="check the units"):
        micc_pair_error(head(vertices), head(vertices), unit_mm=1e4)


def test_nonrigid_icp_registers_ellipsoid_template_onto_sphere():
    target_vertices, target_faces, _ = HEAD
    unit, faces = icosphere(3)
    keep = unit[:, 2] > -0.2
    index = np.cumsum(keep) - 1
    template = unit[keep] * [70.0, 60.0, 65.0]
    template_faces = index[faces[keep[faces].all(1)]]
    directions = unit[keep][np.argmax(unit[keep] @ np.array([[0, 0, 1.0], [0.6, 0, 0.8], [-0.6, 0, 0.8]]).T, 0)]
    landmark_ids = np.argmax(unit[keep] @ directions.T, 0)
    before = TriangleMesh(target_vertices, target_faces).distances(template)
    registered = nonrigid_icp(template, template_faces, target_vertices, target_faces, landmark_ids, 80.0 * directions)
    radii = np.linalg.norm(registered, axis=1)
    inside = registered[:, 2] > 10  # away from the target's open boundary at z = 0
    print(
        f"nicp: radius error before {np.abs(np.linalg.norm(template, axis=1) - 80).mean():.2f} "
        f"after {np.abs(radii[inside] - 80).mean():.3f} mm"
    )
    assert before.mean() > 5.0
    assert np.abs(radii[inside] - 80.0).max() < 0.5
    assert np.abs(radii[inside] - 80.0).mean() < 0.1


def build_micc_set(root: Path) -> dict:
    """Two subjects (1 and 28) in MICC's layout; returns the hand-computed expected errors."""
    vertices, faces, landmarks = HEAD
    nose = vertices[landmarks[30]]
    data, marks, recon = root / "florence", root / "landmarks", root / "recon"
    scan_frames = {1: random_similarity(11), 28: random_similarity(12)}
    for subject, frame in scan_frames.items():
        scans = {"frontal1": vertices, "frontal2": offset_radially(vertices, quadrupole_offset(vertices, -1.5))}
        for k, (frontal, geometry) in enumerate(scans.items()):
            if subject == 28 and frontal == "frontal2":
                continue
            stem = f"1109201504{subject:02d}{k}"
            folder = data / f"subject_{subject:02d}" / "Model" / frontal / "obj"
            folder.mkdir(parents=True)
            write_obj(folder / f"{stem}.obj", frame.apply(geometry), faces, dtype=np.float64)
            write_ljson(
                marks / f"subject_{subject:02d}" / "Model" / frontal / "obj" / f"{stem}.ljson",
                frame.apply(geometry[landmarks]),
            )
    amplitudes = {
        (1, "Indoor-Cooperative"): 0.0,
        (1, "PTZ-Indoor"): 1.0,
        (28, "Indoor-Cooperative"): 0.0,
        (28, "PTZ-Indoor"): 3.0,
        (1, "PTZ-Outdoor"): 0.5,
    }
    expected = {}
    for (subject, setting), amplitude in amplitudes.items():
        offsets = quadrupole_offset(vertices, amplitude)
        mesh = random_similarity(subject + len(setting)).apply(offset_radially(vertices, offsets))  # mm
        folder = recon / f"subject_{subject:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        write_obj(folder / f"{setting}.obj", mesh, faces, dtype=np.float64)
        if setting == "PTZ-Outdoor":
            write_ljson(folder / f"{setting}.ljson", mesh[landmarks])
        expected[(subject, setting)] = expected_error(vertices, offsets, nose, 60.0 if subject == 28 else 95.0)
    np.savetxt(root / "indices.txt", landmarks, fmt="%d")
    template = random_similarity(13).apply(vertices)  # the scans' size: errors stay in their millimetres
    write_obj(root / "template.obj", template, faces, dtype=np.float64)
    return expected


def test_micc_loop_reproduces_hand_computed_values(tmp_path):
    expected = build_micc_set(tmp_path)
    options = {
        "data_dir": tmp_path / "florence",
        "landmarks_dir": tmp_path / "landmarks",
        "reconstructions_dir": tmp_path / "recon",
        "template_mesh": tmp_path / "template.obj",
        "template_landmarks": tmp_path / "indices.txt",
        "reconstruction_landmarks": tmp_path / "indices.txt",
        "radius_overrides": {28: 60.0},
        "cache_dir": tmp_path / "cache",
        "progress": False,
    }
    benchmark = MiccBenchmark(**options)
    report = benchmark.run()
    settings = report.details["settings"]
    for (subject, setting), value in expected.items():
        got = settings[setting]["subjects"][f"subject_{subject:02d}"]
        print(f"subject {subject} {setting}: got {got:.4f} expected {value:.4f}")
        assert got == pytest.approx(value, rel=0.03, abs=1e-3)
    indoor = [expected[(1, "PTZ-Indoor")], expected[(28, "PTZ-Indoor")]]
    assert settings["PTZ-Indoor"]["mean"] == pytest.approx(np.mean(indoor), rel=0.03)
    assert settings["PTZ-Indoor"]["std"] == pytest.approx(np.std(indoor), abs=0.01)
    assert settings["PTZ-Indoor"]["std"] == pytest.approx(np.std(list(settings["PTZ-Indoor"]["subjects"].values())))
    assert settings["Indoor-Cooperative"]["mean"] < 1e-3
    assert [row[0] for row in report.rows] == ["Indoor-Cooperative", "PTZ-Indoor", "PTZ-Outdoor"]
    assert [row[3] for row in report.rows] == [2, 2, 1]
    # Subject 1 has two frontal scans: the minimum is frontal1; frontal2 differs by a second offset pattern.
    mesh = next(m for m in report.details["meshes"] if m["subject"] == 1 and m["setting"] == "PTZ-Indoor")
    assert mesh["best_scan"] == "subject_01/frontal1"
    assert mesh["scans"]["subject_01/frontal2"]["error"] == pytest.approx(2.5 * mesh["error"], rel=0.05)
    assert len(list((tmp_path / "cache" / "registrations").glob("subject_*.npz"))) == 3  # one per scan
    # Deep3DFace's variant on the same cached registrations: the RMSE of the offsets inside the crop.
    deep3dface = MiccBenchmark(**options, protocol="deep3dface").run().details["settings"]
    vertices, _, landmarks = HEAD
    offsets = quadrupole_offset(vertices, 3.0)[np.linalg.norm(vertices - vertices[landmarks[30]], axis=1) < 60.0]
    assert deep3dface["PTZ-Indoor"]["subjects"]["subject_28"] == pytest.approx(np.sqrt((offsets**2).mean()), rel=0.03)
    # Resumable: every pair's result is cached, so a second run needs no registration and gives the same table.
    for registered in (tmp_path / "cache" / "registrations").glob("*.npz"):
        registered.unlink()
    again = benchmark.run()
    assert again.rows == report.rows
    assert not list((tmp_path / "cache" / "registrations").glob("*.npz"))
    markdown, json_path = write_report(report, tmp_path / "out")
    assert "| PTZ-Indoor |" in markdown.read_text()
    assert json.loads(json_path.read_text())["details"]["settings"]["PTZ-Indoor"]["mean"] > 0


def test_micc_options_are_checked(tmp_path):
    build_micc_set(tmp_path)
    folders = {
        "data_dir": tmp_path / "florence",
        "landmarks_dir": tmp_path / "landmarks",
        "reconstructions_dir": tmp_path / "recon",
    }
    with pytest.raises(ValueError, match="protocol=ganfit needs registration=nicp"):
        MiccBenchmark(**folders, registration="none")
    with pytest.raises(ValueError, match="protocol must be one of"):
        MiccBenchmark(**folders, protocol="genova")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        MiccBenchmark(**folders, workers=0)
    with pytest.raises(ValueError, match="landmarks_dir is not set"):
        MiccBenchmark(**{**folders, "landmarks_dir": None}, protocol="deep3dface", registration="none")
    with pytest.raises(FileNotFoundError, match=r"data_dir=.*is not a folder"):
        MiccBenchmark(**{**folders, "data_dir": tmp_path / "nope"}, protocol="deep3dface", registration="none")
    with pytest.raises(ValueError, match="template_landmarks is not set"):
        MiccBenchmark(**folders, template_mesh=tmp_path / "template.obj")
    default = MiccBenchmark(**folders)  # the ICT-FaceKit mean face and its 68 landmarks
    assert default.template[0].shape == (9409, 3) and default.template[2].shape == (68,)
    with pytest.raises(ValueError, match="unknown settings"):
        MiccBenchmark(**folders, protocol="deep3dface", registration="none", settings=["Outdoor"])
    (tmp_path / "landmarks" / "subject_28" / "Model" / "frontal1" / "obj").joinpath("110920150428" + "0.ljson").unlink()
    with pytest.raises(FileNotFoundError, match="no landmark file for the scan"):
        MiccBenchmark(**folders, protocol="deep3dface", registration="none", progress=False).run()
    (tmp_path / "indices.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="must hold 68 integer vertex indices"):
        MiccBenchmark(
            **folders, protocol="deep3dface", registration="none", reconstruction_landmarks=tmp_path / "indices.txt"
        )


REPO = Path(__file__).resolve().parents[1]


def run_evaluate(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_evaluate_entry_point_writes_results(tmp_path):
    expected = build_micc_set(tmp_path)
    out = tmp_path / "results"
    done = run_evaluate(
        "benchmark=micc",
        f"paths.micc={tmp_path / 'florence'}",
        f"paths.micc_landmarks={tmp_path / 'landmarks'}",
        f"reconstructions_dir={tmp_path / 'recon'}",
        f"benchmark.template_mesh={tmp_path / 'template.obj'}",
        f"benchmark.template_landmarks={tmp_path / 'indices.txt'}",
        f"benchmark.reconstruction_landmarks={tmp_path / 'indices.txt'}",
        f"output_dir={out}",
        "benchmark.workers=2",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    ptz = results["details"]["settings"]["PTZ-Indoor"]["subjects"]["subject_28"]
    assert ptz == pytest.approx(expected[(28, "PTZ-Indoor")], rel=0.03)  # 60 mm radius from the config
    assert "| PTZ-Outdoor |" in (out / "results.md").read_text()
    assert "| PTZ-Outdoor |" in done.stdout
    assert not list(out.glob("*.tmp"))


def test_evaluate_entry_point_fails_clearly_on_missing_option(tmp_path):
    done = run_evaluate("benchmark=micc", f"hydra.run.dir={tmp_path}")
    assert done.returncode != 0
    assert "data_dir is not set" in done.stderr and "paths.micc" in done.stderr
    done = run_evaluate(
        "benchmark=now", f"paths.now={tmp_path}", f"reconstructions_dir={tmp_path}", f"hydra.run.dir={tmp_path}"
    )
    assert done.returncode != 0
    assert "image list not found" in done.stderr
