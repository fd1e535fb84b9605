"""Preprocessing to the model input and the tensor's trip between steps."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from radstream.pipeline.preprocess import (
    FAST_PATH_TOLERANCE,
    INPUT_SIZE,
    decode_tensor,
    encode_tensor,
    prepare,
    resize,
    to_square,
    to_tensor,
)
from radstream.pipeline.readers import read_image
from tests.unit.pipeline_fixtures import CR_FILES, raster, sample_bytes, smooth_image


def test_crop_takes_the_centre_of_the_longer_side():
    tall = np.arange(10 * 4, dtype=np.uint8).reshape(10, 4)
    np.testing.assert_array_equal(to_square(tall, "crop"), tall[3:7])
    wide = tall.T.copy()
    np.testing.assert_array_equal(to_square(wide, "crop"), wide[:, 3:7])


def test_pad_centres_the_image_on_black():
    wide = np.full((2, 6), 200, np.uint8)
    square = to_square(wide, "pad")
    assert square.shape == (6, 6)
    np.testing.assert_array_equal(square[2:4], wide)
    assert not square[:2].any() and not square[4:].any()


def test_square_input_is_untouched():
    image = smooth_image(32, 32)
    assert to_square(image) is image


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_tensor_shape_and_dtype(dtype):
    tensor = to_tensor(smooth_image(300, 400).astype(dtype))
    assert tensor.shape == (1, INPUT_SIZE, INPUT_SIZE) and tensor.dtype == np.uint8


def test_float_input_is_rounded_not_truncated():
    assert resize(np.full((448, 448), 99.6, np.float32))[0, 0] == 100


def test_resize_is_antialiased():
    # A one-pixel checkerboard averages to mid-grey; a resize without antialiasing keeps extremes.
    board = (np.indices((896, 896)).sum(axis=0) % 2 * 255).astype(np.uint8)
    small = resize(board)
    assert abs(float(small.mean()) - 127.5) < 2 and small.std() < 3


def test_small_images_are_upscaled():
    assert to_tensor(smooth_image(16, 16)).shape == (1, INPUT_SIZE, INPUT_SIZE)


def test_rejects_non_2d_input():
    with pytest.raises(ValueError, match="2-D"):
        to_tensor(np.zeros((4, 4, 3), np.uint8))


def test_prepare_a_jpeg():
    data = raster(smooth_image(1024, 1024), "JPEG", quality=90)
    prepared = prepare(data)
    assert prepared.tensor.shape == (1, INPUT_SIZE, INPUT_SIZE)
    assert prepared.input_sha256 == hashlib.sha256(data).hexdigest()
    assert prepared.decoded.format == "jpeg" and prepared.decode_ms >= 0 and prepared.preprocess_ms >= 0


def test_reduced_scale_jpeg_decode_matches_full_decode():
    data = raster(smooth_image(2048, 2048), "JPEG", quality=90)
    fast = prepare(data)
    plain = prepare(data, fast=False)
    assert fast.decoded.pixels.shape[0] < plain.decoded.pixels.shape[0] == 2048  # decoded at reduced scale
    assert np.abs(fast.tensor.astype(np.int16) - plain.tensor.astype(np.int16)).mean() < FAST_PATH_TOLERANCE


def test_prepare_the_chest_radiograph_keeps_its_anatomy():
    tensor = prepare(sample_bytes("RG1_UNCR.dcm")).tensor[0]
    lungs = (tensor[60:100, 45:75].mean() + tensor[60:100, 150:180].mean()) / 2
    assert lungs < tensor[60:100, 105:120].mean() - 20  # lungs dark, mediastinum bright


def test_prepare_a_cr_matches_the_reader_then_resize():
    data = sample_bytes(CR_FILES[1])
    np.testing.assert_array_equal(prepare(data).tensor, to_tensor(read_image(data).pixels))


def test_tensor_round_trip():
    tensor = to_tensor(smooth_image(300, 300))
    encoded = encode_tensor(tensor)
    assert len(encoded) < INPUT_SIZE * INPUT_SIZE + 200  # raw pixels plus a small .npy header
    np.testing.assert_array_equal(decode_tensor(encoded), tensor)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((1, INPUT_SIZE, INPUT_SIZE), np.float32),
        np.zeros((3, INPUT_SIZE, INPUT_SIZE), np.uint8),
        np.zeros((INPUT_SIZE, INPUT_SIZE), np.uint8),
    ],
)
def test_decode_refuses_the_wrong_tensor(array):
    with pytest.raises(ValueError, match="expected a uint8 tensor"):
        decode_tensor(encode_tensor(array))


def test_decode_refuses_pickles_and_garbage():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a .npy"):
        decode_tensor(buffer.getvalue())
    with pytest.raises(ValueError, match="not a .npy"):
        decode_tensor(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="bytes"):
        decode_tensor(b"\0" * (17 * 1024 * 1024))
