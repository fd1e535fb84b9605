"""Deterministic Lambda artefacts: the same sources always give the same bytes (and sha256), so an
unchanged function is never re-uploaded. No cloud calls here."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest timestamp a zip entry can hold
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")

# What radstream.pipeline imports in Lambda (boto3 comes with the runtime), every distribution pinned,
# transitive ones included, so the layer and its cache key are reproducible. The pylibjpeg plugins
# decode JPEG, JPEG-LS, JPEG 2000 and RLE DICOM. About 40 MB zipped: under Lambda's 50 MB limit for
# a direct upload.
LAYER_REQUIREMENTS = (
    "numpy==1.26.4",
    "pillow==11.3.0",
    "pydicom==3.0.2",
    "pylibjpeg==2.1.0",
    "pylibjpeg-libjpeg==2.2.0",
    "pylibjpeg-openjpeg==2.3.0",
    "pylibjpeg-rle==2.0.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
)
# Lambda python3.12 runs on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels load, and older
# manylinux2014 (glibc 2.17) ones, which pip only takes when named too.
LAMBDA_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")
LAMBDA_PYTHON = "3.12"


def deterministic_zip(files: Mapping[str, bytes]) -> bytes:
    """Zip entries sorted by name with fixed timestamps and permissions."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3  # unix, so the permission bits are honoured
            archive.writestr(info, files[name], compresslevel=9)
    return buffer.getvalue()


def tree_files(directory: Path, prefix: str) -> dict[str, bytes]:
    """Every file under directory (caches excluded), keyed by prefix + its relative posix path."""
    found = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_dir() or _SKIP_DIRS & set(relative.parts) or path.suffix in _SKIP_SUFFIXES:
            continue
        found[prefix + relative.as_posix()] = path.read_bytes()
    return found


def function_files(root: Path, function: str) -> dict[str, bytes]:
    """handler.py at the zip root (handler "handler.handler") plus the radstream.pipeline package."""
    handler = root / "lambdas" / function / "handler.py"
    if not handler.is_file():
        raise FileNotFoundError(f"{handler} is missing: every Lambda needs lambdas/<name>/handler.py")
    from radstream.resources import package_dir

    package = package_dir()  # the installed package, wherever the handlers were read from
    files = {"handler.py": handler.read_bytes(), "radstream/__init__.py": (package / "__init__.py").read_bytes()}
    files.update(tree_files(package / "pipeline", "radstream/pipeline/"))
    return files


def function_zip(root: Path, function: str) -> bytes:
    return deterministic_zip(function_files(root, function))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def layer_cache_key(requirements: Iterable[str], pip_args: Iterable[str] = (), python: str = LAMBDA_PYTHON) -> str:
    recipe = "\n".join([*LAMBDA_PLATFORMS, python, *sorted(requirements), *pip_args])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def layer_cache_path(
    cache_dir: Path, requirements: Iterable[str] = LAYER_REQUIREMENTS, pip_args: Iterable[str] = (),
    python: str = LAMBDA_PYTHON,
) -> Path:
    return cache_dir / "layers" / f"{layer_cache_key(requirements, pip_args, python)}.zip"


def layer_pip_command(site: Path, requirements: Iterable[str], pip_args: Iterable[str] = (),
                      python: str = LAMBDA_PYTHON) -> list[str]:
    """pip installing binary wheels for manylinux/CPython `python` into site, whatever the machine
    building it runs."""
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        *platforms, "--implementation", "cp", "--python-version", python, "--only-binary=:all:",
        "--target", str(site), *pip_args, *requirements,
    ]


def layer_zip(
    cache_dir: Path, requirements: Iterable[str] = LAYER_REQUIREMENTS, pip_args: Iterable[str] = (),
    python: str = LAMBDA_PYTHON,
) -> Path:
    """Build (once per requirements, pip arguments and Python version) the layer zip for the Python
    that will run it; returns its path. The wheels go into python/, the directory Lambda adds to
    sys.path for layers."""
    requirements, pip_args = list(requirements), list(pip_args)
    target = layer_cache_path(cache_dir, requirements, pip_args, python)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="radstream-layer-") as work:
        site = Path(work) / "python"
        result = subprocess.run(layer_pip_command(site, requirements, pip_args, python), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                "building the Lambda layer failed (pip needs access to PyPI or a --find-links "
                f"directory):\n{result.stderr.strip()[-2000:]}"
            )
        # pip writes a script directory and absolute-path shebangs we do not want in the layer.
        shutil.rmtree(site / "bin", ignore_errors=True)
        data = deterministic_zip(tree_files(site, "python/"))
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(data)
    partial.replace(target)  # atomic: a crash never leaves a truncated cached layer
    return target
