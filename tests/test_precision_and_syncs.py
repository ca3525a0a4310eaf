"""Mixed precision and host synchronisation: geometry stays float32 under bf16 autocast, a bf16-mixed training
step is finite, and neither a training step nor a fitting step makes the host wait for the device."""

# ruff: noqa: F401, F811 - the fixtures `components` and `shards` are imported from test_fast_ganfit and requested by name

from __future__ import annotations

import functools
from pathlib import Path

import lightning as L
import pytest
import torch
from host_sync import HostSyncRecorder
from test_fast_ganfit import (
    ALIGN_WEIGHTS,
    CONSTANT_RATE,
    CROP,
    FULL_WEIGHTS,
    TINY_REGRESSOR,
    components,
    make_data,
    shards,
)

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.fitting.optimise import refine
from fastganfit.fitting.settings import FitSettings, StageSettings
from fastganfit.params import FaceParams
from fastganfit.perception.face_chip import dlib_pyramid_level, dlib_pyramid_levels
from fastganfit.reconstruction.losses import GANFitLoss
from fastganfit.regression.build import build_fast_ganfit
from fastganfit.regression.module import FastGANFitModule
from fastganfit.render.face_renderer import FaceRenderer


@pytest.fixture
def sync_free(components: dict):
    """The components' dlib chip aligner in its sync-free mode (the mode of images on a GPU) for one test."""
    aligner = components["identity"].aligner
    aligner.sync_free = True
    yield
    aligner.sync_free = None


def build(components: dict, phase: str = "full", **kwargs) -> FastGANFitModule:
    weights = ALIGN_WEIGHTS if phase == "align" else FULL_WEIGHTS
    settings = {
        "optimizer": functools.partial(torch.optim.AdamW, lr=1e-3),
        "scheduler": CONSTANT_RATE,
        "log_images_every_n_steps": 0,
        **kwargs,
    }
    return build_fast_ganfit(
        **components, regressor=TINY_REGRESSOR, loss=GANFitLoss(**weights), phase=phase, **settings
    )


def random_params(module: FastGANFitModule, batch: int) -> FaceParams:
    generator = torch.Generator().manual_seed(3)
    params = FaceParams.zeros(module.graph.sizes, batch)
    return FaceParams(**{name: 0.3 * torch.randn(value.shape, generator=generator) for name, value in params.items()})


def test_geometry_and_render_are_float32_under_bf16_autocast(components: dict, ict_model: MorphableModel) -> None:
    module = build(components)
    graph = module.graph
    params = random_params(module, 2)
    crops = torch.rand(2, 3, CROP, CROP)
    target = graph.target(crops, torch.rand(2, 68, 2) * 20 + 22)
    reference = graph.render(params, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = graph.render(params, target)
        # the same morphable-model sum without the float32 region: what bf16 geometry would give
        raw = ict_model(params.shape, params.expression)
    assert mixed.vertices.dtype == mixed.render.image.dtype == torch.float32
    assert (mixed.vertices - reference.vertices).abs().max() < 1e-4  # mm
    assert (mixed.render.landmarks - reference.render.landmarks).abs().max() < 1e-4  # px
    assert torch.equal(mixed.render.mask, reference.render.mask)
    assert (raw.float() - reference.vertices).abs().max() > 0.05  # bf16 geometry would be off by this much
    # the texture GAN is a network: it runs in bf16, and only its rounding reaches the pixels
    assert (mixed.render.image - reference.render.image).abs().max() < 0.03
    # with the same (float32) texture the render under autocast equals the float32 one
    textured = graph.texture(params.texture)
    camera, light = params.camera, params.light
    plain = graph.renderer(reference.vertices, textured, camera, light)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = graph.renderer(reference.vertices, textured, camera, light)
    assert (under.image - plain.image).abs().max() < 1e-6


def test_bf16_mixed_training_step_is_finite(components: dict, shards: Path, tmp_path: Path) -> None:
    module = build(components)
    start = {name: value.detach().clone() for name, value in module.regressor.named_parameters()}
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        precision="bf16-mixed",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=make_data(shards))
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/total"]) and metrics["train/total"] > 0
    changed = [name for name, value in module.regressor.named_parameters() if not torch.equal(value, start[name])]
    assert "heads.shape.weight" in changed
    assert all(torch.isfinite(value).all() for value in module.regressor.parameters())


class RecordSecondStep(L.Callback):
    """Records host synchronisations in our code during the second training step (forward, backward, optimiser
    step); the first is a logging step, where host values may be read."""

    def __init__(self) -> None:
        self.recorder = HostSyncRecorder()
        self.recorded_steps = 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == 1:
            self.recorder.__enter__()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == 2:
            self.recorder.__exit__(None, None, None)
            self.recorded_steps += 1


