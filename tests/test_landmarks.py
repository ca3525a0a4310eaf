"""Face detection, 68 landmarks (dlib, FAN), face-crop alignment and heatmaps, on public-domain photos."""

from __future__ import annotations

import io
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from asset_files import write_fan_weights
from matplotlib import cbook
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from skimage import data
from torch import nn

from fastganfit.data.synthetic import SyntheticFaceSource, SyntheticSettings
from fastganfit.perception.crop import (
    align_face,
    apply_transform,
    invert_transform,
    similarity_transform,
    warp_image,
)
from fastganfit.perception.crop_template import crop_template
from fastganfit.perception.detection import (
    CascadeDetector,
    DlibHOGDetector,
    box_rectangle,
    build_detector,
    check_image,
    rectangle_box,
)
from fastganfit.perception.heatmaps import (
    FANHeatmaps,
    GaussianHeatmaps,
    HeatmapSource,
    crop_to_heatmap,
    gaussian_heatmaps,
    heatmap_to_crop,
    template_fan_frame,
)
from fastganfit.perception.landmarks import (
    FAN_WEIGHTS_FILENAME,
    IBUG68_MIRROR,
    DlibLandmarker,
    FANLandmarker,
    FANPredictor,
    build_landmarker,
    compose,
    fan_box_frame,
    fan_heatmap_frame,
    heatmap_peaks,
    load_fan,
)

CONF = Path(__file__).resolve().parents[1] / "fastganfit" / "conf"


def with_paths(config: DictConfig, **files: str | None) -> DictConfig:
    """``config`` (one component's YAML) as a composed config has it: next to the paths group
    (``${paths.<key>}``), its defaults with ``files`` set."""
    paths = OmegaConf.merge(OmegaConf.load(CONF / "paths" / "default.yaml"), files)
    return OmegaConf.create({"paths": paths, "component": config}).component


RIGHT_EYE, LEFT_EYE, MOUTH = (
    slice(36, 42),
    slice(42, 48),
    slice(48, 68),
)  # the subject's right eye is on the image's left


def grace_hopper() -> np.ndarray:
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


PHOTOS = {"astronaut": data.astronaut, "grace_hopper": grace_hopper}


@pytest.fixture(scope="module")
def dlib_landmarker() -> DlibLandmarker:
    return DlibLandmarker()


@pytest.fixture(scope="module")
def template() -> np.ndarray:
    return crop_template(224).double().numpy()


# ---------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_dlib_finds_one_face_with_plausible_landmarks(dlib_landmarker: DlibLandmarker, name: str) -> None:
    image = PHOTOS[name]()
    detections = dlib_landmarker.detect(image)
    assert len(detections) == 1
    face = detections[0]
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    assert face.box.shape == (4,) and face.score > 0.5
    points = face.landmarks
    x0, y0, x1, _ = face.box
    width = x1 - x0
    inside = (points[:, 0] > x0 - 0.1 * width) & (points[:, 0] < x1 + 0.1 * width) & (points[:, 1] > y0 - 0.2 * width)
    assert inside.sum() >= 64  # brows may rise above a HOG box; nothing lands far from the face
    right_eye, left_eye = points[RIGHT_EYE].mean(0), points[LEFT_EYE].mean(0)
    assert right_eye[0] < left_eye[0]  # iBUG order: the subject's right eye first, on the image's left
    assert points[0, 0] < points[16, 0] and points[48, 0] < points[54, 0]
    eyes_y = (right_eye[1] + left_eye[1]) / 2
    assert eyes_y < points[30, 1] < points[MOUTH, 1].mean() < points[8, 1]  # eyes, nose tip, mouth, chin
    assert 0.3 < np.linalg.norm(left_eye - right_eye) / width < 0.6


def test_detector_box_convention_and_downscaled_detection() -> None:
    for rect in [(10, 20, 59, 69), (3, 4, 100, 140)]:
        box = rectangle_box(*rect, factor=1.0)
        assert box[2] - box[0] == rect[2] - rect[0] + 1  # box spans the pixels' outer edges
        r = box_rectangle(box)
        assert (r.left(), r.top(), r.right(), r.bottom()) == rect
    # pixels 10..19 of a half-size copy cover pixels 20..39 of the image
    np.testing.assert_allclose(rectangle_box(10, 10, 19, 19, factor=0.5), [19.5, 19.5, 39.5, 39.5])
    # dlib's own threshold (0) also fires on the astronaut's suit, in a box larger than her face
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=75)
    astronaut = np.asarray(Image.open(buffer).convert("RGB"))
    assert sorted(face.score > 1 for face in DlibHOGDetector(threshold=0.0).detect(astronaut)) == [False, True]
    assert [face.score > 1 for face in DlibHOGDetector().detect(astronaut)] == [True]
    image = grace_hopper()
    full = DlibHOGDetector(upsample=0, max_side=None).detect(image)[0].box
    small = DlibHOGDetector(upsample=0, max_side=300).detect(image)[0].box  # detected at half size
    assert np.abs(small - full).max() < 0.1 * (full[2] - full[0])


