"""Face-chip geometry: similarity fit, pixel conventions, dlib pyramid, ArcFace template, input checks."""

from __future__ import annotations

import math

import pytest
import torch

from fastganfit.perception.face_chip import (
    ARCFACE_TEMPLATE5,
    DLIB_TEMPLATE5,
    IBUG68_TO_DLIB5,
    ArcFaceChipAligner,
    DlibChipAligner,
    arcface_five_points,
    fit_similarity,
    invert_affine,
    pyramid_down,
    sample_chips,
)


def _similarity(angle: float, scale: float, shift: tuple[float, float]) -> torch.Tensor:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return torch.tensor([[[c, -s, shift[0]], [s, c, shift[1]]]], dtype=torch.float64)


def _apply(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    return points @ matrix[..., :2].transpose(-1, -2) + matrix[..., None, :, 2]


def _landmarks_with(indices: list[int], points: torch.Tensor) -> torch.Tensor:
    """68 landmarks ``[1, 68, 2]`` with ``points`` at ``indices`` and the rest at their mean."""
    landmarks = points.mean(dim=0).expand(68, 2).clone()
    landmarks[indices] = points
    return landmarks[None]


def test_fit_similarity_recovers_exact_transform() -> None:
    truth = _similarity(0.3, 1.7, (12.0, -4.0))
    source = torch.randn(1, 7, 2, dtype=torch.float64) * 10
    assert torch.allclose(fit_similarity(source, _apply(truth, source)), truth, atol=1e-10)


def test_fit_similarity_is_least_squares() -> None:
    source = torch.randn(1, 9, 2, dtype=torch.float64)
    target = _apply(_similarity(-0.4, 0.8, (1.0, 2.0)), source) + 0.05 * torch.randn(1, 9, 2, dtype=torch.float64)
    fitted = fit_similarity(source, target)
    best = ((_apply(fitted, source) - target) ** 2).sum()
    for _ in range(20):
        nudged = fitted + 1e-3 * torch.randn_like(fitted) * torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
        nudged[:, 0, 1], nudged[:, 1, 1] = -nudged[:, 1, 0], nudged[:, 0, 0]
        assert ((_apply(nudged, source) - target) ** 2).sum() > best


def test_invert_affine() -> None:
    matrix = _similarity(0.7, 2.5, (3.0, 4.0))
    points = torch.randn(1, 5, 2, dtype=torch.float64)
    assert torch.allclose(_apply(invert_affine(matrix), _apply(matrix, points)), points, atol=1e-12)


def test_sample_chips_uses_pixel_centre_convention() -> None:
    image = torch.rand(2, 3, 20, 30)
    shift = torch.tensor([[[1.0, 0.0, 7.0], [0.0, 1.0, 4.0]]]).expand(2, 2, 3)
    chips = sample_chips(image, shift, 10)
    assert torch.allclose(chips, image[:, :, 4:14, 7:17], atol=1e-5)
    half = torch.tensor([[[1.0, 0.0, 7.5], [0.0, 1.0, 4.0]]]).expand(2, 2, 3)
    expected = 0.5 * (image[:, :, 4:14, 7:17] + image[:, :, 4:14, 8:18])
    assert torch.allclose(sample_chips(image, half, 10), expected, atol=1e-5)


def test_sample_chips_is_black_outside_the_image() -> None:
    image = torch.ones(1, 3, 8, 8)
    far = torch.tensor([[[1.0, 0.0, 100.0], [0.0, 1.0, 100.0]]])
    assert sample_chips(image, far, 4).abs().max() == 0


def test_pyramid_down_geometry() -> None:
    height, width = 21, 30
    ramp = torch.arange(width, dtype=torch.float64).expand(1, 3, height, width)
    down = pyramid_down(ramp)
    assert down.shape[-2:] == ((height - 3) // 2, (width - 3) // 2)
    columns = torch.arange(down.shape[-1], dtype=torch.float64)
    assert torch.allclose(down[0, 0, 0], 2 * columns + 2)
    assert torch.allclose(pyramid_down(torch.full((1, 3, 12, 12), 0.3)), torch.full((1, 3, 4, 4), 0.3))


def test_dlib_chip_puts_template_where_dlib_does() -> None:
    """Landmarks that are an exact similarity of dlib's template land on the padded template in the chip."""
    size, padding = 150, 0.25
    chip_points = (torch.tensor(DLIB_TEMPLATE5, dtype=torch.float64) + padding) / (1 + 2 * padding) * size
    truth = _similarity(0.2, 1.3, (40.0, 25.0))
    landmarks = _landmarks_with(list(IBUG68_TO_DLIB5), _apply(truth, chip_points[None])[0])
    mapping = DlibChipAligner(size, padding).chip_to_image(landmarks)
    # dlib maps chip corners (0, 0) and (size-1, size-1) to the corners of a rect of side size*scale - 1.
    step = (size * 1.3 - 1) / (size - 1)
    assert torch.allclose(mapping[0, :, :2], truth[0, :, :2] / 1.3 * step, atol=1e-9)
    centre = _apply(truth, torch.tensor([[[size / 2, size / 2]]], dtype=torch.float64))
    mapped_centre = _apply(mapping, torch.tensor([[[(size - 1) / 2, (size - 1) / 2]]], dtype=torch.float64))
    assert torch.allclose(mapped_centre, centre, atol=1e-9)


def test_arcface_chip_puts_template_on_template() -> None:
    template = torch.tensor(ARCFACE_TEMPLATE5, dtype=torch.float64)
    truth = _similarity(-0.25, 2.2, (100.0, 60.0))
    image_points = _apply(truth, template[None])[0]
    landmarks = torch.zeros(1, 68, 2, dtype=torch.float64)
    landmarks[0, 36:42] = image_points[0]
    landmarks[0, 42:48] = image_points[1]
    landmarks[0, [30, 48, 54]] = image_points[2:]
    assert torch.allclose(arcface_five_points(landmarks)[0], image_points)
    mapping = ArcFaceChipAligner().chip_to_image(landmarks)
    assert torch.allclose(mapping, truth, atol=1e-9)


def test_dlib_batch_with_mixed_pyramid_levels_matches_single_images() -> None:
    size, padding = 40, 0.25
    chip_points = (torch.tensor(DLIB_TEMPLATE5, dtype=torch.float64) + padding) / (1 + 2 * padding) * size
    image = torch.rand(2, 3, 200, 200)
    near = _landmarks_with(list(IBUG68_TO_DLIB5), _apply(_similarity(0.1, 1.0, (60.0, 50.0)), chip_points[None])[0])
    far = _landmarks_with(list(IBUG68_TO_DLIB5), _apply(_similarity(-0.1, 3.5, (30.0, 20.0)), chip_points[None])[0])
    aligner = DlibChipAligner(size, padding)
    batch = aligner(image, torch.cat([near, far]).float())
    assert torch.allclose(batch[0], aligner(image[:1], near.float())[0])
    assert torch.allclose(batch[1], aligner(image[1:], far.float())[0])
    blurred = aligner(image[1:], far.float())
    naive = sample_chips(image[1:], aligner.chip_to_image(far.float()), size)
    assert blurred.std() < 0.6 * naive.std()


def test_dlib_sync_free_chips_equal_grouped_chips_with_gradients() -> None:
    """Every level computed for the whole batch (no host synchronisation) gives the grouped chips and gradients."""
    size, padding = 40, 0.25
    chip_points = (torch.tensor(DLIB_TEMPLATE5, dtype=torch.float64) + padding) / (1 + 2 * padding) * size
    near = _landmarks_with(list(IBUG68_TO_DLIB5), _apply(_similarity(0.1, 1.0, (60.0, 50.0)), chip_points[None])[0])
    far = _landmarks_with(list(IBUG68_TO_DLIB5), _apply(_similarity(-0.1, 3.5, (30.0, 20.0)), chip_points[None])[0])
    farther = _landmarks_with(list(IBUG68_TO_DLIB5), _apply(_similarity(0.3, 7.0, (70.0, 60.0)), chip_points[None])[0])
    landmarks = torch.cat([near, far, farther]).float()
    results = []
    for sync_free in (False, True):
        image = torch.rand(3, 3, 200, 200, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        chips = DlibChipAligner(size, padding, sync_free=sync_free)(image, landmarks)
        chips.square().sum().backward()
        results.append((chips.detach(), image.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6) and results[0][1].abs().sum() > 0


def test_chip_gradient_reaches_landmarks_and_image() -> None:
    image = torch.rand(1, 3, 64, 64, requires_grad=True)
    chip_points = (torch.tensor(DLIB_TEMPLATE5, dtype=torch.float64) + 0.25) / 1.5 * 32
    landmarks = _landmarks_with(list(IBUG68_TO_DLIB5), _apply(_similarity(0.0, 1.2, (10.0, 8.0)), chip_points[None])[0])
    landmarks = landmarks.float().requires_grad_(True)
    DlibChipAligner(32, 0.25)(image, landmarks).sum().backward()
    assert image.grad.abs().sum() > 0
    assert landmarks.grad[0, list(IBUG68_TO_DLIB5)].abs().sum() > 0


@pytest.mark.parametrize(
    ("images", "landmarks", "message"),
    [
        (torch.rand(1, 1, 32, 32), torch.zeros(1, 68, 2), r"images: expected \[B, 3, H, W\]"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.zeros(1, 68, 2), "images: expected a float tensor"),
        (torch.rand(1, 3, 32, 32), torch.zeros(1, 5, 2), r"landmarks: expected \[B, 68, 2\]"),
        (torch.rand(2, 3, 32, 32), torch.zeros(1, 68, 2), "landmarks: batch size 1 differs"),
        (torch.rand(1, 3, 32, 32), torch.full((1, 68, 2), float("nan")), "landmarks: contain NaN"),
    ],
)
def test_bad_inputs_are_named(images, landmarks, message) -> None:
    for aligner in (DlibChipAligner(), ArcFaceChipAligner()):
        with pytest.raises(ValueError, match=message):
            aligner(images, landmarks)


def test_bad_aligner_settings() -> None:
    with pytest.raises(ValueError, match="padding >= 0"):
        DlibChipAligner(150, -0.1)
