"""Bad inputs for the pipeline, generated on the fly, and good studies to mix them with.

A study is a list of (object key under incoming/, bytes) uploaded in order — sidecar first, as
clients do — and its trigger: the image key whose upload starts the pipeline. Every bad study must
end quarantined (failed/<id>/<input ref>/reason.json naming the trigger as its input key); none may be lost."""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from tests.unit.pipeline_fixtures import (
    CR_FILES,
    DEID_KEY,
    dataset,
    dicom_bytes,
    png_with_header,
    raster,
    smooth_image,
)

INCOMING = "incoming/"


@dataclass(frozen=True)
class Study:
    name: str
    objects: tuple[tuple[str, bytes], ...]

    @property
    def trigger(self) -> str:
        return self.objects[-1][0]


def sidecar(study_id: object, **extra: object) -> bytes:
    return json.dumps({"study_id": study_id, "view": "PA", "timestamp": "2024-01-15T10:00:00Z",
                       "burned_in_annotation": False, **extra}).encode()


def small_png(seed: int = 0) -> bytes:
    return raster(smooth_image(96, 96, seed=seed), "PNG")


def png_study(study_id: str, image: bytes, side: bytes | None = None, ext: str = "png") -> Study:
    objects = [] if side is None else [(f"{INCOMING}{study_id}.json", side)]
    return Study(study_id, (*objects, (f"{INCOMING}{study_id}.{ext}", image)))


def dicom_study(study_id: str, data: bytes) -> Study:
    return Study(study_id, ((f"{INCOMING}{study_id}.dcm", data),))


def _deidentified(name: str = CR_FILES[2]):
    from radstream.pipeline.deid import deidentify

    ds = dataset(name)
    ds.ViewPosition = "PA"
    return deidentify(ds, DEID_KEY)


def _rgb_dicom() -> bytes:
    ds = _deidentified()
    ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration = "RGB", 3, 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = np.full((ds.Rows, ds.Columns, 3), 90, np.uint8).tobytes()
    return dicom_bytes(ds)


def _palette_dicom() -> bytes:
    ds = _deidentified()
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = np.zeros((ds.Rows, ds.Columns), np.uint8).tobytes()
    ramp = np.arange(256, dtype=np.uint16).tobytes()
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        ds[f"{colour}PaletteColorLookupTableDescriptor"].VR = "US"
        setattr(ds, f"{colour}PaletteColorLookupTableData", ramp)
    return dicom_bytes(ds)


def _no_pixels_dicom() -> bytes:
    ds = _deidentified()
    del ds.PixelData
    return dicom_bytes(ds)


def _bomb_dicom() -> bytes:
    ds = _deidentified()
    ds.Rows = ds.Columns = 60_000  # 3.6 G pixels claimed, a few bytes given
    return dicom_bytes(ds)


def _identified_dicom() -> bytes:
    ds = dataset(CR_FILES[0])  # straight from the scanner: names and dates still in it
    ds.ViewPosition = "PA"
    return dicom_bytes(ds)


def _corrupt_png() -> bytes:
    data = bytearray(small_png(3))
    start = len(data) // 2
    data[start:start + 64] = bytes(64)  # IDAT no longer inflates, CRC no longer matches
    return bytes(data)


def _gif() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (32, 32), 100).save(out, "GIF")
    return out.getvalue()


def _bmp() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (32, 32), 100).save(out, "BMP")
    return out.getvalue()


def _png_chunkless() -> bytes:
    header = struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0)
    ihdr = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return b"\x89PNG\r\n\x1a\n" + ihdr  # no IDAT, no IEND


