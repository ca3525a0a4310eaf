"""Reconstruction with a tiny FastGANFitModule checkpoint (64 px renders): checkpoint loading, regression,
GANFit++ refinement, GANFit from the mean face, multi-image fitting, the files per image, index.html with its
viewer, every bad input, and the fit.py command line."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from matplotlib import cbook
from PIL import Image
from skimage import data
from tiny_checkpoint import TINY_MODEL_OVERRIDES, save_checkpoint, tiny_model_config

from fastganfit.data.prepare import UnusableInputError
from fastganfit.fitting.faces import crop_faces, crop_largest_face, graph_crop_template
from fastganfit.fitting.index_page import INT16_STEPS
from fastganfit.fitting.optimise import (
    fit_from_mean_face,
    mean_face_start,
    refine,
    regress,
    share_subject_groups,
    stage_totals,
)
from fastganfit.fitting.pipeline import FitOptions, reconstruct_images
from fastganfit.fitting.settings import FitSettings, StageSettings
from fastganfit.io.mesh_export import read_obj
from fastganfit.params import FaceParams
from fastganfit.perception.landmarks import DlibLandmarker
from fastganfit.reconstruction.losses import GANFitLoss
from fastganfit.regression.checkpoint import build_fast_ganfit_module, load_fast_ganfit
from fastganfit.regression.module import FastGANFitModule
from fastganfit.regression.regressor import face_colour_features

REPO = Path(__file__).resolve().parent.parent
GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
CROP = 64
ALIGN_LOSS = {"landmark": 1.0, "shape": 0.003, "expression": 0.003}
FULL_LOSS = {"identity": 10.0, "content": 0.2, "pixel": 1.0, "landmark": 2.0, "shape": 0.003, "expression": 0.003,
             "texture": 0.003, "light": 0.003}  # fmt: skip
PIXEL_LOSS = {"pixel": 1.0, "landmark": 2.0, "shape": 0.003, "texture": 0.003}
ALL_GROUPS = ["shape", "expression", "texture", "camera", "light"]


def settings(align_steps: int, full_steps: int, lr: float = 0.02, full_loss: dict | None = None) -> FitSettings:
    full = GANFitLoss(**(full_loss or FULL_LOSS))
    return FitSettings(
        (
            StageSettings("align", align_steps, lr, ("shape", "expression", "camera"), GANFitLoss(**ALIGN_LOSS)),
            StageSettings("full", full_steps, lr / 2, tuple(ALL_GROUPS), full),
        )
    )


@pytest.fixture(scope="module")
def shape_bias() -> torch.Tensor:
    """The regressor's shape-head bias in the tiny checkpoint: its regressed shape for every image."""
    return torch.linspace(-0.5, 0.5, 100)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, shape_bias: torch.Tensor) -> Path:
    """A tiny FastGANFitModule checkpoint as train.py writes it: regressor weights and the model config."""
    config = tiny_model_config("fast_full")
    module = build_fast_ganfit_module(config)
    weights = module.regressor.state_dict()
    weights["heads.shape.bias"] = shape_bias.clone()
    return save_checkpoint(tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt", config, weights)


@pytest.fixture(scope="module")
def module(checkpoint: Path) -> FastGANFitModule:
    return load_fast_ganfit(checkpoint)


@pytest.fixture(scope="module")
def landmarker() -> DlibLandmarker:
    return DlibLandmarker()


@pytest.fixture(scope="module")
def faces(module: FastGANFitModule, landmarker: DlibLandmarker) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned 64 px crops ``[2, 3, 64, 64]`` and landmarks ``[2, 68, 2]`` of the astronaut and Grace Hopper."""
    template = graph_crop_template(module.graph, CROP)
    photos = [data.astronaut(), np.asarray(Image.open(GRACE_HOPPER).convert("RGB"))]
    found = [crop_largest_face(photo, landmarker, template, CROP, 40) for photo in photos]
    crops = torch.stack([torch.from_numpy(np.array(face.crop)) for face in found]).permute(0, 3, 1, 2) / 255.0
    return crops.float(), torch.stack([torch.from_numpy(np.array(face.landmarks)) for face in found])


# ---------------------------------------------------------------------------------------------- checkpoint


def test_checkpoint_rebuilds_the_module_with_its_regressor(module: FastGANFitModule, shape_bias: torch.Tensor) -> None:
    assert isinstance(module, FastGANFitModule) and not module.training
    assert module.graph.render_size == (CROP, CROP) and module.graph.crop_size == CROP
    assert torch.equal(module.regressor.heads["shape"].bias, shape_bias)
    assert not any(p.requires_grad for p in module.graph.identity.parameters())


def test_checkpoint_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt does not exist"):
        load_fast_ganfit(tmp_path / "missing.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"text\.ckpt is not a PyTorch checkpoint"):
        load_fast_ganfit(tmp_path / "text.ckpt")
    torch.save({"state_dict": {"regressor.x": torch.zeros(1)}}, tmp_path / "old.ckpt")
    with pytest.raises(ValueError, match=r"old\.ckpt is not a fastganfit checkpoint \(no 'fastganfit' entry\)"):
        load_fast_ganfit(tmp_path / "old.ckpt")
    torch.save({"state_dict": {}, "fastganfit": {"data": {}}}, tmp_path / "noconfig.ckpt")
    with pytest.raises(ValueError, match=r"noconfig\.ckpt has no model config"):
        load_fast_ganfit(tmp_path / "noconfig.ckpt")
    torch.save({"state_dict": {}, "fastganfit": {"model": {"_target_": "torch.nn.Identity"}}}, tmp_path / "gan.ckpt")
    with pytest.raises(ValueError, match=r"builds a Identity, not a FastGANFitModule"):
        load_fast_ganfit(tmp_path / "gan.ckpt")


# ---------------------------------------------------------------------------------------------- optimisation


def test_regress_gives_the_checkpoints_regressor_output(module, faces, shape_bias, checkpoint) -> None:
    params = regress(module, *faces)
    assert params.batch_size == 2
    assert torch.allclose(params.shape, shape_bias.expand(2, -1))
    assert module.colour_map is not None  # the shipped colour map fits the default texture model: it gives the texture
    target = module.graph.target(*faces)
    assert torch.allclose(params.texture, module.colour_map(face_colour_features(target.image, target.landmarks))[0])
    heads = load_fast_ganfit(checkpoint, values={"colour_map": None})
    assert torch.equal(regress(heads, *faces).texture, torch.zeros_like(params.texture))  # zero heads: mean texture


def test_refinement_lowers_each_stages_objective_and_only_moves_its_groups(module, faces) -> None:
    crops, landmarks = faces[0][:1], faces[1][:1]
    start = regress(module, crops, landmarks)
    aligned, history = refine(module.graph, crops, landmarks, start, settings(8, 0))
    align = stage_totals(history, "align")
    assert len(align) == 9 and align[-1] < 0.8 * align[0]
    assert [record.step for record in history] == list(range(9))
    for group in ("texture", "light"):  # not in the alignment stage
        assert torch.equal(getattr(aligned, group), getattr(start, group))
    for group in ("shape", "expression", "camera"):
        assert not torch.equal(getattr(aligned, group), getattr(start, group))

    refined, history = refine(module.graph, crops, landmarks, aligned, settings(0, 5))
    full = stage_totals(history, "full")
    assert len(full) == 6 and full[-1] < full[0]
    assert set(history[0].terms) == {*FULL_LOSS, "total"}
    for group in ALL_GROUPS:
        assert not torch.equal(getattr(refined, group), getattr(aligned, group)), group


def test_ganfit_starts_from_the_mean_face_seen_by_the_landmark_camera(module, faces) -> None:
    crops, _ = faces
    turned = torch.tensor([[0.15, 0.5, -0.1, 0.0, 0.0, 0.0, 0.0], [0.0, -0.4, 0.1, 0.0, 0.0, 0.0, 0.0]])
    graph = module.graph
    landmarks = graph.renderer.camera.project(graph.mean_landmarks.expand(2, -1, -1), turned, graph.render_size)
    start = mean_face_start(module.graph, crops, landmarks[..., :2])
    torch.testing.assert_close(start.camera[:, :3], turned[:, :3], atol=0.03, rtol=0)
    for name, tensor in start.items():
        if name != "camera":
            assert not tensor.any(), name
    zero_camera = FaceParams.zeros(module.graph.sizes, 2)
    _, from_zero = refine(module.graph, crops, landmarks[..., :2], zero_camera, settings(1, 0))
    _, from_landmarks = refine(module.graph, crops, landmarks[..., :2], start, settings(1, 0))
    assert from_landmarks[0].terms["landmark"] < 0.1 * from_zero[0].terms["landmark"]


def test_ganfit_from_the_mean_face_fits_the_landmarks(module, faces) -> None:
    params, history = fit_from_mean_face(module.graph, *faces, settings(10, 0, lr=0.03))
    totals = stage_totals(history, "align")
    assert totals[-1] < 0.7 * totals[0]
    assert params.batch_size == 2 and params.shape.abs().sum() > 0
    assert history[0].terms["shape"] == 0.0  # it starts at the mean face


def test_multi_image_fitting_shares_shape_and_texture_only(module, faces) -> None:
    crops, landmarks = faces
    start = regress(module, crops, landmarks)
    start.texture += torch.tensor([[0.2], [-0.2]])  # different starting textures: sharing must merge them
    quick = settings(2, 2, full_loss=PIXEL_LOSS)  # no identity network: the sharing is what is tested here
    shared, _ = refine(module.graph, crops, landmarks, start, quick, subjects=torch.tensor([0, 0]))
    assert torch.equal(shared.shape[0], shared.shape[1]) and torch.equal(shared.texture[0], shared.texture[1])
    assert not torch.equal(shared.expression[0], shared.expression[1])
    assert not torch.equal(shared.camera[0], shared.camera[1])
    separate, _ = refine(module.graph, crops, landmarks, start, quick)
    assert not torch.equal(separate.shape[0], separate.shape[1])
    averaged = share_subject_groups(start, torch.tensor([0, 0]))
    assert torch.allclose(averaged.texture, start.texture.mean(0).expand(2, -1))
    assert torch.equal(averaged.camera, start.camera)


def test_refine_rejects_mismatched_inputs(module, faces) -> None:
    crops, landmarks = faces
    start = regress(module, crops, landmarks)
    with pytest.raises(ValueError, match=r"landmarks: expected \[2, 68, 2\]"):
        refine(module.graph, crops, landmarks[:, :5], start, settings(1, 0))
    with pytest.raises(ValueError, match=r"subjects: expected indices 0 \.\. S-1"):
        refine(module.graph, crops, landmarks, start, settings(1, 0), subjects=torch.tensor([0, 2]))


# ---------------------------------------------------------------------------------------------- whole runs


def make_inputs(folder: Path) -> dict[str, Path]:
    """Every kind of input beside two good photos: grayscale, RGBA, very large, two faces, a tiny face, no
    face, a corrupt file, a text file named .jpg and a file whose name is not an image's."""
    folder.mkdir(parents=True)
    astronaut = Image.fromarray(data.astronaut())
    grace = Image.open(GRACE_HOPPER).convert("RGB")
    astronaut.save(folder / "astronaut.png")
    grace.save(folder / "grace_hopper.jpg")
    astronaut.convert("L").save(folder / "gray.png")
    rgba = np.dstack([data.astronaut(), np.full((512, 512), 255, np.uint8)])
    rgba[:40, :, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save(folder / "rgba.png")
    astronaut.resize((2600, 2600), Image.Resampling.BILINEAR).save(folder / "large.jpg", quality=85)
    canvas = np.zeros((600, 1030, 3), np.uint8)
    canvas[:, :512], canvas[:512, 518:] = np.asarray(grace), data.astronaut()  # faces of 216 and 88 px
    Image.fromarray(canvas).save(folder / "two.png")
    astronaut.resize((256, 256), Image.Resampling.LANCZOS).save(folder / "tiny.png")  # a 45 px face
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(folder / "blank.png")
    jpeg = GRACE_HOPPER.read_bytes()
    (folder / "corrupt.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "notes.jpg").write_text("these are not pixels\n")
    (folder / "readme.txt").write_text("not an image name\n")
    return {path.stem: path for path in folder.iterdir()}


GOOD = ("astronaut", "grace_hopper", "gray", "rgba", "large", "two", "tiny")
FAILURES = {
    "blank": "no face found",
    "notes": "not an image (no decoder recognises the file)",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory, module, landmarker):
    """A regression run over the folder of :func:`make_inputs` plus a missing path."""
    root = tmp_path_factory.mktemp("run")
    inputs = make_inputs(root / "photos")
    messages: list[str] = []
    options = FitOptions(progress=False, batch_size=4, faces="largest")
    report = reconstruct_images(
        [str(root / "photos"), str(root / "missing.jpg")],
        root / "out",
        module.graph,
        landmarker,
        options,
        messages.append,
        regressor=module,
    )
    return root, inputs, report, messages


def test_every_input_gets_one_clear_line_and_good_ones_are_written(run) -> None:
    root, inputs, report, messages = run
    outcomes = {Path(outcome.source).stem: outcome for outcome in report.outcomes}
    assert sorted(outcomes) == sorted([*GOOD, *FAILURES, "corrupt", "missing"])
    for stem, reason in FAILURES.items():
        assert outcomes[stem].error == reason and outcomes[stem].folder is None
        assert f"error: {inputs[stem]}: {reason}" in messages
    assert outcomes["corrupt"].error.startswith("unreadable") and "truncated" in outcomes["corrupt"].error
    missing = f"input {root / 'missing.jpg'} does not exist (expected a folder, a file or a glob pattern)"
    assert outcomes["missing"].error == missing
    assert [Path(skip.source).name for skip in report.skipped] == ["readme.txt"]
    for stem in GOOD:
        assert outcomes[stem].error is None and outcomes[stem].folder == root / "out" / stem
        assert f"wrote {root / 'out' / stem}" in messages
    assert outcomes["gray"].notes == ["grayscale image converted to RGB"]
    assert outcomes["rgba"].notes == ["RGBA image converted to RGB (transparency over black)"]
    assert outcomes["large"].notes == ["downscaled from 2600x2600 to 2048x2048 px (max_side=2048)"]
    assert outcomes["two"].notes == ["2 faces found, the largest (216x216 px) taken (faces=all takes all)"]
    assert outcomes["astronaut"].notes == []
    # a 45 px face is reconstructed (min_face=20 by default), with a note that says it is small
    [note] = outcomes["tiny"].notes
    assert re.fullmatch(r"small face \(45x44 px, below small_face=64\): reconstructed from a crop scaled "
                        r"\d+\.\dx from the photo; fine detail comes from the model, not the photo", note), note
    assert len(report.failed) == len(FAILURES) + 2 and len(report.written) == len(GOOD)
    written = sorted(path.name for path in (root / "out").iterdir())
    assert written == sorted([*GOOD, "index.html"])  # nothing for the failures, no temporary folders


def test_min_face_refuses_and_small_face_notes(run, module, landmarker) -> None:
    """min_face still refuses faces below it; small_face only decides the note; both paths (faces=all, largest)."""
    image = np.asarray(Image.open(run[1]["tiny"]).convert("RGB"))
    template = graph_crop_template(module.graph, CROP)
    for faces in ("all", "largest"):
        with pytest.raises(UnusableInputError, match=r"face too small \(45x44 px, min_face=64\)"):
            crop_faces(image, landmarker, template, CROP, 64, faces)
        [small] = crop_faces(image, landmarker, template, CROP, 20, faces)
        assert len(small.notes) == 1 and small.notes[0].startswith("small face (45x44 px, below small_face=64)")
        scale = float(re.search(r"scaled (\d+\.\d)x", small.notes[0]).group(1))
        assert scale == pytest.approx(np.sqrt(abs(np.linalg.det(small.transform[:, :2]))), abs=0.051)
        [plain] = crop_faces(image, landmarker, template, CROP, 20, faces, small_face=40)
        assert plain.notes == () and np.array_equal(plain.crop, small.crop)
    with pytest.raises(ValueError, match="min_face and small_face must be >= 0"):
        FitOptions(small_face=-1)


def test_an_output_folder_that_cannot_be_written_fails_every_input_with_one_clear_line(tmp_path, module,
                                                                                      landmarker) -> None:  # fmt: skip
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "astronaut.png")
    (tmp_path / "blocker").write_text("a file where the output folder should be")
    output = tmp_path / "blocker" / "out"  # read-only and full folders look alike to the writer (root ignores modes)
    messages: list[str] = []
    report = reconstruct_images(photos, output, module.graph, landmarker, FitOptions(progress=False),
                                messages.append, regressor=module)  # fmt: skip
    assert report.exit_status == 1 and report.written == [] and report.index is None
    assert messages[0] == f"error: output folder {output} is not writable (Not a directory)"
    assert report.failed[0].error == f"not reconstructed: output folder {output} is not writable (Not a directory)"
    assert report.summary(output).startswith("reconstructed 0 of 1 images in ")


def test_an_index_page_that_cannot_be_written_is_reported_after_the_results(tmp_path, module, landmarker) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "astronaut.png")
    (tmp_path / "out" / "index.html").mkdir(parents=True)  # the page cannot replace a folder
    messages: list[str] = []
    report = reconstruct_images(photos, tmp_path / "out", module.graph, landmarker, FitOptions(progress=False),
                                messages.append, regressor=module)  # fmt: skip
    assert [outcome.folder for outcome in report.written] == [tmp_path / "out" / "astronaut"]
    problem = f"index page {tmp_path / 'out' / 'index.html'} could not be written (Is a directory)"
    assert report.problems == [problem] and messages[-1] == f"error: {problem}" and report.exit_status == 1
    assert report.summary(tmp_path / "out").endswith(f"into {tmp_path / 'out'}; {problem}")


def test_faces_all_gives_one_result_per_face(run, module, landmarker) -> None:
    root = run[0]
    messages: list[str] = []
    report = reconstruct_images(root / "photos" / "two.png", root / "all", module.graph, landmarker,
                                FitOptions(progress=False, faces="all"), messages.append, regressor=module)
    folders = sorted(path.name for path in (root / "all").iterdir())
    assert len(folders) == 2 and all(name.startswith(("two_face0_", "two_face1_")) for name in folders)
    infos = [json.loads((root / "all" / name / "fit.json").read_text()) for name in folders]
    assert [info["face_index"] for info in infos] == [0, 1]
    grace_box, astronaut_box = (info["face_box"] for info in infos)
    assert grace_box[2] < 512 < 518 < astronaut_box[0]  # the larger face (Grace Hopper) first, then the astronaut
    named_box = [int(value) for value in folders[1].removeprefix("two_face1_").split("-")]
    assert np.allclose(named_box, astronaut_box, atol=1.0)  # the folder is named by the face's box
    assert report.outcomes[0].notes == ["2 faces reconstructed, one result folder each"]
    assert report.outcomes[0].folder == root / "all" / folders[0] and not report.failed
    with pytest.raises(ValueError, match="faces must be one of"):
        FitOptions(faces="biggest")


def test_outputs_load_and_match_the_fit(run, module, shape_bias) -> None:
    root, _, _, _ = run
    folder = root / "out" / "astronaut"
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        ["mesh.obj", "mesh.mtl", "texture.png", "mesh.glb", "params.npz", "overlay.png", "report.png", "fit.json",
         "texture_model.png", "texture_mask.png"]
    )  # fmt: skip
    mesh = trimesh.load(folder / "mesh.obj", process=False)
    ours = read_obj(folder / "mesh.obj")
    assert len(ours.vertices) == 9409 and len(mesh.faces) == len(ours.faces) == 18460  # trimesh splits UV seams
    assert ours.texture == folder / "texture.png"
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals) and mesh.visual.material.image.size == (32, 32)
    span = np.ptp(ours.vertices, axis=0)
    assert 120 < span[1] < 300  # a head in millimetres
    with np.load(folder / "params.npz") as params:
        sizes = {name: params[name].shape for name in ("shape", "expression", "texture", "camera", "light")}
        texture = (module.graph.texture.latent_dim,)  # the default texture model's (pca_portraits: 57)
        assert sizes == {"shape": (100,), "expression": (53,), "texture": texture, "camera": (7,), "light": (10,)}
        assert np.allclose(params["shape"], shape_bias.numpy(), atol=1e-6)
        assert params["crop_landmarks"].shape == (68, 2) and params["crop_transform"].shape == (2, 3)
        assert int(params["crop_size"]) == CROP
    overlay = np.asarray(Image.open(folder / "overlay.png"))
    photo = data.astronaut()
    assert overlay.shape == photo.shape
    changed = np.abs(overlay.astype(int) - photo).sum(-1) > 30
    ys, xs = np.nonzero(changed)
    assert 0.03 < changed.mean() < 0.2 and 150 < xs.mean() < 300 and 60 < ys.mean() < 200  # the face, not elsewhere
    assert Image.open(folder / "report.png").size == (6 * CROP + 14, CROP + 4)
    info = json.loads((folder / "fit.json").read_text())
    assert info["method"] == "regression" and info["faces_found"] == 1
    # the OBJ carries the photo texture (the default); the model's is kept beside it with the photo's confidence
    names = ("texture.png", "texture_model.png", "texture_mask.png")
    photo_texture, model_texture, mask = (np.asarray(Image.open(folder / name)).astype(int) for name in names)
    assert photo_texture.shape == model_texture.shape == mask.shape == (32, 32, 3)
    seen = mask[..., 0] > 250
    assert info["texture_source"] == "photo" and 0.2 < info["photo_texture_coverage"] < 0.9 and 0.1 < seen.mean() < 0.8
    assert np.abs(photo_texture - model_texture)[seen].mean() > 10  # the astronaut's skin, not the model's
    with np.load(root / "out" / "large" / "params.npz") as params:
        assert float(params["photo_scale"]) == pytest.approx(2048 / 2600)
    assert Image.open(root / "out" / "large" / "overlay.png").size == (2048, 2048)


