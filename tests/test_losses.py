"""GANFit's loss terms: zero on identical inputs, hand-computed values, gradients, masking, visibility, configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fastganfit.params import FaceParams, ParamSizes
from fastganfit.perception.identity import IdentityOutput
from fastganfit.reconstruction.losses import (
    TERMS,
    GANFitLoss,
    composite_over_input,
    content_loss,
    expression_regulariser,
    identity_loss,
    landmark_face_size,
    landmark_loss,
    light_chroma_regulariser,
    light_intensity_regulariser,
    light_regulariser,
    pixel_loss,
    shape_regulariser,
    texture_regulariser,
)
from fastganfit.render.lighting import PhongLighting
from fastganfit.texture.pca import PCATexture

CONF = Path(__file__).resolve().parents[1] / "fastganfit" / "conf" / "loss"


def tiny_texture(latent_dim: int) -> PCATexture:
    """A 4x4 PCA texture (its regulariser is ``0.5 ||z||^2``)."""
    return PCATexture(torch.full((3, 4, 4), 0.5), 0.01 * torch.randn(latent_dim, 3, 4, 4), torch.ones(latent_dim))


def box_landmarks(batch: int = 2) -> torch.Tensor:
    """68 landmarks ``[B, 68, 2]`` spread over the box [0, 30] x [0, 40] (diagonal 50), corners included."""
    points = torch.rand(batch, 68, 2) * torch.tensor([30.0, 40.0])
    points[:, 0] = torch.tensor([0.0, 0.0])
    points[:, 8] = torch.tensor([30.0, 40.0])
    return points


# identity


def test_identity_loss_is_one_minus_cosine() -> None:
    e = torch.randn(2, 16)
    assert torch.allclose(identity_loss(e, e), torch.zeros(2), atol=1e-6)
    assert torch.allclose(identity_loss(3.0 * e, e), torch.zeros(2), atol=1e-6)
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 2.0], [-1.0, -1.0]])
    assert torch.allclose(identity_loss(a, b), torch.tensor([1.0, 2.0]))
    c = torch.tensor([[1.0, 0.0]])
    d = torch.tensor([[1.0, 1.0]])
    assert torch.allclose(identity_loss(c, d), torch.tensor([1.0 - 1.0 / math.sqrt(2.0)]))


def test_identity_loss_gradient_reaches_the_render() -> None:
    render = torch.randn(2, 8, requires_grad=True)
    identity_loss(render, torch.randn(2, 8)).sum().backward()
    assert render.grad.abs().sum() > 0


# content


def test_content_loss_zero_and_hand_computed() -> None:
    acts = [torch.randn(2, 4, 3, 3), torch.randn(2, 8, 2, 2)]
    assert torch.equal(content_loss(acts, acts), torch.zeros(2))
    shifted = [acts[0] + 0.5, acts[1] - torch.tensor([0.0, 3.0]).view(2, 1, 1, 1)]
    # layer 0: every element differs by 0.5 -> RMS 0.5; layer 1: sample 1 differs by 3 -> RMS 3.
    assert torch.allclose(content_loss(shifted, acts), torch.tensor([0.5, 3.5]))
    assert torch.allclose(content_loss(shifted, acts, weights=[2.0, 0.1]), torch.tensor([1.0, 1.3]))
    difference = torch.zeros(1, 2, 2, 2)
    difference[0, 0, 0, 0] = 4.0  # ||d|| = 4 over 8 elements -> 4 / sqrt(8)
    assert torch.allclose(content_loss([difference], [torch.zeros(1, 2, 2, 2)]), torch.tensor([4.0 / math.sqrt(8)]))


def test_content_loss_does_not_depend_on_activation_size() -> None:
    render, target = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    small = content_loss([render], [target])
    upsampled = content_loss(
        [F.interpolate(render, scale_factor=4, mode="nearest")], [F.interpolate(target, scale_factor=4, mode="nearest")]
    )
    wider = content_loss([render.repeat(1, 8, 1, 1)], [target.repeat(1, 8, 1, 1)])
    assert torch.allclose(small, upsampled, rtol=1e-5) and torch.allclose(small, wider, rtol=1e-5)


def test_content_loss_gradients_and_errors() -> None:
    render = [torch.randn(2, 4, 3, 3, requires_grad=True), torch.randn(2, 8, 2, 2, requires_grad=True)]
    target = [torch.randn(2, 4, 3, 3), torch.randn(2, 8, 2, 2)]
    content_loss(render, target).sum().backward()
    assert all(act.grad.abs().sum() > 0 for act in render)
    same = torch.randn(2, 4, 3, 3, requires_grad=True)
    content_loss([same], [same.detach()]).sum().backward()
    assert torch.isfinite(same.grad).all()
    with pytest.raises(ValueError, match="1 weights for 2 layers"):
        content_loss(render, target, weights=[1.0])
    with pytest.raises(ValueError, match="layer 1 shapes differ"):
        content_loss(render, [target[0], torch.zeros(2, 8, 3, 3)])


# pixel


def test_pixel_loss_zero_and_hand_computed() -> None:
    image = torch.rand(2, 3, 4, 4)
    mask = (torch.rand(2, 1, 4, 4) > 0.5).float()
    assert torch.equal(pixel_loss(image, image, mask), torch.zeros(2))
    render = torch.zeros(1, 3, 2, 2)
    target = torch.tensor([[1.0, 0.2], [0.4, 9.0]]).expand(1, 3, 2, 2).clone()
    target[0, 1] *= 0.5
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    # covered pixels: (1, 0.2, 0.4) in channels 0 and 2, half of that in channel 1 -> sum 1.6 * 2.5 over 3 * 3.
    assert torch.allclose(pixel_loss(render, target, mask), torch.tensor([1.6 * 2.5 / 9.0]))


def test_pixel_loss_ignores_pixels_outside_the_mask_and_empty_masks() -> None:
    render = torch.rand(2, 3, 4, 4, requires_grad=True)
    target = torch.rand(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1.0
    changed = target.clone()
    changed[:, :, 2:] = torch.rand(2, 3, 2, 4) + 5.0
    loss = pixel_loss(render, target, mask)
    assert (loss > 0).all()
    assert torch.allclose(loss, pixel_loss(render, changed, mask))
    loss.sum().backward()
    assert render.grad[:, :, :2].abs().sum() > 0
    assert torch.equal(render.grad[:, :, 2:], torch.zeros(2, 3, 2, 4))
    empty = pixel_loss(render, target, torch.zeros(2, 1, 4, 4))
    assert torch.equal(empty, torch.zeros(2))
    assert torch.equal(pixel_loss(render, target, mask.bool()), loss)


# landmarks


def test_landmark_loss_zero_and_hand_computed() -> None:
    target = box_landmarks()
    assert torch.equal(landmark_face_size(target), torch.tensor([50.0, 50.0]))
    assert torch.equal(landmark_loss(target, target), torch.zeros(2))
    predicted = target + torch.tensor([3.0, 4.0])  # every landmark 5 px off
    assert torch.allclose(landmark_loss(predicted, target), torch.tensor([0.1, 0.1]))
    assert torch.allclose(
        landmark_loss(predicted, target, face_size=torch.tensor([10.0, 5.0])), torch.tensor([0.5, 1.0])
    )
    one_off = target.clone()
    one_off[0, 30, 0] += 68.0  # one landmark 68 px off: mean distance 1 px
    assert torch.allclose(landmark_loss(one_off, target), torch.tensor([1.0 / 50.0, 0.0]))


def test_landmark_loss_ignores_invisible_jaw_landmarks_only() -> None:
    target = box_landmarks()
    visibility = torch.ones(2, 68, dtype=torch.bool)
    base = target + torch.tensor([3.0, 4.0])
    jaw_moved = base.clone()
    jaw_moved[:, 3] += 100.0
    eye_moved = base.clone()
    eye_moved[:, 36] += 100.0
    reference = landmark_loss(base, target, visibility)
    jaw_hidden, eye_hidden = visibility.clone(), visibility.clone()
    jaw_hidden[:, 3] = False
    eye_hidden[:, 36] = False
    # the jaw landmark counts when visible ...
    assert (landmark_loss(jaw_moved, target, visibility) > reference).all()
    # ... and not when hidden (the mean is over the 67 counted landmarks, all 5 px off)
    assert torch.allclose(landmark_loss(jaw_moved, target, jaw_hidden), reference)
    # an eye landmark always counts, whatever its visibility
    assert torch.equal(landmark_loss(eye_moved, target, eye_hidden), landmark_loss(eye_moved, target, visibility))
    assert (landmark_loss(eye_moved, target, eye_hidden) > reference).all()


def test_landmark_loss_gradients() -> None:
    target = box_landmarks()
    predicted = (target + torch.randn(2, 68, 2)).requires_grad_()
    hidden = torch.ones(2, 68, dtype=torch.bool)
    hidden[:, 5] = False
    landmark_loss(predicted, target, hidden).sum().backward()
    assert predicted.grad[:, 6:].abs().sum(-1).gt(0).all()
    assert torch.equal(predicted.grad[:, 5], torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"visibility must be \[2, 68\]"):
        landmark_loss(predicted, target, hidden[:, :17])


# regularisers and compositing


def test_regularisers_hand_computed_with_gradients() -> None:
    coefficients = torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]], requires_grad=True)
    for regulariser in (shape_regulariser, expression_regulariser, light_regulariser):
        assert torch.equal(regulariser(coefficients), torch.tensor([3.0, 0.0]))
    shape_regulariser(coefficients).sum().backward()
    assert torch.allclose(coefficients.grad, 2.0 * coefficients.detach() / 3.0)
    texture_model = tiny_texture(latent_dim=4)
    latent = torch.tensor([[2.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    value = texture_regulariser(latent, texture_model)
    assert torch.allclose(value, torch.tensor([0.5 * 8.0 / 4.0, 0.0]))
    assert torch.allclose(value, texture_model.latent_regulariser(latent) / 4)
    value.sum().backward()
    assert torch.allclose(latent.grad, latent.detach() / 4.0)


def test_composite_over_input() -> None:
    render, image = torch.ones(1, 3, 1, 3), torch.zeros(1, 3, 1, 3)
    mask = torch.tensor([1.0, 0.0, 0.25]).view(1, 1, 1, 3)
    assert torch.equal(composite_over_input(render, mask, image), torch.tensor([1.0, 0.0, 0.25]).expand(1, 3, 1, 3))
    hard = composite_over_input(render, mask > 0.5, image)
    assert torch.equal(hard, torch.tensor([1.0, 0.0, 0.0]).expand(1, 3, 1, 3))


# the weighted sum


def loss_inputs(batch: int = 2) -> tuple[FaceParams, dict[str, object]]:
    sizes = ParamSizes(shape=4, expression=3, texture=4, camera=7, light=10)
    params = FaceParams(**{name: torch.randn(batch, size, requires_grad=True) for name, size in sizes.items()})
    target = box_landmarks(batch)
    acts = [torch.randn(batch, 4, 3, 3)]
    inputs = {
        "landmarks": target + torch.randn(batch, 68, 2),
        "target_landmarks": target,
        "landmark_visibility": torch.ones(batch, 68, dtype=torch.bool),
        "render": torch.rand(batch, 3, 8, 8),
        "mask": (torch.rand(batch, 1, 8, 8) > 0.3).float(),
        "image": torch.rand(batch, 3, 8, 8),
        "identity_render": IdentityOutput(torch.randn(batch, 8), [acts[0] + torch.randn_like(acts[0])]),
        "identity_input": IdentityOutput(torch.randn(batch, 8), acts),
        "texture_model": tiny_texture(latent_dim=4),
        "lighting": PhongLighting(),
    }
    return params, inputs


def test_light_chroma_regulariser_against_a_reference_light() -> None:
    """With a reference light the prior measures the colour away from the reference's (GANFit++ keeps the regressed
    light's colour), not from grey; its gradient does not reach the reference."""
    lighting = PhongLighting()
    light = torch.zeros(2, 10)
    light[:, 0:3] = torch.tensor([0.1, -0.05, -0.05])
    reference = light.clone().requires_grad_(True)
    assert torch.allclose(light_chroma_regulariser(light, lighting, reference), torch.zeros(2))
    assert (light_chroma_regulariser(light, lighting) > 0).all()
    grey = torch.zeros(2, 10, requires_grad=True)
    value = light_chroma_regulariser(grey, lighting, reference).sum()
    value.backward()
    assert value > 0 and grey.grad.abs().sum() > 0 and reference.grad is None
    with pytest.raises(ValueError, match="reference"):
        light_chroma_regulariser(light, lighting, light[:, :6])


