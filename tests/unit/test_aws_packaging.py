import io
import zipfile
from pathlib import Path

import pytest

from radstream.aws.packaging import (
    deterministic_zip,
    function_files,
    function_zip,
    layer_cache_key,
    layer_zip,
    sha256_hex,
    tree_files,
)
from radstream.names import LAMBDA_FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]


def test_zip_bytes_do_not_depend_on_order_or_time():
    a = deterministic_zip({"b.py": b"2", "a.py": b"1"})
    b = deterministic_zip({"a.py": b"1", "b.py": b"2"})
    assert a == b
    with zipfile.ZipFile(io.BytesIO(a)) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == ["a.py", "b.py"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {(i.external_attr >> 16) & 0o777 for i in infos} == {0o644}


def test_tree_files_skip_caches_and_survive_mtime_changes(tmp_path):
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\n")
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / "pkg" / "stale.pyc").write_bytes(b"junk")
    first = sha256_hex(deterministic_zip(tree_files(tmp_path, "p/")))
    (tmp_path / "pkg" / "mod.py").touch()
    assert tree_files(tmp_path, "p/") == {"p/pkg/mod.py": b"X = 1\n"}
    assert sha256_hex(deterministic_zip(tree_files(tmp_path, "p/"))) == first


@pytest.mark.parametrize("function", LAMBDA_FUNCTIONS)
def test_every_function_zip_holds_its_handler_and_the_package(function):
    files = function_files(ROOT, function)
    assert files["handler.py"] == (ROOT / "lambdas" / function / "handler.py").read_bytes()
    assert "radstream/__init__.py" in files
    assert all(name == "handler.py" or name.startswith("radstream/") for name in files)
    assert not any("__pycache__" in name for name in files)
    assert function_zip(ROOT, function) == function_zip(ROOT, function)


def test_missing_handler_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="lambdas/<name>/handler.py"):
        function_files(tmp_path, "nope")


def _tiny_wheel(directory: Path) -> None:
    """A pure-Python wheel, so the layer build runs offline with --no-index --find-links."""
    dist = "radstream_probe-1.0.dist-info"
    files = {
        "radstream_probe.py": b"VALUE = 42\n",
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: radstream-probe\nVersion: 1.0\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{dist}/RECORD"]).encode()
    (directory / "radstream_probe-1.0-py3-none-any.whl").write_bytes(deterministic_zip(files))


def test_layer_is_built_for_lambda_and_cached(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _tiny_wheel(wheels)
    pip_args = ["--no-index", "--find-links", str(wheels)]
    path = layer_zip(tmp_path / "cache", ["radstream-probe==1.0"], pip_args)
    assert path.name == f"{layer_cache_key(['radstream-probe==1.0'], pip_args)}.zip"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert archive.read("python/radstream_probe.py") == b"VALUE = 42\n"
    assert all(name.startswith("python/") for name in names)
    built = path.read_bytes()
    path.write_bytes(b"cached")  # a second call uses the cache as is: no rebuild
    assert layer_zip(tmp_path / "cache", ["radstream-probe==1.0"], pip_args).read_bytes() == b"cached"
    # A rebuild from scratch gives the same bytes.
    assert layer_zip(tmp_path / "other", ["radstream-probe==1.0"], pip_args).read_bytes() == built


def test_layer_build_failure_says_what_to_do(tmp_path):
    with pytest.raises(RuntimeError, match="PyPI"):
        layer_zip(tmp_path, ["radstream-probe==9.9"], ["--no-index", "--find-links", str(tmp_path)])


def test_cache_key_follows_the_requirements():
    assert layer_cache_key(["a==1", "b==2"]) == layer_cache_key(["b==2", "a==1"])
    assert layer_cache_key(["a==1"]) != layer_cache_key(["a==2"])


def test_the_aws_layer_is_built_for_lambdas_python_and_platform(tmp_path):
    from radstream.aws.lambda_ import RUNTIME
    from radstream.aws.packaging import LAMBDA_PYTHON, layer_pip_command

    command = layer_pip_command(tmp_path / "python", ["numpy==1.26.4"])
    option = {flag: command[i + 1] for i, flag in enumerate(command[:-1]) if flag.startswith("--") and "=" not in flag}
    assert option["--python-version"] == LAMBDA_PYTHON and RUNTIME == f"python{LAMBDA_PYTHON}"
    assert tuple(map(int, LAMBDA_PYTHON.split("."))) >= (3, 12)
    # Amazon Linux 2023 has glibc 2.34: manylinux_2_28 wheels and older manylinux2014 ones load there.
    platforms = [command[i + 1] for i, flag in enumerate(command) if flag == "--platform"]
    assert platforms == ["manylinux_2_28_x86_64", "manylinux2014_x86_64"] and option["--implementation"] == "cp"
    assert "--only-binary=:all:" in command and option["--target"] == str(tmp_path / "python")


def test_each_python_has_its_own_cached_layer(tmp_path):
    assert layer_cache_key(["a==1"], python="3.12") != layer_cache_key(["a==1"], python="3.11")
    from radstream.aws.packaging import layer_cache_path

    assert layer_cache_path(tmp_path, python="3.12") != layer_cache_path(tmp_path, python="3.11")


def test_the_layer_is_built_for_the_python_that_runs_it(tmp_path):
    import sys

    from radstream import config
    from radstream.aws.packaging import LAMBDA_PYTHON
    from radstream.targets import target_for

    def target(name: str):
        (tmp_path / "radstream.yaml").write_text(f"target: {name}\ndeployment: rs-layer\n")
        return target_for(config.load(tmp_path / "radstream.yaml", environ={}))

    assert target("aws").lambda_layer_python == LAMBDA_PYTHON
    # The sandbox runs the functions in its own interpreter: the layer's wheels must load there.
    assert target("sandbox").lambda_layer_python == f"{sys.version_info.major}.{sys.version_info.minor}"
