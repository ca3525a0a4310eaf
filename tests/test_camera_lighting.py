"""Camera conventions and the two illumination models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.render.camera import LOG_FOCAL, YAW, PerspectiveCamera, euler_to_matrix
from fastganfit.render.lighting import PhongLighting, SphericalHarmonicsLighting, sh_basis


def test_zero_camera_frames_the_face_in_the_crop(ict_model: MorphableModel) -> None:
    camera = PerspectiveCamera()
    landmarks = camera.project(ict_model.landmarks(ict_model.mean_vertices()), torch.zeros(1, 7), (224, 224))[0]
    x, y = landmarks[:, 0], landmarks[:, 1]
    assert abs((x.min() + x.max()) / 2 - 111.5) < 1.0 and abs((y.min() + y.max()) / 2 - 111.5) < 1.0
    assert 0.55 < (x.max() - x.min()) / 224 < 0.8, "landmarks fill most of the crop"
    assert x[36] < x[45], "the subject's right eye (36) appears on the image's left"
    assert y[8] > y[30] > y[27], "chin below nose tip below nose bridge (image y grows down)"


def test_rotations_are_orthonormal_and_yaw_turns_the_nose_right(ict_model: MorphableModel) -> None:
    rotation = euler_to_matrix(torch.randn(5, 3))
    torch.testing.assert_close(rotation @ rotation.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(5), atol=1e-5, rtol=0)
    camera, params = PerspectiveCamera(), torch.zeros(1, 7)
    params[0, YAW] = 0.4
    nose = camera.project(ict_model.landmarks(ict_model.mean_vertices()), params, (224, 224))[0, 30, 0]
    assert nose > 111.5 + 10


def test_focal_scales_offsets_from_the_centre(ict_model: MorphableModel) -> None:
    camera, params = PerspectiveCamera(), torch.zeros(1, 7)
    points = ict_model.landmarks(ict_model.mean_vertices())
    base = camera.project(points, params, (224, 224))[0, :, :2] - 111.5
    params[0, LOG_FOCAL] = math.log(2.0)
    doubled = camera.project(points, params, (224, 224))[0, :, :2] - 111.5
    torch.testing.assert_close(doubled, 2 * base)
    with pytest.raises(ValueError, match=r"camera params: expected \[B, 7\]"):
        camera.project(points, torch.zeros(1, 6), (224, 224))


def test_zero_light_is_white_ambient() -> None:
    albedo = torch.rand(2, 3, 4, 5)
    normals = F.normalize(torch.randn(2, 3, 4, 5), dim=1)
    view = F.normalize(torch.randn(2, 3, 4, 5), dim=1)
    torch.testing.assert_close(PhongLighting().shade(albedo, normals, view, torch.zeros(2, 10)), albedo)
    torch.testing.assert_close(SphericalHarmonicsLighting().shade(albedo, normals, view, torch.zeros(2, 27)), albedo)


def test_phong_directional_term_follows_lambert() -> None:
    albedo = torch.ones(1, 3, 1, 2)
    normals = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)
    params = torch.zeros(1, 10)
    params[0, 0:3] = -1.0
    params[0, 3:6] = 1.0
    shaded = PhongLighting().shade(albedo, normals, normals.clone(), params)
    torch.testing.assert_close(shaded[0, :, 0, 0], torch.ones(3))
    torch.testing.assert_close(shaded[0, :, 0, 1], torch.zeros(3))


def test_sh_basis_is_orthonormal_on_the_sphere() -> None:
    directions = F.normalize(torch.randn(200_000, 3, dtype=torch.float64), dim=1)
    basis = sh_basis(directions.T.reshape(1, 3, -1, 1))[0, :, :, 0]
    gram = basis @ basis.T * (4 * math.pi / directions.shape[0])
    torch.testing.assert_close(gram, torch.eye(9, dtype=torch.float64), atol=0.03, rtol=0)
