"""Decode a study's bytes into a display-ready grey image, routed by content, never by file name.

DICOM goes through the standard grayscale pipeline (Modality LUT or Rescale, VOI LUT or window,
MONOCHROME1 / Presentation LUT Shape inversion); JPEG and PNG through Pillow, JPEG decoded at a
reduced scale in the DCT domain when the target is small. Every size limit is checked from the
header before any pixel is decoded, so bombs are refused without allocating them.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from radstream.pipeline.errors import CorruptImage, ImageTooLarge, InvalidInput, UnsupportedFormat, UnsupportedImage

if TYPE_CHECKING:
    import numpy as np

# DICOM attributes the reader hands over (by keyword) for `metadata_from_dicom`.
DICOM_METADATA_KEYWORDS = (
    "ViewPosition",
    "Modality",
    "PatientSex",
    "PatientAge",
    "AcquisitionDate",
    "AcquisitionTime",
    "ContentDate",
    "ContentTime",
    "StudyDate",
    "StudyTime",
    "LongitudinalTemporalInformationModified",
)


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_DICOM_MAGIC_OFFSET = 128
# Integer DICOM pixels whose value span is below this go through a lookup table built once per
# image over that span: the same point operations, about 15x faster on a radiograph.
_LUT_MAX_SPAN = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 128 * 1024 * 1024
    max_pixels: int = 64_000_000
    max_side: int = 12_000

    def check_bytes(self, size: int) -> None:
        if size == 0:
            raise UnsupportedImage("the file is empty (0 bytes)")
        if size > self.max_bytes:
            raise ImageTooLarge(f"the file is {size} bytes; the limit is {self.max_bytes}")

    def check_shape(self, width: int, height: int, frames: int = 1) -> None:
        if width < 1 or height < 1:
            raise CorruptImage(f"the image header gives an empty size {width}x{height}")
        if max(width, height) > self.max_side:
            raise ImageTooLarge(f"the image is {width}x{height} pixels; no side may exceed {self.max_side}")
        if width * height * frames > self.max_pixels:
            raise ImageTooLarge(
                f"the image has {width * height * frames} pixels; the limit is {self.max_pixels}"
            )


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class DecodedImage:
    """A 2-D grey image scaled to 0..255 (uint8 for 8-bit rasters, float32 otherwise), dark = low."""

    pixels: np.ndarray
    format: str  # "dicom" | "jpeg" | "png"
    original_size: tuple[int, int]  # (width, height) as stored, before any reduced-scale decode
    tags: dict[str, str] = field(default_factory=dict)  # DICOM attributes named in DICOM_METADATA_KEYWORDS


# What other uploads look like, by their leading bytes: named in the refusal so the sender learns
# what they actually sent (a compressed export, a scanner's TIFF, a sidecar under the wrong name).
_OTHER_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"PK\x03\x04", "ZIP"),
    (b"%PDF", "PDF"),
    (b"GIF8", "GIF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)


def sniff(data: bytes) -> str:
    """The image format from its magic bytes: 'dicom', 'png' or 'jpeg'; anything else raises
    UnsupportedFormat naming what the content looks like (`describe_content`)."""
    if data[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM":
        return "dicom"
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    raise UnsupportedFormat(
        f"the content looks like {describe_content(data)}, not a DICOM (no 'DICM' at byte 128), PNG or JPEG "
        "file; other formats and DICOM files without the 128-byte preamble are not accepted"
    )


def describe_content(data: bytes) -> str:
    """A short name for content that is none of the accepted formats: 'gzip', 'TIFF', 'JSON', ...,
    'empty' or 'unknown'. Only the leading bytes are looked at (the caller may pass just those)."""
    if not data:
        return "empty"
    for magic, name in _OTHER_MAGICS:
        if data.startswith(magic):
            return name
    if data.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] in (b"{", b"["):
        return "JSON"
    return "unknown"


def read_image(data: bytes, *, target: int | None = None, limits: Limits = DEFAULT_LIMITS) -> DecodedImage:
    """Decode `data`. With `target`, a JPEG may be decoded at a reduced scale whose shorter side is
    still at least `target` pixels."""
    limits.check_bytes(len(data))
    kind = sniff(data)
    if kind == "dicom":
        return _read_dicom(data, limits)
    return _read_raster(data, kind, target, limits)


# --- DICOM -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _corrupt_on_error(what: str) -> Iterator[None]:
    """Turn any decoder failure into CorruptImage, keeping the pipeline's own errors as they are."""
    try:
        yield
    except InvalidInput:
        raise
    except Exception as exc:  # parsers raise many types on damaged input (EOF, struct, VR, value...)
        raise CorruptImage(f"{what}: {exc}") from None
    except BaseException as exc:
        # The Rust RLE decoder panics on damaged data, and pyo3 panics are BaseExceptions.
        if type(exc).__name__ != "PanicException":
            raise
        raise CorruptImage(f"{what}: {exc}") from None


