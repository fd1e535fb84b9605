"""Readers: DICOM through the grayscale pipeline in every transfer syntax, JPEG/PNG through Pillow,
and every bad input refused with the right error type before anything large is decoded."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from radstream.pipeline.errors import CorruptImage, ImageTooLarge, InvalidInput, UnsupportedFormat, UnsupportedImage
from radstream.pipeline.readers import Limits, describe_content, grayscale_display, read_image, sniff
from tests.unit.pipeline_fixtures import (
    CR_FILES,
    dataset,
    dicom_bytes,
    jpeg_baseline_dicom,
    png_with_header,
    raster,
    sample_bytes,
    smooth_image,
    window_reference,
)


@pytest.fixture(scope="module")
def rg1():
    return read_image(sample_bytes("RG1_UNCR.dcm"))


# --- DICOM: the grayscale pipeline ---------------------------------------------------------------


@pytest.mark.parametrize("name", CR_FILES)
def test_cr_matches_an_independent_window_reference(name):
    ds = dataset(name)
    decoded = read_image(sample_bytes(name))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    expected = 255 - window_reference(
        ds.pixel_array, float(ds.RescaleSlope), float(ds.RescaleIntercept),
        float(ds.WindowCenter), float(ds.WindowWidth), int(ds.BitsStored),
    )
    assert decoded.format == "dicom"
    assert decoded.pixels.dtype == np.float32
    np.testing.assert_allclose(decoded.pixels, expected, atol=1e-3)


@pytest.mark.parametrize("name", [*CR_FILES, "RG1_UNCR.dcm"])
def test_dicom_matches_pydicom_modality_and_voi_reference(name):
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = dataset(name)
    shown = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    bits = int(ds.BitsStored)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    low, high = intercept, (2**bits - 1) * slope + intercept
    reference = 255 - (shown - low) / (high - low) * 255  # all of these are MONOCHROME1
    np.testing.assert_allclose(read_image(sample_bytes(name)).pixels, reference, atol=1e-3)


def test_view_and_tags_come_from_the_dicom():
    decoded = read_image(sample_bytes(CR_FILES[0]))
    assert decoded.tags["ViewPosition"] == "LL"
    assert decoded.tags["Modality"] == "CR"
    assert decoded.original_size == (16, 16)
    assert read_image(sample_bytes("RG1_UNCR.dcm")).tags["ViewPosition"] == "PA"


def test_monochrome1_radiograph_shows_lungs_dark(rg1):
    pixels = rg1.pixels
    assert rg1.original_size == (1841, 1955) and pixels.shape == (1955, 1841)
    rows = slice(int(0.25 * 1955), int(0.45 * 1955))
    left_lung = pixels[rows, int(0.25 * 1841) : int(0.35 * 1841)].mean()
    right_lung = pixels[rows, int(0.65 * 1841) : int(0.75 * 1841)].mean()
    mediastinum = pixels[rows, int(0.47 * 1841) : int(0.53 * 1841)].mean()
    assert left_lung < mediastinum - 20 and right_lung < mediastinum - 20


def test_monochrome1_is_the_inverse_of_the_same_data_as_monochrome2(rg1):
    ds = dataset("RG1_UNCR.dcm")
    ds.PhotometricInterpretation = "MONOCHROME2"
    np.testing.assert_allclose(read_image(dicom_bytes(ds)).pixels, 255 - rg1.pixels, atol=1e-3)


def test_presentation_lut_shape_inverse_inverts_monochrome2():
    ds = dataset(CR_FILES[0])
    ds.PhotometricInterpretation = "MONOCHROME2"
    plain = read_image(dicom_bytes(ds)).pixels
    ds.PresentationLUTShape = "INVERSE"
    np.testing.assert_allclose(read_image(dicom_bytes(ds)).pixels, 255 - plain, atol=1e-3)


def test_window_changes_the_result():
    ds = dataset(CR_FILES[0])
    wide = read_image(dicom_bytes(ds)).pixels
    ds.WindowCenter, ds.WindowWidth = 1000, 200
    narrow = read_image(dicom_bytes(ds)).pixels
    assert np.isin(narrow, (0.0, 255.0)).mean() > np.isin(wide, (0.0, 255.0)).mean()


def test_negative_rescale_slope_depends_only_on_modality_values():
    positive, negative = dataset(CR_FILES[0]), dataset(CR_FILES[0])
    stored = positive.pixel_array
    positive.PixelData = (4095 - stored).astype(np.uint16).tobytes()
    negative.RescaleSlope, negative.RescaleIntercept = -0.684, 200 + 0.684 * 4095
    # Same modality values (200 + 0.684 * (4095 - stored)) and window: the same picture.
    np.testing.assert_allclose(read_image(dicom_bytes(negative)).pixels, read_image(dicom_bytes(positive)).pixels, atol=1e-3)


def test_without_window_the_full_value_range_is_used():
    ds = dataset(CR_FILES[0])
    del ds.WindowCenter, ds.WindowWidth
    pixels = read_image(dicom_bytes(ds)).pixels
    assert pixels.min() == 0 and pixels.max() == 255


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "mlut_18.dcm", "vlut_04.dcm", "MR_small.dcm"])
def test_lookup_table_path_equals_per_pixel_pipeline(name):
    from radstream.pipeline import readers

    ds = dataset(name)
    stored = ds.pixel_array
    np.testing.assert_array_equal(grayscale_display(stored, ds), readers._display_values(stored, ds))


def test_modality_lut_and_voi_lut_sequences_are_applied():
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    mlut = dataset("mlut_18.dcm")
    expected = apply_modality_lut(mlut.pixel_array, mlut).astype(np.float64)
    got = read_image(sample_bytes("mlut_18.dcm")).pixels
    np.testing.assert_allclose(got, (expected - expected.min()) / (expected.max() - expected.min()) * 255, atol=1e-3)

    vlut = dataset("vlut_04.dcm")
    expected = apply_voi_lut(vlut.pixel_array, vlut).astype(np.float64)
    np.testing.assert_allclose(read_image(sample_bytes("vlut_04.dcm")).pixels, expected / 65535 * 255, atol=1e-3)


# --- DICOM: transfer syntaxes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "compressed, uncompressed",
    [
        ("RG1_J2KR.dcm", "RG1_UNCR.dcm"),  # JPEG 2000 lossless
        ("MR_small_RLE.dcm", "MR_small.dcm"),  # RLE lossless
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS lossless
        ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
        ("MR_small_implicit.dcm", "MR_small.dcm"),  # implicit VR
        ("MR_small_bigendian.dcm", "MR_small.dcm"),  # explicit VR big endian
    ],
)
def test_lossless_transfer_syntaxes_decode_identically(compressed, uncompressed):
    np.testing.assert_array_equal(read_image(sample_bytes(compressed)).pixels, read_image(sample_bytes(uncompressed)).pixels)


def test_lossy_jpeg_2000_decodes_close_to_its_decoded_twin():
    got = read_image(sample_bytes("RG1_J2KI.dcm")).pixels
    want = read_image(sample_bytes("RG1_UNCI.dcm")).pixels
    assert np.abs(got.astype(np.float64) - want).mean() < 0.5


@pytest.mark.parametrize("name", ["JPGExtended.dcm", "JPEG-LL.dcm"])  # JPEG 12-bit lossy, JPEG lossless
def test_jpeg_transfer_syntaxes_decode_the_same_picture(name):
    # Same nuclear-medicine image as JPEG2000_UNC, but stored with other value ranges, so the
    # min-max stretch differs: compare the pictures by correlation.
    got = read_image(sample_bytes(name)).pixels
    want = read_image(sample_bytes("JPEG2000_UNC.dcm")).pixels
    assert got.shape == want.shape == (1024, 256)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9  # lossy, noisy: ~0.95; unrelated: ~0


def test_jpeg_baseline_dicom_matches_the_jpeg_itself():
    pixels = smooth_image(64, 80)
    from_dicom = read_image(jpeg_baseline_dicom(pixels)).pixels
    from_jpeg = read_image(raster(pixels, "JPEG", quality=95)).pixels
    assert from_dicom.shape == (64, 80)
    # The DICOM path stretches to the data range (no window); undo that before comparing.
    stretched = (from_jpeg - float(from_jpeg.min())) / float(from_jpeg.max() - from_jpeg.min()) * 255
    assert np.abs(from_dicom - stretched).max() < 2


# --- DICOM: refusals -----------------------------------------------------------------------------


def test_rgb_dicom_is_refused():
    with pytest.raises(UnsupportedImage, match="RGB"):
        read_image(sample_bytes("SC_rgb_small_odd.dcm"))


def test_dicom_without_pixel_data_is_refused():
    with pytest.raises(UnsupportedImage, match="no pixel data"):
        read_image(sample_bytes("rtplan.dcm"))


def test_truncated_dicom_is_corrupt():
    data = sample_bytes("RG1_UNCR.dcm")
    with pytest.raises(CorruptImage):
        read_image(data[: len(data) // 2])


def test_multi_frame_dicom_is_refused():
    ds = dataset(CR_FILES[0])
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    with pytest.raises(UnsupportedImage, match="2 frames"):
        read_image(dicom_bytes(ds))


def test_invalid_window_is_corrupt():
    ds = dataset(CR_FILES[0])
    ds.WindowWidth = 0
    with pytest.raises(CorruptImage, match="grayscale attributes"):
        read_image(dicom_bytes(ds))


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about every damaged value it reads
@pytest.mark.parametrize(
    "source",
    ["CR", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "png", "png16", "jpeg"],
)
def test_damaged_files_give_a_pipeline_error_or_a_valid_image(source):
    """Seeded fuzzing: flipped bytes and cut files must end as a typed error (which Step Functions
    can route) or a sane image, never as another exception (nor a Rust panic in a decoder)."""
    originals = {
        "CR": lambda: sample_bytes(CR_FILES[0]),
        "png": lambda: raster(smooth_image(40, 40), "PNG"),
        "png16": lambda: raster(smooth_image(40, 40).astype(np.uint16) * 200, "PNG"),
        "jpeg": lambda: raster(smooth_image(40, 40), "JPEG"),
    }
    data = originals.get(source, lambda: sample_bytes(source))()
    rng = np.random.default_rng(7)
    for _ in range(150):
        damaged = bytearray(data)
        for position in rng.integers(0, len(damaged), size=rng.integers(1, 8)):
            damaged[position] = rng.integers(0, 256)
        if rng.random() < 0.3:
            damaged = damaged[: rng.integers(1, len(damaged))]
        try:
            pixels = read_image(bytes(damaged)).pixels
        except InvalidInput:
            continue
        assert pixels.ndim == 2 and np.isfinite(pixels).all() and 0 <= pixels.min() <= pixels.max() <= 255


def test_dicom_dimensions_are_checked_before_decoding():
    ds = dataset(CR_FILES[0])
    ds.Rows = ds.Columns = 30000  # pixel data still 16x16: decoding would fail, the limit comes first
    with pytest.raises(ImageTooLarge, match="30000x30000"):
        read_image(dicom_bytes(ds))


# --- JPEG and PNG --------------------------------------------------------------------------------


def test_grey_png_8bit_is_read_exactly():
    pixels = smooth_image(50, 70)
    decoded = read_image(raster(pixels, "PNG"))
    assert decoded.format == "png" and decoded.pixels.dtype == np.uint8
    np.testing.assert_array_equal(decoded.pixels, pixels)


def test_png_16bit_is_stretched_to_its_own_range():
    pixels = (smooth_image(40, 60).astype(np.uint16) * 16)  # 12-bit values in a 16-bit PNG
    decoded = read_image(raster(pixels, "PNG"))
    expected = (pixels - pixels.min()) / (pixels.max() - pixels.min()) * 255
    assert decoded.pixels.dtype == np.float32
    np.testing.assert_allclose(decoded.pixels, expected, atol=1e-3)


def test_colour_png_becomes_grey():
    grey = smooth_image(30, 30)
    decoded = read_image(raster(np.dstack([grey, grey, grey]), "PNG"))
    assert decoded.pixels.ndim == 2
    assert np.abs(decoded.pixels.astype(int) - grey).max() <= 1


def test_jpeg_round_trip_is_close():
    pixels = smooth_image(120, 90)
    decoded = read_image(raster(pixels, "JPEG", quality=95))
    assert decoded.format == "jpeg" and decoded.pixels.shape == (120, 90)
    assert np.abs(decoded.pixels.astype(int) - pixels).mean() < 3


def test_jpeg_draft_decodes_at_reduced_scale_but_not_below_target():
    data = raster(smooth_image(2048, 1536), "JPEG", quality=90)
    decoded = read_image(data, target=224)
    assert decoded.original_size == (1536, 2048)
    # 1/8 scale would give 192 < 224 columns, so the decoder stops at 1/4.
    assert decoded.pixels.shape == (512, 384)
    assert read_image(data).pixels.shape == (2048, 1536)


def test_jpeg_exif_orientation_is_applied():
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    decoded = read_image(raster(smooth_image(40, 100), "JPEG", exif=exif.tobytes()))
    assert decoded.pixels.shape == (100, 40)


def test_truncated_jpeg_is_corrupt():
    data = raster(smooth_image(256, 256), "JPEG")
    with pytest.raises(CorruptImage, match="JPEG"):
        read_image(data[: len(data) // 2])


@pytest.mark.parametrize("data, looks_like", [
    (gzip.compress(b"DICM" * 64, mtime=0), "gzip"),
    (b"II*\x00" + bytes(64), "TIFF"),
    (b"MM\x00*" + bytes(64), "TIFF"),
    (b'  {"study_id": "S-1"}', "JSON"),
    (b"[1, 2]", "JSON"),
    (b"PK\x03\x04" + bytes(64), "ZIP"),
    (b"%PDF-1.7", "PDF"),
    (b"", "empty"),
    (b"plain text", "unknown"),
])
def test_sniffing_names_what_an_unsupported_content_looks_like(data, looks_like):
    assert describe_content(data) == looks_like
    with pytest.raises(UnsupportedFormat, match=f"looks like {looks_like}, not a DICOM") as caught:
        sniff(data)
    assert caught.value.stage == "validate" and isinstance(caught.value, UnsupportedImage)


def test_sniffing_goes_by_the_magic_bytes_alone():
    assert sniff(bytes(128) + b"DICM") == "dicom"
    assert sniff(b"\xff\xd8\xff\xe0") == "jpeg"
    with pytest.raises(UnsupportedFormat):
        sniff(b"DICM" + bytes(200))  # a DICOM without its preamble


def test_text_named_jpg_is_unsupported():
    with pytest.raises(UnsupportedImage, match="not a DICOM"):
        read_image(b"this is not an image, whatever its name says\n" * 5)


def test_random_bytes_are_unsupported():
    with pytest.raises(UnsupportedImage):
        read_image(np.random.default_rng(1).bytes(4096))


def test_empty_file_is_unsupported():
    with pytest.raises(UnsupportedImage, match="empty"):
        read_image(b"")


def test_png_header_bomb_is_refused():
    with pytest.raises(ImageTooLarge, match="bomb"):
        read_image(png_with_header(100_000, 100_000))


def test_png_size_is_checked_from_the_header_before_decoding():
    # The data behind this header is a few bytes: decoding would fail as corrupt, the limit comes first.
    with pytest.raises(ImageTooLarge, match="13000x1000"):
        read_image(png_with_header(13_000, 1_000))


def test_image_20000_pixels_wide_is_refused():
    with pytest.raises(ImageTooLarge, match="20000x4"):
        read_image(raster(np.zeros((4, 20_000), np.uint8), "PNG"))


@pytest.mark.parametrize("factor", [1.5, 3.0])  # Pillow warns above its limit and errors above twice it
def test_pillow_bomb_limits_are_refusals_too(factor):
    from PIL import Image

    side = int((Image.MAX_IMAGE_PIXELS * factor) ** 0.5) + 1
    generous = Limits(max_pixels=10**12, max_side=10**6)
    with pytest.raises(ImageTooLarge, match="bomb"):
        read_image(png_with_header(side, side), limits=generous)


def test_byte_and_pixel_limits():
    data = raster(smooth_image(100, 100), "PNG")
    with pytest.raises(ImageTooLarge, match="bytes"):
        read_image(data, limits=Limits(max_bytes=100))
    with pytest.raises(ImageTooLarge, match="10000 pixels"):
        read_image(data, limits=Limits(max_pixels=5000))


def test_routing_is_by_content_not_name():
    assert sniff(raster(smooth_image(8, 8), "PNG")) == "png"
    assert sniff(raster(smooth_image(8, 8), "JPEG")) == "jpeg"
    assert sniff(sample_bytes(CR_FILES[0])) == "dicom"
    with pytest.raises(UnsupportedImage):
        sniff(b"GIF89a" + bytes(200))
