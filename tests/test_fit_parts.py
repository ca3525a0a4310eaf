"""Reconstruction's parts that need no model: inputs, photo loading, settings, batching by subject, pasting a
render onto the photo, atomic result folders, the index page's data and its viewer script."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from fastganfit.data.prepare import UnusableInputError
from fastganfit.fitting import outputs as outputs_module
from fastganfit.fitting.index_page import VIEWER_SCRIPT, IndexEntry, IndexPage, quantise_vertices, render_index
from fastganfit.fitting.inputs import InputImage, resolve_inputs
from fastganfit.fitting.outputs import FaceOutputs, MeshTopology, glb_bytes, write_face_outputs
from fastganfit.fitting.paste_render import paste_render
from fastganfit.fitting.photos import MAX_ASPECT, MIN_PHOTO_SIDE, load_photo
from fastganfit.fitting.pipeline import FitOptions, subject_batches, subject_of
from fastganfit.fitting.settings import FitSettings, StageSettings
from fastganfit.io.atomic_folder import atomic_folder
from fastganfit.io.mesh_export import read_obj, write_obj
from fastganfit.perception.detection import DlibCNNDetector, DlibHOGDetector
from fastganfit.reconstruction.losses import GANFitLoss

# a unit square in the z = 0 plane, two triangles, UVs at its corners
SQUARE = MeshTopology(
    faces=np.array([[0, 1, 2], [0, 2, 3]]), uvs=np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32),
    face_uvs=np.array([[0, 1, 2], [0, 2, 3]]),
)  # fmt: skip
SQUARE_VERTICES = np.array([[-50, -50, 0], [50, -50, 0], [50, 50, 0], [-50, 50, 0]], np.float32)


def hidden_entries(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.startswith(".")]


# ---------------------------------------------------------------------------------------------- inputs


def test_inputs_from_files_folders_globs_and_lists(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.png", "a/b/x.png", "a/y.jpg", "a/readme.txt", "a/.hidden.png"):
        (tmp_path / name).write_bytes(b"")
    folder = resolve_inputs(str(tmp_path / "a"))
    assert [(item.path.relative_to(tmp_path).as_posix(), item.key) for item in folder.images] == [
        ("a/b/x.png", "b_x"), ("a/x.png", "x"), ("a/y.jpg", "y"),
    ]  # fmt: skip
    assert folder.collection and [Path(p.source).name for p in folder.skipped] == ["readme.txt"]
    single = resolve_inputs(tmp_path / "a" / "x.png")
    assert [item.key for item in single.images] == ["x"] and not single.collection and not single.failed
    pattern = resolve_inputs(str(tmp_path / "a" / "**" / "x.png"))
    assert [item.key for item in pattern.images] == ["x", "x_2"] and pattern.collection  # keys stay unique
    (tmp_path / "empty").mkdir()
    listed = resolve_inputs([str(tmp_path / "a" / "y.jpg"), str(tmp_path / "gone.png"), str(tmp_path / "empty"),
                             str(tmp_path / "*.none")])  # fmt: skip
    assert [item.key for item in listed.images] == ["y"] and listed.collection
    assert [(Path(p.source).name, p.reason.split(" (")[0]) for p in listed.failed] == [
        ("gone.png", f"input {tmp_path / 'gone.png'} does not exist"),
        ("empty", "the folder holds no files"),
        ("*.none", f"input pattern {tmp_path / '*.none'} matches no files"),
    ]


def test_photos_are_converted_with_a_note_and_large_ones_downscaled(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    plain = load_photo(tmp_path / "rgb.png", max_side=2048)
    assert np.array_equal(plain.image, rgb) and plain.notes == () and plain.scale == 1.0
    Image.fromarray(rgb).convert("L").save(tmp_path / "gray.png")
    gray = load_photo(tmp_path / "gray.png", max_side=2048)
    assert gray.notes == ("grayscale image converted to RGB",) and gray.image.shape == (300, 400, 3)
    assert (gray.image[..., 0] == gray.image[..., 2]).all()
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert load_photo(tmp_path / "palette.png", 2048).notes == ("palette image converted to RGB",)
    rgba = np.dstack([rgb, np.zeros((300, 400), np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    clear = load_photo(tmp_path / "rgba.png", 2048)
    assert clear.notes == ("RGBA image converted to RGB (transparency over black)",) and clear.image.max() == 0
    small = load_photo(tmp_path / "rgb.png", max_side=100)
    assert small.image.shape == (75, 100, 3) and small.scale == 0.25
    assert small.notes == ("downscaled from 400x300 to 100x75 px (max_side=100)",)
    assert abs(float(small.image.mean()) - float(rgb.mean())) < 2  # antialiased: the mean colour is kept
    (tmp_path / "text.png").write_text("no pixels")
    with pytest.raises(UnusableInputError, match="not an image"):
        load_photo(tmp_path / "text.png", 2048)
    (tmp_path / "cut.png").write_bytes((tmp_path / "rgb.png").read_bytes()[:2000])
    with pytest.raises(UnusableInputError, match="unreadable"):
        load_photo(tmp_path / "cut.png", 2048)


@pytest.mark.parametrize(("width", "height", "reason"), [
    (1, 1, "too small to hold a face (1x1 px"), (8, 8, "too small to hold a face (8x8 px"),
    (64, MIN_PHOTO_SIDE - 1, f"too small to hold a face (64x{MIN_PHOTO_SIDE - 1} px"),
    (int(MIN_PHOTO_SIDE * MAX_ASPECT) + 1, MIN_PHOTO_SIDE, "too elongated to be a face photo"),
])  # fmt: skip
def test_photos_too_small_or_elongated_for_a_detector_are_refused_naming_their_size(
    tmp_path: Path, width: int, height: int, reason: str
) -> None:
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(UnusableInputError) as raised:
        load_photo(tmp_path / "small.png", 2048)
    assert str(raised.value).startswith(reason) and f"{width}x{height} px" in str(raised.value)


def test_detectors_never_run_dlib_on_images_it_cannot_handle() -> None:
    """dlib's CNN detector raises ("Filter windows must be small enough") or crashes on 9 px images; the detectors
    find no face there instead, also when a long strip shrinks below that in the detection copy."""
    rng = np.random.default_rng(0)
    cnn, hog = DlibCNNDetector(max_side=64), DlibHOGDetector(max_side=64)
    for height, width in [(1, 1), (4, 4), (8, 8), (9, 9), (2, 64), (64, 8), (640, 8)]:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert cnn.detect(image) == [] and hog.detect(image) == []


# ---------------------------------------------------------------------------------------------- settings


def test_fit_settings_from_config_mapping_and_their_checks() -> None:
    loss = GANFitLoss(landmark=1.0)
    settings = FitSettings.from_stages(
        {"align": {"steps": 3, "lr": 0.1, "groups": ["camera", "shape"], "loss": loss, "lr_scales": {"camera": 0.5}}}
    )
    (stage,) = settings.stages
    assert stage.name == "align" and stage.groups == ("camera", "shape") and settings.total_steps == 3
    assert stage.learning_rate("camera") == 0.05 and stage.learning_rate("shape") == 0.1
    assert settings.with_steps({"align": 7}).total_steps == 7
    grey = FitSettings((replace(stage, light_colour="grey"),))
    assert grey.with_steps({"align": 7}).stages == (replace(stage, steps=7, light_colour="grey"),)
    with pytest.raises(ValueError, match="no fit stages named"):
        settings.with_steps({"full": 1})
    bad = [
        ({"steps": -1}, "steps must be a non-negative integer"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"groups": ("camera", "pose")}, "groups must be a non-empty subset"),
        ({"lr_scales": {"light": 2.0}}, "lr_scales for groups the stage does not optimise"),
        ({"loss": GANFitLoss()}, "every loss weight is 0"),
    ]
    for change, message in bad:
        arguments = {"name": "s", "steps": 1, "lr": 0.1, "groups": ("camera",), "loss": loss, **change}
        with pytest.raises(ValueError, match=message):
            StageSettings(**arguments)
    with pytest.raises(ValueError, match="distinct names"):
        FitSettings((stage, stage))


def test_fit_configs_compose_into_settings() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    conf = Path(__file__).resolve().parent.parent / "fastganfit" / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("fit", overrides=["image=x.png", "refinement.stages.full.steps=5"])
    refine_settings, ganfit = instantiate(cfg.refinement), instantiate(cfg.ganfit)
    assert [stage.name for stage in refine_settings.stages] == ["align", "full", "colour"]
    full, colour = refine_settings.stages[1:]
    assert full.steps == 5 and full.loss.weights["identity"] > 0 and full.loss.weights["landmark"] == 10.0
    assert full.learning_rate("shape") == full.lr / 2 and full.learning_rate("texture") == 10 * full.lr
    assert full.learning_rate("light") == 2 * full.lr and full.loss.weights["light_chroma"] == 1.0
    assert full.light_colour == "start"  # GANFit++ keeps the regressed light's colour
    assert refine_settings.stages[0].loss.active_terms == ["landmark", "shape", "expression", "texture", "light"]
    # the colour stage: texture and light against the pixels alone, the light held near unit brightness
    assert colour.groups == ("texture", "light") and colour.light_colour == "start"
    assert colour.loss.active_terms == ["pixel", "texture", "light", "light_chroma", "light_intensity"]
    assert colour.loss.light_intensity_target == 0.7  # the synthetic training lights' mean brightness
    assert ganfit.total_steps > refine_settings.total_steps


def test_subjects_are_packed_whole_into_batches() -> None:
    def image(key: str, folder: str) -> InputImage:
        return InputImage(Path(folder) / f"{key}.png", key, Path(folder))

    items = [image("a1", "/p/a"), image("b1", "/p/b"), image("a2", "/p/a"), image("c1", "/p/c"), image("b2", "/p/b")]
    assert [subject_of(item, "none") for item in items] == ["a1", "b1", "a2", "c1", "b2"]
    assert {subject_of(item, "all") for item in items} == {"all"}

    class Prepared:  # what subject_batches reads: the subject label
        def __init__(self, item: InputImage) -> None:
            self.item, self.subject = item, subject_of(item, "folder")

    batches = subject_batches([Prepared(item) for item in items], batch_size=3)
    assert [[p.item.key for p in batch] for batch in batches] == [["a1", "a2"], ["b1", "b2", "c1"]]
    big = subject_batches([Prepared(item) for item in items], batch_size=1)
    assert [[p.item.key for p in batch] for batch in big] == [["a1", "a2"], ["b1", "b2"], ["c1"]]
    with pytest.raises(ValueError, match="needs optimisation settings"):
        FitOptions(start="mean_face")
    with pytest.raises(ValueError, match="subjects must be one of"):
        FitOptions(subjects="people")
    with pytest.raises(ValueError, match="texture_source must be one of"):
        FitOptions(texture_source="scan")
    with pytest.raises(ValueError, match="photo_light must be one of"):
        FitOptions(photo_light="white")


# ---------------------------------------------------------------------------------------------- pictures and files


def test_paste_render_puts_the_crop_back_where_it_came_from() -> None:
    photo = np.zeros((100, 120, 3), np.uint8)
    render = np.zeros((20, 20, 3), np.uint8)
    render[...] = (255, 0, 0)
    mask = np.zeros((20, 20))
    mask[5:15, 5:15] = 1.0
    # crop = 0.5 photo + t: crop x = c is photo x = 2 c + 39.5, crop y = c is photo y = 2 c + 9.5, so the mask's
    # pixels 5..14 (edges 4.5 .. 14.5) cover photo x 48.5 .. 68.5 and y 18.5 .. 38.5: photo pixels 49..68, 19..38
    transform = np.array([[0.5, 0.0, -19.75], [0.0, 0.5, -4.75]])
    pasted = paste_render(photo, render, mask, transform)
    red = pasted[..., 0] > 127
    ys, xs = np.nonzero(red)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (49, 68, 19, 38)
    assert (pasted[..., 1:] == 0).all() and red.sum() == 400


def test_result_folders_appear_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = FaceOutputs(
        vertices=SQUARE_VERTICES, texture=np.full((4, 4, 3), 200, np.uint8),
        arrays={"shape": np.ones(3, np.float32)}, overlay=np.zeros((8, 8, 3), np.uint8),
        report=np.zeros((4, 20, 3), np.uint8), info={"source": "x.png"},
    )  # fmt: skip
    folder = write_face_outputs(tmp_path / "x", SQUARE, outputs)
    assert sorted(p.name for p in folder.iterdir()) == sorted(outputs_module.OUTPUT_FILES)
    mesh = read_obj(folder / "mesh.obj")
    assert np.array_equal(mesh.vertices, SQUARE_VERTICES) and mesh.texture == folder / "texture.png"
    assert "map_Kd texture.png" in (folder / "mesh.mtl").read_text()
    assert np.load(folder / "params.npz")["shape"].tolist() == [1.0, 1.0, 1.0]

    def broken(image: np.ndarray, path: Path) -> Path:
        if Path(path).name == "report.png":
            raise OSError("disk full")
        return original(image, path)

    original = outputs_module.save_png
    monkeypatch.setattr(outputs_module, "save_png", broken)
    changed = FaceOutputs(**{**outputs.__dict__, "info": {"source": "new.png"}})
    with pytest.raises(OSError, match="disk full"):
        write_face_outputs(tmp_path / "x", SQUARE, changed)
    with pytest.raises(OSError, match="disk full"):
        write_face_outputs(tmp_path / "y", SQUARE, changed)
    assert json.loads((tmp_path / "x" / "fit.json").read_text()) == {"source": "x.png"}  # the old result stays
    assert not (tmp_path / "y").exists() and hidden_entries(tmp_path) == []


def test_obj_texture_name_must_be_a_png_file_name(tmp_path: Path) -> None:
    texture = np.zeros((2, 2, 3), np.uint8)
    for name in ("sub/texture.png", "texture.jpg"):
        with pytest.raises(ValueError, match=r"texture_name must be a \.png file name"):
            write_obj(tmp_path / "m.obj", SQUARE_VERTICES, SQUARE.faces, SQUARE.uvs, SQUARE.face_uvs, texture, name)
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_replaces_an_old_folder(tmp_path: Path) -> None:
    with atomic_folder(tmp_path / "out") as staging:
        (staging / "old.txt").write_text("old")
    with atomic_folder(tmp_path / "out") as staging:
        assert not (tmp_path / "out" / "new.txt").exists()
        (staging / "new.txt").write_text("new")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["new.txt"] and hidden_entries(tmp_path) == []


# ---------------------------------------------------------------------------------------------- index page


def test_index_page_escapes_names_and_inlines_the_meshes(tmp_path: Path) -> None:
    entry = IndexEntry("a<b>", "/photos/a<b>.png", ["note & more"], SQUARE_VERTICES, b"\x89PNG fake")
    page = render_index(IndexPage("title", [entry], [("/photos/bad.jpg", "no face found")]), SQUARE)
    assert "<h2>a&lt;b&gt;</h2>" in page and "note: note &amp; more" in page
    assert "/photos/bad.jpg: no face found" in page and "a<b>" not in page
    data = json.loads(page.split('id="fastganfit-meshes">')[1].split("</script>")[0])
    assert data["meshes"][0]["texture"] == "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    faces = np.frombuffer(base64.b64decode(data["topology"]["faces"]), "<u4").reshape(-1, 3)
    assert np.array_equal(faces, SQUARE.faces)
    quantised = quantise_vertices(SQUARE_VERTICES * 1.7 + 3.0)
    steps = np.frombuffer(base64.b64decode(quantised["vertices"]), "<i2").reshape(-1, 3)
    decoded = np.asarray(quantised["offset"]) + np.asarray(quantised["scale"]) * steps
    assert np.abs(decoded - (SQUARE_VERTICES * 1.7 + 3.0)).max() < 1e-3
    assert VIEWER_SCRIPT.read_text() in page


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the viewer's script")
def test_viewer_rasterises_a_square_with_its_texture(tmp_path: Path) -> None:
    data = {
        "topology": {
            "faces": base64.b64encode(SQUARE.faces.astype("<u4").tobytes()).decode(),
            "uvs": base64.b64encode(SQUARE.uvs.astype("<f4").tobytes()).decode(),
            "face_uvs": base64.b64encode(SQUARE.face_uvs.astype("<u4").tobytes()).decode(),
        },
        "mesh": quantise_vertices(SQUARE_VERTICES),
    }
    script = tmp_path / "square.js"
    script.write_text(
        f"""
