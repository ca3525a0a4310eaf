"""UV-texture shards: writer, webdataset reader and the folder-to-shards command (fastganfit-uv-shards)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from data_commands import command_status
from PIL import Image

from fastganfit.cli import uv_shards as uv_shards_command
from fastganfit.data.uv_shards import (
    NoSamplesError,
    shard_urls,
    uv_texture_dataset,
    write_uv_shards,
)

R = 16
ROOT = Path(__file__).resolve().parents[1]


def float_sample(key: str, mask: torch.Tensor | None = None) -> tuple[str, torch.Tensor, torch.Tensor | None]:
    return key, torch.rand(3, R, R), mask


def read_all(urls, **kwargs) -> list[dict]:
    return list(uv_texture_dataset(urls, **kwargs))


def test_round_trip(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (R, R, 3), dtype=np.uint8)
    soft = torch.randint(0, 256, (R, R)).float() / 255
    samples = [
        float_sample("plain"),
        float_sample("boolmask", torch.rand(R, R) > 0.5),
        float_sample("floatmask", (torch.rand(R, R) > 0.5).float()),
        float_sample("softmask", soft),
        ("uint8", rgb, None),
        ("tensor_uint8", torch.from_numpy(rgb), torch.ones(1, R, R, dtype=torch.bool)),
    ]
    write_uv_shards(samples, tmp_path)
    loaded = read_all(tmp_path)
    assert [sample["key"] for sample in loaded] == [key for key, _, _ in samples]
    for (key, texture, mask), sample in zip(samples, loaded, strict=True):
        assert set(sample) == {"texture", "mask", "key", "__key__"} and sample["__key__"] == sample["key"]
        assert sample["texture"].shape == (3, R, R) and sample["texture"].dtype == torch.float32
        assert sample["mask"].shape == (1, R, R) and sample["mask"].dtype == torch.float32
        if isinstance(texture, torch.Tensor) and texture.is_floating_point():
            assert (sample["texture"] - texture).abs().max() <= 0.5 / 255 + 1e-6, key
        else:
            expected = torch.from_numpy(np.asarray(rgb)).permute(2, 0, 1).float() / 255
            assert torch.equal(sample["texture"], expected), key
        expected_mask = torch.ones(1, R, R) if mask is None else torch.as_tensor(mask).float().reshape(1, R, R)
        assert torch.equal(sample["mask"], expected_mask), key


def test_shards_split_by_max_per_shard_with_manifest(tmp_path: Path) -> None:
    samples = [float_sample(f"k{i}", torch.rand(R, R) > 0.5 if i % 3 == 0 else None) for i in range(7)]
    shards = write_uv_shards(samples, tmp_path, max_per_shard=3)
    assert [path.name for path in shards] == ["uv-000000.tar", "uv-000001.tar", "uv-000002.tar"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["manifest.json", *(path.name for path in shards)]
    with tarfile.open(shards[1]) as tar:
        assert tar.getnames() == ["k3.mask.png", "k3.png", "k4.png", "k5.png"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == {
        "format": "fastganfit-uv-shards",
        "version": 1,
        "resolution": R,
        "samples": 7,
        "masked_samples": 3,
        "members": {"texture": "png", "mask": "mask.png"},
        "urls": "uv-{000000..000002}.tar",
        "shards": [
            {"name": "uv-000000.tar", "samples": 3, "masked_samples": 1},
            {"name": "uv-000001.tar", "samples": 3, "masked_samples": 1},
            {"name": "uv-000002.tar", "samples": 1, "masked_samples": 1},
        ],
    }
    keys = [f"k{i}" for i in range(7)]
    brace = str(tmp_path / manifest["urls"])
    for urls in (tmp_path, [str(path) for path in shards], str(tmp_path / "uv-*.tar"), brace):
        assert [sample["key"] for sample in read_all(urls)] == keys, urls
    shuffled = read_all(tmp_path, shuffle_buffer=4)
    assert sorted(sample["key"] for sample in shuffled) == keys


def test_shards_are_split_across_ranks_and_workers(tmp_path: Path, monkeypatch) -> None:
    write_uv_shards([float_sample(f"k{i}") for i in range(4)], tmp_path, max_per_shard=1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert [sample["key"] for sample in read_all(tmp_path)] == ["k1", "k3"]
    assert [sample["key"] for sample in read_all(tmp_path, split_by_node=False)] == ["k0", "k1", "k2", "k3"]
    monkeypatch.setenv("WORKER", "1")
    monkeypatch.setenv("NUM_WORKERS", "2")
    assert [sample["key"] for sample in read_all(tmp_path)] == ["k3"]
    assert [sample["key"] for sample in read_all(tmp_path, split_by_worker=False)] == ["k1", "k3"]
    for name in ("RANK", "WORLD_SIZE", "WORKER", "NUM_WORKERS"):
        monkeypatch.delenv(name)
    loader = torch.utils.data.DataLoader(uv_texture_dataset(tmp_path), batch_size=None, num_workers=2)
    assert sorted(sample["key"] for sample in loader) == ["k0", "k1", "k2", "k3"]


def test_writing_is_atomic_and_never_mixes_shard_sets(tmp_path: Path) -> None:
    def failing():
        for i in range(4):
            yield float_sample(f"k{i}")
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_uv_shards(failing(), tmp_path, max_per_shard=3)
    assert [path.name for path in tmp_path.iterdir()] == ["uv-000000.tar"]  # no half shard, no manifest
    for path in tmp_path.iterdir():
        path.unlink()
    write_uv_shards([float_sample(f"k{i}") for i in range(5)], tmp_path, max_per_shard=2)
    with pytest.raises(FileExistsError, match="already holds UV shards"):
        write_uv_shards([float_sample("new")], tmp_path)
    write_uv_shards([float_sample("new")], tmp_path, overwrite=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["manifest.json", "uv-000000.tar"]
    assert [sample["key"] for sample in read_all(str(tmp_path / "uv-*.tar"))] == ["new"]


@pytest.mark.parametrize(
    ("samples", "error", "message"),
    [
        ([float_sample("a.b")], ValueError, "must not contain"),
        ([float_sample("a"), float_sample("a")], ValueError, "'a' occurs twice"),
        ([float_sample("a"), ("b", torch.rand(3, 8, 8), None)], ValueError, "8x8, earlier samples are 16x16"),
        ([("a", torch.rand(3, R, R + 1), None)], ValueError, "17x16, UV textures are square"),
        ([("a", torch.rand(R, R, 3), None)], ValueError, "sample 'a' texture"),
        ([("a", torch.full((3, R, R), float("nan")), None)], ValueError, "sample 'a' texture"),
        ([float_sample("a", torch.ones(R, R, dtype=torch.uint8))], TypeError, "bool or float"),
        ([float_sample("a", torch.ones(R, 8))], ValueError, r"mask must be \[16, 16\]"),
        ([("a", torch.rand(3, R, R))], ValueError, "tuples"),
        ([], NoSamplesError, "no samples"),
    ],
)
def test_writer_rejects_bad_samples(tmp_path: Path, samples, error, message) -> None:
    with pytest.raises(error, match=message):
        write_uv_shards(samples, tmp_path)
    assert not (tmp_path / "manifest.json").exists()


def rewrite_tar(path: Path, replace: dict[str, bytes], add: dict[str, bytes]) -> None:
    """Rewrite the shard at ``path`` with some members' contents replaced and members added."""
    with tarfile.open(path) as tar:
        members = [(member.name, tar.extractfile(member).read()) for member in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for name, data in [*((name, replace.get(name, data)) for name, data in members), *add.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_corrupt_samples_are_skipped_with_a_warning_and_counted(tmp_path: Path) -> None:
    masks = torch.rand(4, R, R) > 0.5
    (shard,) = write_uv_shards([float_sample(f"k{i}", masks[i]) for i in range(4)], tmp_path)
    with tarfile.open(shard) as tar:
        truncated_mask = tar.extractfile("k2.mask.png").read()[:40]
    rewrite_tar(shard, replace={"k1.png": b"not a png", "k2.mask.png": truncated_mask}, add={"k9.mask.png": b"x"})
    dataset = uv_texture_dataset(shard)
    with pytest.warns(RuntimeWarning, match="skipping corrupt UV-texture sample") as caught:
        loaded = list(dataset)
    assert [sample["key"] for sample in loaded] == ["k0", "k3"]
    assert torch.equal(loaded[1]["mask"][0], masks[3].float())
    assert dataset.corrupt_samples.count == 3
    messages = " ".join(str(warning.message) for warning in caught)
    assert "'k1'.png: cannot decode image" in messages and "'k2'.mask.png" in messages
    assert "'k9': no 'png' member" in messages


def test_resizing_keeps_masks_binary_and_masked_colours_out(tmp_path: Path) -> None:
    texture = torch.full((3, R, R), 0.2)
    texture[:, :, R // 2 :] = 1.0  # colour of the missing half, must not leak into kept texels
    mask = torch.zeros(R, R, dtype=torch.bool)
    mask[:, : R // 2] = True
    write_uv_shards([("half", texture, mask), ("flat", torch.full((3, R, R), 0.6), None)], tmp_path)
    half, flat = read_all(tmp_path, resolution=8)
    assert half["texture"].shape == (3, 8, 8) and half["mask"].shape == (1, 8, 8)
    assert set(half["mask"].unique().tolist()) == {0.0, 1.0}
    assert half["mask"][:, :, :3].all() and not half["mask"][:, :, 4:].any()
    kept = half["mask"].expand(3, -1, -1).bool()
    torch.testing.assert_close(half["texture"][kept], torch.full((int(kept.sum()),), 0.2))
    torch.testing.assert_close(flat["texture"], torch.full((3, 8, 8), 0.6))
    assert torch.equal(flat["mask"], torch.ones(1, 8, 8))
    half_up, _ = read_all(tmp_path, resolution=32)
    assert half_up["texture"].shape == (3, 32, 32) and set(half_up["mask"].unique().tolist()) == {0.0, 1.0}
    assert half_up["mask"][:, :, :14].all() and not half_up["mask"][:, :, 16:].any()


def test_shard_urls_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        shard_urls([str(tmp_path / "missing.tar")])
    with pytest.raises(FileNotFoundError, match="no UV shards match"):
        shard_urls(str(tmp_path / "uv-*.tar"))
    with pytest.raises(FileNotFoundError, match=r"manifest\.json does not exist"):
        shard_urls(tmp_path)
    with pytest.raises(ValueError, match="no UV shard URLs"):
        shard_urls([])


def save_image(path: Path, array: np.ndarray) -> np.ndarray:
    """Save ``array`` and return the pixels a reader gets back (JPG is lossy)."""
    Image.fromarray(array).save(path)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB" if array.ndim == 3 else "L"))


@pytest.fixture
def image_folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """good1.png + good1_mask.png, face.v2.jpg, big.png (32x32), bad.png (text), an orphan mask, notes."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "uv_images"
    folder.mkdir()
    pixels = {
        "good1": save_image(folder / "good1.png", rng.integers(0, 256, (R, R, 3), dtype=np.uint8)),
        "good1_mask": save_image(folder / "good1_mask.png", (rng.random((R, R)) > 0.5).astype(np.uint8) * 255),
        "face_v2": save_image(folder / "face.v2.jpg", rng.integers(0, 256, (R, R, 3), dtype=np.uint8)),
        "big": save_image(folder / "big.png", rng.integers(0, 256, (2 * R, 2 * R, 3), dtype=np.uint8)),
    }
    save_image(folder / "orphan_mask.png", np.zeros((R, R), np.uint8))
    (folder / "bad.png").write_text("this is a text file, not a PNG")
    (folder / "notes.txt").write_text("ignored")
    return folder, pixels


def as_texture(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255


def uv_shards(*overrides: str) -> int:
    """The exit status of ``fastganfit-uv-shards`` with ``overrides``."""
    return command_status(uv_shards_command, "uv_shards", *overrides)


def test_cli_converts_a_folder_and_reports_skipped_files(image_folder, tmp_path: Path, capsys) -> None:
    folder, pixels = image_folder
    output = tmp_path / "shards"
    assert uv_shards(f"input={folder}", f"output={output}") == 0
    captured = capsys.readouterr()
    assert f"skipped {folder / 'bad.png'}: cannot read image (UnidentifiedImageError" in captured.err
    assert f"skipped {folder / 'big.png'}: it is 32x32, most images are 16x16; pass resolution=N" in captured.err
    assert f"skipped {folder / 'orphan_mask.png'}: no texture named orphan.* for this mask" in captured.err
    assert "notes.txt" not in captured.err
    assert "wrote 2 UV textures (1 with masks, 16x16) to 1 shards" in captured.out and "skipped 3 files" in captured.out
    face, good = read_all(output)
    assert (face["key"], good["key"]) == ("face_v2", "good1")
    assert torch.equal(face["texture"], as_texture(pixels["face_v2"]))
    assert torch.equal(face["mask"], torch.ones(1, R, R))
    assert torch.equal(good["texture"], as_texture(pixels["good1"]))
    assert torch.equal(good["mask"][0], torch.from_numpy(pixels["good1_mask"] / 255).float())

    assert uv_shards(f"input={folder}", f"output={output}") == 1
    assert "already holds UV shards" in capsys.readouterr().err
    assert uv_shards(f"input={folder}", f"output={output}", "resolution=8", "max_per_shard=2", "overwrite=true") == 0
    manifest = json.loads((output / "manifest.json").read_text())
    assert (manifest["resolution"], manifest["samples"], len(manifest["shards"])) == (8, 3, 2)
    assert [sample["texture"].shape[-1] for sample in read_all(output)] == [8, 8, 8]


def test_cli_fails_without_usable_images(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert uv_shards(f"input={empty}", f"output={tmp_path / 'out'}") == 1
    assert "no texture images" in capsys.readouterr().err
    (empty / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert uv_shards(f"input={empty}", f"output={tmp_path / 'out'}") == 1
    err = capsys.readouterr().err
    assert "broken.jpg: cannot read image" in err and "none of the 1 images" in err
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert uv_shards(f"input={empty}", "resolution=0", f"output={tmp_path}") == 2
    assert "fastganfit-uv-shards: error: resolution must be an integer of at least 1, got 0" in capsys.readouterr().err
    assert uv_shards(f"input={empty}", "overwrite=maybe", f"output={tmp_path}") == 2
    assert "overwrite must be true or false, got 'maybe'" in capsys.readouterr().err
    assert uv_shards(f"input={empty}") == 2
    assert "give output=DIR" in capsys.readouterr().err


def test_console_command_exits_1_on_a_missing_folder_and_2_on_a_missing_option(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "fastganfit.cli.uv_shards", f"input={tmp_path / 'nope'}"]
    result = subprocess.run([*command, f"output={tmp_path / 'o'}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 1
    assert f"input folder {tmp_path / 'nope'} does not exist" in result.stderr
    assert not (tmp_path / "o").exists()
    outside = {**os.environ, "PYTHONPATH": str(ROOT)}  # run from an empty folder, with this checkout's package
    result = subprocess.run(command, cwd=tmp_path, env=outside, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "fastganfit-uv-shards: error: give output=DIR" in result.stderr
    assert not any(tmp_path.iterdir())  # no Hydra run folder or log file is left behind
