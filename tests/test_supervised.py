"""Supervised 3D terms: zero for identical meshes, similarity invariance, hand-computed values, masking,
finite-difference gradients (float64), configs, and the module adding them on batches with ground truth."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fastganfit.data.datamodule import FaceDataModule
from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.params import FaceParams, ParamSizes
from fastganfit.perception.dlib_resnet import DlibResNet
from fastganfit.perception.face_chip import DlibChipAligner
from fastganfit.perception.heatmaps import GaussianHeatmaps
from fastganfit.perception.identity import IdentityNet
from fastganfit.reconstruction.losses import GANFitLoss
from fastganfit.reconstruction.supervised import SupervisedLoss, parameter_loss, vertex_loss
from fastganfit.regression.build import build_fast_ganfit
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.texture.procedural import ProceduralTexture
from fastganfit.training.stages import stage_configs

CONF = Path(__file__).resolve().parents[1] / "fastganfit" / "conf" / "loss"
SIZES = ParamSizes(shape=4, expression=3, texture=2, camera=7, light=1)


def rotation(angle: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A rotation ``[3, 3]`` by ``angle`` about the axis (1, 2, 3) (Rodrigues)."""
    axis = torch.tensor([1.0, 2.0, 3.0], dtype=dtype) / math.sqrt(14.0)
    k = torch.zeros(3, 3, dtype=dtype)
    k[0, 1], k[0, 2], k[1, 2] = -axis[2], axis[1], -axis[0]
    k = k - k.T
    return torch.eye(3, dtype=dtype) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def meshes(batch: int = 2, count: int = 12, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Random vertices ``[B, V, 3]`` in mm (a spread of tens of mm, like a face)."""
    return 30.0 * torch.randn(batch, count, 3, dtype=dtype)


def params_like(values: dict[str, torch.Tensor]) -> FaceParams:
    batch = next(iter(values.values())).shape[0]
    zeros = FaceParams.zeros(SIZES, batch).as_dict()
    return FaceParams(**{**zeros, **values})


def test_vertex_loss_is_zero_for_identical_meshes() -> None:
    mesh = meshes()
    assert torch.equal(vertex_loss(mesh, mesh), torch.zeros(2))
    assert torch.allclose(vertex_loss(mesh, mesh, similarity=True), torch.zeros(2), atol=1e-3)


def test_vertex_loss_hand_computed() -> None:
    target = torch.zeros(1, 4, 3)
    predicted = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    assert torch.allclose(vertex_loss(predicted, target), torch.tensor([(5.0 + 1.0 + 0.0 + 2.0) / 4]))


def test_vertex_loss_similarity_invariance() -> None:
    target = meshes(dtype=torch.float64)
    shape_change = target + 2.0 * torch.randn_like(target)
    moved = 1.3 * shape_change @ rotation(0.7, torch.float64).T + torch.tensor([10.0, -5.0, 40.0], dtype=torch.float64)
    invariant = vertex_loss(moved, target, similarity=True)
    assert torch.allclose(invariant, vertex_loss(shape_change, target, similarity=True), atol=1e-8)
    assert (invariant > 0.5).all()  # the shape change itself remains
    assert (vertex_loss(moved, target) > 10 * invariant).all()  # without the option the transform counts
    assert torch.allclose(
        vertex_loss(moved, shape_change, similarity=True), torch.zeros(2, dtype=torch.float64), atol=1e-8
    )


@pytest.mark.parametrize("similarity", [False, True])
def test_vertex_loss_gradcheck(similarity: bool) -> None:
    predicted = meshes(2, 6, torch.float64).requires_grad_(True)
    target = meshes(2, 6, torch.float64)
    assert torch.autograd.gradcheck(lambda p: vertex_loss(p, target, similarity), (predicted,))


def test_parameter_loss_hand_computed_and_gradcheck() -> None:
    predicted = {"shape": torch.tensor([[1.0, 2.0, 0.0, 0.0]]), "expression": torch.tensor([[0.5, 0.0, 0.0]])}
    target = {"shape": torch.zeros(1, 4), "expression": torch.zeros(1, 3), "camera": torch.ones(1, 7)}
    expected = (1.0 + 4.0) / 4 + 0.25 / 3
    assert torch.allclose(parameter_loss(predicted, target), torch.tensor([expected]))
    assert torch.equal(parameter_loss(target, target, ["shape", "expression", "camera"]), torch.zeros(1))
    shape = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    truth = {"shape": torch.randn(3, 4, dtype=torch.float64)}
    assert torch.autograd.gradcheck(lambda s: parameter_loss({"shape": s}, truth, ["shape"]), (shape,))


def test_parameter_loss_errors() -> None:
    predicted = {"shape": torch.zeros(1, 4), "expression": torch.zeros(1, 3)}
    with pytest.raises(ValueError, match="no 'expression'"):
        parameter_loss(predicted, {"shape": torch.zeros(1, 4)})
    with pytest.raises(ValueError, match="another face model"):
        parameter_loss(predicted, {"shape": torch.zeros(1, 5), "expression": torch.zeros(1, 3)}, ["shape"])
    with pytest.raises(ValueError, match="no parameter groups"):
        parameter_loss(predicted, predicted, [])


def test_supervised_loss_weights_and_masks_samples_without_ground_truth() -> None:
    vertices = meshes(3, 10)
    target = vertices.clone()
    target[0] += torch.tensor([3.0, 4.0, 0.0])  # sample 0: 5 mm everywhere (plain)
    target[2] = 0.0  # sample 2 has no ground truth: its zeros must not count
    shape = torch.zeros(3, 4)
    shape[1, 0] = 2.0  # sample 1: params term 4 / 4 = 1
    truth = {"shape": torch.zeros(3, 4), "expression": torch.zeros(3, 3)}
    mask = torch.tensor([True, True, False])
    loss = SupervisedLoss(vertex=0.5, params=2.0, similarity=False)
    total, logs = loss(vertices, params_like({"shape": shape}), target, truth, mask)
    assert torch.allclose(logs["vertex"], torch.tensor(2.5))  # (5 + 0) / 2 samples with ground truth
    assert torch.allclose(logs["params"], torch.tensor(0.5))  # (0 + 1) / 2
    assert torch.allclose(total, torch.tensor(0.5 * 2.5 + 2.0 * 0.5))
    none = torch.zeros(3, dtype=torch.bool)
    total, logs = loss(vertices, params_like({"shape": shape}), target, truth, none)
    assert total == 0 and logs["vertex"] == 0


def test_supervised_loss_gradients_are_finite_without_ground_truth() -> None:
    """A sample without ground truth holds zero vertices: the similarity alignment must not turn them into NaN."""
    vertices = meshes(2, 10).requires_grad_(True)
    target = torch.stack([vertices[0].detach() + 1.0, torch.zeros(10, 3)])
    loss = SupervisedLoss(vertex=1.0, similarity=True)
    total, _ = loss(vertices, params_like({"shape": torch.zeros(2, 4)}), target, None, torch.tensor([True, False]))
    total.backward()
    assert torch.isfinite(vertices.grad).all()
    assert vertices.grad[1].abs().max() < 1e-6 and vertices.grad[0].abs().sum() > 0


def test_supervised_loss_errors() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        SupervisedLoss(vertex=-1.0)
    with pytest.raises(ValueError, match="groups"):
        SupervisedLoss(groups=["nose"])
    loss = SupervisedLoss(vertex=1.0, params=1.0)
    vertices = meshes(2, 10)
    params = params_like({"shape": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="needs target_vertices"):
        loss(vertices, params, None, {"shape": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="other face model or topology"):
        loss(vertices, params, meshes(2, 11), {"shape": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="has_ground_truth"):
        loss(vertices, params, vertices, None, torch.ones(3, dtype=torch.bool))


def test_loss_configs_hold_supervised_terms_off_by_default() -> None:
    for name in ("fast_align", "fast_full"):
        loss = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
        assert isinstance(loss, GANFitLoss) and isinstance(loss.supervised, SupervisedLoss)
        assert loss.supervised.active_terms == [], name
        assert loss.supervised.similarity and loss.supervised.groups == ("shape", "expression")


def test_module_adds_supervised_terms_on_batches_with_ground_truth(ict_model, tmp_path) -> None:
    """FastGANFitModule.objective: the supervised terms join the total (and reach the shape head) only when the
    loss has them on and the batch carries ground truth."""
    crop = 48
    generate_synthetic_faces(tmp_path, n=2, seed=0, crop_size=crop, progress=False)
    data = FaceDataModule(str(tmp_path), batch_size=2, shuffle_buffer=0, augment=False)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    weights = {"landmark": 1.0, "shape": 0.003}
    module = build_fast_ganfit(
        ict_model,
        ProceduralTexture.for_ict(resolution=16),
        FaceRenderer.from_model(ict_model, image_size=crop, backend="torch"),
        IdentityNet(DlibResNet(), DlibChipAligner(150, 0.25), ["stage2"]),
        GaussianHeatmaps(crop_size=crop, heatmap_size=16),
        regressor={"heatmap_backbone": "resnet10t", "adapter_channels": 8, "feature_dim": 16, "hidden": 16},
        loss=GANFitLoss(**weights, supervised=SupervisedLoss(vertex=0.01, params=0.1)),
    )
    result = module.reconstruct(batch["image"], batch["landmarks"])
    total, terms = module.objective(result, batch)
    plain_total, plain_terms = module.objective(result)
    assert "supervised_vertex" not in plain_terms
    assert terms["supervised_vertex"] > 1.0  # the mean face is millimetres away from a random face
    assert terms["supervised_params"] > 0.0
    expected = plain_total + 0.01 * terms["supervised_vertex"] + 0.1 * terms["supervised_params"]
    assert torch.allclose(total, expected) and torch.allclose(terms["total"], expected)
    (total - plain_total).backward()  # the supervised part alone reaches the shape and expression heads
    assert module.regressor.heads["shape"].bias.grad.abs().sum() > 0
    assert module.regressor.heads["expression"].bias.grad.abs().sum() > 0


def test_supervision_is_on_in_the_demo_stages_and_off_in_the_paper_recipe() -> None:
    with initialize_config_dir(str(CONF.parent), version_base="1.3"):
        demo = compose("train", overrides=["experiment=demo", "run_dir=/tmp/demo_run"])
        paper = {name: compose("train", overrides=[f"experiment={name}"]) for name in ("fast_align", "fast_full")}
    for name, stage in stage_configs(demo):
        supervised = instantiate(stage.model.loss).supervised
        # align: the vertex term; full: also the true texture latent and light (the demo's colour supervision)
        expected = ["vertex"] if name == "align" else ["vertex", "params"]
        assert supervised.active_terms == expected and supervised.similarity, name
        if name == "full":
            assert supervised.groups == ("texture", "light")
    for name, config in paper.items():
        assert instantiate(config.model.loss).supervised.active_terms == [], name
