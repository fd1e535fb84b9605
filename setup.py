"""The wheel ships the checkout's top-level manifests/, lambdas/ and model_repo/ inside the package, as
radstream/_shipped/ (radstream.resources reads them from there when not run from a checkout)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("manifests", "lambdas", "model_repo")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".radstream")


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout itself
            return
        target = Path(self.build_lib) / "radstream" / "_shipped"
        for name in SHIPPED:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(Path(__file__).parent / name, target / name, ignore=SKIPPED)


setup(cmdclass={"build_py": BuildWithShippedFiles})
