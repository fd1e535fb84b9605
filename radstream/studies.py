"""The studies `radstream demo` and `radstream load` send through the pipeline. Pure: bytes in memory,
no client.

- Synthetic chest-like radiographs (lung fields, mediastinum, heart, ribs, diaphragm, noise) as
  JPEG, 8-bit PNG and 16-bit PNG, each with its JSON sidecar. Same seed, same bytes.
- The real PA chest radiograph shipped by pydicom-data, de-identified before it leaves the machine.
- Deliberately bad inputs the pipeline must quarantine, each with the stage and error it should
  report: a damaged PNG, a sidecar whose id climbs out with `../`, an RGB DICOM, a truncated JPEG.

Every object list is in upload order: the sidecar first, because the image's upload starts the
pipeline. Each study knows the id the pipeline files its outcome under (results/<id>/ or
failed/<id>/), which is not its name: a DICOM's comes from its Study Instance UID, a study whose
sidecar gives no valid id gets one from a hash of its key.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from radstream.names import INCOMING_PREFIX

if TYPE_CHECKING:
    import numpy as np

DEMO_PREFIX = "DEMO-"
REAL_RADIOGRAPH = "RG1_UNCR.dcm"  # pydicom-data: CR, PA, MONOCHROME1, 1955x1841, 15 bits stored
REAL_STUDY_NAME = "DEMO-RG1-PA"
_TIMESTAMP = "2024-01-15T10:00:00Z"
_CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "dcm": "application/dicom", "json": "application/json"}


@dataclass(frozen=True)
class GeneratedStudy:
    name: str  # what its objects are called: incoming/<name>.<ext>
    study_id: str  # the id the pipeline gives it, which its outcomes are filed under
    kind: str  # jpeg | png8 | png16 | dicom
    description: str
    objects: tuple[tuple[str, bytes, str], ...]  # (key, body, content type), upload order
    # For a deliberately bad input: the (stage, error type) the pipeline should quarantine it with.
    expected_failure: tuple[str, str] | None = None

    @property
    def image_key(self) -> str:
        """The object whose upload starts the pipeline (always the last one)."""
        return self.objects[-1][0]

    @property
    def keys(self) -> list[str]:
        return [key for key, _, _ in self.objects]

    @property
    def good(self) -> bool:
        return self.expected_failure is None


# -- pixels ---------------------------------------------------------------------------------------
def chest_pixels(height: int, width: int, seed: int = 0, bits: int = 8) -> np.ndarray:
    """A frontal chest radiograph look-alike (bright = dense, as displayed), uint8 or uint16.
    The seed varies anatomy, exposure and noise a little, so studies differ but stay plausible."""
    import numpy as np

    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-1, 1, 6)
    y, x = np.mgrid[-1:1:complex(0, height), -1:1:complex(0, width)].astype(np.float32)

    def ellipse(cx: float, cy: float, rx: float, ry: float, softness: float = 0.08) -> np.ndarray:
        distance = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
        return np.clip((1 - distance) / softness, 0, 1)

    torso = ellipse(0, 0.1, 0.95, 1.25, 0.25)
    lung_rx, lung_ry = 0.30 + 0.02 * jitter[0], 0.55 + 0.03 * jitter[1]
    lungs = np.maximum(ellipse(-0.36, -0.05, lung_rx, lung_ry, 0.2), ellipse(0.36, -0.05, lung_rx, lung_ry, 0.2))
    heart = ellipse(0.12 + 0.03 * jitter[2], 0.28, 0.24 + 0.03 * jitter[3], 0.22, 0.3)
    spine = np.clip(1 - np.abs(x) / 0.09, 0, 1) * (y > -0.9)
    ribs = np.clip(np.sin((y + 0.35 * x**2) * (22 + jitter[4])), 0, 1) ** 3 * lungs
    diaphragm = np.clip((y - 0.5 - 0.15 * x**2) / 0.1, 0, 1)
    density = 0.25 + 0.45 * torso - 0.45 * lungs + 0.35 * heart + 0.35 * spine + 0.15 * ribs + 0.3 * diaphragm * torso
    density = density * (1 + 0.05 * jitter[5]) + rng.normal(0, 0.015, density.shape).astype(np.float32)
    top = (1 << bits) - 1
    return (np.clip(density, 0, 1) * top).astype(np.uint8 if bits == 8 else np.uint16)


def encode(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    """PNG (8 or 16-bit grey, from the array's dtype) or JPEG bytes."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **options)
    return out.getvalue()


def sidecar(study_id: str, view: str = "PA", **fields: str) -> bytes:
    """Synthetic images have no text in their pixels, so their sidecars say so."""
    return json.dumps({"study_id": study_id, "view": view, "timestamp": _TIMESTAMP, "burned_in_annotation": False,
                       **fields}, indent=2).encode()


def raster_study(name: str, kind: str, image: bytes, description: str, sidecar_bytes: bytes | None = None,
                 expected_failure: tuple[str, str] | None = None) -> GeneratedStudy:
    from radstream.pipeline.study_ids import is_valid_study_id, key_study_id

    extension = "jpg" if kind == "jpeg" else "png"
    sidecar_bytes = sidecar_bytes or sidecar(name)
    image_key = f"{INCOMING_PREFIX}{name}.{extension}"
    claimed = json.loads(sidecar_bytes).get("study_id")
    return GeneratedStudy(
        name, claimed if is_valid_study_id(claimed) else key_study_id(image_key), kind, description,
        ((f"{INCOMING_PREFIX}{name}.json", sidecar_bytes, _CONTENT_TYPES["json"]),
         (image_key, image, _CONTENT_TYPES[extension])),
        expected_failure,
    )


def dicom_study(name: str, data: bytes, description: str,
                expected_failure: tuple[str, str] | None = None) -> GeneratedStudy:
    import pydicom

    from radstream.pipeline.deid import dicom_study_id

    study_uid = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID
    return GeneratedStudy(name, dicom_study_id(str(study_uid)), "dicom", description,
                          ((f"{INCOMING_PREFIX}{name}.dcm", data, _CONTENT_TYPES["dcm"]),), expected_failure)


# -- the real radiograph ----------------------------------------------------------------------------
def real_radiograph() -> GeneratedStudy:
    """The pydicom-data PA chest radiograph, de-identified (PS3.15 basic profile) before upload."""
    import secrets

    from pydicom.data import get_testdata_file

    from radstream.errors import RadstreamError
    from radstream.pipeline.deid import MIN_KEY_BYTES, deidentify_bytes

    path = get_testdata_file(REAL_RADIOGRAPH, download=False)  # never fetch from the network
    if path is None:
        raise RadstreamError(f"the real radiograph {REAL_RADIOGRAPH} is not installed",
                             hint="pip install pydicom-data (part of radstream's sandbox extra)")
    with open(path, "rb") as handle:
        # A fresh key each time: this is public test data, whose pseudonyms need match nothing.
        data = deidentify_bytes(handle.read(), secrets.token_bytes(MIN_KEY_BYTES))
    return dicom_study(REAL_STUDY_NAME, data, "real PA chest radiograph (pydicom-data RG1, CR, de-identified)")


def _deidentified_image_dataset(entropy: str, sop_class: str, modality: str) -> Any:
    """A DICOM dataset with new UIDs from `entropy`, marked de-identified, View Position PA."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    from radstream.pipeline.deid import DEIDENTIFICATION_METHOD

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = UID(sop_class)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[entropy])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"{entropy}-study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"{entropy}-series"])
    ds.Modality, ds.ViewPosition = modality, "PA"
    ds.PatientIdentityRemoved, ds.DeidentificationMethod = "YES", DEIDENTIFICATION_METHOD
    return ds


def _saved(ds: Any) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def rgb_dicom(size: int = 128) -> bytes:
    """A small de-identified RGB secondary-capture DICOM with View Position PA: readable metadata, but
    colour pixels the pipeline refuses."""
    import numpy as np

    ds = _deidentified_image_dataset("radstream-demo-rgb", "1.2.840.10008.5.1.4.1.1.7", "OT")  # Secondary Capture
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    grey = chest_pixels(size, size, seed=99)
    ds.PixelData = np.stack([grey, grey // 2, grey], axis=-1).tobytes()
    return _saved(ds)


def grey_dicom(size: int, seed: int = 0, bits: int = 12) -> bytes:
    """A de-identified digital radiograph (DX, MONOCHROME2, `bits` stored in 16), uncompressed."""
    pixels = chest_pixels(size, size, seed=seed, bits=16) >> (16 - bits)
    ds = _deidentified_image_dataset(f"radstream-grey-{size}-{seed}", "1.2.840.10008.5.1.4.1.1.1.1", "DX")  # DX For Presentation
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = pixels.astype("<u2").tobytes()
    return _saved(ds)


def damaged(data: bytes, keep: float = 0.5, scramble: bool = False) -> bytes:
    """`data` cut after `keep` of its length, or (scramble) with a stretch there overwritten and the
    length kept, as a faulty disk or transfer would leave it."""
    cut = int(len(data) * keep)
    if not scramble:
        return data[:cut]
    stretch = min(512, len(data) - cut)
    return data[:cut] + bytes((b ^ 0x5A) for b in data[cut : cut + stretch]) + data[cut + stretch :]


# -- the sets -------------------------------------------------------------------------------------
def demo_studies(include_real: bool = True) -> list[GeneratedStudy]:
    """Every demo study, good ones first. Same list, ids and (except the de-identified DICOM's fresh
    UIDs) same bytes on every call."""
    good = [
        raster_study("DEMO-JPEG-1", "jpeg", encode(chest_pixels(2048, 2048, seed=1), "JPEG", quality=90),
                     "synthetic PA, JPEG 2048x2048"),
        raster_study("DEMO-JPEG-2", "jpeg", encode(chest_pixels(1536, 1280, seed=2), "JPEG", quality=85),
                     "synthetic AP, JPEG 1280x1536", sidecar("DEMO-JPEG-2", "AP", age_band="60-69", sex="M")),
        raster_study("DEMO-PNG8-1", "png8", encode(chest_pixels(1024, 1024, seed=3), "PNG"),
                     "synthetic PA, 8-bit PNG 1024x1024", sidecar("DEMO-PNG8-1", "PA", modality="DX", site_code="DEMO")),
        raster_study("DEMO-PNG8-2", "png8", encode(chest_pixels(960, 800, seed=4), "PNG"),
                     "synthetic PA, 8-bit PNG 800x960", sidecar("DEMO-PNG8-2", "PA", age_band="30-39", sex="F")),
        raster_study("DEMO-PNG16-1", "png16", encode(chest_pixels(1024, 1024, seed=5, bits=16), "PNG"),
                     "synthetic PA, 16-bit PNG 1024x1024"),
    ]
    if include_real:
        good.append(real_radiograph())
    png = encode(chest_pixels(512, 512, seed=6), "PNG")
    jpeg = encode(chest_pixels(768, 768, seed=7), "JPEG", quality=90)
    bad = [
        raster_study("DEMO-BAD-CORRUPT-PNG", "png8", damaged(png, 0.4, scramble=True),
                     "PNG with a damaged stretch of image data", expected_failure=("prepare", "CorruptImage")),
        raster_study("DEMO-BAD-TRAVERSAL", "png8", png, "sidecar whose study_id is ../DEMO-BAD-TRAVERSAL",
                     sidecar("../DEMO-BAD-TRAVERSAL"), expected_failure=("validate", "InvalidMetadata")),
        dicom_study("DEMO-BAD-RGB-DICOM", rgb_dicom(), "RGB DICOM (colour, not a radiograph)",
                    expected_failure=("prepare", "UnsupportedImage")),
        raster_study("DEMO-BAD-TRUNCATED-JPEG", "jpeg", damaged(jpeg, 0.5), "JPEG cut off halfway",
                     expected_failure=("prepare", "CorruptImage")),
    ]
    return good + bad


# A load test cycles through a few image variants: real-looking sizes, both raster formats.
_LOAD_VARIANTS = (("png8", 1024, 1024), ("jpeg", 2048, 2048), ("png8", 768, 896), ("jpeg", 1536, 1280))


@lru_cache(maxsize=len(_LOAD_VARIANTS))
def _load_image(variant: int) -> bytes:
    kind, height, width = _LOAD_VARIANTS[variant]
    pixels = chest_pixels(height, width, seed=100 + variant)
    return encode(pixels, "JPEG", quality=90) if kind == "jpeg" else encode(pixels, "PNG")


def load_id_prefix(run_id: str) -> str:
    """What every study id of load run `run_id` starts with."""
    return f"LOAD-{run_id}-"


def load_study_id(run_id: str, index: int) -> str:
    return f"{load_id_prefix(run_id)}{index:05d}"


def load_study(run_id: str, index: int) -> GeneratedStudy:
    """The `index`-th study of load run `run_id` (ids are unique per run, images are reused)."""
    variant = index % len(_LOAD_VARIANTS)
    study_id = load_study_id(run_id, index)
    kind = _LOAD_VARIANTS[variant][0]
    return raster_study(study_id, kind, _load_image(variant), f"load study {index} ({kind})")
