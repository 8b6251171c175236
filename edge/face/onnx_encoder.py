"""dlib's face ResNet as an ONNX graph, built in memory from the installed model file.

Nothing is downloaded and nothing large is committed: :func:`model_bytes` reads
``dlib_face_recognition_resnet_model_v1.dat`` (see :mod:`edge.face.dlib_model`), maps each dlib layer
to ONNX operators and serializes the graph in memory when a backend is created (once per process,
about 0.4 s; the bytes are not kept: the runtime holds its own copy of the weights). Two runtimes
can run it: ``onnxruntime`` (backend ``onnx``, the default when installed) and OpenCV's DNN module
(backend ``cv2dnn``). Both take the same aligned 150x150 RGB chips as dlib and return the same
128-d descriptors (tests/test_encoder_equivalence.py; figures in docs/encoder.md).

Mapping (dlib semantics from dlib/dnn/{input,layers,cpu_dlib}.h/.cpp):
- input_rgb_image_sized: (pixel - channel mean) / 256, planes R, G, B;
- con: Conv; dlib's output size is 1 + (H + 2*pad - k) / stride in C++ integer division, so an
  input smaller than the kernel still gives one output (zeros beyond the edge): extra end padding;
- affine (batch norm frozen at training time): folded into the preceding convolution;
- max_pool / avg_pool: MaxPool / AveragePool; avg_pool with a 0x0 window: GlobalAveragePool;
- add_prev: Add; where the two inputs differ in size dlib zero-pads each to the larger one
  (aligned at channel 0, row 0, column 0): Pad at the end;
- fc (no bias): MatMul by the (inputs x outputs) weight matrix. loss_metric adds nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge.errors import EdgeError
from edge.face import dlib_model, models

if TYPE_CHECKING:
    from onnx import NodeProto, TensorProto

INPUT = "chips"  # (n, 150, 150, 3) uint8 RGB, as edge.face.api.chip makes them
OUTPUT = "descriptors"  # (n, 128) float32
OPSET = 13


def _out_size(size: int, k: int, s: int, p: int) -> int:
    return 1 + int((size + 2 * p - k) / s)  # C++ integer division truncates toward zero


class _Builder:
    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[NodeProto] = []
        self.inits: list[TensorProto] = []
        self.n = 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, array: np.ndarray, base: str = "c") -> str:
        name = self.name(base)
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def pad_end(self, x: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
        """Zero-pad (C, H, W) at the end up to ``target``, as dlib's tt::add does."""
        extra = [t - s for s, t in zip(shape, target, strict=True)]
        if not any(extra):
            return x
        pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        return self.op("Pad", [x, self.const(pads, "pads")], mode="constant")


