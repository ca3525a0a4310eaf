"""prepare: photos -> aligned face crops in face shards, with every skipped input and its reason."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from data_commands import command_status, compose_command
from hydra.errors import ConfigCompositionException
from matplotlib import cbook
from PIL import Image
from skimage import data

from fastganfit.cli import prepare as prepare_command
from fastganfit.data.face_shards import face_dataset, read_face_manifest
from fastganfit.data.prepare import PrepareReport, load_rgb, prepare_images, sample_key
from fastganfit.perception.crop import apply_transform
from fastganfit.perception.landmarks import DlibLandmarker

GRACE_HOPPER = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def make_acceptance_folder(folder: Path) -> Path:
    """astronaut, grace_hopper, a corrupt JPEG, a text file renamed .jpg and a flat grey image."""
    folder.mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    shutil.copy(GRACE_HOPPER, folder / "grace_hopper.jpg")
    jpeg = GRACE_HOPPER.read_bytes()
    (folder / "corrupt.jpg").write_bytes(jpeg[: len(jpeg) // 3])  # a valid header, then cut off
    (folder / "notes.jpg").write_text("these are not pixels\n")
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(folder / "grey.png")
    return folder


def read_tar(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers()}


def prepare(*overrides: str) -> int:
    """The exit status of ``fastganfit-prepare`` with ``overrides``."""
    return command_status(prepare_command, "prepare", *overrides)


@pytest.fixture(scope="module")
def acceptance(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PrepareReport]:
    root = tmp_path_factory.mktemp("prepare")
    folder = make_acceptance_folder(root / "photos")
    return folder, prepare_images(folder, root / "shards", workers=2, progress=False)


@pytest.fixture(scope="module")
def dlib_landmarker() -> DlibLandmarker:
    return DlibLandmarker()


def test_acceptance_two_faces_written_three_inputs_skipped_with_reasons(
    acceptance: tuple[Path, PrepareReport],
) -> None:
    _, report = acceptance
    assert (report.inputs, report.written, len(report.skipped)) == (5, 2, 3)
    reasons = {Path(skip.source).name: skip.reason for skip in report.skipped}
    assert sorted(reasons) == ["corrupt.jpg", "grey.png", "notes.jpg"]
    assert reasons["corrupt.jpg"].startswith("unreadable") and "truncated" in reasons["corrupt.jpg"]
    assert reasons["notes.jpg"].startswith("not an image")
    assert reasons["grey.png"] == "no face found"
    manifest = read_face_manifest(report.output_dir)
    assert manifest["samples"] == 2 and manifest["inputs"] == 5 and manifest["crop_size"] == 224
    assert [shard["name"] for shard in manifest["shards"]] == ["faces-000000.tar"] == [p.name for p in report.shards]
    assert {Path(s["source"]).name: s["reason"] for s in manifest["skipped"]} == reasons
    assert sorted(p.name for p in report.output_dir.iterdir()) == ["faces-000000.tar", "manifest.json"]  # no temp files


def test_acceptance_shards_read_back(acceptance: tuple[Path, PrepareReport], dlib_landmarker: DlibLandmarker) -> None:
    folder, report = acceptance
    members = read_tar(report.shards[0])
    keys = ("astronaut", "grace_hopper")
    assert sorted(members) == sorted(f"{key}.{member}" for key in keys for member in ("jpg", "json", "landmarks.npy"))
    sources = {"astronaut": folder / "astronaut.png", "grace_hopper": folder / "grace_hopper.jpg"}
    for key in keys:
        crop = np.asarray(Image.open(io.BytesIO(members[f"{key}.jpg"])).convert("RGB"))
        landmarks = np.load(io.BytesIO(members[f"{key}.landmarks.npy"]))
        metadata = json.loads(members[f"{key}.json"])
        assert crop.shape == (224, 224, 3) and landmarks.shape == (68, 2) and landmarks.dtype == np.float32
        assert metadata["source"] == str(sources[key]) and metadata["landmarker"] == "dlib68"
        assert metadata["crop_size"] == 224 and metadata["faces"] == 1
        # the stored transform takes the source's landmarks to the stored ones, and the box holds the face
        original = dlib_landmarker.detect(load_rgb(sources[key]))[0]
        np.testing.assert_allclose(metadata["box"], original.box, atol=1e-3)
        transform = np.array(metadata["crop_transform"])
        assert transform.shape == (2, 3)
        np.testing.assert_allclose(apply_transform(transform, original.landmarks), landmarks, atol=1e-3)
        # and the JPEG crop shows that face where its landmarks say
        again = dlib_landmarker.detect(crop)
        assert len(again) == 1 and np.linalg.norm(again[0].landmarks - landmarks, axis=1).mean() < 6
    samples = list(face_dataset(report.output_dir, split_by_node=False, split_by_worker=False))
    assert sorted(sample["key"] for sample in samples) == list(keys)
    assert all(tuple(sample["image"].shape) == (3, 224, 224) for sample in samples)


def test_cli_output_does_not_depend_on_workers(
    acceptance: tuple[Path, PrepareReport], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, report = acceptance
    status = prepare(f"input={folder}", f"output={tmp_path / 'one'}", "workers=1", "progress=false")
    assert status == 0
    assert "wrote 2 face crops to 1 shards" in capsys.readouterr().out
    assert (tmp_path / "one" / "faces-000000.tar").read_bytes() == report.shards[0].read_bytes()


def test_largest_of_several_faces_grayscale_and_glob_input(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    canvas = np.zeros((600, 1030, 3), np.uint8)
    canvas[:, :512], canvas[:512, 518:] = load_rgb(GRACE_HOPPER), data.astronaut()  # faces of 216 and 88 px
    Image.fromarray(canvas).save(folder / "two.png")
    Image.fromarray(data.astronaut()).convert("L").save(folder / "gray.png")
    Image.fromarray(data.astronaut()).convert("RGBA").save(folder / "skipped-by-the-glob.webp")
    report = prepare_images(str(folder / "*.png"), tmp_path / "out", workers=1, progress=False)
    assert (report.inputs, report.written, report.skipped) == (2, 2, [])
    members = read_tar(report.shards[0])
    two = json.loads(members["two.json"])
    assert two["faces"] == 2 and two["box"] == [160.5, 136.5, 376.5, 352.5]  # the largest face: Grace Hopper
    assert json.loads(members["gray.json"])["faces"] == 1
    assert read_face_manifest(tmp_path / "out")["several_faces"] == 1


def test_small_faces_and_non_image_names_are_skipped_with_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(data.astronaut()).save(folder / "sub" / "astronaut.jpg")
    (folder / "readme.txt").write_text("a note")
    (folder / ".hidden.jpg").write_text("ignored")
    report = prepare_images(folder, tmp_path / "out", min_face=150, workers=1, progress=False)
    assert report.written == 0
    reasons = {Path(skip.source).name: skip.reason for skip in report.skipped}
    assert reasons == {
        "readme.txt": "not an image file name (suffix '.txt')",
        "astronaut.jpg": "face too small (88x88 px, min_face=150)",
    }
    assert read_face_manifest(tmp_path / "out")["samples"] == 0  # the reasons are kept even when nothing is written


def test_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert prepare(f"input={tmp_path / 'missing'}", f"output={tmp_path / 'a'}") == 1
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert prepare(f"input={tmp_path / 'empty'}", f"output={tmp_path / 'b'}") == 1
    assert "holds no files" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.jpg").write_text("text")
    assert prepare(f"input={bad}", f"output={tmp_path / 'c'}", "progress=false") == 1
    assert "no face could be written" in capsys.readouterr().err
    assert prepare(f"input={bad}", f"output={tmp_path / 'c'}", "progress=false") == 1  # output holds shards
    assert "already holds face shards" in capsys.readouterr().err
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert prepare(f"input={bad}", f"output={tmp_path / 'e'}", "landmarker=fan") == 1
    assert "2DFAN4-11f355bf06.pth.tar" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()  # nothing is started without the weights


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ((), "give input=DIR|GLOB and output=DIR"),
        (("output={tmp}/out",), "give input=DIR|GLOB"),
        (("input={tmp}", "output={tmp}/out", "workers=0"), "workers must be an integer of at least 1, got 0"),
        (("input={tmp}", "output={tmp}/out", "crop_size=big"), "crop_size must be an integer of at least 16"),
        (("input={tmp}", "output={tmp}/out", "landmarker=mediapipe"),
         "landmarker must be one of ['dlib', 'fan'], got 'mediapipe'"),
        (("input={tmp}", "output={tmp}/out", "detector=yolo"), "detector must be one of ['hog', 'cnn'], got 'yolo'"),
        (("input={tmp}", "output={tmp}/out", "min_face=-1"), "min_face must be an integer of at least 0, got -1"),
        (("input={tmp}", "output={tmp}/out", "overwrite=yes"), "overwrite must be true or false, got 'yes'"),
        (("input={tmp}", "output={tmp}/out", "fan_weights=w.pth"), "fan_weights only applies with landmarker=fan"),
    ],
)  # fmt: skip
def test_a_missing_or_bad_option_exits_2_naming_it(
    overrides: tuple[str, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prepare(*(override.format(tmp=tmp_path) for override in overrides)) == 2
    assert f"fastganfit-prepare: error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unknown_option_is_rejected_by_hydra(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException, match="colour"):
        prepare(f"input={tmp_path}", f"output={tmp_path / 'out'}", "colour=blue")


def test_command_options_reach_prepare_images(tmp_path: Path) -> None:
    cfg = compose_command("prepare", "input=[a.jpg,b.png]", f"output={tmp_path}", "landmarker=fan", "detector=cnn",
                          "upsample=2", "fan_weights=w.pth", "workers=3", "prefix=007")  # fmt: skip
    assert prepare_command.options(cfg) == {
        "inputs": ["a.jpg", "b.png"], "output_dir": str(tmp_path), "crop_size": 224, "workers": 3,
        "landmarker": "fan", "landmarker_options": {"detector": "cnn", "upsample": 2, "weights": "w.pth"},
        "max_per_shard": 1000, "min_face": 40, "prefix": "007", "overwrite": False, "progress": True,
    }  # fmt: skip


def test_fan_weights_default_to_paths_fan_and_only_for_the_fan_landmarker(tmp_path: Path) -> None:
    fan = ("landmarker=fan", "paths.fan=/assets/2DFAN4.pth.tar")
    cfg = compose_command("prepare", "input=a.jpg", f"output={tmp_path}", *fan)
    assert prepare_command.options(cfg)["landmarker_options"]["weights"] == "/assets/2DFAN4.pth.tar"
    cfg = compose_command("prepare", "input=a.jpg", f"output={tmp_path}", *fan, "fan_weights=mine.pth")
    assert prepare_command.options(cfg)["landmarker_options"]["weights"] == "mine.pth"
    cfg = compose_command("prepare", "input=a.jpg", f"output={tmp_path}", "paths.fan=/assets/2DFAN4.pth.tar")
    assert "weights" not in prepare_command.options(cfg)["landmarker_options"]  # dlib: the fan file is not its


def test_a_landmarker_that_cannot_be_built_stops_the_run_with_its_error(tmp_path: Path) -> None:
    folder = make_acceptance_folder(tmp_path / "photos")
    for workers in (1, 2):
        with pytest.raises(FileNotFoundError, match=r"missing\.dat does not exist"):
            options = {"predictor_path": tmp_path / "missing.dat"}
            prepare_images(
                folder, tmp_path / f"out{workers}", workers=workers, landmarker_options=options, progress=False
            )
        assert not list((tmp_path / f"out{workers}").glob("*.tar"))


def test_load_rgb_converts_modes(tmp_path: Path) -> None:
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., :3], rgba[:2, ..., 3], rgba[2:, ..., 3] = 200, 255, 0
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    image = load_rgb(tmp_path / "rgba.png")
    assert image.shape == (4, 5, 3) and image.dtype == np.uint8
    assert (image[:2] == 200).all() and (image[2:] == 0).all()  # transparency over black
    Image.fromarray(np.full((3, 3), 65535, np.uint16)).save(tmp_path / "sixteen.png")
    assert (load_rgb(tmp_path / "sixteen.png") == 255).all()
    Image.fromarray(np.full((3, 3), 90, np.uint8), mode="L").save(tmp_path / "gray.jpg")
    assert abs(int(load_rgb(tmp_path / "gray.jpg")[1, 1, 0]) - 90) <= 1


def test_sample_keys_are_unique_and_webdataset_safe() -> None:
    used: set[str] = set()
    root = Path("/data")
    keys = [sample_key(Path(p), root, used) for p in ["/data/a b/x.y.jpg", "/data/a b/x.y.png", "/data/..jpg"]]
    assert keys == ["a_b_x_y", "a_b_x_y_2", "image"]
    assert all(not set(key) & set("./\\ ") for key in keys)