def test_index_page_shows_every_result_offline(run) -> None:
    root, _, report, _ = run
    page = (root / "out" / "index.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from the network
    for stem in GOOD:
        assert f'src="{stem}/report.png"' in page and f'href="{stem}/mesh.obj"' in page
    for outcome in report.failed:
        assert outcome.source in page
    meshes = json.loads(re.search(r'id="fastganfit-meshes">(.*?)</script>', page, re.S).group(1))
    assert len(meshes["meshes"]) == len(GOOD) == page.count("<canvas")
    entry = meshes["meshes"][GOOD.index("astronaut")]
    steps = np.frombuffer(base64.b64decode(entry["vertices"]), "<i2").reshape(-1, 3)
    decoded = np.asarray(entry["offset"]) + np.asarray(entry["scale"]) * steps
    vertices = read_obj(root / "out" / "astronaut" / "mesh.obj").vertices
    assert np.abs(decoded - vertices).max() < np.ptp(vertices, axis=0).max() / INT16_STEPS


def test_multi_image_run_writes_one_shape_and_texture_per_person(tmp_path, module, landmarker) -> None:
    folder = tmp_path / "person"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "front.png")
    Image.fromarray(data.astronaut()[:, ::-1]).save(folder / "mirrored.png")
    options = FitOptions(settings=settings(2, 1, full_loss=PIXEL_LOSS), subjects="all", progress=False)
    report = reconstruct_images(
        folder, tmp_path / "out", module.graph, landmarker, options, lambda message: None, regressor=module
    )
    assert len(report.written) == 2 and not report.failed
    front, mirrored = (np.load(tmp_path / "out" / key / "params.npz") for key in ("front", "mirrored"))
    for group in ("shape", "texture"):
        assert np.array_equal(front[group], mirrored[group])
    for group in ("expression", "camera", "light"):
        assert not np.array_equal(front[group], mirrored[group])
    info = json.loads((tmp_path / "out" / "front" / "fit.json").read_text())
    assert info["batch"] == ["front", "mirrored"] and info["subject"] == "all"


