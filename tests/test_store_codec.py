"""The heat-map codec: error bound, size target at 64x64, speed, and damaged or unknown blobs."""

import time

import numpy as np
import pytest

from daam_store.store import codec
from daam_store.store.errors import CorruptBlobError, UnknownCodecError
from daam_store.store.testing import smooth_maps

RNG = np.random.default_rng(1234)


def relative_error(original: np.ndarray, decoded: np.ndarray) -> float:
    return float(np.abs(decoded - original).max() / np.abs(original).max())


@pytest.mark.parametrize(
    "values",
    [
        smooth_maps(RNG, 1, 64)[0],
        RNG.random((64, 64), dtype=np.float32) * 3,  # noise: the worst case for the predictors
        smooth_maps(RNG, 1, 16)[0] - 0.002,  # bicubic undershoot leaves small negatives
        RNG.random((7, 9), dtype=np.float32),  # odd, non-square
    ],
    ids=["smooth64", "noise64", "negative16", "odd7x9"],
)
def test_round_trip_stays_within_the_stated_bound(values):
    encoded = codec.encode(values)
    decoded = codec.decode(encoded.blob, encoded.codec, encoded.codec_version)
    assert decoded.shape == values.shape and decoded.dtype == np.float32
    error = np.abs(decoded - values).max()
    assert error <= codec.max_abs_error_bound(values) * 1.0001 + 1e-9
    assert relative_error(values, decoded) <= 0.005  # the target: 0.5 % of the peak


def test_a_64x64_word_map_fits_in_4_kb():
    sizes = [len(codec.encode(m).blob) for m in smooth_maps(RNG, 20, 64)]
    noise = len(codec.encode(RNG.random((64, 64), dtype=np.float32)).blob)
    assert max(sizes) <= 4096, sizes
    assert noise <= 4096 + 64  # incompressible input costs its 8-bit size plus the header


def test_stacks_keep_one_scale_per_map():
    """A faint map next to a strong one keeps its own precision (per-slice scale)."""
    stack = np.stack([smooth_maps(RNG, 1, 16)[0] * 1000, smooth_maps(RNG, 1, 16)[0] * 0.001])[None]
    decoded = codec.decode(codec.encode(stack).blob)
    assert decoded.shape == (1, 2, 16, 16)
    for i in range(2):
        assert relative_error(stack[0, i], decoded[0, i]) <= 0.005


def test_constant_and_zero_maps_decode_exactly():
    for values in (np.zeros((8, 8), np.float32), np.full((8, 8), 0.25, np.float32)):
        assert np.array_equal(codec.decode(codec.encode(values).blob), values)


def test_smooth_maps_use_a_predictor_and_noise_does_not_grow():
    smooth = codec.encode(smooth_maps(RNG, 1, 64)[0]).blob
    assert smooth[5] in (1, 2)  # the predictor byte of the header
    assert len(smooth) < 3000


def test_refuses_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match="2 non-empty dimensions"):
        codec.encode(np.ones(5, np.float32))


def test_a_flipped_byte_is_reported_not_decoded():
    blob = bytearray(codec.encode(smooth_maps(RNG, 1, 32)[0]).blob)
    for position in (10, len(blob) // 2, len(blob) - 6):  # header, stream, end of stream
        damaged = bytearray(blob)
        damaged[position] ^= 0x5A
        with pytest.raises(CorruptBlobError, match="damaged"):
            codec.decode(bytes(damaged))
    with pytest.raises(CorruptBlobError):
        codec.decode(bytes(blob[:20]))


def test_unknown_codec_or_version_says_to_upgrade():
    blob = codec.encode(np.ones((4, 4), np.float32)).blob
    with pytest.raises(UnknownCodecError, match="upgrade daam-store"):
        codec.decode(blob, codec.CODEC_NAME, 99)
    with pytest.raises(UnknownCodecError, match="upgrade daam-store"):
        codec.decode(blob, "zfp", 1)


def test_decoding_1000_maps_takes_well_under_a_second():
    blobs = [codec.encode(m).blob for m in smooth_maps(RNG, 50, 64)] * 20
    started = time.perf_counter()
    for blob in blobs:
        codec.decode(blob)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"1000 decodes took {elapsed:.3f} s"
