"""The synthetic benchmark: held-out faces with known ground truth, MICC-style errors, curves and error maps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image
from tiny_checkpoint import write_tiny_checkpoint

from fastganfit.benchmarks.figures import cumulative_error_curves, error_colours, error_map_grid
from fastganfit.benchmarks.micc_protocols import micc_pair_error
from fastganfit.benchmarks.synthetic import SyntheticBenchmark, mean_over_faces
from fastganfit.data.synthetic import SyntheticFaceSource
from fastganfit.fitting.settings import FitSettings
from fastganfit.reconstruction.losses import GANFitLoss

REPO = Path(__file__).resolve().parent.parent
SEED = 7
ICP_ITERATIONS = 4  # the protocol's default is 100; a few keep the test fast and the comparison exact


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    write_tiny_checkpoint(path, overrides=["model.colour_map=null"])  # the heads' texture: zero, the mean texture
    return path


def align_only(steps: int) -> FitSettings:
    loss = GANFitLoss(landmark=1.0, shape=0.003, expression=0.003)
    return FitSettings.from_stages({"align": {"steps": steps, "lr": 0.01, "groups": ["shape", "camera"], "loss": loss}})


@pytest.mark.slow
def test_benchmark_scores_each_method_like_the_micc_protocol(checkpoint: Path) -> None:
    benchmark = SyntheticBenchmark(str(checkpoint), refine=align_only(2), n=2, seed=SEED, batch_size=2,
                                   icp_max_iterations=ICP_ITERATIONS, num_examples=2, map_size=48, device="cpu",
                                   progress=False)
    report = benchmark.run()
    assert [row[0] for row in report.rows] == ["mean face", "regression", "regression + GANFit++"]
    assert all(row[4] == 2 for row in report.rows)
    # the untrained regressor predicts the landmark prior's shape (its other heads are zero): closer than the mean face
    regression_errors = report.details["regression"]["errors_mm"]
    mean_face_errors = report.details["mean face"]["errors_mm"]
    assert all(ours < mean for ours, mean in zip(regression_errors, mean_face_errors, strict=True))
    assert report.details["regression + GANFit++"]["errors_mm"] != report.details["mean face"]["errors_mm"]
    # colour: face 0 under white light, face 1 under coloured light; the mean face has the mean texture and white
    # light, so its light chroma error is small for face 0 and is the tint's size (15-30 %) for face 1
    assert report.columns[5:] == ["albedo ΔE", "light chroma (%)", "render ΔE"]
    mean_face, regression = report.details["mean face"], report.details["regression"]
    assert regression["albedo_delta_e"] == mean_face["albedo_delta_e"]
    white, coloured = mean_face["light_chroma_error_percent"]
    assert white < 10.0 and 12.0 < coloured < 35.0
    assert all(0.0 < value < 40.0 for value in mean_face["albedo_delta_e"] + mean_face["render_delta_e"])
    assert report.rows[0][5] == pytest.approx(np.mean(mean_face["albedo_delta_e"]), abs=1e-2)

    # by hand: the mean face against the first held-out face with the MICC pair error
    source = SyntheticFaceSource(SEED, 64)
    truth = source.render([0])[0]["vertices"]
    model = source.model
    faces, indices = model.faces.numpy(), model.landmark_indices.numpy()
    mean_face = model.mean_vertices(1)[0].numpy()
    expected = micc_pair_error((mean_face, faces, mean_face[indices]), (truth, faces, truth[indices]), "any_topology",
                               max_iterations=ICP_ITERATIONS).error
    assert report.details["mean face"]["errors_mm"][0] == pytest.approx(expected, abs=1e-4)
    mean, median, std = report.rows[0][1:4]
    errors = np.array(report.details["mean face"]["errors_mm"])
    assert mean == pytest.approx(errors.mean(), abs=1e-4) and median == pytest.approx(np.median(errors), abs=1e-4)
    assert std == pytest.approx(errors.std(), abs=1e-4) and 0.3 < mean < 10.0

    curve, maps = report.figures["cumulative_error"], report.figures["error_maps"]
    assert curve.dtype == np.uint8 and curve.ndim == 3 and curve.shape[2] == 3
    assert maps.shape[0] > 4 * 48 and maps.shape[1] > 4 * 48  # 4 rows (inputs + 3 methods), 4 columns
    assert "![error_maps](error_maps.png)" in report.to_markdown()


def test_benchmark_needs_a_checkpoint_and_sane_settings(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="ckpt="):
        SyntheticBenchmark(None)
    with pytest.raises(ValueError, match=r"benchmark\.n"):
        SyntheticBenchmark(str(checkpoint), n=0)
    with pytest.raises(ValueError, match="max_error_mm"):
        SyntheticBenchmark(str(checkpoint), max_error_mm=0.0)
    with pytest.raises(ValueError, match="synthetic setting texture must be one of"):
        SyntheticBenchmark(str(checkpoint), texture="marble")


def test_faces_are_painted_by_the_training_data_texture_model() -> None:
    """The benchmark's faces and data=synthetic's training faces come from one texture model (the default's): a
    checkpoint is scored on albedos its own texture model can reproduce."""
    benchmark = OmegaConf.load(REPO / "fastganfit" / "conf" / "benchmark" / "synthetic.yaml")
    data = OmegaConf.load(REPO / "fastganfit" / "conf" / "data" / "synthetic.yaml")
    assert benchmark.texture == data.synthetic.train.settings.texture == data.synthetic.val.settings.texture
    assert SyntheticBenchmark("x.ckpt", device="cpu").settings.texture == benchmark.texture


def test_mean_over_faces_skips_unmeasured_vertices() -> None:
    per_vertex = np.array([[1.0, np.nan, np.nan], [3.0, 2.0, np.nan]])
    average = mean_over_faces(per_vertex)
    assert average[0] == 2.0 and average[1] == 2.0 and np.isnan(average[2])


def test_error_colours_scale_and_grey_for_unmeasured() -> None:
    colours = error_colours(np.array([0.0, 2.0, 4.0, 9.0, np.nan]), max_error=4.0)
    assert colours.shape == (5, 3)
    assert np.allclose(colours[2], colours[3])  # clipped at the top of the scale
    assert not np.allclose(colours[0], colours[1]) and not np.allclose(colours[1], colours[2])
    assert np.allclose(colours[4], 0.75)
    with pytest.raises(ValueError, match="max_error"):
        error_colours(np.zeros(3), 0.0)


def test_cumulative_curves_draw_each_method() -> None:
    image = cumulative_error_curves({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.7]}, "title")
    assert image.dtype == np.uint8 and image.shape[0] > 200 and image.shape[1] > 300
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # drawn, not blank
    with pytest.raises(ValueError, match="at least one"):
        cumulative_error_curves({"a": []})


def test_error_map_grid_checks_its_layout() -> None:
    panel = np.zeros((3, 8, 8))
    image = error_map_grid([[panel, panel]], ["row"], ["c1", "c2"], 4.0)
    assert image.ndim == 3 and image.shape[2] == 3
    with pytest.raises(ValueError, match="rows"):
        error_map_grid([[panel]], ["row"], ["c1", "c2"], 4.0)


@pytest.mark.slow
def test_evaluate_py_synthetic_writes_table_curve_and_maps(checkpoint: Path, tmp_path: Path) -> None:
    command = [
        sys.executable, str(REPO / "evaluate.py"), "benchmark=synthetic", f"ckpt={checkpoint}", "benchmark.n=2",
        "benchmark.batch_size=2", "benchmark.refine=null", "benchmark.icp_max_iterations=2",
        "benchmark.num_examples=1", "benchmark.map_size=48",
        "benchmark.progress=false", "benchmark.device=cpu", f"output_dir={tmp_path / 'out'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| mean face |" in result.stdout and "| regression |" in result.stdout
    out = tmp_path / "out"
    summary = json.loads((out / "results.json").read_text())
    assert summary["figures"] == ["cumulative_error.png", "error_maps.png"]
    for name in summary["figures"]:
        assert Image.open(out / name).size[0] > 100
    assert "![cumulative_error](cumulative_error.png)" in (out / "results.md").read_text()

    missing = subprocess.run([*command[:3], f"hydra.run.dir={tmp_path / 'run2'}"], capture_output=True, text=True,
                             cwd=REPO, timeout=600)
    assert missing.returncode == 2 and "needs ckpt=" in missing.stderr
