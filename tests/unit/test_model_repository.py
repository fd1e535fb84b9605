"""The default model and the Triton model repository: determinism, the contract, import checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from radstream.errors import RadstreamError
from radstream.inference.labels import CHESTXRAY14_LABELS
from radstream.inference.repository import (
    ModelContractError,
    build_repository,
    import_model,
    read_card,
    read_config,
    versions,
)

MODEL = "radstream_cxr"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    build_repository(repo)
    return repo


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_deterministic(built: Path, tmp_path: Path) -> None:
    again = build_repository(tmp_path)
    for name in ("1/model.onnx", "config.pbtxt", "labels.txt", "README.md"):
        assert sha(built / MODEL / name) == sha(tmp_path / MODEL / name), name
    assert again["sha256"] == sha(built / MODEL / "1" / "model.onnx")
    assert again["model_trained"] is False
    # Building over an existing default is a no-op on the bytes.
    build_repository(tmp_path)
    assert sha(tmp_path / MODEL / "1" / "model.onnx") == again["sha256"]


def test_model_is_mobilenet_sized_with_the_pipeline_signature(built: Path) -> None:
    model = onnx.load(str(built / MODEL / "1" / "model.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["trained"] == "false"
    assert int(props["macs_per_image"]) >= 250_000_000
    assert sum(n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute) for n in model.graph.node) >= 17
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == TensorProto.UINT8
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim][1:] == [1, 224, 224]
    assert (built / MODEL / "1" / "model.onnx").stat().st_size < 20_000_000


def test_onnxruntime_returns_14_probabilities_per_image(built: Path) -> None:
    session = ort.InferenceSession(str(built / MODEL / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(3).integers(0, 256, (3, 1, 224, 224), dtype=np.uint8)
    images[2] = 0
    (probs,) = session.run(None, {"image": images})
    assert probs.shape == (3, 14) and probs.dtype == np.float32
    assert np.all(probs > 0) and np.all(probs < 1)
    assert not np.allclose(probs[0], probs[2])  # the output depends on the image


def test_config_labels_and_card(built: Path) -> None:
    cfg = read_config(built / MODEL)
    assert (cfg.name, cfg.platform, cfg.max_batch_size) == (MODEL, "onnxruntime_onnx", 8)
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    assert cfg.dynamic_batching.max_queue_delay_microseconds > 0
    assert cfg.instance_group[0].kind == cfg.instance_group[0].KIND_CPU
    assert cfg.version_policy.latest.num_versions == 1
    assert cfg.input[0].name == "image" and list(cfg.input[0].dims) == [1, 224, 224]
    assert cfg.output[0].name == "probabilities" and list(cfg.output[0].dims) == [14]
    assert cfg.output[0].label_filename == "labels.txt"
    assert cfg.model_warmup[0].inputs["image"].zero_data
    assert (built / MODEL / "labels.txt").read_text().split("\n")[:14] == list(CHESTXRAY14_LABELS)
    assert "untrained" in (built / MODEL / "README.md").read_text().lower()


# -- import ----------------------------------------------------------------------------------

def tiny_model(
    path: Path,
    *,
    in_type: int = TensorProto.UINT8,
    in_shape: list = ("batch", 1, 224, 224),
    classes: int = 3,
    declared_out: list | None = None,
    extra_output: bool = False,
    scale: float = 1.0,
) -> Path:
    """A small model honouring (or breaking) the contract: mean pixel -> K sigmoids."""
    w = np.linspace(-1, 1, classes, dtype=np.float32).reshape(1, classes) * scale
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "one"], ["m2"]),
        helper.make_node("Div", ["m2", "k255"], ["n"]),
        helper.make_node("MatMul", ["n", "w"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
    ]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, declared_out or ["batch", classes])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes]))
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", in_type, list(in_shape))],
        outputs,
        initializer=[
            onnx.numpy_helper.from_array(w, "w"),
            onnx.numpy_helper.from_array(np.array([1], np.int64), "one"),
            onnx.numpy_helper.from_array(np.array(255.0, np.float32), "k255"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def labels_file(path: Path, names: list[str]) -> Path:
    path.write_text("\n".join(names) + "\n")
    return path


@pytest.fixture
def repo(tmp_path: Path, built: Path) -> Path:
    import shutil

    shutil.copytree(built, tmp_path / "repo")
    return tmp_path / "repo"


THREE = ["Effusion", "Pneumothorax", "No Finding"]


@pytest.mark.parametrize(
    ("kwargs", "labels", "message"),
    [
        ({"in_type": TensorProto.FLOAT}, THREE, "pipeline sends uint8"),
        ({"in_shape": ["batch", 3, 224, 224]}, THREE, "has shape"),
        ({"in_shape": [1, 1, 224, 224]}, THREE, "fixed batch size 1"),
        ({"extra_output": True}, THREE, "2 outputs"),
        ({"classes": 3}, THREE[:2], "lists 2 findings"),
        # Declared shape is symbolic, so only running it shows 3 outputs for 2 labels.
        ({"classes": 3, "declared_out": ["batch", "k"]}, THREE[:2], "expected [2,2]"),
    ],
)
def test_import_rejects_models_that_break_the_contract(repo: Path, tmp_path: Path, kwargs: dict, labels: list, message: str) -> None:
    model = tiny_model(tmp_path / "bad.onnx", **kwargs)
    before = sha(repo / MODEL / "config.pbtxt")
    with pytest.raises(ModelContractError, match=message.replace("[", r"\[")) as err:
        import_model(model, labels_file(tmp_path / "labels.txt", labels), repo, trained=False)
    assert err.value.hint  # every rejection says what to do
    assert versions(repo / MODEL) == [1]
    assert sha(repo / MODEL / "config.pbtxt") == before


def test_import_rejects_bad_files(repo: Path, tmp_path: Path) -> None:
    good = tiny_model(tmp_path / "good.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ModelContractError, match="not a valid ONNX model"):
        import_model(garbage, labels_file(tmp_path / "l.txt", THREE), repo, trained=False)
    with pytest.raises(ModelContractError, match="empty"):
        import_model(good, labels_file(tmp_path / "l.txt", []), repo, trained=False)
    with pytest.raises(ModelContractError, match="repeats Effusion"):
        import_model(good, labels_file(tmp_path / "l.txt", ["Effusion", "Mass", "Effusion"]), repo, trained=False)
    with pytest.raises(ModelContractError, match="no such file"):
        import_model(tmp_path / "missing.onnx", labels_file(tmp_path / "l.txt", THREE), repo, trained=False)
    assert versions(repo / MODEL) == [1]


TRAINED_ON = "NIH ChestX-ray14 (frontal radiographs)"


def _parameters(cfg) -> dict[str, str]:
    return {key: value.string_value for key, value in cfg.parameters.items()}


def test_import_adds_a_version_with_its_config_and_card(repo: Path, tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "real.onnx")
    result = import_model(model, labels_file(tmp_path / "labels.txt", THREE), repo, trained=True, trained_on=TRAINED_ON,
                          licence="CC-BY-4.0")
    assert (result["version"], result["created"]) == (2, True)
    assert (result["model_trained"], result["model_trained_on"], result["model_licence"]) == (True, TRAINED_ON, "CC-BY-4.0")
    assert versions(repo / MODEL) == [1, 2]
    assert sha(repo / MODEL / "2" / "model.onnx") == sha(model) == result["sha256"]
    cfg = read_config(repo / MODEL)
    assert list(cfg.output[0].dims) == [3] and cfg.output[0].name == "probs"
    assert (repo / MODEL / "labels.txt").read_text().splitlines() == THREE
    # The served version's card is what Triton's config tells the pipeline.
    assert {k: v for k, v in _parameters(cfg).items() if k.startswith("model_")} == {
        "model_trained": "true", "model_trained_on": TRAINED_ON, "model_licence": "CC-BY-4.0", "model_sha256": sha(model)}
    card = json.loads((repo / MODEL / "2" / "model_card.json").read_text())
    assert (card["trained"], card["trained_on"], card["licence"], card["labels"]) == (True, TRAINED_ON, "CC-BY-4.0", THREE)
    assert read_card(repo / MODEL / "1").trained is False  # the default keeps its own card
    readme = (repo / MODEL / "README.md").read_text()
    assert f"| yes, on {TRAINED_ON} | CC-BY-4.0 |" in readme and "| **no** | Apache-2.0 |" in readme

    # The same model, labels and card again: nothing new.
    again = import_model(model, labels_file(tmp_path / "labels.txt", THREE), repo, trained=True, trained_on=TRAINED_ON,
                         licence="CC-BY-4.0")
    assert (again["version"], again["created"]) == (2, False)
    # The same model declared untrained: a new version, and Triton is told so.
    untrained = import_model(model, tmp_path / "labels.txt", repo, trained=False)
    assert (untrained["version"], untrained["model_trained"], untrained["model_trained_on"]) == (3, False, None)
    parameters = _parameters(read_config(repo / MODEL))
    assert parameters["model_trained"] == "false" and "model_trained_on" not in parameters
    # A different model: version 4.
    other = tiny_model(tmp_path / "other.onnx", scale=2.0)
    assert import_model(other, tmp_path / "labels.txt", repo, trained=False)["version"] == 4
    # Rebuilding the default leaves the newer imported config and labels alone.
    build_repository(repo)
    assert list(read_config(repo / MODEL).output[0].dims) == [3]


def test_a_trained_claim_must_name_its_data_and_an_untrained_one_cannot(repo: Path, tmp_path: Path) -> None:
    model, labels = tiny_model(tmp_path / "real.onnx"), labels_file(tmp_path / "labels.txt", THREE)
    with pytest.raises(ModelContractError, match="what it was trained on"):
        import_model(model, labels, repo, trained=True)
    with pytest.raises(ModelContractError, match="declared untrained"):
        import_model(model, labels, repo, trained=False, trained_on=TRAINED_ON)
    assert versions(repo / MODEL) == [1]


def test_the_default_model_card_says_untrained(built: Path) -> None:
    card = json.loads((built / MODEL / "1" / "model_card.json").read_text())
    assert (card["trained"], card["trained_on"], card["labels"]) == (False, None, list(CHESTXRAY14_LABELS))
    assert "random weights" in card["description"]
    assert _parameters(read_config(built / MODEL))["model_trained"] == "false"


def test_the_config_names_the_sha256_of_the_served_versions_model_file(repo: Path, tmp_path: Path) -> None:
    assert _parameters(read_config(repo / MODEL))["model_sha256"] == sha(repo / MODEL / "1" / "model.onnx")
    import_model(tiny_model(tmp_path / "real.onnx"), labels_file(tmp_path / "labels.txt", THREE), repo, trained=False)
    served = _parameters(read_config(repo / MODEL))["model_sha256"]
    assert served == sha(repo / MODEL / "2" / "model.onnx") != sha(repo / MODEL / "1" / "model.onnx")
    assert served == served.lower() and len(served) == 64


def test_the_shipped_repository_is_what_build_writes(built: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "model_repo" / MODEL
    for name in ("1/model_card.json", "config.pbtxt", "README.md"):
        assert sha(shipped / name) == sha(built / MODEL / name), name


def test_build_does_not_overwrite_an_imported_first_version(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "real.onnx")
    import_model(model, labels_file(tmp_path / "labels.txt", THREE), tmp_path / "repo", trained=False)
    with pytest.raises(RadstreamError, match="imported model"):
        build_repository(tmp_path / "repo")
    assert sha(tmp_path / "repo" / MODEL / "1" / "model.onnx") == sha(model)


def test_cli_build_and_import_print_one_json_object(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from radstream.cli import app

    runner = CliRunner()
    built_run = runner.invoke(app, ["model", "build", "--repo", str(tmp_path / "r"), "--json"])
    assert built_run.exit_code == 0, built_run.output
    built_out = json.loads(built_run.stdout)
    assert (built_out["ok"], built_out["version"], built_out["model_trained"]) == (True, 1, False)

    bad = tiny_model(tmp_path / "bad.onnx", in_type=TensorProto.FLOAT)
    rejected = runner.invoke(app, ["model", "import", str(bad), "--labels", str(labels_file(tmp_path / "l.txt", THREE)), "--repo", str(tmp_path / "r"), "--json"])
    assert rejected.exit_code == 2
    out = json.loads(rejected.stdout)
    assert out["ok"] is False and "uint8" in out["error"]


def test_cli_import_records_what_the_user_declares(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from radstream.cli import app

    runner, repo = CliRunner(), str(tmp_path / "r")
    model, labels = str(tiny_model(tmp_path / "real.onnx")), str(labels_file(tmp_path / "l.txt", THREE))
    trained = runner.invoke(app, ["model", "import", model, "--labels", labels, "--trained", "--trained-on", TRAINED_ON,
                                  "--licence", "CC-BY-4.0", "--repo", repo, "--json"])
    assert trained.exit_code == 0, trained.output
    out = json.loads(trained.stdout)
    assert (out["model_trained"], out["model_trained_on"], out["model_licence"]) == (True, TRAINED_ON, "CC-BY-4.0")

    # Not declared: recorded untrained, and the user is told how to say otherwise.
    undeclared = runner.invoke(app, ["model", "import", model, "--labels", labels, "--repo", repo, "--json"])
    assert undeclared.exit_code == 0, undeclared.output
    assert json.loads(undeclared.stdout)["model_trained"] is False
    assert "UNTRAINED" in undeclared.stderr and "--trained" in undeclared.stderr
    assert read_config(tmp_path / "r" / MODEL).parameters["model_trained"].string_value == "false"

    contradictory = runner.invoke(app, ["model", "import", model, "--labels", labels, "--untrained", "--trained-on", "X",
                                        "--repo", repo, "--json"])
    assert contradictory.exit_code == 2 and "declared untrained" in json.loads(contradictory.stdout)["error"]
