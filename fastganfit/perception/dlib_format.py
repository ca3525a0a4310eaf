"""Reader for dlib's binary serialisation of a ``loss_metric`` network (``*.dat`` files).

dlib writes a network from the loss layer inwards: each wrapper first writes its version number and
then its sub-network, so the file holds all wrapper versions (``2`` for a computational layer, ``1``
for a tag or skip layer, ``3`` for the layer that sits on the input), then the input layer, then one
record per computational layer from the input towards the output.  Each record is the layer's
details (starting with its name) followed by three booleans and three (normally empty) tensors of
training state; the record of the layer on the input also ends with its sample expansion factor.
See ``docs/identity.md`` for the primitives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LAYER_WRAPPER = 2
TAG_OR_SKIP_WRAPPER = 1
INPUT_WRAPPER = 3


@dataclass(frozen=True)
class DlibLayer:
    """One computational layer record.

    ``kind`` is one of ``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``, ``add_prev``, ``fc``;
    ``arrays`` holds its parameters as float32 arrays and ``config`` its integer settings.
    """

    kind: str
    offset: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    config: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DlibNetwork:
    """A parsed dlib metric network.

    ``wrappers`` lists the wrapper versions from the output towards the input (see module docstring);
    ``layers`` lists the computational layers from the input towards the output.
    """

    loss: str
    input_mean: tuple[float, float, float]
    input_size: tuple[int, int]
    wrappers: tuple[int, ...]
    layers: tuple[DlibLayer, ...]


class _Reader:
    """Sequential reader of dlib serialisation primitives with errors that name file and offset."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.pos = 0
        self.context = "file header"

    def fail(self, message: str, offset: int | None = None) -> ValueError:
        where = self.pos if offset is None else offset
        return ValueError(
            f"{self.source}: not a valid dlib metric-network file: {message} "
            f"at byte offset {where} (while reading {self.context})"
        )

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail(f"file ends early: {what} needs {count} bytes, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self, what: str) -> int:
        start = self.pos
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x} for {what}", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def real(self, what: str) -> float:
        mantissa = self.integer(f"{what} (mantissa)")
        exponent = self.integer(f"{what} (exponent)")
        return math.ldexp(mantissa, exponent) if mantissa else 0.0

    def boolean(self, what: str) -> bool:
        start = self.pos
        char = self.take(1, what)
        if char not in (b"0", b"1"):
            raise self.fail(f"expected boolean '0' or '1' for {what}, found byte 0x{char[0]:02x}", start)
        return char == b"1"

    def string(self, what: str, max_length: int = 256) -> str:
        start = self.pos
        length = self.integer(f"{what} (length)")
        if not 0 <= length <= max_length:
            raise self.fail(f"implausible string length {length} for {what}", start)
        raw = self.take(length, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as error:
            raise self.fail(f"{what} is not ASCII text", start) from error

    def expect(self, value: int, what: str) -> None:
        start = self.pos
        found = self.integer(what)
        if found != value:
            raise self.fail(f"expected {what} = {value}, found {found}", start)

    def tensor(self, what: str) -> np.ndarray:
        """A float tensor as a float32 array of shape ``[n, k, nr, nc]``."""
        start = self.pos
        self.expect(2, f"{what} (tensor version)")
        dims = tuple(self.integer(f"{what} (dimension)") for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor dimensions {dims} for {what}", start)
        count = math.prod(dims)
        raw = self.take(4 * count, f"{what} ({count} float32 values)")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        self.expect(1, f"{what} (alias version)")
        n, k, nr, nc = (self.integer(f"{what} (dimension)") for _ in range(4))
        return n, k, nr, nc


def _read_con(reader: _Reader, offset: int) -> DlibLayer:
    params = reader.tensor("convolution parameters").reshape(-1)
    keys = ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    config = {key: reader.integer(key) for key in keys}
    filters = reader.alias("filter shape")
    reader.alias("bias shape")
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        reader.real(f"{name} multiplier")
    num_filters, in_channels, nr, nc = filters
    if (num_filters, nr, nc) != (config["num_filters"], config["nr"], config["nc"]):
        raise reader.fail(f"filter shape {filters} disagrees with the layer settings {config}", offset)
    weight_count = math.prod(filters)
    if params.size != weight_count + num_filters:
        raise reader.fail(
            f"convolution has {params.size} parameters, expected {weight_count} weights + {num_filters} biases",
            offset,
        )
    arrays = {"weight": params[:weight_count].reshape(filters), "bias": params[weight_count:]}
    return DlibLayer("con", offset, arrays, {**config, "in_channels": in_channels})


def _read_affine(reader: _Reader, offset: int) -> DlibLayer:
    params = reader.tensor("affine parameters").reshape(-1)
    gamma = reader.alias("gamma shape")
    reader.alias("beta shape")
    mode = reader.integer("affine mode")
    channels = math.prod(gamma)
    if params.size != 2 * channels:
        raise reader.fail(f"affine layer has {params.size} parameters, expected 2 x {channels}", offset)
    return DlibLayer("affine", offset, {"gamma": params[:channels], "beta": params[channels:]}, {"mode": mode})


def _read_pool(kind: str, reader: _Reader, offset: int) -> DlibLayer:
    keys = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    return DlibLayer(kind, offset, {}, {key: reader.integer(key) for key in keys})


def _read_fc(reader: _Reader, offset: int) -> DlibLayer:
    num_outputs = reader.integer("number of outputs")
    num_inputs = reader.integer("number of inputs")
    params = reader.tensor("fully connected parameters")
    reader.alias("weight shape")
    bias = reader.alias("bias shape")
    reader.integer("bias mode")
    for name in ("learning rate", "weight decay", "bias learning rate", "bias weight decay"):
        reader.real(f"{name} multiplier")
    if math.prod(bias) != 0:
        raise reader.fail("fully connected layer with a bias is not supported", offset)
    if params.size != num_inputs * num_outputs:
        raise reader.fail(
            f"fully connected layer has {params.size} parameters, expected {num_inputs} x {num_outputs}", offset
        )
    weight = params.reshape(num_inputs, num_outputs)
    return DlibLayer("fc", offset, {"weight": weight}, {"num_inputs": num_inputs, "num_outputs": num_outputs})


def _read_layer(reader: _Reader, on_input: bool) -> DlibLayer:
    offset = reader.pos
    name = reader.string("layer name")
    reader.context = f"layer record '{name}' starting at byte {offset}"
    if name == "con_4":
        layer = _read_con(reader, offset)
    elif name == "affine_":
        layer = _read_affine(reader, offset)
    elif name in ("relu_", "add_prev_"):
        layer = DlibLayer(name.rstrip("_"), offset)
    elif name in ("max_pool_2", "avg_pool_2"):
        layer = _read_pool(name[: -len("_2")], reader, offset)
    elif name == "fc_2":
        layer = _read_fc(reader, offset)
    else:
        raise reader.fail(f"unsupported layer type '{name}'", offset)
    for flag in ("setup flag", "stale-gradient flag", "disabled-output flag"):
        reader.boolean(flag)
    for state in ("input gradient", "cached output", "parameter gradient"):
        reader.tensor(state)
    if on_input:
        start = reader.pos
        factor = reader.integer("sample expansion factor")
        if factor < 1:
            raise reader.fail(f"sample expansion factor {factor} is not positive", start)
    return layer


def parse_dlib_network(data: bytes, source: str = "<bytes>") -> DlibNetwork:
    """Parse the bytes of a dlib ``loss_metric`` network with an ``input_rgb_image_sized`` input.

    Raises ``ValueError`` naming ``source`` and the byte offset and record where parsing failed.
    """
    reader = _Reader(data, source)
    reader.expect(1, "loss wrapper version")
    loss = reader.string("loss name")
    if loss != "loss_metric_2":
        raise reader.fail(f"unsupported loss layer '{loss}' (expected 'loss_metric_2')")
    reader.real("loss margin")
    reader.real("loss distance threshold")

    reader.context = "layer wrapper versions"
    wrappers = []
    while True:
        start = reader.pos
        version = reader.integer("layer wrapper version")
        if version not in (LAYER_WRAPPER, TAG_OR_SKIP_WRAPPER, INPUT_WRAPPER):
            raise reader.fail(f"unexpected layer wrapper version {version}", start)
        wrappers.append(version)
        if version == INPUT_WRAPPER:
            break

    reader.context = "input layer"
    input_name = reader.string("input layer name")
    if input_name != "input_rgb_image_sized":
        raise reader.fail(f"unsupported input layer '{input_name}' (expected 'input_rgb_image_sized')")
    mean = (reader.real("red mean"), reader.real("green mean"), reader.real("blue mean"))
    size = (reader.integer("input rows"), reader.integer("input columns"))

    count = sum(version != TAG_OR_SKIP_WRAPPER for version in wrappers)
    layers = tuple(_read_layer(reader, on_input=index == 0) for index in range(count))
    if reader.pos != len(data):
        reader.context = "end of file"
        raise reader.fail(f"{len(data) - reader.pos} unexpected bytes after the last layer record")
    return DlibNetwork(loss, mean, size, tuple(wrappers), layers)


def read_dlib_network(path: str | Path) -> DlibNetwork:
    """Read and parse a dlib metric-network ``.dat`` file (see :func:`parse_dlib_network`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dlib network file not found: {path} (pip install face-recognition-models provides "
            "dlib_face_recognition_resnet_model_v1.dat)"
        )
    return parse_dlib_network(path.read_bytes(), str(path))