def test_ganfit_loss_is_the_weighted_sum_of_batch_means() -> None:
    weights = {name: 0.5 + index for index, name in enumerate(TERMS)}
    loss = GANFitLoss(**weights)
    params, inputs = loss_inputs()
    total, logs = loss(params, **inputs)
    expected = {
        "identity": identity_loss(inputs["identity_render"].embedding, inputs["identity_input"].embedding),
        "content": content_loss(inputs["identity_render"].activations, inputs["identity_input"].activations),
        "pixel": pixel_loss(inputs["render"], inputs["image"], inputs["mask"]),
        "landmark": landmark_loss(inputs["landmarks"], inputs["target_landmarks"], inputs["landmark_visibility"]),
        "shape": shape_regulariser(params.shape),
        "expression": expression_regulariser(params.expression),
        "texture": texture_regulariser(params.texture, inputs["texture_model"]),
        "light": light_regulariser(params.light),
        "light_chroma": light_chroma_regulariser(params.light, inputs["lighting"]),
        "light_intensity": light_intensity_regulariser(params.light, inputs["lighting"]),
    }
    assert set(logs) == {*TERMS, "total"} and set(expected) == set(TERMS)
    for name, value in expected.items():
        assert torch.allclose(logs[name], value.mean())
    assert torch.allclose(total, sum(weights[name] * value.mean() for name, value in expected.items()))
    assert total.ndim == 0 and not logs["total"].requires_grad
    total.backward()
    # every group has a regulariser except the camera, which reaches the loss only through the renderer
    assert all(tensor.grad.abs().sum() > 0 for name, tensor in params.items() if name != "camera")
    assert params.camera.grad is None


