"""FaceRenderer: gradients, landmark projection against the rasteriser, backend agreement, inputs."""

from __future__ import annotations

import pytest
import torch
from pytorch3d.structures import Meshes

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.render.camera import PITCH, TX, YAW
from fastganfit.render.face_renderer import FaceRenderer, vertex_normals
from fastganfit.render.interpolate import interpolate_vertex_attributes

SKIN = torch.tensor([0.8, 0.6, 0.5]).view(1, 3, 1, 1)


def posed_inputs(model: MorphableModel, batch: int = 2) -> dict[str, torch.Tensor]:
    """A frontal mean face and a turned, expressive random face with coloured directional light."""
    shape = torch.randn(batch, model.num_shape) * 0.7
    shape[0] = 0
    expression = torch.rand(batch, model.num_expression) * 0.3
    expression[0] = 0
    camera = torch.zeros(batch, 7)
    camera[1:, YAW], camera[1:, PITCH], camera[1:, TX] = 0.6, -0.2, 0.5
    light = torch.zeros(batch, 10)
    light[:, 0:3], light[:, 3:6], light[:, 6:9], light[:, 9] = -0.4, 0.6, 0.3, 0.2
    texture = SKIN.expand(batch, 3, 32, 32) + 0.1 * torch.rand(batch, 3, 32, 32)
    return {"shape": shape, "expression": expression, "camera": camera, "light": light, "texture": texture}


def render(renderer: FaceRenderer, model: MorphableModel, inputs: dict[str, torch.Tensor]):
    vertices = model(inputs["shape"], inputs["expression"])
    return renderer(vertices, inputs["texture"], inputs["camera"], inputs["light"])


@pytest.mark.parametrize("backend", ["torch", "pytorch3d"])
def test_gradients_reach_every_parameter_group(ict_model: MorphableModel, backend: str) -> None:
    renderer = FaceRenderer.from_model(ict_model, image_size=48, backend=backend)
    inputs = {key: value.requires_grad_() for key, value in posed_inputs(ict_model).items()}
    output = render(renderer, ict_model, inputs)
    target = torch.rand_like(output.image)
    loss = (output.image - target).abs().mean() + output.landmarks.square().mean() * 1e-4
    loss.backward()
    for name, tensor in inputs.items():
        assert torch.isfinite(tensor.grad).all(), name
        assert tensor.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_image_mask_and_background(ict_model: MorphableModel) -> None:
    renderer = FaceRenderer.from_model(ict_model, image_size=64)
    inputs = posed_inputs(ict_model)
    vertices = ict_model(inputs["shape"], inputs["expression"])
    background = torch.full((2, 3, 64, 64), 0.25)
    output = renderer(vertices, inputs["texture"], inputs["camera"], inputs["light"], background=background)
    assert output.image.shape == (2, 3, 64, 64) and output.mask.shape == (2, 1, 64, 64)
    assert output.mask[0, 0, 32, 32] == 1, "the face covers the centre of the crop"
    assert 0.35 < output.mask[0].mean() < 0.95
    outside = output.mask.expand_as(output.image) == 0
    assert (output.image[outside] == 0.25).all()
    depth = output.depth[output.mask.bool()]
    assert 500 < depth.min() < depth.max() < 800, "face depth is near the 700 mm camera distance"
    lit = output.image[0][:, output.mask[0, 0].bool()]
    assert lit.mean(1)[0] > lit.mean(1)[2], "skin-coloured texture renders reddish"


@pytest.mark.parametrize("backend", ["torch", "pytorch3d"])
def test_projected_landmarks_land_on_their_rendered_vertices(ict_model: MorphableModel, backend: str) -> None:
    """Render a 'hat' attribute (1 at one landmark vertex, 0 at all others): its brightest pixel is
    where the rasteriser drew that vertex, and must be within 1 px of the projected landmark."""
    size = 160
    renderer = FaceRenderer.from_model(ict_model, image_size=size, backend=backend)
    inputs = posed_inputs(ict_model)
    vertices = ict_model(inputs["shape"], inputs["expression"])
    output = renderer(vertices, inputs["texture"], inputs["camera"], inputs["light"])
    indices = ict_model.landmark_indices
    hats = torch.zeros(2, ict_model.num_vertices, len(indices))
    hats[:, indices, torch.arange(len(indices))] = 1.0
    drawn = interpolate_vertex_attributes(output.fragments, hats, renderer.faces).flatten(2)
    interior = torch.nn.functional.max_pool2d(1 - output.mask, 3, stride=1, padding=1) == 0
    checked = 0
    for b in range(2):
        for k in torch.nonzero(output.landmark_visibility[b]).flatten():
            brightest = drawn[b, k].argmax()
            pixel = torch.stack([brightest % size, brightest // size]).float()
            if drawn[b, k, brightest] < 0.5 or not interior[b, 0, int(pixel[1]), int(pixel[0])]:
                continue
            assert (pixel - output.landmarks[b, k]).norm() <= 1.0, f"image {b} landmark {int(k)}"
            checked += 1
    assert checked >= 60, f"only {checked} of 136 landmarks are drawn away from silhouettes and eye holes"


def test_backends_agree(ict_model: MorphableModel) -> None:
    inputs = posed_inputs(ict_model)
    outputs = {}
    for backend in ("torch", "pytorch3d"):
        renderer = FaceRenderer.from_model(ict_model, image_size=(72, 96), backend=backend)
        outputs[backend] = render(renderer, ict_model, inputs)
    fast, reference = outputs["torch"], outputs["pytorch3d"]
    covered = (fast.fragments.face_index >= 0) | (reference.fragments.face_index >= 0)
    same = fast.fragments.face_index == reference.fragments.face_index
    assert same[covered].float().mean() >= 0.99
    assert (fast.image - reference.image).abs().mean() < 1e-3
    torch.testing.assert_close(fast.landmarks, reference.landmarks)


def test_bad_inputs_are_named(ict_model: MorphableModel) -> None:
    renderer = FaceRenderer.from_model(ict_model, image_size=32)
    inputs = posed_inputs(ict_model)
    vertices = ict_model(inputs["shape"], inputs["expression"])
    with pytest.raises(ValueError, match="texture: expected"):
        renderer(vertices, torch.zeros(2, 32, 32), inputs["camera"], inputs["light"])
    with pytest.raises(ValueError, match="camera_params: batch size 1"):
        renderer(vertices, inputs["texture"], inputs["camera"][:1], inputs["light"])
    with pytest.raises(ValueError, match="backend 'opengl' is unknown"):
        FaceRenderer.from_model(ict_model, backend="opengl")


def test_vertex_normals_are_pytorch3ds_area_weighted_normals(ict_model: MorphableModel) -> None:
    vertices = ict_model.mean_vertices(2) + 0.5 * torch.randn(2, ict_model.num_vertices, 3)
    expected = Meshes(verts=vertices, faces=ict_model.faces.expand(2, -1, -1)).verts_normals_padded()
    torch.testing.assert_close(vertex_normals(vertices, ict_model.faces), expected, atol=1e-5, rtol=0)
    # by hand: a unit right triangle (area 1/2) in z = 0 and a triangle of area 2 in x = 0 sharing vertex 0
    corners = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 2], [0, 2, 0]]])
    normals = vertex_normals(corners, torch.tensor([[0, 1, 2], [0, 4, 3]]))
    torch.testing.assert_close(normals[0, 0], torch.tensor([4.0, 0, 1]) / 17**0.5)
    torch.testing.assert_close(normals[0, [1, 2]], torch.tensor([[0.0, 0, 1], [0, 0, 1]]))
