"""The PyTorch dlib ResNet and face chips against dlib itself (the reference) on public-domain photos."""

from __future__ import annotations

from dataclasses import dataclass

import dlib
import face_recognition_models
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from fastganfit.perception.face_chip import (
    IBUG68_TO_DLIB5,
    DlibChipAligner,
    dlib_chip_geometry,
    dlib_five_points,
    dlib_pyramid_level,
)
from fastganfit.perception.identity import IdentityNet, dlib_identity


@dataclass(frozen=True)
class Face:
    """A photo with dlib's detections and reference outputs."""

    image: np.ndarray  # [H, W, 3] uint8
    points5: np.ndarray  # [5, 2] from dlib's 5-point predictor
    points68: np.ndarray  # [68, 2] from dlib's 68-point predictor
    chip: np.ndarray  # [150, 150, 3] uint8 from dlib.get_face_chip
    descriptor: np.ndarray  # [128] dlib's descriptor of ``chip``


def _photos() -> dict[str, np.ndarray]:
    astronaut = skimage.data.astronaut()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        grace = np.asarray(Image.open(handle).convert("RGB"))
    big_grace = np.asarray(Image.fromarray(grace).resize((1024, 1200), Image.BILINEAR))
    return {
        "astronaut": astronaut,
        "astronaut_mirror": np.ascontiguousarray(astronaut[:, ::-1]),
        "grace_hopper": grace,
        "grace_hopper_2x": big_grace,
    }


@pytest.fixture(scope="module")
def faces() -> dict[str, Face]:
    detector = dlib.get_frontal_face_detector()
    predictor5 = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    predictor68 = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    recogniser = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    result = {}
    for name, image in _photos().items():
        box = max(detector(image, 1), key=lambda r: r.area())
        shape5, shape68 = predictor5(image, box), predictor68(image, box)
        chip = dlib.get_face_chip(image, shape5, size=150, padding=0.25)
        result[name] = Face(
            image=image,
            points5=np.array([[p.x, p.y] for p in shape5.parts()], dtype=np.float32),
            points68=np.array([[p.x, p.y] for p in shape68.parts()], dtype=np.float32),
            chip=chip,
            descriptor=np.array(recogniser.compute_face_descriptor(chip)),
        )
    return result


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> IdentityNet:
    return dlib_identity(cache_dir=tmp_path_factory.mktemp("cache"))


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _embed(identity: IdentityNet, face: Face, landmarks: np.ndarray | None = None) -> np.ndarray:
    points = face.points68 if landmarks is None else landmarks
    with torch.no_grad():
        return identity(_tensor(face.image), torch.from_numpy(points)[None]).embedding[0].numpy()


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_matches_dlib_on_dlibs_chip(faces, identity, name) -> None:
    face = faces[name]
    with torch.no_grad():
        ours = identity.backbone(_tensor(face.chip))[0].double().numpy()
    assert np.abs(ours - face.descriptor).max() <= 1e-4
    assert _cosine(ours, face.descriptor) >= 0.9999


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_differentiable_chip_from_68_landmarks_matches_dlib(faces, identity, name) -> None:
    face = faces[name]
    assert _cosine(_embed(identity, face), face.descriptor) >= 0.99


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_68_point_subset_agrees_with_5_point_predictor(faces, name) -> None:
    face = faces[name]
    gap = np.linalg.norm(face.points68[list(IBUG68_TO_DLIB5)] - face.points5, axis=1)
    eye_width = np.linalg.norm(face.points5[0] - face.points5[2])
    assert gap.max() < 0.06 * eye_width


@pytest.mark.parametrize(
    ("name", "mean_limit", "p99_limit"),
    [("astronaut", 0.6, 1.0), ("grace_hopper", 0.6, 1.0), ("grace_hopper_2x", 1.2, 2.0)],
)
def test_chip_reproduces_dlib_get_face_chip(faces, name, mean_limit, p99_limit) -> None:
    """With dlib's 5 points our chip is dlib's up to its uint8 truncation (grace_hopper_2x: pyramid level 0).

    dlib truncates chip values to integers (a 0..1 difference); its pyramid is also stored as uint8.
    """
    face = faces[name]
    landmarks = face.points68.copy()
    landmarks[list(IBUG68_TO_DLIB5)] = face.points5
    _, _, side = dlib_chip_geometry(dlib_five_points(torch.from_numpy(landmarks)[None]), 150, 0.25)
    assert dlib_pyramid_level(float(side), 150) == (0 if name.endswith("_2x") else -1)
    chip = DlibChipAligner(150, 0.25)(_tensor(face.image), torch.from_numpy(landmarks)[None])
    ours = chip[0].permute(1, 2, 0).numpy() * 255.0
    difference = np.abs(ours - face.chip.astype(np.float32))
    assert difference.mean() < mean_limit
    assert np.percentile(difference, 99) < p99_limit


def test_same_person_close_different_people_far(faces, identity) -> None:
    astronaut = _embed(identity, faces["astronaut"])
    mirror = _embed(identity, faces["astronaut_mirror"])
    grace = _embed(identity, faces["grace_hopper"])
    assert np.linalg.norm(astronaut - mirror) < 0.6
    assert np.linalg.norm(astronaut - grace) > 0.6
    assert np.linalg.norm(astronaut - mirror) < 0.5 * np.linalg.norm(astronaut - grace)


def test_gradient_nonzero_on_face_zero_outside_chip(faces, identity) -> None:
    face = faces["astronaut"]
    image = _tensor(face.image).requires_grad_(True)
    landmarks = torch.from_numpy(face.points68)[None]
    identity(image, landmarks).embedding.sum().backward()
    grad = image.grad[0].abs().sum(dim=0)
    nose_x, nose_y = face.points68[30].round().astype(int)
    assert grad[nose_y - 5 : nose_y + 6, nose_x - 5 : nose_x + 6].min() > 0
    assert (grad > 0).float().mean() > 0.02
    chip_to_image = identity.aligner.chip_to_image(landmarks)[0]
    chip_corners = torch.tensor([[0.0, 149.0, 0.0, 149.0], [0.0, 0.0, 149.0, 149.0]])
    footprint = chip_to_image[:, :2] @ chip_corners + chip_to_image[:, 2:]
    (x0, y0), (x1, y1) = footprint.min(dim=1).values.tolist(), footprint.max(dim=1).values.tolist()
    near_chip = torch.zeros_like(grad, dtype=torch.bool)
    near_chip[max(int(y0) - 2, 0) : int(y1) + 3, max(int(x0) - 2, 0) : int(x1) + 3] = True
    assert (~near_chip).float().mean() > 0.5
    assert grad[~near_chip].max() == 0