def test_ganfit_loss_skips_inactive_terms_and_names_missing_inputs() -> None:
    params, inputs = loss_inputs()
    align = GANFitLoss(landmark=1.0, shape=0.1)
    assert align.active_terms == ["landmark", "shape"] and not align.needs_identity
    total, logs = align(params, landmarks=inputs["landmarks"], target_landmarks=inputs["target_landmarks"])
    assert set(logs) == {"landmark", "shape", "total"}
    assert torch.allclose(total, logs["landmark"] + 0.1 * logs["shape"])
    assert GANFitLoss(content=1.0).needs_identity
    with pytest.raises(ValueError, match=r"pixel term \(weight 2.0\) needs \['mask'\]"):
        GANFitLoss(pixel=2.0)(params, render=inputs["render"], image=inputs["image"])
    with pytest.raises(ValueError, match="weights must be non-negative"):
        GANFitLoss(identity=-1.0)


def test_loss_configs_instantiate() -> None:
    align = instantiate(OmegaConf.load(CONF / "fast_align.yaml"))
    full = instantiate(OmegaConf.load(CONF / "fast_full.yaml"))
    assert isinstance(align, GANFitLoss) and isinstance(full, GANFitLoss)
    assert align.active_terms == ["landmark", "shape", "expression", "texture", "light"]
    assert full.active_terms == [term for term in TERMS if term != "light_intensity"]  # GANFit++'s colour stage only
    params, inputs = loss_inputs()
    total, _ = full(params, **inputs)
    assert torch.isfinite(total) and total > 0
