"""Face-sample shards: writer (atomic, reproducible, validating) and the webdataset reader."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastganfit.data.face_shards import (
    PARAM_NAMES,
    FaceShardWriter,
    decode_face_sample,
    encode_face_sample,
    face_dataset,
    face_shard_urls,
    read_face_manifest,
    save_face_preview,
)
from fastganfit.io.landmark_overlays import draw_landmarks

S = 32


def sample(index: int, synthetic: bool = True) -> dict:
    rng = np.random.default_rng(index)
    gradient = np.linspace(0, 255, S, dtype=np.float32)
    channels = [np.add.outer(gradient, gradient) / 2, np.tile(gradient, (S, 1)), np.full((S, S), 40.0 * index)]
    image = np.stack(channels, -1)
    result = {
        "key": f"face{index:03d}",
        "image": image.astype(np.uint8),
        "landmarks": rng.uniform(0, S - 1, (68, 2)),
        "metadata": {
            "source": f"test:{index}",
            "box": [1, 2, 30, 31],
            "crop_transform": np.eye(2, 3),
            "landmarker": "synthetic",
        },
    }
    if synthetic:
        result["params"] = {name: rng.normal(size=3 + k) for k, name in enumerate(PARAM_NAMES)}
        result["vertices"] = rng.normal(size=(12, 3)) * 50
    return result


def write_set(folder: Path, samples: list[dict], **kwargs) -> list[Path]:
    with FaceShardWriter(folder, **kwargs) as writer:
        for item in samples:
            writer.write(**item)
    writer.write_manifest(note="test")
    return writer.close()


def test_round_trip_keeps_every_member(tmp_path: Path) -> None:
    samples = [sample(0), sample(1, synthetic=False), sample(2)]
    shards = write_set(tmp_path, samples, max_per_shard=2)
    assert [path.name for path in shards] == ["faces-000000.tar", "faces-000001.tar"]
    manifest = read_face_manifest(tmp_path)
    assert manifest["samples"] == 3 and manifest["crop_size"] == S and manifest["note"] == "test"
    assert [entry["samples"] for entry in manifest["shards"]] == [2, 1]
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        assert {member.mtime for member in tar.getmembers()} == {0}
        with zipfile.ZipFile(io.BytesIO(tar.extractfile("face000.params.npz").read())) as archive:
            assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert names == [f"face000.{m}" for m in ("jpg", "json", "landmarks.npy", "params.npz", "vertices.npy")] + [
        "face001.jpg",
        "face001.json",
        "face001.landmarks.npy",
    ]
    decoded = list(face_dataset(tmp_path))
    assert [item["key"] for item in decoded] == ["face000", "face001", "face002"]
    for item, original in zip(decoded, samples, strict=True):
        assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
        jpeg_error = (item["image"].permute(1, 2, 0) * 255 - torch.from_numpy(original["image"]).float()).abs().mean()
        assert jpeg_error < 3.0  # quality 95 JPEG of a smooth image
        assert item["landmarks"].dtype == torch.float32
        np.testing.assert_allclose(item["landmarks"].numpy(), original["landmarks"], rtol=1e-6)
        assert item["metadata"]["crop_size"] == S and item["metadata"]["crop_transform"] == np.eye(2, 3).tolist()
        assert item["metadata"]["source"] == original["metadata"]["source"]
        assert ("params" in item) == ("params" in original)
        if "params" in item:
            assert list(item["params"]) == list(PARAM_NAMES)
            for name in PARAM_NAMES:
                np.testing.assert_allclose(item["params"][name].numpy(), original["params"][name], rtol=1e-6)
            np.testing.assert_allclose(item["vertices"].numpy(), original["vertices"], rtol=1e-6)


def test_identical_input_gives_identical_bytes(tmp_path: Path) -> None:
    write_set(tmp_path / "a", [sample(i) for i in range(3)])
    write_set(tmp_path / "b", [sample(i) for i in range(3)])
    assert (tmp_path / "a/faces-000000.tar").read_bytes() == (tmp_path / "b/faces-000000.tar").read_bytes()
    write_set(tmp_path / "c", [sample(i) for i in (0, 1, 3)])
    assert (tmp_path / "a/faces-000000.tar").read_bytes() != (tmp_path / "c/faces-000000.tar").read_bytes()


def test_url_forms(tmp_path: Path) -> None:
    shards = write_set(tmp_path, [sample(i) for i in range(5)], max_per_shard=2)
    brace = str(tmp_path / read_face_manifest(tmp_path)["urls"])
    expected = [str(path) for path in shards]
    for urls in (tmp_path, str(tmp_path), expected, str(tmp_path / "faces-*.tar"), brace, [brace]):
        assert face_shard_urls(urls) == expected, urls
    shuffled = [item["key"] for item in face_dataset(tmp_path, shuffle_buffer=3)]
    assert sorted(shuffled) == [f"face{i:03d}" for i in range(5)]
    with pytest.raises(FileNotFoundError, match="no face shards match"):
        face_shard_urls(str(tmp_path / "other-*.tar"))
    with pytest.raises(FileNotFoundError, match=r"faces-000009\.tar does not exist"):
        face_shard_urls(str(tmp_path / "faces-000009.tar"))
    with pytest.raises(FileNotFoundError, match=r"manifest\.json does not exist"):
        face_shard_urls(tmp_path.parent)
    shards[1].unlink()
    with pytest.raises(FileNotFoundError, match=r"lists shards that do not exist: \['faces-000001\.tar'\]"):
        face_shard_urls(tmp_path)


def test_split_across_ranks_is_disjoint_and_complete(tmp_path: Path, monkeypatch) -> None:
    write_set(tmp_path, [sample(i) for i in range(6)], max_per_shard=1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        seen.append([item["key"] for item in face_dataset(tmp_path)])
    assert seen == [["face000", "face002", "face004"], ["face001", "face003", "face005"]]
    assert len(list(face_dataset(tmp_path, split_by_node=False))) == 6


def test_writer_is_atomic_and_refuses_to_mix_sets(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="source broke"), FaceShardWriter(tmp_path, max_per_shard=2) as writer:
        for i in range(3):
            writer.write(**sample(i))
        raise RuntimeError("source broke")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["faces-000000.tar"]  # no half shard, no manifest
    with pytest.raises(FileExistsError, match="already holds face shards"):
        FaceShardWriter(tmp_path)
    write_set(tmp_path, [sample(7)], overwrite=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["faces-000000.tar", "manifest.json"]
    assert [item["key"] for item in face_dataset(tmp_path)] == ["face007"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"key": "a.b"}, "must not contain"),
        ({"image": np.zeros((S, S + 1, 3), np.uint8)}, "face crops are square"),
        ({"image": np.zeros((S, S, 3), np.int32)}, "expected float"),
        ({"landmarks": np.zeros((5, 2))}, r"landmarks must be \[68, 2\]"),
        ({"landmarks": np.full((68, 2), np.nan)}, "landmarks: contains NaN"),
        ({"metadata": {"source": "x"}}, "metadata lacks"),
        ({"metadata": {"source": "x", "box": [0, 0, 1], "crop_transform": np.eye(2, 3), "landmarker": "x"}}, "box"),
        ({"metadata": {**sample(0)["metadata"], "extra": object()}}, "metadata cannot be written as JSON"),
        ({"metadata": {**sample(0)["metadata"], "crop_size": 64}}, "crop_size 64 differs from the image's 32"),
        ({"params": {"shape": np.zeros(3)}}, "params must be a dict with exactly"),
        ({"params": None}, "needs both params and vertices"),
        ({"vertices": np.zeros((4, 2))}, r"vertices must be \[V, 3\]"),
    ],
)
def test_writer_rejects_bad_samples_by_key(tmp_path: Path, change: dict, message: str) -> None:
    writer = FaceShardWriter(tmp_path)
    with pytest.raises((ValueError, TypeError), match=message):
        writer.write(**{**sample(0), **change})
    writer.write(**sample(1))
    with pytest.raises(ValueError, match="occurs twice"):
        writer.write(**sample(1))
    with pytest.raises(ValueError, match="crop is 16x16, earlier samples are 32"):
        writer.write(**{**sample(2), "image": np.zeros((16, 16, 3), np.uint8)})
    assert writer.close() == [tmp_path / "faces-000000.tar"]
    assert [item["key"] for item in face_dataset(tmp_path / "faces-000000.tar")] == ["face001"]


def test_corrupt_samples_are_skipped_warned_and_counted(tmp_path: Path) -> None:
    records = {
        f"{item['key']}.{name}": data
        for item in (sample(0), sample(1), sample(2))
        for name, data in _encoded(item).items()
    }
    records["face001.landmarks.npy"] = b"not an npy file"
    records["face002.jpg"] = b"\xff\xd8 truncated"
    path = tmp_path / "faces-000000.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in records.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dataset = face_dataset(path)
    with pytest.warns(RuntimeWarning, match="skipping corrupt face sample") as caught:
        keys = [item["key"] for item in dataset]
    assert keys == ["face000"]
    assert dataset.corrupt_samples.count == 2
    assert any(f"{path}: sample 'face001'.landmarks.npy" in str(w.message) for w in caught)
    assert any("sample 'face002'.jpg: cannot decode image" in str(w.message) for w in caught)


def _encoded(item: dict) -> dict[str, bytes]:
    record = encode_face_sample(**item)
    return {name: data for name, data in record.items() if name != "__key__"}


def test_decode_names_shard_and_key_for_missing_members() -> None:
    record = {"__key__": "k", "__url__": "shard.tar", **_encoded(sample(0))}
    del record["vertices.npy"]
    with pytest.raises(ValueError, match=r"shard.tar: sample 'k': has only one of"):
        decode_face_sample(record)
    record = {"__key__": "k", "__url__": "shard.tar", "jpg": _encoded(sample(0))["jpg"]}
    with pytest.raises(ValueError, match=r"shard.tar: sample 'k': no 'landmarks.npy' member \(has \['jpg'\]\)"):
        decode_face_sample(record)
    record = {"__key__": "k", **_encoded(sample(0)), "json": b"[1, 2]"}
    with pytest.raises(ValueError, match="expected a JSON object"):
        decode_face_sample(record)
    assert json.loads(_encoded(sample(0))["json"])["landmarker"] == "synthetic"


def test_preview_draws_landmarks(tmp_path: Path) -> None:
    write_set(tmp_path, [sample(i) for i in range(3)])
    path = save_face_preview(tmp_path, tmp_path / "preview.png", count=2, columns=2)
    with Image.open(path) as image:
        assert image.size == (2 * S + 3 * 2, S + 2 * 2)  # two tiles and 2-pixel padding
    black = np.zeros((S, S, 3), np.uint8)
    points = np.array([[3.0, 4.0], [20.0, 10.0]])
    drawn = draw_landmarks(black, points, visible=[True, False], lines=False)
    assert tuple(drawn[4, 3]) == (40, 230, 60) and tuple(drawn[10, 20]) == (240, 60, 40)
    assert drawn.sum() > 0 and not black.any()  # a new image; the input is untouched
    with pytest.raises(ValueError, match=r"landmarks: expected \[L, 2\]"):
        draw_landmarks(black, np.zeros((68, 3)))
