"""Photos to UV shards (fastganfit.cli.photo_uv_shards) and the loop it closes: synthetic photos -> UV shards ->
a few masked texture-GAN steps -> fit.py with that prior (tiny models, CPU)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image
from skimage import data
from tiny_checkpoint import TINY_MODEL_OVERRIDES, write_tiny_checkpoint

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.photo_uv_shards import check, run, run_part
from fastganfit.cli.reconstructor import build_reconstructor
from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.data.uv_shards import read_manifest, uv_texture_dataset, write_uv_shards
from fastganfit.fitting.photo_texture import detail_crops, detail_scale
from fastganfit.fitting.photo_uv_shards import PART_RECORD, finished_part, part_folder, summarise
from fastganfit.perception.crop import warp_image

REPO = Path(__file__).resolve().parent.parent
CROP, FACES = 64, 6


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    write_tiny_checkpoint(path, "fast_full")
    return path


@pytest.fixture(scope="module")
def face_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faces")
    generate_synthetic_faces(folder, n=FACES, seed=0, crop_size=CROP, max_per_shard=4, progress=False)
    return folder


def config(checkpoint: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("photo_uv_shards", overrides=[f"ckpt={checkpoint}", "resolution=32", "progress=false",
                                                     "device=cpu", *overrides])  # fmt: skip


def read_samples(shards: list[Path]) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, _, suffix = member.name.partition(".")
                samples.setdefault(key, {})[suffix] = tar.extractfile(member).read()
    return samples


def test_face_shards_to_uv_shards_in_parts_and_resume(checkpoint, face_shards, tmp_path) -> None:
    output = tmp_path / "uv"
    cfg = config(checkpoint, f"input={face_shards}", "input_format=face_shards", f"output={output}", "num_parts=2",
                 "max_landmark_error=1.0", "min_coverage=0.05")  # fmt: skip
    records = run(cfg)
    assert [record.part for record in records] == [0, 1]
    assert [record.inputs for record in records] == [3, 3] and sum(r.written for r in records) == FACES
    shards = sorted(output.glob("part-*/uv-*.tar"))
    assert [path.parent.name for path in shards] == ["part-00000-of-00002", "part-00001-of-00002"]
    assert read_manifest(shards[0].parent)["masked_samples"] == 3
    samples = read_samples(shards)
    assert sorted(samples) == [f"synthetic_s0_{i:08d}" for i in range(FACES)]
    info = json.loads(samples["synthetic_s0_00000003"]["json"])
    assert info["source"] == "synthetic:seed=0:index=3"
    quality = info["quality"]
    assert 0.05 < quality["coverage"] < 1.0 and quality["seen"] <= quality["coverage"] + 1e-6
    assert 0.0 < quality["photometric_error"] < 1.0 and quality["landmark_error"] >= 0.0
    # the texture GAN's reader sees partial masks: observed texels, and unobserved ones it must ignore
    batch = next(iter(torch.utils.data.DataLoader(uv_texture_dataset(shards, resolution=32), batch_size=FACES)))
    assert batch["texture"].shape == (FACES, 3, 32, 32) and 0.1 < batch["mask"].mean() < 0.9
    summary = json.loads((output / "summary.json").read_text())
    assert summary["written"] == FACES and summary["skipped"] == [] and len(summary["shards"]) == 2

    # a rerun skips finished parts; a part without part.json (interrupted) is redone alone
    stamp = (part_folder(output, 0, 2) / PART_RECORD).stat().st_mtime_ns
    (part_folder(output, 1, 2) / PART_RECORD).unlink()
    assert summarise(output, 2) is None and not (output / "summary.json").exists()
    again = run(cfg)
    assert (part_folder(output, 0, 2) / PART_RECORD).stat().st_mtime_ns == stamp
    assert [record.written for record in again] == [3, 3] and finished_part(part_folder(output, 1, 2)) is not None


def test_fit_quality_thresholds_skip_faces_with_reasons(checkpoint, face_shards, tmp_path) -> None:
    cfg = config(checkpoint, f"input={face_shards}", "input_format=face_shards", f"output={tmp_path}",
                 "part=0", "num_parts=3", "min_coverage=0.99")  # fmt: skip
    (record,) = run(cfg)
    assert record.inputs == 2 and record.written == 0 and record.shards == []
    assert all("covers" in entry["reason"] and "min_coverage 99.0%" in entry["reason"] for entry in record.skipped)
    assert not list(tmp_path.rglob("*.tar")) and summarise(tmp_path, 3) is None
    for override, reason in (("max_landmark_error=0.0001", "landmark error"),
                             ("max_photometric_error=0.0001", "photometric error")):  # fmt: skip
        folder = tmp_path / override.split("=")[0]
        cfg = config(checkpoint, f"input={face_shards}", "input_format=face_shards", f"output={folder}", "part=1",
                     "num_parts=3", "min_coverage=0.0", "max_landmark_error=1.0", override)  # fmt: skip
        (record,) = run(cfg)
        assert record.written == 0 and all(reason in entry["reason"] for entry in record.skipped), record.skipped


def test_photos_are_detected_and_unusable_ones_listed(checkpoint, tmp_path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "astronaut.png")
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(photos / "blank.png")
    (photos / "notes.txt").write_text("not a photo")
    cfg = config(checkpoint, f"input={photos}", f"output={tmp_path / 'uv'}", "max_landmark_error=1.0")
    record = run_part(dict(cfg), 0)
    assert record.written == 1 and record.inputs == 3
    reasons = {Path(entry["source"]).name: entry["reason"] for entry in record.skipped}
    assert sorted(reasons) == ["blank.png", "notes.txt"] and "no face" in reasons["blank.png"]
    (sample,) = read_samples(sorted((tmp_path / "uv").rglob("uv-*.tar"))).values()
    texture = np.asarray(Image.open(io.BytesIO(sample["png"])))
    mask = np.asarray(Image.open(io.BytesIO(sample["mask.png"])))
    assert texture.shape == (32, 32, 3) and mask.shape == (32, 32) and 0 < (mask > 200).mean() < 0.8


def test_bad_options_are_named(checkpoint, tmp_path) -> None:
    with pytest.raises(ValueError, match="give input="):
        check(config(checkpoint, f"output={tmp_path}"))
    with pytest.raises(ValueError, match="part must be in"):
        check(config(checkpoint, "input=x", f"output={tmp_path}", "part=2", "num_parts=2"))
    with pytest.raises(ValueError, match="photo_light must be one of"):
        check(config(checkpoint, "input=x", f"output={tmp_path}", "photo_light=white"))
    with pytest.raises(ValueError, match="input_format must be one of"):
        check(config(checkpoint, "input=x", f"output={tmp_path}", "input_format=videos"))


def test_component_values_apply_to_the_checkpoint_as_in_fit_py(checkpoint, tmp_path) -> None:
    """With a ckpt, component values apply on top of its components and another option is rejected (as fit.py)."""
    value = "renderer.visibility_tolerance_mm=3"
    cfg = config(checkpoint, "input=x", f"output={tmp_path}", "input_format=face_shards", value)
    assert build_reconstructor(cfg, [value], detect=False).graph.renderer.visibility_tolerance_mm == 3.0
    option = "identity=arcface_iresnet50"
    cfg = config(checkpoint, "input=x", f"output={tmp_path}", "input_format=face_shards", option)
    with pytest.raises(ValueError, match=rf"{option}: ckpt={checkpoint} rebuilds the components it was trained with"):
        run_part(dict(cfg), 0, [option])


def command(script: str, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *script.split(), *overrides], capture_output=True, text=True, cwd=REPO,
                          timeout=900)  # fmt: skip


@pytest.mark.slow
def test_photos_to_texture_prior_to_reconstruction_loop(checkpoint, face_shards, tmp_path) -> None:
    """The whole loop on CPU: synthetic photos -> UV shards -> masked texture-GAN steps -> fit.py texture=gan."""
    uv = tmp_path / "uv"
    made = command("-m fastganfit.cli.photo_uv_shards", f"input={face_shards}", "input_format=face_shards",
                   f"output={uv}", f"ckpt={checkpoint}", "resolution=32", "num_parts=2", "workers=2",
                   "max_landmark_error=1.0", "progress=false", f"hydra.run.dir={tmp_path / 'h1'}")  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    assert f"{FACES} UV textures from {FACES} inputs in 2 part(s)" in made.stdout

    tiny_gan = ["model.generator.resolution=32", "model.generator.z_dim=16", "model.generator.w_dim=16",
                "model.generator.base_channels=16", "model.generator.max_channels=32",
                "model.discriminator.base_channels=16", "model.discriminator.max_channels=32", "data.batch_size=4",
                "data.num_workers=0", "+trainer.enable_progress_bar=false"]  # fmt: skip
    run_dir = tmp_path / "gan"
    trained = command(
        "train.py",
        "experiment=texture_gan",
        f"data.urls={uv}/part-*/uv-*.tar",
        "model.masked_loss=true",
        "trainer.max_steps=4",
        f"hydra.run.dir={run_dir}",
        *tiny_gan,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    prior = tmp_path / "prior.pt"
    exported = command("scripts/export_texture_prior.py", str(run_dir / "checkpoints" / "last.ckpt"),
                       "--output", str(prior), "--samples", "16", "--select-samples", "16")  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    tiny = [override for override in TINY_MODEL_OVERRIDES if not override.startswith("texture.")]
    fitted = command("fit.py", f"image={tmp_path / 'astronaut.png'}", "texture=gan", f"texture.path={prior}", *tiny,
                     "ganfit.stages.align.steps=2", "ganfit.stages.full.steps=1", "ganfit.stages.colour.steps=1",
                     f"output={tmp_path / 'out'}", "progress=false", f"hydra.run.dir={tmp_path / 'h2'}")  # fmt: skip
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    folder = tmp_path / "out" / "astronaut"
    with np.load(folder / "params.npz") as params:
        assert params["texture"].shape == (16,)  # the new prior's w latent
    assert Image.open(folder / "texture_model.png").size == (32, 32)


def test_detail_crops_are_the_crops_at_a_finer_pixel_grid() -> None:
    photo = data.astronaut()
    transform = np.array([[0.3, 0.05, -20.0], [-0.05, 0.3, -10.0]])
    crop = torch.from_numpy(warp_image(photo, transform, CROP).copy()).permute(2, 0, 1).float() / 255
    assert torch.equal(detail_crops([photo], [transform], CROP, 1)[0], crop)
    sharp = detail_crops([photo], [transform], CROP, 3)
    assert sharp.shape == (1, 3, 3 * CROP, 3 * CROP)
    # detail pixels 3c, 3c+1, 3c+2 surround crop pixel c: their mean is that pixel, up to the photo's detail
    assert (torch.nn.functional.avg_pool2d(sharp, 3)[0] - crop).abs().mean() < 0.02
    assert detail_scale(128, 224) == 2 and detail_scale(256, 64) == 4 and detail_scale(16, 224) == 1


def test_documented_commands_compose() -> None:
    """Every ``photo_uv_shards`` command in README.md and docs/textures.md composes, and passes the option checks."""
    pattern = re.compile(r"python -m fastganfit\.cli\.photo_uv_shards ([^`\n]+)")
    texts = [(REPO / name).read_text() for name in ("README.md", "docs/textures.md")]
    found = [match.group(1) for text in texts for match in pattern.finditer(text)]
    assert len(found) >= 4
    for arguments in found:
        overrides = [a.replace("$SLURM_ARRAY_TASK_ID", "3") for a in arguments.split() if "=" in a]
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            check(compose("photo_uv_shards", overrides=overrides))


def test_uv_sample_info_must_be_a_dict(tmp_path) -> None:
    texture = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="sample 'a': info must be a dict, got str"):
        write_uv_shards([("a", texture, None, "source.jpg")], tmp_path)
    write_uv_shards([("a", texture, None, {"source": "a.jpg"})], tmp_path / "ok")
    assert json.loads(read_samples(sorted((tmp_path / "ok").glob("*.tar")))["a"]["json"]) == {"source": "a.jpg"}
