"""Where the files RadStream ships are read from: the top-level manifests/, lambdas/ and model_repo/
of the checkout when run from one, else their copies inside the installed package (radstream/_shipped,
put there by setup.py's build step). Both are read-only: what is made at run time goes to the user
cache or the project's state folder (its own model repository), never here."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

MODEL_REPO = "model_repo"
SHIPPED = ("manifests", "lambdas", MODEL_REPO)
INSTALLED_DIR = "_shipped"


def package_dir() -> Path:
    """The radstream package itself (its pipeline/ goes into every Lambda zip)."""
    return Path(str(files("radstream")))


def root() -> Path:
    """The folder holding manifests/, lambdas/ and model_repo/."""
    package = package_dir()
    for candidate in (package.parent, package / INSTALLED_DIR):
        if all((candidate / name).is_dir() for name in SHIPPED):
            return candidate
    raise FileNotFoundError(
        f"RadStream's {', '.join(SHIPPED)} are neither beside {package} (a checkout) nor in "
        f"{package / INSTALLED_DIR} (an installed wheel): reinstall it")


def manifest(*parts: str) -> Path:
    return root().joinpath("manifests", *parts)


def shipped_model_repository() -> Path:
    return root() / MODEL_REPO


def model_repository(state_dir: Path) -> Path:
    """The Triton model repository a project serves: its own once `model build|import` made one,
    else the shipped default."""
    own = Path(state_dir) / MODEL_REPO
    return own if own.is_dir() else shipped_model_repository()


def own_model_repository(state_dir: Path) -> Path:
    """The project's own repository for `model build|import` to write into, a copy of the shipped one
    at first (so an imported model is the next version after the default)."""
    own = Path(state_dir) / MODEL_REPO
    if not own.is_dir():
        staging = own.with_name(f"{MODEL_REPO}.partial")  # a crash mid-copy leaves no half repository
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(shipped_model_repository(), staging)
        staging.rename(own)
    return own