const viewer = require({json.dumps(str(VIEWER_SCRIPT))});
const data = {json.dumps(data)};
const mesh = viewer.buildMesh(data.topology, data.mesh);
// texture: left half green, right half blue (rows top to bottom)
const texture = {{width: 2, height: 1, data: new Uint8ClampedArray([0, 255, 0, 255, 0, 0, 255, 255])}};
const out = {{}};
for (const [name, yaw] of [["front", 0], ["turned", Math.PI / 3]]) {{
  const pixels = new Uint8ClampedArray(40 * 40 * 4);
  viewer.renderFrame(mesh, texture, {{yaw: yaw, pitch: 0, zoom: 1}}, 40, 40, pixels);
  out[name] = Array.from(pixels);
}}
process.stdout.write(JSON.stringify(out));
"""
    )
    result = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    decoded = json.loads(result.stdout)
    frames = {name: np.asarray(pixels, np.uint8).reshape(40, 40, 4) for name, pixels in decoded.items()}
    front = frames["front"][..., :3].astype(int)
    covered = (front != 246).any(-1)
    # the square's half-diagonal is the unit radius: its side spans 2 * 0.95 * 20 / sqrt(2) = 26.9 px about the
    # centre (20, 20), edges 6.57 .. 33.43: the pixels whose centres (x + 0.5) lie inside are 7 .. 32
    columns, rows = np.nonzero(covered.any(0))[0], np.nonzero(covered.any(1))[0]
    assert (columns.min(), columns.max(), rows.min(), rows.max()) == (7, 32, 7, 32) and covered.sum() == 26 * 26
    left, right = front[20, 10], front[20, 30]
    assert left[1] > 100 and left[2] == 0 and right[2] > 100 and right[1] == 0  # u = 0 on the left
    turned = (frames["turned"][..., :3] != 246).any(-1)
    assert 0.3 < turned.sum() / covered.sum() < 0.7  # seen at 60 degrees it is half as wide


def test_glb_splits_uv_seams_and_loads_in_metres() -> None:
    # two triangles sharing the edge 1-2; vertex 2 has a different UV in each (a seam): 5 glTF vertices
    vertices = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 100.0, 0.0], [100.0, 100.0, 0.0]])
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5]])
    topology = MeshTopology(np.array([[0, 1, 2], [1, 3, 2]]), uvs, np.array([[0, 1, 2], [1, 3, 4]]))
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:, :, 0] = 200
    scene = trimesh.load(io.BytesIO(glb_bytes(vertices, topology, texture)), file_type="glb")
    mesh = next(iter(scene.geometry.values()))
    assert len(mesh.vertices) == 5 and len(mesh.faces) == 2
    corners = mesh.vertices[mesh.faces]
    assert np.allclose(sorted(map(tuple, corners.reshape(-1, 3).round(6))),
                       sorted(map(tuple, (vertices[topology.faces] / 1000).reshape(-1, 3).round(6))))
    corner_uvs = mesh.visual.uv[mesh.faces]
    expected_uvs = uvs[topology.face_uvs].reshape(-1, 2)
    assert np.allclose(sorted(map(tuple, corner_uvs.reshape(-1, 2))), sorted(map(tuple, expected_uvs)))
    image = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"))
    assert image.shape == (8, 8, 3) and bool((image[..., 0] == 200).all())