def test_no_face_in_a_flat_image_and_bad_images_are_named(dlib_landmarker: DlibLandmarker) -> None:
    assert dlib_landmarker.detect(np.full((120, 160, 3), 128, np.uint8)) == []
    with pytest.raises(ValueError, match=r"photo: expected a uint8 RGB array \[H, W, 3\], got float32"):
        check_image(np.zeros((8, 8, 3), np.float32), "photo")
    with pytest.raises(ValueError, match="image: expected a uint8 RGB"):
        dlib_landmarker.detect(np.zeros((8, 8), np.uint8))


# ---------------------------------------------------------------------------------------------- alignment


def test_similarity_transform_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 500, (68, 2))
    angle, scale = 0.3, 0.45
    truth = np.array(
        [[scale * np.cos(angle), -scale * np.sin(angle), 12.0], [scale * np.sin(angle), scale * np.cos(angle), -7.0]]
    )
    np.testing.assert_allclose(similarity_transform(source, apply_transform(truth, source)), truth, atol=1e-9)
    mirrored = apply_transform(truth, source) * [-1, 1]  # no reflection: the fit stays a rotation
    fitted = similarity_transform(source, mirrored)
    assert np.linalg.det(fitted[:, :2]) > 0
    np.testing.assert_allclose(apply_transform(invert_transform(truth), apply_transform(truth, source)), source)
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((68, 2)), source)
    with pytest.raises(ValueError, match="NaN"):
        similarity_transform(np.full((68, 2), np.nan), source)


@pytest.mark.parametrize("scale", [1.5, 0.4, 0.2])  # 0.4 and 0.2 go through the box prefilter
def test_warp_image_puts_a_dot_where_the_transform_maps_it(scale: float) -> None:
    image = np.zeros((600, 600, 3), np.uint8)
    image[300:306, 200:206] = 255  # a 6x6 block centred on (x=202.5, y=302.5)
    angle = 0.3
    transform = np.array(
        [[scale * np.cos(angle), -scale * np.sin(angle), 0], [scale * np.sin(angle), scale * np.cos(angle), 0]]
    )
    transform[:, 2] = [115.3, 106.9] - apply_transform(transform, [202.5, 302.5])
    crop = warp_image(image, transform, 224)[..., 0].astype(np.float64)
    ys, xs = np.mgrid[:224, :224]
    centroid = np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()
    np.testing.assert_allclose(centroid, [115.3, 106.9], atol=0.1)
    np.testing.assert_allclose(crop.sum() / 255, 36 * scale**2, rtol=0.05)  # brightness is preserved


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_align_face_maps_landmarks_onto_the_template(
    dlib_landmarker: DlibLandmarker, template: np.ndarray, name: str
) -> None:
    image = PHOTOS[name]()
    face = dlib_landmarker.detect(image)[0]
    aligned = align_face(image, face.landmarks, template, 224)
    assert aligned.image.shape == (224, 224, 3) and aligned.image.dtype == np.uint8
    np.testing.assert_allclose(aligned.landmarks, apply_transform(aligned.transform, face.landmarks), atol=1e-3)
    error = np.linalg.norm(aligned.landmarks - template, axis=1)
    assert error.mean() < 8  # pixels of 224: identity and expression differ from the mean face
    assert error[36:48].mean() < 4  # the eyes, where the similarity is best determined
    # the crop shows the face where its landmarks say: dlib finds it again there
    again = dlib_landmarker.detect(aligned.image)
    assert len(again) == 1
    assert np.linalg.norm(again[0].landmarks - aligned.landmarks, axis=1).mean() < 6


# ---------------------------------------------------------------------------------------------- heatmaps


