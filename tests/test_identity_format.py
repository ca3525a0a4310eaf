"""dlib serialisation parser, architecture check and converted-weights cache of the dlib ResNet."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fastganfit.perception import dlib_resnet
from fastganfit.perception.dlib_format import parse_dlib_network, read_dlib_network
from fastganfit.perception.dlib_resnet import (
    DlibResNet,
    cache_path,
    default_model_path,
    load_dlib_resnet,
    network_state_dict,
)


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return default_model_path().read_bytes()


@pytest.fixture(scope="module")
def network(model_bytes):
    return parse_dlib_network(model_bytes, "model.dat")


def test_parse_reads_whole_network(network) -> None:
    kinds = [layer.kind for layer in network.layers]
    assert kinds.count("con") == 29
    assert kinds.count("affine") == 29
    assert kinds.count("fc") == 1 and kinds[-1] == "fc"
    assert sum(a.size for layer in network.layers for a in layer.arrays.values()) == 5_614_592
    assert network.input_size == (150, 150)
    assert network.input_mean == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    first = network.layers[0]
    assert first.arrays["weight"].shape == (32, 3, 7, 7) and first.arrays["bias"].shape == (32,)
    assert network.layers[-1].arrays["weight"].shape == (256, 128)


def test_state_dict_fills_every_parameter(network) -> None:
    state = network_state_dict(network)
    model = DlibResNet()
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state)
    assert torch.equal(model.conv.weight, torch.from_numpy(network.layers[0].arrays["weight"]))


@pytest.mark.parametrize("cut", [5, 300, 20_000, 11_000_000, -3])
def test_truncated_file_names_file_and_offset(model_bytes, cut) -> None:
    with pytest.raises(ValueError, match=r"model\.dat: .*at byte offset \d+") as error:
        parse_dlib_network(model_bytes[:cut], "model.dat")
    assert "ends early" in str(error.value)


def test_truncation_inside_a_layer_names_the_record(model_bytes) -> None:
    with pytest.raises(ValueError, match=r"layer record 'con_4' starting at byte 334"):
        parse_dlib_network(model_bytes[:1000], "model.dat")


def test_trailing_bytes_are_rejected(model_bytes) -> None:
    with pytest.raises(ValueError, match="unexpected bytes after the last layer"):
        parse_dlib_network(model_bytes + b"\x00\x00", "model.dat")


def test_other_dlib_file_is_rejected() -> None:
    other = default_model_path().with_name("shape_predictor_5_face_landmarks.dat")
    with pytest.raises(ValueError, match=rf"{other.name}: not a valid dlib metric-network file"):
        read_dlib_network(other)


def test_garbage_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"junk\.dat: .*byte offset 0"):
        parse_dlib_network(b"\xff" * 64, "junk.dat")


def test_missing_file_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="face-recognition-models"):
        load_dlib_resnet(tmp_path / "absent.dat", cache_dir=tmp_path)


def test_wrong_architecture_is_rejected(network) -> None:
    layers = list(network.layers)
    conv = layers[4]
    layers[4] = dataclasses.replace(conv, config={**conv.config, "stride_y": 2, "stride_x": 2})
    with pytest.raises(ValueError, match=rf"convolution record at byte {conv.offset}"):
        network_state_dict(dataclasses.replace(network, layers=tuple(layers)), "model.dat")
    shorter = dataclasses.replace(network, layers=network.layers[:-2] + network.layers[-1:])
    with pytest.raises(ValueError, match="not dlib's face-recognition ResNet"):
        network_state_dict(shorter, "model.dat")


def test_cache_is_written_keyed_by_hash_and_used(tmp_path: Path, monkeypatch) -> None:
    first = load_dlib_resnet(cache_dir=tmp_path)
    entry = cache_path(default_model_path(), tmp_path)
    assert entry.is_file() and entry.parent.parent == tmp_path
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]

    def refuse(*_args, **_kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(dlib_resnet, "read_dlib_network", refuse)
    second = load_dlib_resnet(cache_dir=tmp_path)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key])


def test_cache_key_follows_file_content(tmp_path: Path, model_bytes) -> None:
    copy = tmp_path / "copy.dat"
    copy.write_bytes(model_bytes)
    assert cache_path(copy, tmp_path) == cache_path(default_model_path(), tmp_path)
    changed = tmp_path / "changed.dat"
    changed.write_bytes(model_bytes[:-1] + b"1")
    assert cache_path(changed, tmp_path) != cache_path(copy, tmp_path)


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    entry = cache_path(default_model_path(), tmp_path)
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="rebuilding"):
        model = load_dlib_resnet(cache_dir=tmp_path)
    assert entry.stat().st_size > 20_000_000
    reference = load_dlib_resnet(use_cache=False)
    assert torch.equal(model.fc.weight, reference.fc.weight)
