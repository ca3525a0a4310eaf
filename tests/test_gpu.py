"""GPU checks (marker ``gpu``: skipped without CUDA; ``bench/gpu.sh`` runs them): pytorch3d on CUDA against the
torch z-buffer, gradients on CUDA, a bf16-mixed training step and a fitting step with CUDA's sync debug mode
set to "error" (any host synchronisation raises), and a fit on CUDA."""

# ruff: noqa: F401, F811 - the fixtures `components` and `shards` are imported from test_fast_ganfit

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from test_fast_ganfit import CROP, components, make_data, shards
from test_precision_and_syncs import build, fit_settings, random_params

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.fitting.optimise import refine
from fastganfit.params import FaceParams
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.render.rasterizer import rasterize_pytorch3d, rasterize_torch

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


def test_pytorch3d_on_cuda_matches_the_torch_backend(components: dict) -> None:
    module = build(components).to(CUDA)
    renderer = FaceRenderer.from_model(module.graph.model, image_size=224, backend="torch").to(CUDA)
    params = random_params(module, 8).to(CUDA)
    vertices = module.graph.model(params.shape, params.expression)
    screen = renderer.camera.project(vertices, params.camera, (224, 224))
    reference = rasterize_torch(screen, renderer.faces, (224, 224))
    fast = rasterize_pytorch3d(screen, renderer.faces, (224, 224))
    covered = (reference >= 0) | (fast >= 0)
    same = (reference == fast) & covered
    assert same.sum() >= 0.99 * covered.sum()


def test_gradients_on_cuda_match_cpu(components: dict) -> None:
    module = build(components)
    params = random_params(module, 2)
    target = module.graph.target(torch.rand(2, 3, CROP, CROP), torch.rand(2, 68, 2) * 20 + 22)
    gradients = []
    for device in ("cpu", "cuda"):
        graph = module.graph.to(device)
        leaf = params.shape.to(device).clone().requires_grad_(True)
        moved = FaceParams(**{**params.to(device).as_dict(), "shape": leaf})
        moved_target = type(target)(target.image.to(device), target.landmarks.to(device), target.identity_input)
        result = graph.render(moved, moved_target)
        (result.render.image.mean() + result.render.landmarks.square().mean()).backward()
        gradients.append(leaf.grad.cpu())
    assert gradients[1].abs().sum() > 0
    assert torch.allclose(gradients[0], gradients[1], rtol=1e-3, atol=1e-5)


def test_bf16_training_step_without_host_synchronisation(components: dict, shards: Path, tmp_path: Path) -> None:
    module = build(components, phase="full")
    trainer = L.Trainer(
        max_steps=2, accelerator="gpu", devices=1, precision="bf16-mixed", logger=False, log_every_n_steps=50,
        enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, datamodule=make_data(shards))  # warms the cached constants and the kernels
    batch = next(iter(make_data_setup(shards)))
    image, landmarks = batch["image"].to(CUDA), batch["landmarks"].to(CUDA)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            total, _ = module.objective(module.reconstruct(image, landmarks))
        total.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total)


def make_data_setup(shards: Path):
    data = make_data(shards)
    data.setup("fit")
    return data.train_dataloader()


def sync_warnings(run) -> int:
    """How many synchronising CUDA calls ``run()`` makes (CUDA's sync debug mode set to "warn")."""
    import warnings

    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(warning.message) for warning in caught)


def test_fit_on_cuda_syncs_per_stage_not_per_step(components: dict) -> None:
    graph = build(components).graph.to(CUDA)
    crops, landmarks = torch.rand(2, 3, CROP, CROP, device=CUDA), torch.rand(2, 68, 2, device=CUDA) * 20 + 22
    start = FaceParams.zeros(graph.sizes, 2, device=CUDA)
    results = []
    refine(graph, crops, landmarks, start, fit_settings(1))  # warms the cached constants
    one = sync_warnings(lambda: results.append(refine(graph, crops, landmarks, start, fit_settings(1))))
    many = sync_warnings(lambda: results.append(refine(graph, crops, landmarks, start, fit_settings(8))))
    assert many == one  # the history is read once after the stage, whatever the number of steps
    params, history = results[-1]
    assert len(history) == 9 and params.shape.device.type == "cuda" and torch.isfinite(params.shape).all()
