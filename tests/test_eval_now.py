"""NoW protocol on a synthetic data set in NoW's layout."""

from pathlib import Path

import numpy as np
import pytest

from fastganfit.benchmarks.now import IBUG68_TO_NOW, NowBenchmark, now_distances
from fastganfit.geometry.procedural_meshes import offset_radially, quadrupole_offset, random_similarity, sphere_head
from fastganfit.io.mesh_export import write_obj

HEAD = sphere_head(radius=80.0, subdivisions=4)


def write_pp(path: Path, points: np.ndarray) -> None:
    """A MeshLab picked-points file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f' <point x="{x}" y="{y}" z="{z}" active="1" name="{i}"/>' for i, (x, y, z) in enumerate(points))
    path.write_text(f"<!DOCTYPE PickedPoints>\n<PickedPoints>\n <DocumentData/>\n{rows}\n</PickedPoints>\n")


def crop_mask(vertices: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """NoW's face crop written out by hand: 30% up from the nose bottom, 1.4 x mean(eye width, nose length)."""
    bridge = (landmarks[1] + landmarks[2]) / 2
    centre = landmarks[4] + 0.3 * (bridge - landmarks[4])
    radius = 0.7 * (np.linalg.norm(landmarks[0] - landmarks[3]) + np.linalg.norm(bridge - landmarks[4]))
    return np.linalg.norm(vertices - centre, axis=1) <= radius


def test_now_distances_equal_known_offsets():
    vertices, faces, landmarks = HEAD
    now_ids = landmarks[list(IBUG68_TO_NOW)]
    offsets = quadrupole_offset(vertices, 2.0)
    prediction = random_similarity(21, scale=0.001).apply(offset_radially(vertices, offsets))
    distances = now_distances(vertices, vertices[now_ids], prediction, faces, prediction[now_ids])
    expected = np.abs(offsets[crop_mask(vertices, vertices[now_ids])])
    print(
        f"NoW offsets: mean {distances.mean():.4f} (expected {expected.mean():.4f}), "
        f"median {np.median(distances):.4f} (expected {np.median(expected):.4f})"
    )
    assert distances.shape == expected.shape
    assert distances.mean() == pytest.approx(expected.mean(), rel=0.02)
    assert np.median(distances) == pytest.approx(np.median(expected), rel=0.03)
    rigid = random_similarity(22).apply(vertices)
    exact = now_distances(vertices, vertices[now_ids], rigid, faces, rigid[now_ids], scale=False)
    assert exact.max() < 1e-9


def test_now_loop_on_synthetic_layout(tmp_path):
    vertices, faces, landmarks = HEAD
    now_ids = landmarks[list(IBUG68_TO_NOW)]
    data, predictions = tmp_path / "NoW_Dataset", tmp_path / "predictions"
    lines, expected = [], {}
    for s, subject in enumerate(["FaMoS_180424_03335_TA", "FaMoS_180426_03336_TA"]):
        frame = random_similarity(30 + s)
        (data / "scans" / subject).mkdir(parents=True)
        scan_path = data / "scans" / subject / "natural_head_rotation.000001.obj"
        write_obj(scan_path, frame.apply(vertices), faces, dtype=np.float64)
        write_pp(
            data / "scans_lmks_onlypp" / subject / "natural_head_rotation.000001_picked_points.pp",
            frame.apply(vertices[now_ids]),
        )
        for challenge, amplitude in [("multiview_neutral", 1.0 + s), ("selfie", 0.0)]:
            lines.append(f"{subject}/{challenge}/IMG_{s}.jpg")
            offsets = quadrupole_offset(vertices, amplitude)
            mesh = random_similarity(40 + s, scale=0.001).apply(offset_radially(vertices, offsets))
            folder = predictions / subject / challenge
            folder.mkdir(parents=True)
            write_obj(folder / f"IMG_{s}.obj", mesh, faces, dtype=np.float64)
            np.save(folder / f"IMG_{s}.npy", mesh[now_ids])
            expected.setdefault(challenge, []).append(np.abs(offsets[crop_mask(vertices, vertices[now_ids])]))
    lines.append("FaMoS_180426_03336_TA/multiview_occlusions/IMG_9.jpg")  # no prediction
    (data / "imagepathsvalidation.txt").write_text("\n".join(lines) + "\n")
    report = NowBenchmark(data_dir=data, reconstructions_dir=predictions, progress=False).run()
    rows = {row[0]: row for row in report.rows}
    neutral = np.concatenate(expected["multiview_neutral"])
    everything = np.concatenate([*expected["multiview_neutral"], *expected["selfie"]])
    print(
        f"NoW loop: neutral median {rows['multiview_neutral'][1]:.4f} (expected {np.median(neutral):.4f}), "
        f"all mean {rows['all'][2]:.4f} (expected {everything.mean():.4f})"
    )
    assert rows["multiview_neutral"][1] == pytest.approx(np.median(neutral), rel=0.03)
    assert rows["multiview_neutral"][2] == pytest.approx(neutral.mean(), rel=0.02)
    assert rows["multiview_neutral"][3] == pytest.approx(neutral.std(), rel=0.05)
    assert rows["selfie"][2] < 1e-3
    assert rows["all"][2] == pytest.approx(everything.mean(), rel=0.02)
    assert rows["all"][4] == 4
    assert report.details["missing"] == ["FaMoS_180426_03336_TA/multiview_occlusions/IMG_9"]
    assert any("1 of 5 predictions missing" in note for note in report.notes)


def test_now_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="data_dir is not set"):
        NowBenchmark(data_dir=None, reconstructions_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="image list not found"):
        NowBenchmark(data_dir=tmp_path, reconstructions_dir=tmp_path)
    (tmp_path / "imagepathstest.txt").write_text("a/selfie/x.jpg\n")
    with pytest.raises(FileNotFoundError, match=r"scans_dir=.*is not a folder"):
        NowBenchmark(data_dir=tmp_path, reconstructions_dir=tmp_path, split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        NowBenchmark(data_dir=tmp_path, reconstructions_dir=tmp_path, split="train")