def bad_studies() -> list[Study]:
    """At least 25 ways for an upload to be wrong; each named after what is wrong with it."""
    good_png = small_png(1)
    jpeg = raster(smooth_image(128, 128, seed=2), "JPEG", quality=90)
    rng = random.Random(8)
    cases: list[Study] = []

    def png(name: str, image: bytes, side: bytes | None = None, ext: str = "png") -> None:
        study_id = f"BAD-{len(cases):02d}-{name}"
        cases.append(png_study(study_id, image, sidecar(study_id) if side is None else side, ext))

    def sidecar_case(name: str, side_of: object) -> None:
        study_id = f"BAD-{len(cases):02d}-{name}"
        side = side_of(study_id) if callable(side_of) else side_of
        cases.append(png_study(study_id, good_png, side))

    # Images that are not what they claim, or cannot be decoded safely.
    png("truncated-png", good_png[: len(good_png) // 3])
    png("zero-bytes", b"")
    png("wrong-magic", bytes(rng.getrandbits(8) for _ in range(2048)))
    png("text-as-jpeg", b"this is not an image\n" * 20, ext="jpg")
    png("png-bomb", png_with_header(60_000, 60_000))
    png("truncated-jpeg", jpeg[: len(jpeg) // 2], ext="jpg")
    png("corrupt-idat", _corrupt_png())
    png("png-without-data", _png_chunkless())
    png("gif", _gif())
    png("bmp", _bmp())
    png("jpeg-magic-only", b"\xff\xd8\xff" + bytes(500), ext="jpg")
    # DICOM that is broken, coloured, empty, huge or still identifying someone.
    dicoms = {
        "rgb-dicom": _rgb_dicom(),
        "palette-dicom": _palette_dicom(),
        "no-pixel-data": _no_pixels_dicom(),
        "dicom-bomb": _bomb_dicom(),
        "truncated-dicom": _rgb_dicom()[:600],
        "identified-dicom": _identified_dicom(),
        "dicom-without-magic": bytes(128) + b"XXXX" + _no_pixels_dicom()[132:],
    }
    for name, data in dicoms.items():
        cases.append(dicom_study(f"BAD-{len(cases):02d}-{name}", data))
    # Good pixels, bad sidecars.
    sidecar_case("traversal", lambda sid: sidecar(f"../{sid}"))
    sidecar_case("unicode-id", lambda sid: sidecar("ＢＡＤ－ｆｕｌｌｗｉｄｔｈ"))
    sidecar_case("oversized", lambda sid: sidecar(sid, site_code="x" * 8000))
    sidecar_case("unknown-field", lambda sid: sidecar(sid, patient_name="Jane Doe"))
    sidecar_case("wrong-types", lambda sid: json.dumps({"study_id": sid, "view": 7, "timestamp": [2024]}).encode())
    sidecar_case("bad-timestamp", lambda sid: sidecar(sid) .replace(b"2024-01-15T10:00:00Z", b"2024-13-45T99:00"))
    sidecar_case("not-json", b"{study_id: nope")
    sidecar_case("not-utf8", b"\xff\xfe\x00{\x00")
    sidecar_case("duplicate-keys", lambda sid: b'{"study_id": "%s", "study_id": "X", "view": "PA", '
                                                b'"timestamp": "2024-01-15T10:00:00Z"}' % sid.encode())
    sidecar_case("empty-sidecar", b"")
    sidecar_case("sidecar-is-a-list", lambda sid: json.dumps([sid, "PA"]).encode())
    sidecar_case("identifying-age", lambda sid: sidecar(sid, age_band="95"))
    sidecar_case("bad-view", lambda sid: sidecar(sid, view="SIDEWAYS"))
    study_id = f"BAD-{len(cases):02d}-missing-sidecar"
    cases.append(png_study(study_id, good_png, None))
    return cases


def good_studies(count: int, dicoms: int = 4) -> list[Study]:
    """`count` good studies: small PNGs with sidecars, and a few de-identified DICOMs."""
    studies = [dicom_study(f"GOOD-D{i:03d}", dicom_bytes(_deidentified(CR_FILES[i % len(CR_FILES)])))
               for i in range(dicoms)]
    for i in range(count - dicoms):
        study_id = f"GOOD-{i:03d}"
        studies.append(png_study(study_id, small_png(seed=100 + i), sidecar(study_id)))
    return studies
