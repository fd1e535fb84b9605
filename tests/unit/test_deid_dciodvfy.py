"""De-identified output is valid DICOM: dciodvfy (Debian's dicom3tools) finds no error in the copy
that it did not find in the original, for every DICOM fixture the project has."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from radstream.pipeline.deid import deidentify_bytes
from tests.unit.pipeline_fixtures import CR_FILES, DEID_KEY, jpeg_baseline_dicom, sample_bytes, smooth_image

pytestmark = pytest.mark.skipif(shutil.which("dciodvfy") is None,
                                reason="dciodvfy is not installed (apt-get install dicom3tools; ./dev test does it)")


def _generated_rgb() -> bytes:
    from radstream.studies import rgb_dicom

    return rgb_dicom()


FIXTURES = {
    **{name: (lambda name=name: sample_bytes(name)) for name in (*CR_FILES, "RG1_UNCR.dcm", "RG1_J2KR.dcm")},
    "generated JPEG baseline DICOM": lambda: jpeg_baseline_dicom(smooth_image(64, 64)),
    "demo RGB DICOM": _generated_rgb,
}


def dciodvfy_errors(data: bytes, folder: Path) -> set[str]:
    """dciodvfy's error lines, with the values it quotes blanked so that the same fault in two files reads
    the same."""
    path = folder / "file.dcm"
    path.write_bytes(data)
    output = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (output.stdout + output.stderr).splitlines()
    return {re.sub(r"<[^<>]*>", "<…>", line.replace(str(path), "FILE")).strip()
            for line in lines if line.startswith("Error")}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_deidentification_adds_no_dciodvfy_error(name, tmp_path):
    original = FIXTURES[name]()
    before = dciodvfy_errors(original, tmp_path)
    after = dciodvfy_errors(deidentify_bytes(original, DEID_KEY), tmp_path)
    assert after - before == set()


def test_the_comparison_notices_an_invalid_date(tmp_path):
    import io

    import pydicom

    ds = pydicom.dcmread(io.BytesIO(deidentify_bytes(sample_bytes(CR_FILES[0]), DEID_KEY)))
    ds.StudyDate = "00010101"  # what de-identification used to write
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert any("Study Date" in line for line in dciodvfy_errors(out.getvalue(), tmp_path))
