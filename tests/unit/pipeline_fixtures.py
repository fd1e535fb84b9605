"""Inputs for the pipeline tests: pydicom's bundled DICOM files, and images generated on the fly."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

# pydicom ships small CR files with rescale, window, patient and private tags; pydicom-data ships a
# real PA chest radiograph (RG1, MONOCHROME1, 1955x1841) in several transfer syntaxes.
CR_FILES = ("dicomdirtests/77654033/CR1/6154", "dicomdirtests/77654033/CR2/6247", "dicomdirtests/77654033/CR3/6278")


def sample_path(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed (pip install pydicom-data)")
    return Path(path)


def sample_bytes(name: str) -> bytes:
    return sample_path(name).read_bytes()


def dataset(name: str):
    import pydicom

    return pydicom.dcmread(sample_path(name))


def dicom_bytes(ds) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def raster(pixels: np.ndarray, fmt: str, **save_args) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **save_args)
    return out.getvalue()


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A radiograph-like uint8 image: broad structures plus mild noise (compresses like one)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 60 * np.sin(xx / (width / 9)) * np.cos(yy / (height / 7))
    return np.clip(base + rng.normal(0, 4, (height, width)), 0, 255).astype(np.uint8)


def png_with_header(width: int, height: int, bit_depth: int = 8) -> bytes:
    """A PNG whose header claims any size but whose data is a few bytes: a decompression bomb's shape
    without the bomb, so refusing it must happen before decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_baseline_dicom(pixels: np.ndarray) -> bytes:
    """A MONOCHROME2 8-bit DICOM whose pixel data is a baseline JPEG made by Pillow."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = pydicom.dcmread(sample_path(CR_FILES[0]))
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        delattr(ds, keyword)
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = encapsulate([raster(pixels, "JPEG", quality=95)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return dicom_bytes(ds)


def window_reference(stored: np.ndarray, slope: float, intercept: float, center: float, width: float, bits: int) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (linear window) written out independently of pydicom, scaled to 0..255
    over the rescaled output range of an unsigned `bits`-bit image."""
    x = stored.astype(np.float64) * slope + intercept
    y_min, y_max = intercept, (2**bits - 1) * slope + intercept
    c, w = center - 0.5, width - 1
    y = ((x - c) / w + 0.5) * (y_max - y_min) + y_min
    y = np.where(x <= c - w / 2, y_min, np.where(x > c + w / 2, y_max, y))
    return (y - y_min) / (y_max - y_min) * 255


# A fixed de-identification key: the tests need stable pseudonyms, not a secret.
DEID_KEY = bytes(range(32))


def sidecar_fields(study_id: str, **changes: object) -> dict:
    """A valid JPEG/PNG sidecar's fields (no burned-in text declared), with `changes` applied."""
    return {"study_id": study_id, "view": "PA", "timestamp": "2024-01-15T10:00:00Z", "burned_in_annotation": False,
            **changes}


def dicom_with_unreadable_element(data: bytes) -> bytes:
    """`data` (an explicit VR little endian DICOM) with a 3-byte US element before the Study Instance
    UID: the file reads, but pydicom raises when the element's value is converted."""
    at = data.index(b"\x20\x00\x0d\x00UI")
    element = b"\x18\x00\x05\x14" + b"US" + struct.pack("<H", 3) + b"Doe"
    return data[:at] + element + data[at:]
