"""MICC Florence protocol on synthetic sphere heads with analytically known errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastganfit.benchmarks.micc import MiccBenchmark, micc_pair_error
from fastganfit.benchmarks.report import write_report
from fastganfit.evaluation.closest_point import TriangleMesh
from fastganfit.evaluation.mesh_io import write_obj
from fastganfit.evaluation.nicp import nonrigid_icp
from fastganfit.evaluation.procedural_meshes import (
    icosphere,
    offset_radially,
    quadrupole_offset,
    random_similarity,
    sphere_head,
)

HEAD = sphere_head(radius=80.0, subdivisions=4)


def expected_error(vertices: np.ndarray, offsets: np.ndarray, nose_tip: np.ndarray, radius: float) -> float:
    """Hand-computed MICC error: vertices of both meshes are offset by |offset| along the normal."""
    return float(np.abs(offsets[np.linalg.norm(vertices - nose_tip, axis=1) <= radius]).mean())


def write_ljson(path: Path, points: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    group = {"landmarks": {"points": points.tolist(), "connectivity": []}, "labels": []}
    path.write_text(json.dumps({"version": 3, "groups": {"LJSON": group}}))


@pytest.mark.parametrize(("amplitude", "radius"), [(1.0, 95.0), (2.0, 60.0)])
def test_pair_error_matches_hand_computed_offset(amplitude, radius):
    vertices, faces, landmarks = HEAD
    offsets = quadrupole_offset(vertices, amplitude)
    reconstruction = random_similarity(3, scale=0.001).apply(offset_radially(vertices, offsets))  # metres
    error = micc_pair_error(
        vertices, faces, vertices[landmarks], reconstruction, faces, reconstruction[landmarks], crop_radius=radius
    )
    expected = expected_error(vertices, offsets, vertices[landmarks[30]], radius)
    print(f"amplitude {amplitude} radius {radius}: got {error.symmetric:.4f} expected {expected:.4f}")
    assert error.symmetric == pytest.approx(expected, rel=0.02)
    assert error.reconstruction_to_gt == pytest.approx(expected, rel=0.03)
    assert error.gt_to_reconstruction == pytest.approx(expected, rel=0.03)
    assert error.scale == pytest.approx(1000.0, rel=2e-3)


def test_pair_error_zero_for_similar_copy_and_small_for_other_tessellation():
    vertices, faces, landmarks = HEAD
    transform = random_similarity(4, scale=0.01, max_angle_deg=90)
    copy = transform.apply(vertices)
    assert micc_pair_error(vertices, faces, vertices[landmarks], copy, faces, copy[landmarks]).symmetric < 1e-9
    other, other_faces, other_landmarks = sphere_head(radius=80.0, subdivisions=4, rotation_z_deg=17.0)
    error = micc_pair_error(
        vertices,
        faces,
        vertices[landmarks],
        transform.apply(other),
        other_faces,
        transform.apply(other)[other_landmarks],
    ).symmetric
    print(f"other tessellation: {error:.4f} mm")
    assert error < 0.1  # bounded by twice the chord sag (~0.06 mm) of ~6 mm edges on a radius of 80 mm


def test_pair_error_rejects_bad_landmarks():
    vertices, faces, landmarks = HEAD
    with pytest.raises(ValueError, match="reconstruction_landmarks must have 68 points"):
        micc_pair_error(vertices, faces, vertices[landmarks], vertices, faces, vertices[landmarks[:7]])
    with pytest.raises(ValueError, match="crop_radius"):
        micc_pair_error(vertices, faces, vertices[landmarks], vertices, faces, vertices[landmarks], crop_radius=0)


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
            write_obj(folder / f"{stem}.obj", frame.apply(geometry), faces)
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
        mesh = random_similarity(subject + len(setting), scale=0.01).apply(offset_radially(vertices, offsets))
        folder = recon / f"subject_{subject:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        write_obj(folder / f"{setting}.obj", mesh, faces)
        if setting == "PTZ-Outdoor":
            write_ljson(folder / f"{setting}.ljson", mesh[landmarks])
        expected[(subject, setting)] = expected_error(vertices, offsets, nose, 60.0 if subject == 28 else 95.0)
    np.savetxt(root / "indices.txt", landmarks, fmt="%d")
    template = random_similarity(13, scale=1.3).apply(vertices)
    write_obj(root / "template.obj", template, faces)
    return expected


def test_micc_loop_reproduces_hand_computed_values(tmp_path):
    expected = build_micc_set(tmp_path)
    benchmark = MiccBenchmark(
        data_dir=tmp_path / "florence",
        landmarks_dir=tmp_path / "landmarks",
        reconstructions_dir=tmp_path / "recon",
        template_mesh=tmp_path / "template.obj",
        template_landmarks=tmp_path / "indices.txt",
        reconstruction_landmarks=tmp_path / "indices.txt",
        radius_overrides={28: 60.0},
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    report = benchmark.run()
    settings = report.details["settings"]
    for (subject, setting), value in expected.items():
        got = settings[setting]["subjects"][f"subject_{subject:02d}"]
        print(f"subject {subject} {setting}: got {got:.4f} expected {value:.4f}")
        assert got == pytest.approx(value, rel=0.03, abs=1e-3)  # OBJ files keep 6 decimals
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
    assert mesh["scans"]["subject_01/frontal2"]["symmetric"] == pytest.approx(2.5 * mesh["error"], rel=0.05)
    assert len(list((tmp_path / "cache").glob("subject_*.npz"))) == 3  # one registered template per scan
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
    with pytest.raises(ValueError, match="landmarks_dir is not set"):
        MiccBenchmark(**{**folders, "landmarks_dir": None}, registration="none")
    with pytest.raises(FileNotFoundError, match=r"data_dir=.*is not a folder"):
        MiccBenchmark(**{**folders, "data_dir": tmp_path / "nope"}, registration="none")
    with pytest.raises(ValueError, match="template_landmarks is not set"):
        MiccBenchmark(**folders, template_mesh=tmp_path / "template.obj")
    default = MiccBenchmark(**folders)  # the ICT-FaceKit mean face and its 68 landmarks
    assert default.template[0].shape == (9409, 3) and default.template[2].shape == (68,)
    with pytest.raises(ValueError, match="unknown settings"):
        MiccBenchmark(**folders, registration="none", settings=["Outdoor"])
    (tmp_path / "landmarks" / "subject_28" / "Model" / "frontal1" / "obj").joinpath("110920150428" + "0.ljson").unlink()
    with pytest.raises(FileNotFoundError, match="no landmark file for the scan"):
        MiccBenchmark(**folders, registration="none", progress=False).run()
    (tmp_path / "indices.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="must hold 68 integer vertex indices"):
        MiccBenchmark(**folders, registration="none", reconstruction_landmarks=tmp_path / "indices.txt")


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
        f"data_dir={tmp_path / 'florence'}",
        f"landmarks_dir={tmp_path / 'landmarks'}",
        f"reconstructions_dir={tmp_path / 'recon'}",
        f"benchmark.template_mesh={tmp_path / 'template.obj'}",
        f"benchmark.template_landmarks={tmp_path / 'indices.txt'}",
        f"benchmark.reconstruction_landmarks={tmp_path / 'indices.txt'}",
        f"output_dir={out}",
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
    assert "data_dir is not set" in done.stderr
    done = run_evaluate(
        "benchmark=now", f"data_dir={tmp_path}", f"reconstructions_dir={tmp_path}", f"hydra.run.dir={tmp_path}"
    )
    assert done.returncode != 0
    assert "image list not found" in done.stderr
