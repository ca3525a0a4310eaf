"""MorphableModel: linear evaluation, landmarks, gradients and input checks."""

from __future__ import annotations

import pytest
import torch

from fastganfit.facemodel.morphable import MorphableModel


def test_zero_coefficients_give_the_mean_face(ict_model: MorphableModel) -> None:
    vertices = ict_model(torch.zeros(2, ict_model.num_shape), torch.zeros(2, ict_model.num_expression))
    assert vertices.shape == (2, 9409, 3)
    torch.testing.assert_close(vertices[1], ict_model.mean)


def test_model_is_linear_in_each_group(ict_model: MorphableModel) -> None:
    shape = torch.randn(1, ict_model.num_shape)
    expression = torch.rand(1, ict_model.num_expression)
    zeros_s, zeros_e = torch.zeros_like(shape), torch.zeros_like(expression)
    combined = ict_model(shape, expression)
    separate = ict_model(shape, zeros_e) + ict_model(zeros_s, expression) - ict_model(zeros_s, zeros_e)
    torch.testing.assert_close(combined, separate, atol=1e-3, rtol=0)
    jaw_open = torch.zeros_like(expression)
    jaw_open[0, ict_model.expression_names.index("jawOpen")] = 1.0
    chin = ict_model.landmarks(ict_model(zeros_s, jaw_open))[0, 8]
    assert chin[1] < ict_model.landmarks(ict_model.mean_vertices())[0, 8, 1] - 5.0, "jawOpen lowers the chin"


def test_gradients_reach_coefficients(ict_model: MorphableModel) -> None:
    shape = torch.zeros(1, ict_model.num_shape, requires_grad=True)
    expression = torch.zeros(1, ict_model.num_expression, requires_grad=True)
    ict_model.landmarks(ict_model(shape, expression)).square().sum().backward()
    assert shape.grad.abs().sum() > 0 and expression.grad.abs().sum() > 0


def test_bad_inputs_are_named(ict_model: MorphableModel) -> None:
    with pytest.raises(ValueError, match=r"shape: expected \[B, 100\]"):
        ict_model(torch.zeros(1, 3), torch.zeros(1, 53))
    with pytest.raises(ValueError, match="batch sizes differ"):
        ict_model(torch.zeros(2, 100), torch.zeros(1, 53))
    with pytest.raises(ValueError, match="faces: indices"):
        MorphableModel(torch.zeros(3, 3), torch.zeros(1, 3, 3), torch.zeros(1, 3, 3), torch.tensor([[0, 1, 5]]),
                       torch.tensor([0]))


def test_inconsistent_buffers_are_named() -> None:
    mean, basis, faces = torch.zeros(3, 3), torch.zeros(1, 3, 3), torch.tensor([[0, 1, 2]])
    with pytest.raises(ValueError, match="landmark_indices"):
        MorphableModel(mean, basis, basis, faces, torch.tensor([-1]))
    with pytest.raises(ValueError, match="face_uvs: indices"):
        MorphableModel(mean, basis, basis, faces, torch.tensor([0]), uvs=torch.zeros(2, 2), face_uvs=faces)
    with pytest.raises(ValueError, match="expression_names: 2 names for 1"):
        MorphableModel(mean, basis, basis, faces, torch.tensor([0]), expression_names=["a", "b"])