def test_gaussian_heatmaps_argmax_recovers_landmarks() -> None:
    landmarks = torch.rand(2, 68, 2) * 200 + 12
    heatmaps = gaussian_heatmaps(landmarks, crop_size=224, heatmap_size=64, sigma=1.5)
    assert heatmaps.shape == (2, 68, 64, 64)
    assert heatmaps.min() >= 0 and heatmaps.max() <= 1
    index = heatmaps.flatten(2).argmax(-1)
    argmax = torch.stack([index % 64, index // 64], dim=-1).float()
    truth = crop_to_heatmap(landmarks)
    assert (argmax - truth).abs().max() <= 0.5 + 1e-4  # the nearest heatmap pixel
    assert (heatmap_to_crop(heatmap_peaks(heatmaps)) - landmarks).abs().max() < 0.5 * 224 / 64
    np.testing.assert_allclose(heatmap_to_crop(truth), landmarks, atol=1e-4)


def test_gaussian_heatmaps_shape_peak_and_gradient() -> None:
    at_pixel = heatmap_to_crop(torch.tensor([[[20.0, 30.0]]]))  # exactly on heatmap pixel (x=20, y=30)
    heatmap = gaussian_heatmaps(at_pixel, sigma=2.0)[0, 0]
    assert heatmap[30, 20] == pytest.approx(1.0)
    assert heatmap[30, 22] == pytest.approx(np.exp(-0.5), rel=1e-5)  # one sigma away
    assert heatmap[32, 22] == pytest.approx(np.exp(-1.0), rel=1e-5)
    points = (torch.rand(1, 3, 2, dtype=torch.float64) * 40 + 10).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: gaussian_heatmaps(p, 64, 16, 1.5), (points,))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_heatmaps(points, sigma=0)


class StubFAN(nn.Module):
    """Stands in for FAN: Gaussians at fixed heatmap points ``[68, 2]``. With ``brighter_left`` set (how the
    input it is made for looks), a mirrored input gets the mirrored heatmaps, as from a perfect FAN."""

    def __init__(self, points: np.ndarray, brighter_left: bool | None = None) -> None:
        super().__init__()
        self.points = torch.as_tensor(points, dtype=torch.float32)
        self.brighter_left = brighter_left

    def forward(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        mirrored = self.points[list(IBUG68_MIRROR)] * torch.tensor([-1.0, 1.0]) + torch.tensor([63.0, 0.0])
        out = []
        for image in inputs:
            brighter_left = bool(image[..., :128].mean() > image[..., 128:].mean())
            flipped = self.brighter_left is not None and brighter_left != self.brighter_left
            points = mirrored if flipped else self.points
            out.append(gaussian_heatmaps(points[None], 64, 64, 1.5)[0])  # 64 -> 64: heatmap pixels as given
        return [torch.stack(out)]


def test_mirror_table_is_an_involution_on_ibug68() -> None:
    mirror = np.array(IBUG68_MIRROR)
    assert sorted(mirror) == list(range(68))
    np.testing.assert_array_equal(mirror[mirror], np.arange(68))
    assert (mirror[0], mirror[36], mirror[39], mirror[48], mirror[31], mirror[30], mirror[66]) == (
        16,
        45,
        42,
        54,
        35,
        30,
        66,
    )


def test_fan_landmarker_geometry_with_a_stub_network(dlib_landmarker: DlibLandmarker) -> None:
    image = data.astronaut()
    face = dlib_landmarker.detect(image)[0]
    to_image = compose(fan_box_frame(face.box), fan_heatmap_frame())
    points = apply_transform(invert_transform(to_image), face.landmarks)  # dlib's landmarks, in FAN's heatmap
    crop = warp_image(image, invert_transform(fan_box_frame(face.box)), 256).astype(np.float64)
    brighter_left = crop[:, :128].mean() > crop[:, 128:].mean()
    assert abs(crop[:, :128].mean() - crop[:, 128:].mean()) > 2  # the stub can tell a mirrored crop
    predictor = FANPredictor(StubFAN(points, brighter_left), flip=True)
    landmarker = FANLandmarker(predictor=predictor, detector="hog", upsample=0)
    detections = landmarker.detect(image)
    assert len(detections) == 1
    found = detections[0]
    assert found.heatmaps.shape == (68, 64, 64)
    assert found.heatmaps.max() == pytest.approx(1.0, abs=0.05)  # flip averaged the two agreeing passes
    heatmap_pixel = to_image[0, 0]  # image pixels per heatmap pixel
    error = np.linalg.norm(found.landmarks - face.landmarks, axis=1)
    assert error.max() < 0.75 * heatmap_pixel  # decoded to a quarter heatmap pixel, as FAN does
    np.testing.assert_allclose(found.heatmap_transform, to_image)
    assert build_landmarker("dlib").name == "dlib68" and landmarker.name == "fan"


def test_fan_heatmaps_land_where_gaussian_heatmaps_do(template: np.ndarray) -> None:
    crop_landmarks = torch.from_numpy(template).float()[None] + torch.randn(1, 68, 2)
    gaussian = GaussianHeatmaps(224, 64, 1.5)
    # FAN's heatmap points for these crop landmarks: crop -> FAN input -> FAN heatmap pixels
    crop_to_fan_heatmap = invert_transform(compose(template_fan_frame(template), fan_heatmap_frame()))
    stub = StubFAN(apply_transform(crop_to_fan_heatmap, crop_landmarks[0].numpy()))
    source = FANHeatmaps(predictor=FANPredictor(stub, flip=False), template=template)
    images = torch.rand(1, 3, 224, 224)
    for heatmaps in (gaussian(images, crop_landmarks), source(images, crop_landmarks)):
        assert isinstance(gaussian, HeatmapSource) and isinstance(source, HeatmapSource)
        assert heatmaps.shape == (1, 68, 64, 64)
        peaks = heatmap_to_crop(heatmap_peaks(heatmaps))
        assert (peaks - crop_landmarks).abs().max() < 224 / 64  # within one heatmap pixel
    source.train()
    assert source.training is False and not any(p.requires_grad for p in source.parameters())


def test_fan_without_weights_says_where_to_put_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected = str(tmp_path / "torch" / "hub" / "checkpoints" / FAN_WEIGHTS_FILENAME)
    for build in (FANLandmarker, FANHeatmaps, lambda: build_landmarker("fan")):
        with pytest.raises(FileNotFoundError) as error:
            build()
        message = str(error.value)
        assert expected in message and "adrianbulat.com" in message and "weights=" in message
    with pytest.raises(FileNotFoundError, match=r"nowhere/fan\.pth does not exist.*2DFAN4-11f355bf06\.pth\.tar"):
        load_fan(tmp_path / "nowhere" / "fan.pth")
    wrong = tmp_path / FAN_WEIGHTS_FILENAME
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match=r"not a 2D-FAN-4 state dict"):
        load_fan(wrong)


def test_configs_instantiate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    landmarker = hydra.utils.instantiate(OmegaConf.load(CONF / "landmarks" / "dlib.yaml"))
    assert isinstance(landmarker, DlibLandmarker) and len(landmarker.detect(grace_hopper())) == 1
    heatmaps = hydra.utils.instantiate(OmegaConf.load(CONF / "heatmaps" / "gaussian.yaml"))
    assert isinstance(heatmaps, GaussianHeatmaps) and heatmaps.sigma == 1.5
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for name in ("landmarks", "heatmaps"):
        with pytest.raises(Exception, match=FAN_WEIGHTS_FILENAME.replace(".", r"\.")):
            hydra.utils.instantiate(with_paths(OmegaConf.load(CONF / name / "fan.yaml")))  # paths.fan: null


def test_fan_heatmap_to_image_map_matches_face_alignment() -> None:
    from face_alignment.utils import transform

    box = np.array([100.0, 50.0, 2100.0, 2050.0])  # a large box: one heatmap pixel is about 64 image pixels
    centre = torch.tensor([1100.0, 1050.0 - 0.12 * 2000])  # face-alignment's centre and scale for this box
    scale = 4000 / 195
    to_image = compose(fan_box_frame(box), fan_heatmap_frame())
    for peak in [(20, 30), (40, 10), (0, 63)]:
        theirs = transform([peak[0] + 0.5, peak[1] + 0.5], centre, scale, 64, invert=True).numpy()  # FAN's decoding
        np.testing.assert_allclose(apply_transform(to_image, np.array(peak, dtype=float)), theirs, atol=1.0)


@pytest.mark.slow
def test_face_alignment_fan_network_loads_from_a_weights_file(tmp_path: Path) -> None:
    weights = write_fan_weights(tmp_path / FAN_WEIGHTS_FILENAME)  # random weights: the format and the plumbing
    network = load_fan(weights)
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    source = FANHeatmaps(weights=weights, flip=False)
    heatmaps = source(torch.rand(1, 3, 224, 224), torch.zeros(1, 68, 2))
    assert heatmaps.shape == (1, 68, 64, 64) and torch.isfinite(heatmaps).all()


def test_cascade_detector_uses_the_cnn_only_where_hog_finds_nothing() -> None:
    cascade = build_detector("hog+cnn", upsample=1, threshold=0.3)
    assert isinstance(cascade, CascadeDetector) and cascade.name == "dlib_hog+cnn"
    photo = data.astronaut()
    hog_faces = cascade.hog.detect(photo)
    cnn_calls = []
    original = cascade.cnn.detect
    cascade.cnn.detect = lambda image: cnn_calls.append(1) or original(image)
    assert [face.box.tolist() for face in cascade.detect(photo)] == [face.box.tolist() for face in hog_faces]
    assert cnn_calls == []  # HOG found the face: the CNN did not run
    # a face turned by about 60 degrees (bench/detection.py's render 1): HOG misses it, the cascade finds it
    sample = SyntheticFaceSource(11, 256, SyntheticSettings(max_yaw_degrees=70.0)).render([1])[0]
    image = np.pad(sample["image"], ((96, 96), (96, 96), (0, 0)), mode="edge")
    assert cascade.hog.detect(image) == []
    faces = cascade.detect(image)
    assert cnn_calls == [1] and len(faces) == 1
    centre = sample["landmarks"].mean(0) + 96
    box = faces[0].box
    assert box[0] < centre[0] < box[2] and box[1] < centre[1] < box[3]
