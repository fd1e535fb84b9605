"""The default model: a MobileNetV2-shaped network generated deterministically with the ONNX helper API.

Its weights are random (fixed seed), NOT trained: it exists so the pipeline, Triton and the benchmarks
do real work of a realistic size (about 300 M multiply-adds per image). The grey-scale uint8 image is
normalised and replicated to three channels inside the graph, so clients send 50 KB per image instead
of 600 KB of floats.
"""

from __future__ import annotations

from typing import Any

MODEL_NAME = "radstream_cxr"
# Marks models this module generated, whatever their seed or generator version.
PRODUCER = "radstream-default-model"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
IMAGE_SIZE = 224
SEED = 20240601
# Opset 17 / IR 8 load in every onnxruntime Triton has shipped since 2022, not only the newest.
OPSET = 17
IR_VERSION = 8

# ImageNet statistics: the usual normalisation of a MobileNetV2 backbone.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
# (expansion t, output channels c, repeats n, first stride s) — the MobileNetV2 paper's table.
_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


class _GraphBuilder:
    """Accumulates nodes and initializers; every weight comes from one seeded generator, in order."""

    def __init__(self, seed: int):
        import numpy as np

        self.np = np
        self.rng = np.random.default_rng(seed)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.macs = 0
        self._count = 0
        self._clip = (self.const("zero", np.array(0.0, "float32")), self.const("six", np.array(6.0, "float32")))

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def const(self, kind: str, array: Any) -> str:
        from onnx import numpy_helper

        name = self._name(kind)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int, size: int, groups: int = 1, gain: float = 2.0) -> tuple[str, int]:
        """A convolution with bias (batch norm folded in); He-style init keeps activations in range."""
        fan_in = (cin // groups) * kernel * kernel
        weight = self.rng.normal(0.0, (gain / fan_in) ** 0.5, size=(cout, cin // groups, kernel, kernel)).astype("float32")
        bias = self.np.zeros(cout, dtype="float32")
        pad = kernel // 2
        out = self.node(
            "Conv",
            [x, self.const("w", weight), self.const("b", bias)],
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            group=groups,
        )
        out_size = (size + 2 * pad - kernel) // stride + 1
        self.macs += out_size * out_size * cout * fan_in
        return out, out_size

    def relu6(self, x: str) -> str:
        return self.node("Clip", [x, *self._clip])

    def inverted_residual(self, x: str, cin: int, cout: int, expand: int, stride: int, size: int) -> tuple[str, int]:
        hidden = cin * expand
        h, out_size = x, size
        if expand != 1:
            h, _ = self.conv(h, cin, hidden, 1, 1, size)
            h = self.relu6(h)
        h, out_size = self.conv(h, hidden, hidden, 3, stride, size, groups=hidden)
        h = self.relu6(h)
        # Linear bottleneck: no activation; a smaller gain keeps the residual sum from growing.
        h, _ = self.conv(h, hidden, cout, 1, 1, out_size, gain=1.0)
        if stride == 1 and cin == cout:
            h = self.node("Add", [x, h])
        return h, out_size


def build_model(labels_count: int = 14, seed: int = SEED) -> Any:
    """Return the ONNX ModelProto of the default network (same seed -> same bytes)."""
    import numpy as np
    from onnx import TensorProto, checker, helper

    g = _GraphBuilder(seed)
    # uint8 [N,1,H,W] -> float, replicated to 3 channels, then (x/255 - mean) / std per channel.
    x = g.node("Cast", [INPUT_NAME], to=TensorProto.FLOAT)
    x = g.node("Concat", [x, x, x], axis=1)
    scale = np.array([1.0 / (255.0 * s) for s in _STD], "float32").reshape(1, 3, 1, 1)
    shift = np.array([-m / s for m, s in zip(_MEAN, _STD, strict=True)], "float32").reshape(1, 3, 1, 1)
    x = g.node("Add", [g.node("Mul", [x, g.const("scale", scale)]), g.const("shift", shift)])

    x, size = g.conv(x, 3, _STEM_CHANNELS, 3, 2, IMAGE_SIZE)
    x = g.relu6(x)
    channels = _STEM_CHANNELS
    for expand, cout, repeats, first_stride in _BLOCKS:
        for i in range(repeats):
            x, size = g.inverted_residual(x, channels, cout, expand, first_stride if i == 0 else 1, size)
            channels = cout
    x, _ = g.conv(x, channels, _HEAD_CHANNELS, 1, 1, size)
    x = g.relu6(x)
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)

    # Unit-variance logits: spread over (0, 1) without the sigmoid saturating to exactly 0 or 1.
    fc = g.rng.normal(0.0, 1.0 / _HEAD_CHANNELS**0.5, size=(_HEAD_CHANNELS, labels_count)).astype("float32")
    fc_bias = np.zeros(labels_count, "float32")
    logits = g.node("Add", [g.node("MatMul", [x, g.const("fc_w", fc)]), g.const("fc_b", fc_bias)])
    g.macs += _HEAD_CHANNELS * labels_count
    g.nodes.append(helper.make_node("Sigmoid", [logits], [OUTPUT_NAME], name="sigmoid_out"))

    graph = helper.make_graph(
        g.nodes,
        MODEL_NAME,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", 1, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", labels_count])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name=PRODUCER,
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=f"MobileNetV2-shaped, UNTRAINED random weights (seed {seed}); {g.macs} multiply-adds per image.",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"trained": "false", "macs_per_image": str(g.macs)})
    checker.check_model(model)
    return model
