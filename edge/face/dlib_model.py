"""Read dlib's serialized face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``).

The file is dlib's ``serialize(anet_type)`` for the network of dlib's ``dnn_face_recognition_ex.cpp``.
dlib writes a network outermost-first, and each wrapper writes its version *before* its subnetwork
and its layer *after* it, so the file reads: the loss layer, then the version numbers of every
wrapper, then the layers from the input up, each followed by its wrapper's bookkeeping. Formats
(dlib/serialize.h, dlib/dnn/{tensor,input,layers,core}.h):

- integer: one byte ``size | 0x80 if negative``, then ``size`` bytes of magnitude, little-endian;
- float/double: two integers, mantissa and exponent (value = mantissa * 2**exponent);
- string: integer length, then the bytes;  bool: one ASCII ``'0'``/``'1'`` byte;
- tensor: integer version 2, num_samples, k, nr, nc, then raw little-endian float32 values;
- alias_tensor: integer version 1, num_samples, k, nr, nc.

:func:`load` returns the network as a list of :class:`Layer` from the input up; nothing here
depends on dlib being importable.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import EdgeError


@dataclass
class Layer:
    kind: str  # input, con, affine, relu, max_pool, avg_pool, add_prev, fc
    attrs: dict = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise EdgeError("the ResNet model file is truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def int(self) -> int:
        head = self.byte()
        size = head & 0x0F
        if size > 8:
            raise EdgeError(f"the ResNet model file is corrupt (bad integer at byte {self.pos - 1})")
        value = int.from_bytes(self.take(size), "little")
        return -value if head & 0x80 else value

    def take(self, n: builtins.int) -> bytes:  # builtins: ``int`` is the method above in this class
        if self.pos + n > len(self.data):
            raise EdgeError("the ResNet model file is truncated")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        return float(mantissa) * 2.0**exponent

    def string(self) -> str:
        return self.take(self.int()).decode("latin-1")

    def bool(self) -> bool:
        c = self.byte()
        if c not in (ord("0"), ord("1")):
            raise EdgeError(f"the ResNet model file is corrupt (bad bool at byte {self.pos - 1})")
        return c == ord("1")

    def tensor(self) -> np.ndarray:
        self.expect(self.int(), 2, "tensor version")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[builtins.int, builtins.int, builtins.int, builtins.int]:
        self.expect(self.int(), 1, "alias_tensor version")
        return self.int(), self.int(), self.int(), self.int()

    def expect(self, got, want, what: str) -> None:
        if got != want:
            raise EdgeError(f"the ResNet model file is not the expected network ({what}: {got!r} != {want!r})")


def _con(r: _Reader) -> Layer:
    params = r.tensor().ravel()
    n, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
    filters, biases = r.alias(), r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    r.expect(filters[0], n, "con filters")
    r.expect(int(np.prod(biases)), n, "con biases")
    size = int(np.prod(filters))
    r.expect(params.size, size + n, "con params")
    return Layer("con", {"kernel": (nr, nc), "stride": (sy, sx), "pad": (py, px)},
                 {"W": params[:size].reshape(filters), "B": params[size:].copy()})


def _affine(r: _Reader) -> Layer:
    params = r.tensor().ravel()
    gamma, beta = r.alias(), r.alias()
    mode = r.int()
    r.expect(mode, 0, "affine mode (CONV_MODE)")
    k = int(np.prod(gamma))
    r.expect(params.size, k + int(np.prod(beta)), "affine params")
    return Layer("affine", {}, {"gamma": params[:k].copy(), "beta": params[k:].copy()})


def _pool(kind: str):
    def parse(r: _Reader) -> Layer:
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        return Layer(kind, {"kernel": (nr, nc), "stride": (sy, sx), "pad": (py, px)})

    return parse


def _fc(r: _Reader) -> Layer:
    n_out, n_in = r.int(), r.int()
    params = r.tensor().ravel()
    weights, _biases = r.alias(), r.alias()
    bias_mode = r.int()
    for _ in range(4):
        r.float()
    r.expect(bias_mode, 1, "fc bias mode (FC_NO_BIAS)")
    r.expect(params.size, n_in * n_out, "fc params")
    r.expect(int(np.prod(weights)), n_in * n_out, "fc weights")
    return Layer("fc", {}, {"W": params.reshape(n_in, n_out).copy()})  # output = input @ W


_PARSERS = {
    "con_4": _con,
    "affine_": _affine,
    "relu_": lambda r: Layer("relu"),
    "max_pool_2": _pool("max_pool"),
    "avg_pool_2": _pool("avg_pool"),
    "add_prev_": lambda r: Layer("add_prev"),
    "fc_2": _fc,
}


def parse(data: bytes) -> list[Layer]:
    r = _Reader(data)
    r.expect(r.int(), 1, "loss layer version")
    r.expect(r.string(), "loss_metric_2", "loss layer")
    r.float(), r.float()  # margin, distance threshold: training only
    version = 0
    while data[r.pos : r.pos + 2] != b"\x01\x15":  # the wrappers' versions, up to the input layer
        version = r.int()
        r.expect(version in (1, 2, 3), True, "layer version")
    r.expect(r.string(), "input_rgb_image_sized", "input layer")
    mean = [r.float() for _ in range(3)]
    size = (r.int(), r.int())
    layers = [Layer("input", {"mean": mean, "size": size})]
    while r.pos < len(data):
        name = r.string()
        if name.startswith("add_prev"):  # add_prev1_, add_prev2_: which tag is fixed by the network type
            name = "add_prev_"
        if name not in _PARSERS:
            raise EdgeError(f"the ResNet model file holds an unexpected layer {name!r}")
        layers.append(_PARSERS[name](r))
        for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output disabled
            r.bool()
        for _ in range(3):  # x_grad, cached_output, params_grad: empty in a saved network
            r.tensor()
        if len(layers) == 2 and version == 3:  # the layer on the input also keeps its expansion factor
            r.expect(r.int(), 1, "sample expansion factor")
    return layers


def load(path: str | Path) -> list[Layer]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read the ResNet model {path}: {exc.strerror}") from exc
    return parse(data)
