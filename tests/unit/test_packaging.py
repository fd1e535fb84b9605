"""RadStream installs like any CLI: `--version`, an import of the CLI that loads no heavy library (so
`--help` is instant), and a wheel that carries manifests/, lambdas/ and model_repo/ as package data
that radstream.resources finds once installed."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from radstream import __version__
from tests.conftest import REPO

HEAVY = ("boto3", "botocore", "kubernetes", "numpy", "pydantic", "onnx", "onnxruntime", "moto", "duckdb", "yaml")


def test_version_prints_the_package_version():
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", "--version"], cwd=REPO, capture_output=True,
                          text=True, check=False, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"radstream {__version__}"


def test_importing_the_cli_loads_no_heavy_library():
    probe = f"import json, sys, radstream.cli; print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(proc.stdout) == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built as `pip install .` and pipx build it: in an isolated environment with pyproject's build requirements.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (found,) = out.glob("radstream-*.whl")
    return found


def test_the_wheel_ships_every_manifest_handler_and_the_default_model(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("manifests", "lambdas", "model_repo"):
        shipped = {f"radstream/_shipped/{p.relative_to(REPO).as_posix()}" for p in (REPO / folder).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts}
        assert shipped and shipped <= names, sorted(shipped - names)[:5]
    assert {"radstream/radstream.template.yaml", "radstream/pipeline/__init__.py"} <= names
    assert not [n for n in names if n.endswith(".pyc")]


def test_installed_from_the_wheel_the_resources_are_the_shipped_copies(wheel: Path, tmp_path: Path):
    """Unpacked as pip would install it (no checkout around): the resources resolve inside the package."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import json; from radstream import resources; "
             "print(json.dumps([str(resources.root()), str(resources.manifest('iam', 'lambda.json'))]))")
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
                          cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60)
    root, policy = json.loads(proc.stdout)
    assert root == str(site / "radstream" / "_shipped")
    assert Path(policy).read_text() == (REPO / "manifests" / "iam" / "lambda.json").read_text()


def test_a_project_serves_the_shipped_model_until_it_builds_or_imports_its_own(tmp_path: Path):
    from radstream import resources

    shipped = resources.shipped_model_repository()
    before = {p: p.read_bytes() for p in shipped.rglob("*") if p.is_file()}
    state_dir = tmp_path / ".radstream"
    assert resources.model_repository(state_dir) == shipped
    own = resources.own_model_repository(state_dir)
    assert own == state_dir / "model_repo" and resources.model_repository(state_dir) == own
    assert {p.relative_to(own) for p in own.rglob("*") if p.is_file()} == {p.relative_to(shipped) for p in before}
    (own / "radstream_cxr" / "2").mkdir()  # what an import adds lands in the project, never in the package
    assert resources.own_model_repository(state_dir) == own and (own / "radstream_cxr" / "2").is_dir()
    assert {p: p.read_bytes() for p in shipped.rglob("*") if p.is_file()} == before