def build(layers: list[dlib_model.Layer]):
    """The dlib ResNet (input, stem, residual blocks, pooling, fc) as an onnx.ModelProto."""
    b = _Builder()
    it = iter(layers)
    first = next(it)
    if first.kind != "input":
        raise EdgeError("the ResNet model file does not start with an input layer")
    h, w = first.attrs["size"]
    x = b.op("Cast", [INPUT], to=1)  # float32
    x = b.op("Transpose", [x], perm=[0, 3, 1, 2])
    mean = np.array(first.attrs["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    x = b.op("Mul", [b.op("Sub", [x, b.const(mean, "mean")]), b.const(np.array(1 / 256, dtype=np.float32), "scale")])
    shape = (3, h, w)
    pending = list(it)

    def take(kind: str) -> dlib_model.Layer:
        if not pending or pending[0].kind != kind:
            got = pending[0].kind if pending else "the end"
            raise EdgeError(f"the ResNet model file is not the expected network ({kind} expected, got {got})")
        return pending.pop(0)

    def conv_affine(x: str, shape: tuple[int, int, int]) -> tuple[str, tuple[int, int, int]]:
        con, aff = take("con"), take("affine")
        (kh, kw), (sy, sx), (py, px) = con.attrs["kernel"], con.attrs["stride"], con.attrs["pad"]
        gamma, beta = aff.weights["gamma"], aff.weights["beta"]
        wts = con.weights["W"] * gamma[:, None, None, None]
        bias = con.weights["B"] * gamma + beta
        oh, ow = _out_size(shape[1], kh, sy, py), _out_size(shape[2], kw, sx, px)
        ey = max(0, (oh - 1) * sy + kh - shape[1] - 2 * py)  # dlib reads zeros past the edge
        ex = max(0, (ow - 1) * sx + kw - shape[2] - 2 * px)
        y = b.op("Conv", [x, b.const(wts.astype(np.float32), "w"), b.const(bias.astype(np.float32), "b")],
                 kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py + ey, px + ex])
        return y, (wts.shape[0], oh, ow)

    def pool(kind: str, x: str, shape: tuple[int, int, int]) -> tuple[str, tuple[int, int, int]]:
        layer = take(kind)
        (kh, kw), (sy, sx), (py, px) = layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["pad"]
        if kh == 0 and kw == 0:
            return b.op("GlobalAveragePool", [x]), (shape[0], 1, 1)
        if py or px:
            raise EdgeError("the ResNet model file has a padded pooling layer, which is not supported")
        op = "MaxPool" if kind == "max_pool" else "AveragePool"
        y = b.op(op, [x], kernel_shape=[kh, kw], strides=[sy, sx])
        return y, (shape[0], _out_size(shape[1], kh, sy, 0), _out_size(shape[2], kw, sx, 0))

    x, shape = conv_affine(x, shape)  # stem: con 7x7/2, affine, relu, max_pool 3x3/2
    take("relu")
    x = b.op("Relu", [x])
    x, shape = pool("max_pool", x, shape)
    while pending and pending[0].kind == "con":  # residual blocks
        y, yshape = conv_affine(x, shape)
        take("relu")
        y, yshape = conv_affine(b.op("Relu", [y]), yshape)
        if pending and pending[0].kind == "avg_pool":  # residual_down: the shortcut is pooled
            x, shape = pool("avg_pool", x, shape)
        take("add_prev")
        out = (max(shape[0], yshape[0]), max(shape[1], yshape[1]), max(shape[2], yshape[2]))
        x = b.op("Add", [b.pad_end(y, yshape, out), b.pad_end(x, shape, out)])
        take("relu")
        x, shape = b.op("Relu", [x]), out
    x, shape = pool("avg_pool", x, shape)
    fc = take("fc")
    if pending:
        raise EdgeError(f"the ResNet model file has unexpected layers after fc ({pending[0].kind})")
    x = b.op("Flatten", [x], axis=1)
    b.nodes.append(b.helper.make_node("MatMul", [x, b.const(fc.weights["W"], "fc")], [OUTPUT]))

    from onnx import TensorProto

    graph = b.helper.make_graph(
        b.nodes, "dlib_face_recognition_resnet_model_v1",
        [b.helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["n", h, w, 3])],
        [b.helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["n", fc.weights["W"].shape[1]])],
        b.inits)
    model = b.helper.make_model(graph, opset_imports=[b.helper.make_opsetid("", OPSET)],
                                producer_name="edge-lfr")
    model.ir_version = 8  # readable by older runtimes too
    return model


def model_bytes() -> bytes:
    """The serialized ONNX graph of the installed dlib ResNet."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise EdgeError("the onnx package is not installed") from exc
    return build(dlib_model.load(models.model_path(models.RESNET))).SerializeToString()


def _batch(chips: list[np.ndarray]) -> np.ndarray:
    batch = np.stack([np.asarray(c, dtype=np.uint8) for c in chips])
    if batch.ndim != 4 or batch.shape[1:] != (150, 150, 3):
        raise EdgeError(f"face chips must be 150x150 RGB, got {batch.shape[1:]}")
    return batch


class OnnxEncoder:
    """The ONNX graph run by onnxruntime on ``threads`` intra-op threads (one camera, one core)."""

    name = "onnx"

    def __init__(self, threads: int | None = None) -> None:
        from edge.face import runtime

        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EdgeError("onnxruntime is not installed") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or runtime.threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle cores stay idle
        try:
            self.session = ort.InferenceSession(model_bytes(), opts, providers=["CPUExecutionProvider"])
        except EdgeError:
            raise
        except Exception as exc:  # a broken runtime install must not take the camera down
            raise EdgeError(f"onnxruntime cannot load the face encoder: {exc}") from exc

    def encode(self, chips: list[np.ndarray]) -> np.ndarray:
        if not len(chips):
            return np.zeros((0, 128), dtype=np.float32)
        return self.session.run([OUTPUT], {INPUT: _batch(chips)})[0].astype(np.float32, copy=False)


class CvDnnEncoder:
    """The same graph run by OpenCV's DNN module (cv2.setNumThreads governs its threads)."""

    name = "cv2dnn"

    def __init__(self) -> None:
        import cv2

        try:
            self.net = cv2.dnn.readNetFromONNX(np.frombuffer(model_bytes(), dtype=np.uint8))
        except EdgeError:
            raise
        except Exception as exc:
            raise EdgeError(f"OpenCV DNN cannot load the face encoder: {exc}") from exc

    def encode(self, chips: list[np.ndarray]) -> np.ndarray:
        if not len(chips):
            return np.zeros((0, 128), dtype=np.float32)
        self.net.setInput(_batch(chips))
        return np.asarray(self.net.forward(), dtype=np.float32).reshape(len(chips), -1)
