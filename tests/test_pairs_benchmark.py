"""The same-person benchmark: photo pairs read from folders or a manifest, the descriptors (aligned landmarks,
aligned neutral meshes), evaluate_pairs with any reconstruction callable, and the benchmark end to end on a few of
the shared real pairs with a tiny checkpoint (skipped, naming the path, where the shared folder is absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from PIL import Image
from tiny_checkpoint import write_tiny_checkpoint

from fastganfit.benchmarks import pair_faces
from fastganfit.benchmarks.pair_faces import PairFaces, detect_pair_faces
from fastganfit.benchmarks.pairs import (
    COEFFICIENTS,
    DETECTED,
    FACE_RECOGNITION,
    MESH,
    aligned_neutral_meshes,
    evaluate_baselines,
    evaluate_pairs,
    face_region,
    procrustes_landmarks,
)
from fastganfit.benchmarks.pairs_benchmark import REFINED, PairsBenchmark
from fastganfit.benchmarks.photo_pairs import PhotoPairs, read_photo_pairs
from fastganfit.benchmarks.report import write_report
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.fitting.faces import graph_crop_template
from fastganfit.fitting.settings import FitSettings
from fastganfit.geometry.alignment import similarity_alignment
from fastganfit.params import FaceParams, ParamSizes
from fastganfit.perception.landmarks import DlibLandmarker
from fastganfit.reconstruction.losses import GANFitLoss
from fastganfit.regression.checkpoint import load_fast_ganfit

REPO = Path(__file__).resolve().parent.parent
PORTRAITS = Path(os.environ.get("FASTGANFIT_SHARED", REPO.parent / "shared")) / "data" / "portraits"
SIZES = ParamSizes(shape=100, expression=53, texture=4, camera=7, light=10)


def write_photo(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    return path


def test_pairs_from_folders_and_from_a_manifest(tmp_path: Path) -> None:
    for stem in ("p1", "p2", "only_a"):
        write_photo(tmp_path / "folders" / "A" / f"{stem}.jpg")
    for stem in ("p1", "p2", "only_b"):
        write_photo(tmp_path / "folders" / "B" / f"{stem}.png")
    pairs = read_photo_pairs(tmp_path / "folders")
    assert pairs.ids == ["p1", "p2"] and [path.name for path in pairs.b] == ["p1.png", "p2.png"]
    assert pairs.left_out == {"only_a": "only in A/", "only_b": "only in B/"}
    assert len(pairs.subset(1)) == 1 and pairs.subset(None) is pairs

    root = tmp_path / "manifest"
    entries = [{"id": f"p{k}", "A": f"a/p{k}.jpg", "B": f"b/p{k}.jpg", "same_photo_score": score}
               for k, score in enumerate([0.5, 0.95, None, 0.9])]  # fmt: skip
    for entry in entries:
        write_photo(root / entry["A"]), write_photo(root / entry["B"])
    (root / "manifest.json").write_text(json.dumps({"pairs": entries}))
    pairs = read_photo_pairs(root)
    assert pairs.ids == ["p0", "p2", "p3"]  # above 0.9 is one photograph; unknown (None) and 0.9 stay
    assert list(pairs.left_out) == ["p1"] and "one photograph" in pairs.left_out["p1"]

    (root / "b" / "p3.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"pair p3: no file .*p3\.jpg"):
        read_photo_pairs(root)
    with pytest.raises(FileNotFoundError, match=r"needs a manifest\.json or both A/ and B/"):
        read_photo_pairs(tmp_path / "folders" / "A")
    (tmp_path / "empty" / "A").mkdir(parents=True), (tmp_path / "empty" / "B").mkdir()
    with pytest.raises(ValueError, match="no photo pair found"):
        read_photo_pairs(tmp_path / "empty")


def test_landmarks_are_compared_after_a_similarity() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(68, 2)) * 30 + 100
    angle, scale = 0.4, 1.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = scale * reference @ rotation.T + [40.0, -7.0]
    other = reference + rng.normal(size=(68, 2))
    rows = procrustes_landmarks(np.stack([moved, other, np.full((68, 2), np.nan)]), reference)
    assert np.allclose(rows[0], reference.ravel(), atol=1e-8)  # a similarity of the reference is the reference
    assert not np.allclose(rows[1], reference.ravel(), atol=0.1) and np.isnan(rows[2]).all()


def test_neutral_meshes_are_aligned_and_scaled_to_rms_distances() -> None:
    model = MorphableModel.ict()
    region = face_region(model, 95.0)
    assert 1000 < region.sum() < model.num_vertices  # the face, not the neck and the back of the head
    rng = np.random.default_rng(1)
    shape = np.concatenate([np.zeros((1, model.num_shape)), rng.normal(size=(1, model.num_shape)),
                            np.full((1, model.num_shape), np.nan)])  # fmt: skip
    rows = aligned_neutral_meshes(model, shape, region)
    mean = model.mean.double().numpy()[region]
    assert np.allclose(rows[0], mean.ravel() / np.sqrt(region.sum()), atol=1e-9) and np.isnan(rows[2]).all()
    with torch.no_grad():
        face = model(torch.from_numpy(shape[1:2]).float(), torch.zeros(1, model.num_expression))[0].double().numpy()
    aligned = similarity_alignment(face[region], mean).apply(face[region])
    rms = np.sqrt(((aligned - mean) ** 2).sum(1).mean())
    assert np.linalg.norm(rows[1] - rows[0]) == pytest.approx(rms, rel=1e-4) and 0.5 < rms < 10.0  # mm


def fake_faces(count: int, crop_size: int = 16, missing: tuple[int, ...] = ()) -> PairFaces:
    """``count`` persons whose crops carry their index (pixel value ``10 k + 5``); photos ``missing`` without a face."""
    photos = 2 * count
    person = np.tile(np.arange(count), 2)
    crops = np.broadcast_to((10 * person + 5).astype(np.uint8)[:, None, None, None],
                            (photos, crop_size, crop_size, 3)).copy()  # fmt: skip
    rng = np.random.default_rng(2)
    landmarks = rng.uniform(2, crop_size - 2, size=(photos, 68, 2)).astype(np.float32)
    found = np.ones(photos, bool)
    found[list(missing)] = False
    landmarks[~found] = np.nan
    descriptors = np.eye(photos, 128, dtype=np.float32)[np.tile(np.arange(count), 2)]
    descriptors[~found] = np.nan
    ids = [f"p{k}" for k in range(count)]
    photo_pairs = PhotoPairs(Path("."), ids, [Path(f"A/{i}.jpg") for i in ids], [Path(f"B/{i}.jpg") for i in ids], {})
    return PairFaces(photo_pairs, found, crops, landmarks, landmarks.copy(), np.zeros((photos, 4), np.float32),
                     descriptors, {index: "no face found" for index in missing})  # fmt: skip


def test_evaluate_pairs_scores_any_reconstruction_callable() -> None:
    """A method that reads the person from the crop finds every pair; the mean face scores chance; a photo without
    a face makes its person missing in every row."""
    model = MorphableModel.ict()
    faces = fake_faces(6, missing=(8,))  # B photo of person 2
    codes = torch.from_numpy(np.random.default_rng(3).normal(size=(6, SIZES.shape))).float()

    def knows_the_person(crops: torch.Tensor, landmarks: torch.Tensor) -> FaceParams:
        assert crops.shape[1:] == (3, 16, 16) and landmarks.shape[1:] == (68, 2) and crops.max() <= 1.0
        person = torch.round((crops[:, 0, 0, 0] * 255 - 5) / 10).long()
        params = FaceParams.zeros(SIZES, crops.shape[0])
        params.shape[:] = codes[person]
        return params

    def mean_face(crops: torch.Tensor, landmarks: torch.Tensor) -> FaceParams:
        return FaceParams.zeros(SIZES, crops.shape[0])

    result = evaluate_pairs(faces, {"oracle": knows_the_person, "mean": mean_face}, model, batch_size=4,
                            progress=False)  # fmt: skip
    evaluate_baselines(faces, faces.landmarks[0], result)
    for descriptor in (COEFFICIENTS, MESH):
        oracle, mean = result.scores[("oracle", descriptor)], result.scores[("mean", descriptor)]
        assert (oracle.n, oracle.missing, oracle.rank1, oracle.median_rank, oracle.auc) == (5, 1, 1.0, 1.0, 1.0)
        assert (mean.rank1, mean.median_rank, mean.auc) == (pytest.approx(0.2), 3.0, 0.5)
    assert result.scores[(FACE_RECOGNITION, "dlib descriptor (128-D)")].rank1 == 1.0
    assert result.scores[(DETECTED, "68 landmarks (2D, Procrustes)")].missing == 1
    assert np.isnan(result.params["oracle"][8]).all() and not np.isnan(result.params["oracle"][7]).any()
    assert result.face_params("oracle", np.array([1])).shape.allclose(codes[1:2])
    ranks = result.pair_ranks("oracle", MESH)
    assert np.isnan(ranks[2]) and np.all(ranks[[0, 1, 3, 4, 5]] == 1.0)
    assert faces.subset(2).reasons == {} and faces.subset(3).reasons == {5: "no face found"}
    with pytest.raises(ValueError, match=r"no person of .* has a face found in both photos"):
        evaluate_pairs(fake_faces(2, missing=(0, 3)), {"mean": mean_face}, model, progress=False)


@pytest.fixture(scope="module")
def portraits() -> Path:
    if not (PORTRAITS / "manifest.json").is_file():
        pytest.skip(f"the shared portraits are absent: {PORTRAITS} (set FASTGANFIT_SHARED to the shared folder)")
    return PORTRAITS


@pytest.mark.slow
def test_benchmark_end_to_end_on_shared_pairs(portraits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:  # fmt: skip
    checkpoint = tmp_path / "tiny.ckpt"
    write_tiny_checkpoint(checkpoint)
    loss = GANFitLoss(landmark=1.0, shape=0.003, expression=0.003)
    refine = FitSettings.from_stages({"align": {"steps": 1, "lr": 0.01, "groups": ["shape", "camera"], "loss": loss}})
    benchmark = PairsBenchmark(str(portraits), str(checkpoint), DlibLandmarker("hog+cnn", upsample=1), refine=refine,
                               pairs=4, refine_pairs=2, device="cpu", cache_dir=str(tmp_path / "cache"),
                               figure_pairs=1, progress=False)  # fmt: skip
    report = benchmark.run()
    rows = {(row[0], row[1]): row for row in report.rows}
    assert [key[0] for key in rows] == [DETECTED, FACE_RECOGNITION, "mean face", "mean face", "regression",
                                        "regression", "regression (GANFit++'s 2 pairs)",
                                        "regression (GANFit++'s 2 pairs)", REFINED, REFINED]  # fmt: skip
    assert report.columns == ["method", "from", "pairs", "missing", "rank-1 (%)", "top-5 (%)", "median rank",
                              "ROC AUC"]  # fmt: skip
    assert rows[("mean face", MESH)][2:] == [4, 0, 25.0, 100.0, 2.5, 0.5]  # chance, exactly
    assert rows[(FACE_RECOGNITION, "dlib descriptor (128-D)")][4] == 100.0  # real photos carry the identity
    assert rows[(REFINED, MESH)][2] == 2 and report.details["missing_photos"] == {}
    assert report.figures["best_worst_pairs"].ndim == 3
    markdown, _ = write_report(report, tmp_path / "out")
    assert "no face found in 0 of 8 photos: none" in markdown.read_text()
    assert (tmp_path / "out" / "best_worst_pairs.png").is_file()
    # the faces were detected once: detecting again reads the cache (no detection runs)
    [cache] = (tmp_path / "cache").iterdir()
    assert cache.name.startswith("pair_faces_") and cache.suffix == ".npz"
    graph = load_fast_ganfit(checkpoint).graph
    monkeypatch.setattr(pair_faces, "crop_largest_face", lambda *args, **kwargs: pytest.fail("detected again"))
    again = detect_pair_faces(read_photo_pairs(portraits).subset(4), benchmark.landmarker,
                              graph_crop_template(graph, graph.crop_size), graph.crop_size, tmp_path / "cache")
    assert again.found.all() and again.crops.shape == (8, graph.crop_size, graph.crop_size, 3)
    descriptors = again.descriptors
    assert np.linalg.norm(descriptors[:4] - descriptors[4:], axis=1).max() < 0.6  # dlib's same-person threshold


def test_evaluate_command_composes_the_benchmark(tmp_path: Path) -> None:
    """``evaluate.py benchmark=pairs ckpt=... benchmark.root=... logger=wandb`` builds the benchmark with the fit's
    detector (HOG upsampled up to twice: faces down to about 20 px) and GANFit++'s stages; no root is a clear error."""
    overrides = ["benchmark=pairs", f"ckpt={tmp_path / 'last.ckpt'}", "logger=wandb", "benchmark.refine_pairs=5"]
    with initialize_config_dir(str(REPO / "fastganfit" / "conf"), version_base="1.3"):
        cfg = compose("evaluate", [*overrides, f"benchmark.root={tmp_path}"])
        unrooted = compose("evaluate", overrides)
    benchmark = instantiate(cfg.benchmark)
    assert isinstance(benchmark, PairsBenchmark) and benchmark.root == tmp_path and benchmark.refine_pairs == 5
    assert isinstance(benchmark.refine_settings, FitSettings) and benchmark.landmarker.detector.hog.upsample == 2
    assert cfg.logger is not None
    with pytest.raises(InstantiationException, match=r"benchmark\.root=<folder with A/ and B/ photos"):
        instantiate(unrooted.benchmark)
    with pytest.raises(InstantiationException, match=r"benchmark\.refine_pairs must be an integer >= 1 or null"):
        instantiate(cfg.benchmark, refine_pairs=0)