def _read_dicom(data: bytes, limits: Limits) -> DecodedImage:
    import pydicom

    # pydicom converts elements lazily, so damage may surface at any attribute access below.
    with _corrupt_on_error("the DICOM file cannot be read"):
        ds = pydicom.dcmread(io.BytesIO(data))
        if "PixelData" not in ds:
            kind = "Float Pixel Data" if ("FloatPixelData" in ds or "DoubleFloatPixelData" in ds) else "no pixel data"
            raise UnsupportedImage(f"the DICOM has {kind}; an integer Pixel Data (7FE0,0010) image is required")
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
        if photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise UnsupportedImage(
                f"the DICOM is {photometric or 'missing Photometric Interpretation'}; only greyscale "
                "(MONOCHROME1/MONOCHROME2) radiographs are accepted"
            )
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
        limits.check_shape(columns, rows, frames)
        if frames != 1:
            raise UnsupportedImage(f"the DICOM has {frames} frames; a single-frame radiograph is required")
        with _corrupt_on_error("the DICOM pixel data cannot be decoded"):
            stored = ds.pixel_array
        if stored.ndim != 2:
            raise UnsupportedImage(f"the DICOM pixel array has shape {stored.shape}; a 2-D image is required")
        with _corrupt_on_error("the DICOM's grayscale attributes (bits, rescale, window, LUTs) are invalid"):
            pixels = grayscale_display(stored, ds)
        tags = {kw: str(ds.get(kw, "") or "") for kw in DICOM_METADATA_KEYWORDS}
    return DecodedImage(pixels, "dicom", (columns, rows), tags)


def grayscale_display(stored: np.ndarray, ds: Any) -> np.ndarray:
    """Stored DICOM values to a float32 image in 0..255 where low means dark on screen."""
    import numpy as np

    if stored.dtype.kind in "iu" and int(stored.max()) - int(stored.min()) < _LUT_MAX_SPAN:
        low = int(stored.min())
        values = np.arange(low, int(stored.max()) + 1, dtype=np.int64)
        lut = _display_values(values, ds)
        return lut[stored - low] if low else lut[stored]
    return _display_values(stored, ds)


def _display_values(values: np.ndarray, ds: Any) -> np.ndarray:
    """The point operations of the grayscale pipeline, applied to any array of stored values."""
    import numpy as np
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    modality = apply_modality_lut(values, ds)
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    shown = apply_voi_lut(modality, ds, index=0, prefer_lut=True) if has_voi else modality
    low, high = _output_range(ds) if has_voi else (float(np.min(modality)), float(np.max(modality)))
    span = high - low  # negative for a negative rescale slope, which the division then undoes
    scaled = (shown - low) * (255.0 / span) if span else np.zeros_like(shown, dtype=np.float64)
    scaled = np.clip(scaled, 0.0, 255.0)
    # MONOCHROME1 shows its minimum as white; a Presentation LUT Shape of INVERSE asks for the same
    # on MONOCHROME2. For MONOCHROME1 the standard pairs it with INVERSE: still a single inversion.
    inverse = ds.PhotometricInterpretation == "MONOCHROME1" or ds.get("PresentationLUTShape") == "INVERSE"
    return (255.0 - scaled if inverse else scaled).astype(np.float32)


def _output_range(ds: Any) -> tuple[float, float]:
    """The (first, last) output values of the VOI stage, exactly as pydicom's apply_voi_lut uses them."""
    if "VOILUTSequence" in ds:
        item = ds.VOILUTSequence[0]
        entries = _lut_entries(item)
        bits = int(item.LUTDescriptor[2])
        # Descriptors often overstate the entry depth (16 for 12-bit tables): trust the table.
        largest = max(int(entries.max()), 1)
        return 0.0, float(min((1 << bits) - 1, (1 << largest.bit_length()) - 1))
    if "ModalityLUTSequence" in ds:
        low, high = 0.0, float((1 << int(ds.ModalityLUTSequence[0].LUTDescriptor[2])) - 1)
    elif ds.get("PixelRepresentation", 0) == 0:
        low, high = 0.0, float((1 << int(ds.BitsStored)) - 1)
    else:
        low, high = float(-(1 << (int(ds.BitsStored) - 1))), float((1 << (int(ds.BitsStored) - 1)) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return low, high


def _lut_entries(item: Any) -> np.ndarray:
    import numpy as np

    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):
        dtype = "<u2" if int(item.LUTDescriptor[2]) > 8 else "u1"
        return np.frombuffer(data, dtype=dtype)
    return np.asarray(data if isinstance(data, (list, tuple)) else [data])


# --- JPEG / PNG ---------------------------------------------------------------------------------


def _read_raster(data: bytes, kind: str, target: int | None, limits: Limits) -> DecodedImage:
    import numpy as np
    from PIL import Image, ImageOps

    pil_format = "JPEG" if kind == "jpeg" else "PNG"
    with _corrupt_on_error(f"the {pil_format} cannot be decoded"):
        try:
            with warnings.catch_warnings():
                # Pillow only warns between its bomb threshold and twice it; make that a refusal too.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data), formats=[pil_format])
                width, height = image.size
                limits.check_shape(width, height, getattr(image, "n_frames", 1))
                if kind == "jpeg" and target:
                    image.draft("L", (target, target))
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLarge(f"the {pil_format} is a decompression bomb: {exc}") from None
        pixels = _to_grey(ImageOps.exif_transpose(image), np)
    return DecodedImage(pixels, kind, (width, height))


def _to_grey(image: Any, np: Any) -> np.ndarray:
    """Pillow image to 0..255 grey: 8-bit modes as uint8, 16/32-bit integer modes stretched to their
    own min..max as float32 (16-bit exports seldom use the full 0..65535 range)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        if high <= low:
            return np.zeros(values.shape, dtype=np.float32)
        return ((values - low) * (255.0 / (high - low))).astype(np.float32)
    if image.mode != "L":
        image = image.convert("L")  # colour or palette exports of a radiograph: luma, alpha dropped
    return np.asarray(image, dtype=np.uint8)