def test_texture_source_model_exports_the_model_texture(tmp_path, module, landmarker) -> None:
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    options = FitOptions(progress=False, texture_source="model")
    report = reconstruct_images(tmp_path / "astronaut.png", tmp_path / "out", module.graph, landmarker, options,
                                lambda message: None, regressor=module)  # fmt: skip
    assert len(report.written) == 1
    folder = tmp_path / "out" / "astronaut"
    texture, model_texture = (np.asarray(Image.open(folder / name)) for name in ("texture.png", "texture_model.png"))
    info = json.loads((folder / "fit.json").read_text())
    assert np.array_equal(texture, model_texture) and info["texture_source"] == "model"
    assert Image.open(folder / "report.png").size == (6 * CROP + 14, CROP + 4)  # the photo texture is still shown


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the viewer's script")
def test_viewer_script_draws_the_inlined_mesh(run, tmp_path) -> None:
    root, _, _, _ = run
    script = tmp_path / "frames.js"
    script.write_text(
        """
const fs = require("fs");
const viewer = require(process.argv[2]);
const page = fs.readFileSync(process.argv[3], "utf8");
const data = JSON.parse(page.match(/id="fastganfit-meshes">([\\s\\S]*?)<\\/script>/)[1]);
const mesh = viewer.buildMesh(data.topology, data.meshes[0]);
const red = {width: 1, height: 1, data: new Uint8ClampedArray([220, 40, 30, 255])};
const frames = [[0, null], [1.2, null], [0, red]].map(([yaw, texture]) => {
  const pixels = new Uint8ClampedArray(64 * 64 * 4);
  viewer.renderFrame(mesh, texture, {yaw: yaw, pitch: 0, zoom: 1}, 64, 64, pixels);
  return Array.from(pixels);
});
process.stdout.write(JSON.stringify(frames));
"""
    )
    viewer = REPO / "fastganfit" / "fitting" / "viewer.js"
    result = subprocess.run(["node", str(script), str(viewer), str(root / "out" / "index.html")],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    front, side, red = (np.asarray(frame, np.uint8).reshape(64, 64, 4)[..., :3] for frame in json.loads(result.stdout))
    covered = (front != 246).any(-1)
    assert 0.25 < covered.mean() < 0.7 and covered[32, 32]  # a head in the middle
    assert (side != front).any(-1).mean() > 0.1  # turning it changes the picture
    face = red[(red != 246).any(-1)].astype(int)
    assert (face[:, 0] > 2 * face[:, 1]).mean() > 0.95  # the texture colours the face


@pytest.mark.slow
def test_fit_py_refines_and_exits_non_zero_when_an_image_fails(checkpoint, tmp_path) -> None:
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    (tmp_path / "notes.jpg").write_text("not pixels")
    command = [
        sys.executable, str(REPO / "fit.py"), f"ckpt={checkpoint}",
        f"image=[{tmp_path / 'astronaut.png'},{tmp_path / 'notes.jpg'}]", "refine=true",
        "refinement.stages.align.steps=2", "refinement.stages.full.steps=2", "refinement.stages.colour.steps=2",
        f"output={tmp_path / 'out'}",
        "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"error: {tmp_path / 'notes.jpg'}: not an image" in result.stderr
    assert "reconstructed 1 of 2 images" in result.stdout and "1 failed" in result.stdout
    info = json.loads((tmp_path / "out" / "astronaut" / "fit.json").read_text())
    assert info["method"] == "regression + GANFit++ refinement"
    assert set(info["batch_objective"]) == {"align", "full", "colour"} and info["batch_objective"]["full"]["steps"] == 2
    assert info["batch"] == ["astronaut"]
    assert (tmp_path / "out" / "index.html").is_file()

    missing = subprocess.run([*command[:2], f"ckpt={tmp_path / 'none.ckpt'}", *command[3:]], capture_output=True,
                             text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert missing.returncode == 2 and "none.ckpt does not exist" in missing.stderr


@pytest.mark.slow
def test_fit_py_without_checkpoint_runs_ganfit_from_the_mean_face(tmp_path) -> None:
    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    tiny = [override for override in TINY_MODEL_OVERRIDES if not override.startswith("texture.")]
    command = [
        sys.executable, str(REPO / "fit.py"), f"image={tmp_path / 'astronaut.png'}", "texture=procedural",
        "texture.resolution=32", *tiny, "ganfit.stages.align.steps=4", "ganfit.stages.full.steps=1",
        "ganfit.stages.colour.steps=1", f"output={tmp_path / 'out'}", "progress=false",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GANFit optimisation from the mean face" in result.stderr and "reconstructed 1 of 1" in result.stdout
    info = json.loads((tmp_path / "out" / "astronaut" / "fit.json").read_text())
    align = info["batch_objective"]["align"]
    assert align["steps"] == 4 and align["last"]["landmark"] < align["first"]["landmark"]
    assert align["first"]["shape"] == 0.0  # the mean face
    with np.load(tmp_path / "out" / "astronaut" / "params.npz") as params:
        assert np.abs(params["shape"]).sum() > 0 and params["texture"].shape == (43,)
    assert not (tmp_path / "out" / "index.html").exists()  # one file: no index
