"""The committed ICT asset: sizes, layout, units, symmetry, and that it rebuilds from the raw kit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastganfit.assetbuild.ict import build_ict_arrays, quantisation_error_mm, to_storage
from fastganfit.facemodel.morphable import default_ict_path

RAW_KIT = Path(__file__).resolve().parent.parent.parent / "shared" / "assets" / "ict-facekit.tar.xz"


@pytest.fixture(scope="module")
def asset() -> dict[str, np.ndarray]:
    with np.load(default_ict_path()) as data:
        return {key: data[key] for key in data.files}


def test_asset_sizes(asset: dict[str, np.ndarray]) -> None:
    assert asset["mean"].shape == (9409, 3)
    assert asset["shape_basis"].shape == (100, 9409, 3)
    assert asset["expression_basis"].shape == (53, 9409, 3)
    assert asset["landmark_indices"].shape == (68,)
    assert asset["faces"].shape == (18460, 3)
    assert asset["face_uvs"].shape == asset["faces"].shape
    assert asset["faces"].max() == 9408 and asset["faces"].min() == 0
    assert len(set(asset["expression_names"].tolist())) == 53
    assert {"jawOpen", "eyeBlink_L", "mouthSmile_R"} <= set(asset["expression_names"].tolist())
    assert default_ict_path().stat().st_size < 10e6
    assert (default_ict_path().parent / "ICT-FaceKit-LICENSE.txt").read_text().count("MIT License") == 1


def test_asset_uvs_keep_seams(asset: dict[str, np.ndarray]) -> None:
    uvs = asset["uvs"]
    assert uvs.min() >= 0.0 and uvs.max() <= 1.0
    # More UV corners than vertices: seams split vertices into several UVs.
    assert uvs.shape[0] > asset["mean"].shape[0]
    assert asset["face_uvs"].max() == uvs.shape[0] - 1


def test_asset_is_in_millimetres_and_centred(asset: dict[str, np.ndarray]) -> None:
    landmarks = asset["mean"][asset["landmark_indices"]]
    jaw_width = np.linalg.norm(landmarks[0] - landmarks[16])
    assert 120.0 < jaw_width < 170.0, "an adult's jaw is 12-17 cm wide"
    box_centre = (landmarks.min(0) + landmarks.max(0)) / 2
    np.testing.assert_allclose(box_centre[:2], 0.0, atol=1e-3)
    nose_tip = landmarks[30]
    assert nose_tip[2] == landmarks[:, 2].max(), "the nose tip points towards +Z"
    # Identity modes are stored pre-scaled by their standard deviation: mm-sized offsets.
    mode_rms = np.sqrt((asset["shape_basis"].astype(np.float64) ** 2).sum(-1).mean(-1))
    assert 0.5 < mode_rms[0] < 20.0 and mode_rms[0] > mode_rms[-1]


def test_symmetry_map_mirrors_the_mean_face(asset: dict[str, np.ndarray]) -> None:
    mean, symmetry = asset["mean"], asset["symmetry"]
    mirrored = mean[symmetry] * np.array([-1.0, 1.0, 1.0])
    assert np.abs(mirrored - mean).max() < 0.1
    assert (symmetry[symmetry] == np.arange(len(symmetry))).mean() > 0.99
    landmarks = asset["landmark_indices"]
    assert symmetry[landmarks[0]] == landmarks[16] and symmetry[landmarks[36]] == landmarks[45]


@pytest.mark.slow
@pytest.mark.skipif(not RAW_KIT.exists(), reason=f"raw ICT-FaceKit archive not found at {RAW_KIT}")
def test_asset_rebuilds_from_raw_kit(asset: dict[str, np.ndarray]) -> None:
    rebuilt = build_ict_arrays(RAW_KIT)
    assert quantisation_error_mm(rebuilt) < 0.05
    stored = to_storage(rebuilt)
    assert set(stored) == set(asset)
    for key, value in stored.items():
        np.testing.assert_array_equal(value, asset[key], err_msg=key)


def test_builder_reports_a_wrong_source(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_ict_arrays(tmp_path / "missing.tar.xz")
    with pytest.raises(FileNotFoundError, match="not an ICT-FaceKit checkout"):
        build_ict_arrays(tmp_path)
    bogus = tmp_path / "bogus.tar.xz"
    bogus.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="cannot read the archive"):
        build_ict_arrays(bogus)
