"""The Triton model repository: `model_repo/radstream_cxr/{config.pbtxt, labels.txt, README.md, <v>/model.onnx}`.

The pipeline's contract with any model: one UINT8 input [N,1,224,224] (a grey-scale image, normalised
inside the graph) and one float output [N,K] of probabilities, K = the number of labels. The config is
built as Triton's own ModelConfig protobuf, so what we write is what Triton parses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radstream.errors import RadstreamError
from radstream.inference.labels import CHESTXRAY14_LABELS
from radstream.inference.model import IMAGE_SIZE, MODEL_NAME, PRODUCER

MAX_BATCH_SIZE = 8
PREFERRED_BATCH_SIZES = (4, 8)
# Measured on 2 CPU cores: two single-threaded instances keep both cores busy without oversubscribing.
INSTANCE_COUNT = 2
INTRA_OP_THREADS = 1
QUEUE_DELAY_US = 100
MODEL_FILE = "model.onnx"
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.pbtxt"
CARD_FILE = "README.md"


class ModelContractError(RadstreamError):
    """A model or labels file that does not fit the pipeline; nothing was written."""

    exit_code = 2


@dataclass(frozen=True)
class Signature:
    """The one input and one output of a model, as the pipeline needs them."""

    input_name: str
    output_name: str
    num_outputs: int


def _dim(d: Any) -> int | str:
    """An ONNX dimension: its size, or its symbolic name ('?' when unnamed)."""
    return d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")


def inspect_onnx(onnx_path: Path, num_labels: int) -> Signature:
    """Read the model's inputs and outputs and check them against the pipeline contract."""
    import onnx

    try:
        model = onnx.load(str(onnx_path))
        onnx.checker.check_model(model)
    except FileNotFoundError:
        raise ModelContractError(f"{onnx_path}: no such file.") from None
    except Exception as exc:  # onnx raises several unrelated types for unreadable files
        raise ModelContractError(f"{onnx_path} is not a valid ONNX model: {exc}", "Export it again with onnx >= 1.14.") from None

    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    outputs = list(model.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelContractError(
            f"{onnx_path.name} has {len(inputs)} inputs and {len(outputs)} outputs; the pipeline needs exactly one of each.",
            "Export a model with a single image input and a single probabilities output.",
        )
    inp, out = inputs[0], outputs[0]
    in_type, out_type = inp.type.tensor_type, out.type.tensor_type
    in_dims = [_dim(d) for d in in_type.shape.dim]
    out_dims = [_dim(d) for d in out_type.shape.dim]
    want_in = f"uint8 [N,1,{IMAGE_SIZE},{IMAGE_SIZE}]"

    if in_type.elem_type != onnx.TensorProto.UINT8:
        got = onnx.helper.tensor_dtype_to_np_dtype(in_type.elem_type) if in_type.elem_type else "unknown"
        raise ModelContractError(
            f"input '{inp.name}' is {got}; the pipeline sends {want_in}.",
            "Add a Cast (and your normalisation) at the start of the graph so it takes raw uint8 pixels.",
        )
    fixed = [1, IMAGE_SIZE, IMAGE_SIZE]
    if len(in_dims) != 4 or any(isinstance(d, int) and d != w for d, w in zip(in_dims[1:], fixed, strict=True)):
        raise ModelContractError(
            f"input '{inp.name}' has shape {in_dims}; the pipeline sends {want_in}.",
            "Export with a single grey-scale channel at 224x224 (replicate channels inside the graph if needed).",
        )
    if isinstance(in_dims[0], int) and in_dims[0] != 0:
        raise ModelContractError(
            f"input '{inp.name}' has a fixed batch size {in_dims[0]}; Triton batches requests up to {MAX_BATCH_SIZE}.",
            "Export with a dynamic first dimension (e.g. dynamic_axes={'image': {0: 'batch'}}).",
        )
    if out_type.elem_type != onnx.TensorProto.FLOAT:
        raise ModelContractError(
            f"output '{out.name}' is not float32; the pipeline reads float32 [N,{num_labels}] probabilities.",
            "Cast the output to float32.",
        )
    if len(out_dims) != 2 or (isinstance(out_dims[1], int) and out_dims[1] != num_labels):
        raise ModelContractError(
            f"output '{out.name}' has shape {out_dims} but the labels file lists {num_labels} findings.",
            f"The output must be [N,{num_labels}]: one probability per line of the labels file.",
        )
    return Signature(inp.name, out.name, num_labels)


def smoke_test(onnx_path: Path, sig: Signature) -> None:
    """Run two blank images through onnxruntime: the contract must hold at run time, not only on paper."""
    import numpy as np
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        result = session.run([sig.output_name], {sig.input_name: np.zeros((2, 1, IMAGE_SIZE, IMAGE_SIZE), np.uint8)})[0]
    except Exception as exc:
        raise ModelContractError(f"onnxruntime cannot run {onnx_path.name}: {exc}", "Check the model's opset and operators.") from None
    if result.shape != (2, sig.num_outputs) or not np.all(np.isfinite(result)):
        raise ModelContractError(
            f"{onnx_path.name} returned shape {list(result.shape)} for a batch of 2; expected [2,{sig.num_outputs}] finite values.",
            "Check the output's batch dimension and that it ends in a sigmoid.",
        )


def read_labels(labels_path: Path) -> list[str]:
    try:
        lines = [line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelContractError(f"cannot read labels file {labels_path}: {exc}", "Give a UTF-8 text file, one finding per line.") from None
    labels = [line for line in lines if line]
    if not labels:
        raise ModelContractError(f"labels file {labels_path} is empty.", "List one finding per line, in the model's output order.")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ModelContractError(f"labels file {labels_path} repeats {', '.join(duplicates)}.", "Each finding must appear once.")
    return labels


def model_config(sig: Signature, *, name: str = MODEL_NAME, dynamic_batching: bool = True) -> Any:
    """Triton's ModelConfig for the stock onnxruntime backend (what runs on EKS)."""
    from tritonclient.grpc import model_config_pb2 as mc

    cfg = mc.ModelConfig(name=name, platform="onnxruntime_onnx", max_batch_size=MAX_BATCH_SIZE)
    cfg.input.add(name=sig.input_name, data_type=mc.TYPE_UINT8, dims=[1, IMAGE_SIZE, IMAGE_SIZE])
    cfg.output.add(name=sig.output_name, data_type=mc.TYPE_FP32, dims=[sig.num_outputs], label_filename=LABELS_FILE)
    cfg.version_policy.latest.num_versions = 1
    cfg.instance_group.add(count=INSTANCE_COUNT, kind=mc.ModelInstanceGroup.KIND_CPU)
    if dynamic_batching:
        cfg.dynamic_batching.preferred_batch_size.extend(PREFERRED_BATCH_SIZES)
        cfg.dynamic_batching.max_queue_delay_microseconds = QUEUE_DELAY_US
    cfg.parameters["intra_op_thread_count"].string_value = str(INTRA_OP_THREADS)
    warmup = cfg.model_warmup.add(name="blank_image", batch_size=1)
    warmup.inputs[sig.input_name].data_type = mc.TYPE_UINT8
    warmup.inputs[sig.input_name].dims.extend([1, IMAGE_SIZE, IMAGE_SIZE])
    warmup.inputs[sig.input_name].zero_data = True
    return cfg


def config_text(cfg: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(cfg)


def read_config(model_dir: Path) -> Any:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    path = model_dir / CONFIG_FILE
    try:
        return text_format.Parse(path.read_text(encoding="utf-8"), mc.ModelConfig())
    except FileNotFoundError:
        raise RadstreamError(f"{path} does not exist.", "Run `radstream model build` first.") from None


def versions(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit() and (p / MODEL_FILE).exists())


def latest_model(model_dir: Path) -> Path:
    found = versions(model_dir)
    if not found:
        raise RadstreamError(f"no model version under {model_dir}.", "Run `radstream model build` first.")
    return model_dir / str(found[-1]) / MODEL_FILE


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _place(path: Path, data: bytes) -> None:
    """Write via a temporary name and rename, so a crash never leaves a truncated model behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def is_generated_default(onnx_path: Path) -> bool:
    """True for a model `build` generated (untrained), told by its metadata rather than its hash,
    so a default from an older RadStream is still recognised."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return model.producer_name == PRODUCER and {p.key: p.value for p in model.metadata_props}.get("trained") == "false"


def _write_card(model_dir: Path) -> None:
    """The model card, derived from what is on disk so `build` and `import` never disagree."""
    rows = []
    for v in versions(model_dir):
        sha = _sha256(model_dir / str(v) / MODEL_FILE)
        origin = "generated default, UNTRAINED random weights" if is_generated_default(model_dir / str(v) / MODEL_FILE) else "imported"
        rows.append(f"| {v} | {origin} | `{sha[:16]}` |")
    card = f"""# {model_dir.name}

Triton model repository entry for the RadStream pipeline.

**The default model (version 1) is untrained.** Its weights are random numbers from a fixed seed:
its probabilities mean nothing clinically. It exists so the pipeline and Triton do real work of a
realistic size (a MobileNetV2-shaped network, about 300 M multiply-adds per image). Results it
produces carry `"model_trained": false`. Import a trained model with
`radstream model import FILE.onnx --labels FILE`.

- Input: `UINT8 [N,1,224,224]`, a grey-scale image; normalisation and channel replication are in the graph.
- Output: `FP32 [N,K]` sigmoid probabilities, one per line of `labels.txt`.
- Triton serves the newest version only (`version_policy: latest 1`).

| version | origin | sha256 |
|---|---|---|
""" + "\n".join(rows) + "\n"
    (model_dir / CARD_FILE).write_text(card, encoding="utf-8")


def default_model_bytes() -> bytes:
    """The generated default model, serialised; the build is deterministic, so so are the bytes."""
    from radstream.inference.model import build_model

    return build_model(len(CHESTXRAY14_LABELS)).SerializeToString()


def build_repository(repo_root: Path) -> dict[str, Any]:
    """Write the default model as version 1 with its labels, config and card. Same bytes every run."""
    model_dir = repo_root / MODEL_NAME
    v1 = model_dir / "1" / MODEL_FILE
    if v1.exists() and not is_generated_default(v1):
        raise RadstreamError(
            f"{v1} holds an imported model; building the default would overwrite it.",
            "Build into another directory (--repo) or move that version away first.",
        )
    _place(v1, default_model_bytes())
    if versions(model_dir)[-1] == 1:
        # A newer imported version owns labels and config; leave them alone.
        (model_dir / LABELS_FILE).write_text("\n".join(CHESTXRAY14_LABELS) + "\n", encoding="utf-8")
        sig = inspect_onnx(v1, len(CHESTXRAY14_LABELS))
        (model_dir / CONFIG_FILE).write_text(config_text(model_config(sig)), encoding="utf-8")
    _write_card(model_dir)
    return _summary(model_dir, created=True)


def import_model(onnx_path: Path, labels_path: Path, repo_root: Path) -> dict[str, Any]:
    """Check a user's model against the contract, then add it as the newest version with its config.

    Importing the same model and labels again adds nothing."""
    labels = read_labels(labels_path)
    sig = inspect_onnx(onnx_path, len(labels))
    smoke_test(onnx_path, sig)
    model_dir = repo_root / MODEL_NAME
    found = versions(model_dir)
    if found and _sha256(latest_model(model_dir)) == _sha256(onnx_path) and read_labels(model_dir / LABELS_FILE) == labels:
        return _summary(model_dir, created=False)
    _place(model_dir / str((found or [0])[-1] + 1) / MODEL_FILE, onnx_path.read_bytes())
    (model_dir / LABELS_FILE).write_text("\n".join(labels) + "\n", encoding="utf-8")
    (model_dir / CONFIG_FILE).write_text(config_text(model_config(sig)), encoding="utf-8")
    _write_card(model_dir)
    return _summary(model_dir, created=True)


def _summary(model_dir: Path, created: bool) -> dict[str, Any]:
    latest = latest_model(model_dir)
    sha = _sha256(latest)
    return {
        "model": model_dir.name,
        "repository": str(model_dir.parent),
        "version": int(latest.parent.name),
        "created": created,
        "path": str(latest),
        "sha256": sha,
        "bytes": latest.stat().st_size,
        "labels": read_labels(model_dir / LABELS_FILE),
        # The generated default is known to be untrained; for an imported model we cannot tell.
        "model_trained": False if is_generated_default(latest) else None,
    }