def test_training_step_has_no_host_synchronisation(
    components: dict, ict_model: MorphableModel, shards: Path, tmp_path: Path, sync_free: None
) -> None:
    # pytorch3d is the backend CUDA uses ("auto"); the torch z-buffer has one documented sync (below)
    renderer = FaceRenderer.from_model(ict_model, image_size=CROP, backend="pytorch3d")
    module = build({**components, "renderer": renderer}, log_images_every_n_steps=2)
    callback = RecordSecondStep()
    trainer = L.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        log_every_n_steps=50,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[callback],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=make_data(shards))
    assert callback.recorded_steps == 1
    assert callback.recorder.records == []


def test_recorder_finds_the_syncs_it_is_meant_to_find(components: dict) -> None:
    """The torch z-buffer's one sync (its candidate count) and a tensor read in a Python ``while`` are recorded with
    their place in our code; the device version of the same computation is not."""
    module = build(components)
    params = random_params(module, 2)
    target = module.graph.target(torch.rand(2, 3, CROP, CROP), torch.rand(2, 68, 2) * 20 + 22)
    with HostSyncRecorder() as recorder:
        module.graph.render(params, target)
    assert (
        len(recorder.records) == 1
        and "aten.repeat_interleave at fastganfit/render/rasterizer.py" in (recorder.records[0])
    )
    with HostSyncRecorder() as recorder:
        side = torch.tensor([100.0, 400.0])
        dlib_pyramid_levels(side, 150)  # on the device
        dlib_pyramid_level(side[1], 150)  # a tensor compared in a Python `while`: one read per test
    assert recorder.records and all(
        record.startswith("aten._local_scalar_dense at fastganfit/perception/face_chip.py")
        and " in dlib_pyramid_level " in record
        for record in recorder.records
    )


def fit_settings(steps: int) -> FitSettings:
    full = GANFitLoss(**FULL_WEIGHTS)
    return FitSettings((StageSettings("full", steps, 0.01, ("shape", "expression", "camera", "light"), full),))


def test_fitting_steps_have_no_host_synchronisation(
    components: dict, ict_model: MorphableModel, sync_free: None
) -> None:
    renderer = FaceRenderer.from_model(ict_model, image_size=CROP, backend="pytorch3d")
    graph = build({**components, "renderer": renderer}).graph
    crops, landmarks = torch.rand(2, 3, CROP, CROP), torch.rand(2, 68, 2) * 20 + 22
    start = FaceParams.zeros(graph.sizes, 2)
    refine(graph, crops, landmarks, start, fit_settings(1))  # makes the cached constants on this device
    # the history is read once after each stage (stage_records), never inside the loop; Adam reads its step
    # count, a CPU tensor on every device (no device synchronisation)
    with HostSyncRecorder(allowed=(" in stage_records ", "(optimiser.step())")) as recorder:
        params, history = refine(graph, crops, landmarks, start, fit_settings(3))
    assert recorder.records == []
    assert [record.step for record in history] == [0, 1, 2, 3]
    assert not torch.equal(params.shape, start.shape)


def test_fitting_reports_the_first_non_finite_step(components: dict) -> None:
    graph = build(components).graph
    crops, landmarks = torch.rand(1, 3, CROP, CROP), torch.rand(1, 68, 2) * 20 + 22
    start = FaceParams.zeros(graph.sizes, 1)
    start = FaceParams(**{**start.as_dict(), "shape": torch.full_like(start.shape, float("nan"))})
    with pytest.raises(FloatingPointError, match="fit stage 'full': the objective is nan at step 0"):
        refine(graph, crops, landmarks, start, fit_settings(2))


@pytest.mark.slow
def test_compiled_regressor_keeps_checkpoint_keys_and_outputs(components: dict, shards: Path, tmp_path: Path) -> None:
    # the "aot_eager" backend traces and differentiates like inductor but needs no C compiler and compiles in
    # seconds on CPU; compile=True (inductor) is what training on a GPU uses
    plain = build(components, phase="align")
    compiled = build(components, phase="align", compile="aot_eager")
    compiled.regressor.load_state_dict(plain.regressor.state_dict())
    assert compiled.regressor.state_dict().keys() == plain.regressor.state_dict().keys()
    assert compiled.state_dict().keys() == plain.state_dict().keys()
    data = make_data(shards)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    plain.eval(), compiled.eval()
    with torch.no_grad():
        expected = plain.reconstruct(batch["image"], batch["landmarks"]).params
        got = compiled.reconstruct(batch["image"], batch["landmarks"]).params
    assert all(torch.allclose(got.as_dict()[name], value, atol=1e-5) for name, value in expected.items())
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(compiled, datamodule=make_data(shards))
    trainer.save_checkpoint(tmp_path / "compiled.ckpt")
    saved = torch.load(tmp_path / "compiled.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert set(saved) == {f"regressor.{name}" for name in plain.regressor.state_dict()}
